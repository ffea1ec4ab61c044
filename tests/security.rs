//! Encryption and the API token, with real agents on 127.0.0.1.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn stats(api: &str) -> serde_json::Value {
    http_get(api, "/v1/stats")
        .and_then(|r| r.json())
        .unwrap_or_default()
}

fn with_token(
    method: &str,
    api: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> u16 {
    let mut req = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build()
        .request(method, &format!("http://{api}{path}"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_json(body) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

#[test]
fn only_key_holders_get_in_and_keys_rotate_without_restarts() {
    let _g = serial();
    let mut c = Cluster::new("crypto", 6).with_env("GOSSIP_KEY", K1);
    let members = c.spawn_n(3);
    c.wait_all_alive(&members, &members, Duration::from_secs(30));

    // A node with the wrong key and one without any key try to join.
    let wrong = c.spawn(&[("GOSSIP_KEY", K2)]);
    let plain = c.spawn(&[("GOSSIP_KEY", "")]);
    std::thread::sleep(Duration::from_secs(6));
    for &i in &members {
        let view = c.nodes[i].members().expect("member API answers");
        assert_eq!(
            view.len(),
            3,
            "{} lists outsiders: {:?}",
            c.nodes[i].id,
            view.keys()
        );
    }
    for outsider in [wrong, plain] {
        let view = c.nodes[outsider].members().expect("outsider API answers");
        assert_eq!(
            view.len(),
            1,
            "{} got in: {:?}",
            c.nodes[outsider].id,
            view.keys()
        );
    }
    let failures: u64 = members
        .iter()
        .map(|&i| {
            stats(&c.nodes[i].api())["auth_failures"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(failures > 0, "the refused datagrams are counted");

    // Rotation of the whole cluster from one node: install K2, make it
    // primary, remove K1 (as `gossip keys` does).
    for op in [("install", K2), ("use", K2), ("remove", K1)] {
        let r = http_post_json(
            &c.nodes[0].api(),
            "/v1/keys",
            &json!({"op": op.0, "key": op.1}),
        )
        .expect("keys API");
        assert_eq!(r.status, 200, "{op:?}: {}", r.body);
        std::thread::sleep(Duration::from_millis(700));
    }
    for &i in &members {
        let keys = http_get(&c.nodes[i].api(), "/v1/keys")
            .and_then(|r| r.json())
            .unwrap();
        assert_eq!(keys["keys"], json!([K2]), "{}'s keyring", c.nodes[i].id);
    }
    let r = http_post_json(
        &c.nodes[0].api(),
        "/v1/keys",
        &json!({"op": "remove", "key": K2}),
    )
    .unwrap();
    assert_eq!(
        r.status, 400,
        "the primary key cannot be removed: {}",
        r.body
    );
    // The cluster stays whole, and the node that had K2 all along now gets in.
    let mut expected = members.clone();
    expected.push(wrong);
    c.wait_all_alive(&expected, &expected, Duration::from_secs(30));
}

#[test]
fn mutating_endpoints_need_the_token() {
    let _g = serial();
    let token = "s3cret-token-0123456789";
    let mut c = Cluster::new("token", 1).with_env("API_TOKEN", token);
    c.spawn_n(1);
    let api = c.nodes[0].api();
    wait_for(
        "the API",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            http_get(&api, "/healthz")
                .map(|_| ())
                .ok_or_else(|| "no answer".into())
        },
    );
    let svc = json!({"name": "api", "port": 9090});
    assert_eq!(
        with_token("PUT", &api, "/v1/services", None, svc.clone()),
        401
    );
    assert_eq!(
        with_token(
            "PUT",
            &api,
            "/v1/services",
            Some("wrong-token-0123456789"),
            svc.clone()
        ),
        401
    );
    assert_eq!(
        with_token("PUT", &api, "/v1/services", Some(token), svc),
        200
    );
    assert_eq!(with_token("POST", &api, "/v1/leave", None, json!({})), 401);
    assert_eq!(
        http_get(&api, "/v1/keys").unwrap().status,
        401,
        "the keys are secret too"
    );
    assert_eq!(
        http_get(&api, "/v1/members").unwrap().status,
        200,
        "reads stay open"
    );
    let r = http_put_json(&api, "/v1/services", &json!({})).unwrap();
    assert!(
        r.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("Bearer"),
        "{}",
        r.body
    );
}

#[test]
fn a_node_restarted_after_a_rotation_keeps_its_keyring_and_rejoins() {
    let _g = serial();
    let mut c = Cluster::new("keyring", 3).with_env("GOSSIP_KEY", K1);
    let data_dir = c.dir.join("node3-data");
    let members = vec![
        c.spawn(&[]),
        c.spawn(&[]),
        c.spawn(&[("DATA_DIR", data_dir.to_str().unwrap())]),
    ];
    c.wait_all_alive(&members, &members, Duration::from_secs(30));
    let log0 = std::fs::read_to_string(&c.nodes[0].log).unwrap();
    assert!(
        log0.contains("run-time key changes will not survive a restart"),
        "{log0}"
    );

    for op in [("install", K2), ("use", K2), ("remove", K1)] {
        let r = http_post_json(
            &c.nodes[0].api(),
            "/v1/keys",
            &json!({"op": op.0, "key": op.1}),
        )
        .expect("keys API");
        assert_eq!(r.status, 200, "{op:?}: {}", r.body);
        std::thread::sleep(Duration::from_millis(700));
    }
    let file = data_dir.join("keyring.json");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("keyring file")).unwrap();
    assert_eq!(stored["keys"], json!([K2]));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the keyring file is the owner's only");
    }

    // Killed and started again with its old configuration (GOSSIP_KEY=K1):
    // the keyring file wins, and it gets back in.
    c.nodes[2].sigkill();
    c.nodes[2].start();
    let mut restarted = serde_json::Value::Null;
    wait_for(
        "the restarted node's API",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            restarted = http_get(&c.nodes[2].api(), "/v1/keys")
                .and_then(|r| r.json())
                .ok_or("no answer")?;
            Ok(())
        },
    );
    assert_eq!(
        restarted["keys"],
        json!([K2]),
        "keyring restored from the file"
    );
    c.wait_all_alive(&[2], &members, Duration::from_secs(30));
    c.wait_all_alive(&members, &members, Duration::from_secs(30));
    let log2 = std::fs::read_to_string(&c.nodes[2].log).unwrap();
    assert!(log2.contains("keyring restored from"), "{log2}");
}
