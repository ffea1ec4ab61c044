//! Blocking queries (`?index=N&wait=D`) and the X-Consul-Index.
//!
//! The index is per read target (an endpoint with its arguments), kept in an
//! [`IndexBook`]: the agent renders the answer from the newest snapshot and
//! hashes it; while the hash stays, the target keeps the index it had; when
//! it changes, the target takes the snapshot's index. Snapshot indexes start
//! at 1 and only grow within one run of the agent, so every target's index
//! is never 0 and never goes back; a restarted agent starts again at 1, and
//! Consul clients reset when an index goes backwards.
//!
//! A query with `index=N` waits while the target's index is at most N (and
//! N is not from the future: an index above the newest snapshot's means the
//! agent restarted since, so it answers at once). It waits on
//! `SnapshotRx::changed()` under the capped, jittered timeout; nothing polls,
//! so idle blocking queries cost no CPU. When a snapshot arrives, only its
//! first reader per target renders; the others reuse that body.
//!
//! So a blocking query on `web` returns when `web`'s answer changes, not on
//! every change of the member table (a probe's suspicion of an unrelated
//! node, another service's registration).

use rand::Rng;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::checks::parse_duration;
use crate::snapshot::{Snapshot, SnapshotRx};

/// Consul's default and largest wait.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// Targets remembered at most; past that the book starts again (every
/// target then takes the newest index: a spurious wake-up, never a missed
/// change), so random names cannot grow it without bound.
pub const MAX_TARGETS: usize = 4096;
/// Bytes of keys and bodies remembered at most (the same reset past it): a
/// large cluster's full catalog, asked for under many query strings, cannot
/// hold memory either.
pub const MAX_BOOK_BYTES: usize = 32 << 20;

/// What the client asked for: `index`, `wait`, and the arguments Consul's
/// reads share.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryOpts {
    pub index: Option<u64>,
    pub wait: Option<Duration>,
    pub dc: Option<String>,
    pub tags: Vec<String>,
    pub passing: bool,
}

/// Parses the query string; the error is Consul's text for a 400.
pub fn parse_query(pairs: &[(String, String)]) -> Result<QueryOpts, String> {
    let mut q = QueryOpts::default();
    for (k, v) in pairs {
        match k.as_str() {
            "index" => {
                let n: u64 = v.parse().map_err(|_| format!("Invalid index: {v:?}"))?;
                q.index = (n > 0).then_some(n);
            }
            "wait" => {
                q.wait = Some(match parse_duration(v) {
                    Ok(d) => d,
                    // Longer than the parser takes: Consul caps it too.
                    Err(e) if e.contains("longer than") => MAX_WAIT,
                    Err(_) => return Err(format!("Invalid wait time: {v:?}")),
                });
            }
            "dc" => q.dc = Some(v.clone()).filter(|d| !d.is_empty()),
            "tag" => q.tags.push(v.clone()),
            "passing" => {
                q.passing = match v.as_str() {
                    "" | "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(format!("Invalid value for passing: {v:?}")),
                }
            }
            "filter" => {
                return Err("Gossip's Consul face does not evaluate filter expressions".into())
            }
            // Accepted, and true of every answer anyway: it is the local
            // agent's view (`stale`, `consistent`, `cached`), or meaningless
            // here (`near`, `ns`, `partition`, `token`).
            _ => {}
        }
    }
    Ok(q)
}

/// How long a blocking query waits: `wait` (default 5 min) capped at 10 min,
/// plus up to 1/16 more at random, as Consul spreads wake-ups.
pub fn jittered(wait: Option<Duration>, rng: &mut impl Rng) -> Duration {
    let w = wait.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT);
    let extra = w.as_millis() as u64 / 16;
    w + Duration::from_millis(if extra == 0 {
        0
    } else {
        rng.gen_range(0..=extra)
    })
}

struct Entry {
    hash: u64,
    index: u64,
    /// The snapshot the body was last rendered from (or found unchanged at).
    checked_at: u64,
    body: Arc<str>,
}

#[derive(Default)]
struct Book {
    entries: HashMap<String, Entry>,
    /// Key and body bytes held.
    bytes: usize,
}

/// Per-target indexes and the last body rendered for each.
#[derive(Default)]
pub struct IndexBook {
    book: Mutex<Book>,
}

impl IndexBook {
    /// The target's body and index at `snap`, rendering only if no reader
    /// did at this snapshot yet.
    pub fn look(
        &self,
        target: &str,
        snap: &Snapshot,
        render: &dyn Fn(&Snapshot) -> String,
    ) -> (u64, Arc<str>) {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = book.entries.get(target) {
            if e.checked_at >= snap.index {
                return (e.index, e.body.clone());
            }
        }
        let body = render(snap);
        let mut h = DefaultHasher::new();
        body.hash(&mut h);
        let hash = h.finish();
        let known = book.entries.contains_key(target);
        if (!known && book.entries.len() >= MAX_TARGETS)
            || book.bytes + target.len() + body.len() > MAX_BOOK_BYTES
        {
            book.entries.clear();
            book.bytes = 0;
        }
        let Book { entries, bytes } = &mut *book;
        let e = match entries.get_mut(target) {
            Some(e) => e,
            None => {
                *bytes += target.len();
                entries.entry(target.to_string()).or_insert(Entry {
                    hash: !hash,
                    index: snap.index,
                    checked_at: snap.index,
                    body: Arc::from(""),
                })
            }
        };
        if e.hash != hash {
            *bytes = *bytes - e.body.len() + body.len();
            e.hash = hash;
            e.index = snap.index;
            e.body = Arc::from(body);
        }
        e.checked_at = snap.index;
        (e.index, e.body.clone())
    }

    pub fn len(&self) -> usize {
        self.book.lock().map(|b| b.entries.len()).unwrap_or(0)
    }

    pub fn bytes(&self) -> usize {
        self.book.lock().map(|b| b.bytes).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a query holding `client` must wait, given the target's `index`
/// and the newest snapshot's.
pub fn must_wait(client: Option<u64>, index: u64, newest: u64) -> bool {
    client.is_some_and(|n| index <= n && n <= newest)
}

/// Answers `target`: at once, or, for a blocking query, when its body
/// changes or the wait ends. Returns the index and the body.
pub async fn answer(
    rx: &SnapshotRx,
    book: &IndexBook,
    target: &str,
    q: &QueryOpts,
    render: &dyn Fn(&Snapshot) -> String,
) -> (u64, Arc<str>) {
    let mut rx = rx.clone();
    let snap = rx.borrow_and_update().clone();
    let (index, body) = book.look(target, &snap, render);
    if !must_wait(q.index, index, snap.index) {
        return (index, body);
    }
    let deadline = tokio::time::Instant::now() + jittered(q.wait, &mut rand::thread_rng());
    let mut last = (index, body);
    loop {
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {
                let snap = rx.borrow_and_update().clone();
                last = book.look(target, &snap, render);
                if !must_wait(q.index, last.0, snap.index) {
                    return last;
                }
            }
            // The wait ended, or the publisher is gone (the node stops).
            _ => return last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::view::View;
    use crate::protocol::{Member, NodeId};
    use crate::snapshot::Publisher;
    use imbl::OrdMap;

    fn pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect()
    }

    #[test]
    fn parses_consul_query_arguments() {
        let q = parse_query(&pairs("index=12&wait=30s&tag=a&tag=b&passing&stale&dc=x")).unwrap();
        assert_eq!(q.index, Some(12));
        assert_eq!(q.wait, Some(Duration::from_secs(30)));
        assert_eq!(q.tags, ["a", "b"]);
        assert!(q.passing);
        assert_eq!(q.dc.as_deref(), Some("x"));
        assert_eq!(parse_query(&pairs("index=0")).unwrap().index, None);
        assert!(parse_query(&pairs("index=-1"))
            .unwrap_err()
            .contains("Invalid index"));
        assert!(parse_query(&pairs("wait=soon"))
            .unwrap_err()
            .contains("Invalid wait"));
        assert!(parse_query(&pairs("passing=maybe")).is_err());
        assert!(parse_query(&pairs("filter=x")).is_err());
    }

    #[test]
    fn wait_defaults_caps_and_jitters() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let d = jittered(None, &mut rng);
            assert!(d >= DEFAULT_WAIT && d <= DEFAULT_WAIT + DEFAULT_WAIT / 16);
            let d = jittered(Some(Duration::from_secs(3600)), &mut rng);
            assert!(d >= MAX_WAIT && d <= MAX_WAIT + MAX_WAIT / 16);
        }
    }

    fn snap(index: u64) -> Snapshot {
        Snapshot {
            index,
            ..Snapshot::empty(NodeId::new("a"))
        }
    }

    #[test]
    fn a_target_keeps_its_index_until_its_body_changes() {
        let book = IndexBook::default();
        let body = std::cell::RefCell::new("x".to_string());
        let renders = std::cell::Cell::new(0);
        let render = |_: &Snapshot| {
            renders.set(renders.get() + 1);
            body.borrow().clone()
        };
        assert_eq!(book.look("t", &snap(3), &render).0, 3);
        assert_eq!(book.look("t", &snap(3), &render).0, 3);
        assert_eq!(
            renders.get(),
            1,
            "a second reader of one snapshot reuses the body"
        );
        assert_eq!(
            book.look("t", &snap(9), &render).0,
            3,
            "same body, same index"
        );
        *body.borrow_mut() = "y".into();
        let (i, b) = book.look("t", &snap(11), &render);
        assert_eq!((i, &*b), (11, "y"));
        assert_eq!(book.look("other", &snap(11), &render).0, 11);
    }

    #[test]
    fn the_book_is_bounded_and_indexes_never_go_back() {
        let book = IndexBook::default();
        let render = |_: &Snapshot| "same".to_string();
        assert_eq!(book.look("t", &snap(2), &render).0, 2);
        for i in 0..MAX_TARGETS {
            book.look(&format!("n{i}"), &snap(5), &render);
        }
        assert!(book.len() <= MAX_TARGETS);
        assert!(book.look("t", &snap(6), &render).0 >= 2);
        // Large bodies under many names: the bytes stay bounded too.
        let big = "x".repeat(1 << 20);
        let render_big = |_: &Snapshot| big.clone();
        for i in 0..100 {
            book.look(&format!("big{i}"), &snap(7), &render_big);
            assert!(book.bytes() <= MAX_BOOK_BYTES);
        }
        assert!(book.look("t", &snap(8), &render).0 >= 2);
    }

    #[test]
    fn waits_only_for_a_current_index() {
        assert!(!must_wait(None, 5, 9));
        assert!(must_wait(Some(5), 5, 9));
        assert!(must_wait(Some(7), 5, 9));
        assert!(!must_wait(Some(4), 5, 9), "the target changed since");
        assert!(!must_wait(Some(10), 5, 9), "an index from before a restart");
    }

    fn view(services: &[&str]) -> View {
        let me = NodeId::new("a");
        let mut m = Member::new_alive(me.clone(), "127.0.0.1:1".parse().unwrap(), 0);
        m.services = crate::protocol::services::ServiceSet::new(
            services.len() as u64,
            services
                .iter()
                .map(|s| crate::protocol::services::Service::new(s, 80))
                .collect(),
        );
        let mut v = View::new(16);
        v.apply(&m, tokio::time::Instant::now()).unwrap();
        v
    }

    fn render_web(s: &Snapshot) -> String {
        serde_json::to_string(&s.catalog().remove("web").unwrap_or_default()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_query_returns_on_its_change_not_on_others() {
        let (mut publisher, rx) = Publisher::new(NodeId::new("a"), &view(&[]));
        let book = IndexBook::default();
        let (i0, _) = answer(&rx, &book, "web", &QueryOpts::default(), &render_web).await;
        let q = QueryOpts {
            index: Some(i0),
            wait: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let waiter = async {
            let t0 = tokio::time::Instant::now();
            let (i, body) = answer(&rx, &book, "web", &q, &render_web).await;
            (i, body.to_string(), t0.elapsed())
        };
        let finished = std::cell::Cell::new(false);
        let driver = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            publisher.publish(&view(&["db"]), OrdMap::new(), 0);
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert!(!finished.get(), "another service's change must not wake it");
            publisher.publish(&view(&["db", "web"]), OrdMap::new(), 0);
            publisher.index()
        };
        let waiter = async {
            let r = waiter.await;
            finished.set(true);
            r
        };
        let ((i, body, took), newest) = tokio::join!(waiter, driver);
        assert_eq!(i, newest);
        assert!(i > i0);
        assert!(body.contains("\"port\":80"), "{body}");
        assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_query_ends_with_its_wait() {
        let (_publisher, rx) = Publisher::new(NodeId::new("a"), &view(&["web"]));
        let book = IndexBook::default();
        let (i0, _) = answer(&rx, &book, "web", &QueryOpts::default(), &render_web).await;
        let q = QueryOpts {
            index: Some(i0),
            wait: Some(Duration::from_secs(16)),
            ..Default::default()
        };
        let t0 = tokio::time::Instant::now();
        let (i, _) = answer(&rx, &book, "web", &q, &render_web).await;
        assert_eq!(i, i0);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(16) && took <= Duration::from_secs(17),
            "{took:?}"
        );
    }
}
