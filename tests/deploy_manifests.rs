//! The orchestrator files (issue 16): deploy/kubernetes/ and
//! deploy/swarm/stack.yml.
//!
//! No Kubernetes cluster runs here, so the manifests are validated, not run:
//! `kubernetes-validate --strict` (PyPI; `.ci/run` installs it) checks them
//! against the schemas of a current Kubernetes release, and the tests below
//! check what a schema cannot: the restricted security profile, the
//! downward-API wiring, the seed name pointing at a headless Service that
//! selects the pods. test/test_swarm.sh runs the Swarm stack for real; here
//! only its shape is checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .expect("deploy/kubernetes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
}

fn docs(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

/// `kubernetes-validate`, or None when it is not installed (a failure
/// under CI=true, where .ci/run installs it).
fn validator() -> Option<&'static str> {
    let found = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("kubernetes-validate");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "kubernetes-validate is not installed (pip install kubernetes-validate; .ci/run does)"
        );
    }
    println!("SKIPPED: kubernetes-validate is not installed (pip install kubernetes-validate)");
    None
}

#[test]
fn kubernetes_manifests_validate_against_a_current_release() {
    let Some(v) = validator() else { return };
    let out = Command::new(v)
        .args(["--strict", "--no-warn"])
        .args(manifests())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    for kind in [
        "statefulset/",
        "daemonset/",
        "poddisruptionbudget/",
        "service/",
        "secret/",
    ] {
        assert!(text.contains(kind), "no {kind} validated:\n{text}");
    }

    // The validator does reject a broken manifest (a misspelt field).
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deploy-manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    let good = std::fs::read_to_string(root().join("deploy/kubernetes/statefulset.yaml")).unwrap();
    std::fs::write(&broken, good.replace("  replicas: 5", "  replica: 5")).unwrap();
    let out = Command::new(v)
        .arg("--strict")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field passed validation");
}

/// Every pod template in deploy/kubernetes, with the documents of its file.
fn workloads() -> Vec<(String, Yaml, Vec<Yaml>)> {
    let mut out = Vec::new();
    for f in manifests() {
        let all = docs(&f);
        for d in &all {
            if matches!(s(&d["kind"]), "StatefulSet" | "DaemonSet" | "Deployment") {
                let name = format!("{} {}", s(&d["kind"]), s(&d["metadata"]["name"]));
                out.push((name, d.clone(), all.clone()));
            }
        }
    }
    out
}

fn env_of(container: &Yaml) -> Vec<(String, Yaml)> {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| (s(&e["name"]).to_string(), e.clone()))
        .collect()
}

fn env_value<'a>(env: &'a [(String, Yaml)], name: &str) -> &'a Yaml {
    &env.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no env {name}"))
        .1
}

#[test]
fn pods_run_restricted_with_probes_limits_and_a_graceful_stop() {
    let w = workloads();
    let kinds: Vec<&str> = w.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(
        kinds.iter().any(|k| k.starts_with("StatefulSet")),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.starts_with("DaemonSet")),
        "{kinds:?}"
    );
    for (name, d, _) in &w {
        let pod = &d["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_i64();
        assert!(
            grace.is_some_and(|g| g > 2),
            "{name}: grace {grace:?} must exceed leave_timeout_ms"
        );
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true), "{name}");
        assert!(psc["runAsUser"].as_i64().is_some_and(|u| u > 0), "{name}");
        assert_eq!(
            s(&psc["seccompProfile"]["type"]),
            "RuntimeDefault",
            "{name}"
        );
        assert!(pod["hostNetwork"].is_badvalue(), "{name}: no hostNetwork");
        for c in pod["containers"].as_vec().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{name}");
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{name}"
            );
            let drop = sc["capabilities"]["drop"].as_vec().unwrap();
            assert_eq!(drop, &vec![Yaml::String("ALL".into())], "{name}");
            assert!(sc["capabilities"]["add"].is_badvalue(), "{name}");
            for probe in ["readinessProbe", "livenessProbe"] {
                assert_eq!(
                    s(&c[probe]["httpGet"]["path"]),
                    "/healthz",
                    "{name} {probe}"
                );
            }
            for which in ["requests", "limits"] {
                for res in ["cpu", "memory"] {
                    assert!(
                        !s(&c["resources"][which][res]).is_empty(),
                        "{name}: {which}.{res}"
                    );
                }
            }
        }
    }
}

#[test]
fn pods_advertise_their_ip_serve_the_api_there_with_a_token_and_seed_through_a_headless_service() {
    for (name, d, all) in workloads() {
        let pod = &d["spec"]["template"]["spec"];
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        let c = &pod["containers"][0];
        let env = env_of(c);
        assert_eq!(
            s(&env_value(&env, "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"]),
            "status.podIP",
            "{name}: the downward API gives the pod IP"
        );
        let id = s(&env_value(&env, "NODE_ID")["value"]);
        let id_var = id.trim_start_matches("$(").trim_end_matches(')');
        let id_field = s(&env_value(&env, id_var)["valueFrom"]["fieldRef"]["fieldPath"]);
        assert!(
            ["metadata.name", "spec.nodeName"].contains(&id_field),
            "{name}: NODE_ID from the downward API, saw {id} = {id_field}"
        );
        assert_eq!(
            s(&env_value(&env, "NODE_IP")["value"]),
            "$(POD_IP)",
            "{name}"
        );
        assert_eq!(
            s(&env_value(&env, "API_ADDR")["value"]),
            "$(POD_IP):8946",
            "{name}"
        );
        let token = &env_value(&env, "API_TOKEN")["valueFrom"]["secretKeyRef"];
        let secret = s(&token["name"]);
        assert!(
            manifests()
                .iter()
                .flat_map(|f| docs(f))
                .any(|d| s(&d["kind"]) == "Secret"
                    && s(&d["metadata"]["name"]) == secret
                    && !s(&d["stringData"][s(&token["key"])]).is_empty()),
            "{name}: API_TOKEN from Secret {secret}, which the manifests define"
        );
        let ports: Vec<(&str, i64)> = c["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|p| (s(&p["name"]), p["containerPort"].as_i64().unwrap()))
            .collect();
        assert!(ports.contains(&("api", 8946)), "{name}: {ports:?}");

        // SEED_NODES names a headless Service of the same file that
        // selects these pods, with the gossip port, ready or not.
        let seeds = s(&env_value(&env, "SEED_NODES")["value"]);
        let (host, port) = seeds.rsplit_once(':').unwrap();
        let svc = all
            .iter()
            .find(|d| s(&d["kind"]) == "Service" && s(&d["metadata"]["name"]) == host)
            .unwrap_or_else(|| panic!("{name}: no Service {host} for SEED_NODES={seeds}"));
        assert_eq!(s(&svc["spec"]["clusterIP"]), "None", "{name}: headless");
        assert_eq!(
            svc["spec"]["publishNotReadyAddresses"].as_bool(),
            Some(true)
        );
        for (k, v) in svc["spec"]["selector"].as_hash().unwrap() {
            assert_eq!(
                &labels[s(k)],
                v,
                "{name}: the seed Service selects the pods"
            );
        }
        assert!(
            svc["spec"]["ports"]
                .as_vec()
                .unwrap()
                .iter()
                .any(|p| p["port"].as_i64() == port.parse().ok() && s(&p["protocol"]) == "UDP"),
            "{name}: the seed Service has UDP {port}"
        );
    }
    // The StatefulSet has a PodDisruptionBudget selecting its pods.
    let sts = docs(&root().join("deploy/kubernetes/statefulset.yaml"));
    let pdb = sts
        .iter()
        .find(|d| s(&d["kind"]) == "PodDisruptionBudget")
        .expect("a PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"].as_i64(), Some(1));
}

#[test]
fn the_swarm_stack_seeds_through_tasks_dns_and_leaves_gracefully() {
    let stack = &docs(&root().join("deploy/swarm/stack.yml"))[0];
    let services = stack["services"].as_hash().unwrap();
    assert_eq!(services.len(), 1);
    let (key, svc) = services.iter().next().unwrap();
    let env = &svc["environment"];
    assert_eq!(s(&env["SEED_NODES"]), format!("tasks.{}:7946", s(key)));
    // The orchestrator names the tasks: no identity is spelled out.
    assert!(env["NODE_ID"].is_badvalue() && env["NODE_IP"].is_badvalue());
    assert!(svc["hostname"].is_badvalue());
    let net = s(&svc["networks"][0]);
    assert_eq!(s(&stack["networks"][net]["driver"]), "overlay");
    assert_eq!(s(&svc["stop_signal"]), "SIGTERM");
    assert!(!s(&svc["stop_grace_period"]).is_empty());
    assert_eq!(s(&svc["healthcheck"]["test"][0]), "CMD");
    let deploy = &svc["deploy"];
    assert!(deploy["replicas"].as_i64().is_some_and(|r| r >= 3));
    for k in ["update_config", "rollback_config", "restart_policy"] {
        assert!(deploy[k].as_hash().is_some(), "deploy.{k}");
    }
    assert_eq!(s(&deploy["update_config"]["failure_action"]), "rollback");
}
