//! The event stream: `GET /v1/events` (Server-Sent Events) and `gossip
//! monitor`.
//!
//! An [`EventHub`] actor subscribes to the node's membership events, turns
//! each into an [`EventRecord`] (wall-clock timestamp, kind, member,
//! incarnation, state, address), keeps the last [`RING`] of them, and fans
//! them out to at most [`MAX_CLIENTS`] SSE clients. A client that falls
//! [`CLIENT_BUFFER`] events behind is dropped (its stream ends; an
//! `EventSource` reconnects and resumes with `Last-Event-ID`).
//!
//! Service events are derived by diffing: another node's service changes
//! arrive as membership events carrying its service list; this node's own
//! come from polling the registry once a second. A service that appears (or
//! changes) gives `service_registered`; one that disappears, because it was
//! deregistered or because its node failed or left, gives
//! `service_deregistered`. An instance whose health alone changed gives
//! `service_health`, with `old_status` and `status`.

use actix::prelude::*;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

use crate::actors::membership::Membership;
use crate::actors::registry::Registry;
use crate::messages::{EventKind, GetMembers, LocalServices, MemberEvent, Subscribe};
use crate::node::NodeHandle;
use crate::protocol::services::{health_changes, Health, Service};
use crate::protocol::{Member, NodeId};

/// Recent events kept for clients that connect (or reconnect) later.
pub const RING: usize = 256;
/// SSE clients served at once; more get 503.
pub const MAX_CLIENTS: usize = 32;
/// Events a client may lag behind before it is dropped.
pub const CLIENT_BUFFER: usize = 128;
/// A comment line sent to every client this often, so that closed
/// connections are noticed and proxies keep the stream open.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often the hub checks this node's own services.
pub const LOCAL_POLL: Duration = Duration::from_secs(1);

/// One event as clients see it (the `data:` of an SSE message, one JSON
/// object per line in `gossip monitor --json`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Increases by one per event, per node run; the SSE `id:`.
    pub id: u64,
    /// Wall clock of this node, RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// The same instant in Unix milliseconds.
    pub ts_ms: u64,
    /// `joined`, `updated`, `suspected`, `confirmed`, `alive_again`,
    /// `failed`, `left`, `reclaimed`, `self_refuted`, `service_registered`,
    /// `service_health`,
    /// `service_deregistered`.
    pub kind: String,
    pub member: String,
    pub incarnation: u64,
    pub state: String,
    pub addr: String,
    /// The accuser, for `suspected` and `confirmed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The service, for `service_*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// For `service_health`: the instance's health before and now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_status: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Health>,
}

pub const SERVICE_REGISTERED: &str = "service_registered";
pub const SERVICE_DEREGISTERED: &str = "service_deregistered";
pub const SERVICE_HEALTH: &str = "service_health";

fn kind_name(k: EventKind) -> String {
    match serde_json::to_value(k) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{k:?}").to_lowercase(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Unix milliseconds as RFC 3339 UTC, e.g. `2024-05-01T12:00:00.250Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The hub's state, free of actors and clocks so that it can be tested
/// directly.
pub struct HubCore {
    me: NodeId,
    next_id: u64,
    ring: VecDeque<(u64, Bytes)>,
    clients: Vec<mpsc::Sender<Bytes>>,
    /// The live services of each member, as last seen (self included).
    services: HashMap<NodeId, Arc<Vec<Service>>>,
    max_clients: usize,
    buffer: usize,
    /// Clients dropped for falling behind, since start.
    pub dropped_slow: u64,
}

/// Why a client was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyClients(pub usize);

impl HubCore {
    pub fn new(me: NodeId, max_clients: usize, buffer: usize) -> Self {
        HubCore {
            me,
            next_id: 1,
            ring: VecDeque::with_capacity(16),
            clients: Vec::new(),
            services: HashMap::new(),
            max_clients,
            buffer,
            dropped_slow: 0,
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Records and sends one event (its `id` is assigned here).
    pub fn publish(&mut self, mut rec: EventRecord) -> u64 {
        rec.id = self.next_id;
        self.next_id += 1;
        let json = serde_json::to_string(&rec).unwrap_or_default();
        let frame = Bytes::from(format!("id: {}\ndata: {json}\n\n", rec.id));
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back((rec.id, frame.clone()));
        self.fan_out(frame);
        rec.id
    }

    /// Sends `frame` to every client; drops those that are gone or too slow.
    fn fan_out(&mut self, frame: Bytes) {
        let mut slow = 0;
        self.clients.retain(|tx| match tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                slow += 1;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if slow > 0 {
            log::info!(
                "event stream: dropped {slow} client(s) that fell {} events behind",
                self.buffer
            );
            self.dropped_slow += slow;
        }
    }

    pub fn keepalive(&mut self) {
        self.fan_out(Bytes::from_static(b": keepalive\n\n"));
    }

    /// A new client: the buffered events after `since` (all when `None`) and
    /// the receiving end of its live feed.
    pub fn connect(
        &mut self,
        since: Option<u64>,
    ) -> Result<(Vec<Bytes>, mpsc::Receiver<Bytes>), TooManyClients> {
        self.clients.retain(|tx| !tx.is_closed());
        if self.clients.len() >= self.max_clients {
            return Err(TooManyClients(self.max_clients));
        }
        let (tx, rx) = mpsc::channel(self.buffer);
        self.clients.push(tx);
        let history = self
            .ring
            .iter()
            .filter(|(id, _)| since.is_none_or(|s| *id > s))
            .map(|(_, f)| f.clone())
            .collect();
        Ok((history, rx))
    }

    fn record(kind: String, m: &Member, ms: u64) -> EventRecord {
        EventRecord {
            id: 0,
            timestamp: rfc3339(ms),
            ts_ms: ms,
            kind,
            member: m.id.to_string(),
            incarnation: m.incarnation,
            state: m.state.to_string(),
            addr: m.addr.to_string(),
            by: None,
            service: None,
            old_status: None,
            status: None,
        }
    }

    /// A membership event: publishes it, then the service changes it implies.
    pub fn on_member_event(&mut self, e: &MemberEvent, ms: u64) {
        let mut rec = Self::record(kind_name(e.kind), &e.member, ms);
        rec.by = e.by.as_ref().map(|b| b.to_string());
        self.publish(rec);
        if e.member.id != self.me {
            self.diff_services(&e.member, ms);
        }
    }

    /// This member's live services now; publishes what changed since last
    /// time.
    pub fn diff_services(&mut self, m: &Member, ms: u64) {
        let now: Arc<Vec<Service>> = if m.state.is_live() {
            m.services.list.clone()
        } else {
            Arc::new(Vec::new())
        };
        let before = self.services.get(&m.id).cloned().unwrap_or_default();
        if Arc::ptr_eq(&now, &before) || *now == *before {
            return;
        }
        let health = health_changes(&before, &now);
        for (s, old) in &health {
            let mut rec = Self::record(SERVICE_HEALTH.into(), m, ms);
            rec.service = Some((*s).clone());
            rec.old_status = Some(*old);
            rec.status = Some(s.health);
            self.publish(rec);
        }
        for s in now.iter() {
            // A change of health alone is not a new registration.
            let health_only = before.iter().any(|b| {
                b.health != s.health
                    && Service {
                        health: s.health,
                        ..b.clone()
                    } == *s
            });
            if !health_only && !before.iter().any(|b| b == s) {
                let mut rec = Self::record(SERVICE_REGISTERED.into(), m, ms);
                rec.service = Some(s.clone());
                self.publish(rec);
            }
        }
        for b in before.iter() {
            if !now.iter().any(|s| s.name == b.name) {
                let mut rec = Self::record(SERVICE_DEREGISTERED.into(), m, ms);
                rec.service = Some(b.clone());
                self.publish(rec);
            }
        }
        if now.is_empty() {
            self.services.remove(&m.id);
        } else {
            self.services.insert(m.id.clone(), now);
        }
    }

    /// This node's own services as last published.
    pub fn own_services(&self) -> Arc<Vec<Service>> {
        self.services.get(&self.me).cloned().unwrap_or_default()
    }
}

/// The event hub of one node (see the module docs).
pub struct EventHub {
    core: HubCore,
    me: NodeId,
    membership: Addr<Membership>,
    registry: Addr<Registry>,
    polling: bool,
}

impl EventHub {
    /// Starts the hub and subscribes it to `node`'s membership events (the
    /// subscription is queued before this returns, so no event is missed).
    pub fn start(node: &NodeHandle) -> Addr<EventHub> {
        let membership = node.membership.clone();
        let registry = node.registry.clone();
        let me = node.id.clone();
        EventHub::create(move |ctx| {
            membership.do_send(Subscribe(ctx.address().recipient()));
            EventHub {
                core: HubCore::new(me.clone(), MAX_CLIENTS, CLIENT_BUFFER),
                me,
                membership,
                registry,
                polling: false,
            }
        })
    }

    /// Compares the registry's list with the last one seen; on a change,
    /// reads our own record (for its incarnation) and publishes the diff.
    fn poll_local(&mut self, ctx: &mut Context<Self>) {
        if self.polling {
            return;
        }
        self.polling = true;
        let registry = self.registry.clone();
        let membership = self.membership.clone();
        let known = self.core.own_services();
        let me = self.me.clone();
        let work = async move {
            let mut list = registry.send(LocalServices).await.ok()?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            if list == *known {
                return None;
            }
            membership
                .send(GetMembers)
                .await
                .ok()?
                .into_iter()
                .find(|m| m.id == me)
        };
        ctx.spawn(work.into_actor(self).map(|own, act, _| {
            act.polling = false;
            if let Some(own) = own {
                act.core.diff_services(&own, now_ms());
            }
        }));
    }
}

impl Actor for EventHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(KEEPALIVE, |act, _| act.core.keepalive());
        ctx.run_interval(LOCAL_POLL, |act, ctx| act.poll_local(ctx));
        self.poll_local(ctx);
    }
}

impl Handler<MemberEvent> for EventHub {
    type Result = ();
    fn handle(&mut self, e: MemberEvent, _: &mut Context<Self>) {
        self.core.on_member_event(&e, now_ms());
    }
}

/// Open a stream: history after `since`, then live events.
#[derive(Message)]
#[rtype(result = "Result<(Vec<Bytes>, mpsc::Receiver<Bytes>), TooManyClients>")]
pub struct Connect {
    pub since: Option<u64>,
}

impl Handler<Connect> for EventHub {
    type Result = MessageResult<Connect>;
    fn handle(&mut self, c: Connect, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.connect(c.since))
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Only buffered events with a greater id (as `Last-Event-ID`).
    pub since: Option<u64>,
}

/// `GET /v1/events`: `text/event-stream`; each message has `id:` and one
/// line of JSON in `data:` (an [`EventRecord`]).
pub async fn stream(
    hub: web::Data<Addr<EventHub>>,
    req: HttpRequest,
    q: web::Query<EventsQuery>,
) -> HttpResponse {
    let since = q.since.or_else(|| {
        req.headers()
            .get("Last-Event-ID")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    });
    let (history, rx) = match hub.send(Connect { since }).await {
        Ok(Ok(x)) => x,
        Ok(Err(TooManyClients(n))) => {
            return super::error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("too many event-stream clients (at most {n}); try again later"),
            )
        }
        Err(_) => return super::unavailable(),
    };
    let head = Bytes::from_static(b"retry: 2000\n: connected\n\n");
    let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let body = stream::iter(std::iter::once(head).chain(history))
        .chain(live)
        .map(Ok::<Bytes, actix_web::Error>);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

// ----- `gossip monitor` -----

/// One line for a terminal.
pub fn format_event(e: &EventRecord) -> String {
    let mut line = format!(
        "{}  {:<20}  {:<12}  {:<7}  inc={:<3}  {}",
        e.timestamp, e.kind, e.member, e.state, e.incarnation, e.addr
    );
    if let Some(by) = &e.by {
        line.push_str(&format!("  by={by}"));
    }
    if let Some(s) = &e.service {
        line.push_str(&format!("  service={} port={}", s.name, s.port));
        if !s.tags.is_empty() {
            line.push_str(&format!(" tags={}", s.tags.join(",")));
        }
    }
    line
}

/// Reads SSE messages from `r`, calling `on_data(id, data)` for each;
/// returns at the end of the stream.
pub fn read_sse(
    r: impl std::io::Read,
    mut on_data: impl FnMut(Option<u64>, &str) -> bool,
) -> std::io::Result<()> {
    let mut id = None;
    let mut data = String::new();
    for line in BufReader::new(r).lines() {
        let line = line?;
        if line.is_empty() {
            if !data.is_empty() && !on_data(id, &data) {
                return Ok(());
            }
            data.clear();
            id = None;
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        } else if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        }
    }
    Ok(())
}

/// `gossip monitor`: prints the agent's events as they happen (the buffered
/// recent ones first). Reconnects, resuming after the last event seen, when
/// the stream ends; returns an error when the agent cannot be reached.
pub fn monitor(api: &str, json: bool) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(KEEPALIVE * 3)
        .build();
    let mut last: Option<u64> = None;
    let mut announced = false;
    loop {
        let url = match last {
            Some(id) => format!("http://{api}/v1/events?since={id}"),
            None => format!("http://{api}/v1/events"),
        };
        let resp = match agent.get(&url).set("Accept", "text/event-stream").call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let v: serde_json::Value = r.into_json().unwrap_or(serde_json::Value::Null);
                let msg = v
                    .get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no details")
                    .to_string();
                return Err(format!("{code}: {msg}"));
            }
            Err(e) if announced => {
                return Err(format!(
                    "event stream from {api} ended and the agent is gone: {e}"
                ))
            }
            Err(e) => return Err(format!("cannot reach the agent's API at {api}: {e}")),
        };
        if !announced {
            eprintln!("streaming events from http://{api}/v1/events (Ctrl-C to stop)");
            announced = true;
        }
        let stdout = std::io::stdout();
        let mut broken_pipe = false;
        let _ = read_sse(resp.into_reader(), |id, data| {
            if id.is_some() {
                last = id;
            }
            let out = if json {
                data.to_string()
            } else {
                match serde_json::from_str::<EventRecord>(data) {
                    Ok(e) => format_event(&e),
                    Err(_) => data.to_string(),
                }
            };
            let mut lock = stdout.lock();
            if writeln!(lock, "{out}").and_then(|_| lock.flush()).is_err() {
                broken_pipe = true;
                return false;
            }
            true
        });
        if broken_pipe {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::services::ServiceSet;
    use crate::protocol::MemberState;

    fn member(id: &str, state: MemberState, inc: u64, services: Vec<Service>) -> Member {
        Member {
            id: NodeId::new(id),
            addr: "127.0.0.1:7000".parse().unwrap(),
            incarnation: inc,
            state,
            services: ServiceSet::new(1, services),
        }
    }

    fn ev(kind: EventKind, m: Member) -> MemberEvent {
        MemberEvent {
            kind,
            member: m,
            by: None,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<EventRecord> {
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            let text = String::from_utf8(b.to_vec()).unwrap();
            read_sse(text.as_bytes(), |_, d| {
                out.push(serde_json::from_str(d).unwrap());
                true
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn a_change_of_health_is_a_service_health_event() {
        let mut hub = HubCore::new(NodeId::new("me"), 4, 64);
        let web = Service::new("web", 80);
        let a = |web: Service| member("a", MemberState::Alive, 0, vec![web]);
        hub.on_member_event(&ev(EventKind::Joined, a(web.clone())), 1000);
        let (_, mut rx) = hub.connect(Some(u64::MAX)).unwrap();
        let mut sick = web.clone();
        sick.health = Health::Critical;
        hub.on_member_event(&ev(EventKind::Updated, a(sick)), 2000);
        let got = drain(&mut rx);
        let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["updated", SERVICE_HEALTH]);
        assert_eq!(got[1].old_status, Some(Health::Passing));
        assert_eq!(got[1].status, Some(Health::Critical));
        assert_eq!(got[1].service.as_ref().unwrap().name, "web");
    }

    #[test]
    fn events_and_service_diffs_reach_clients() {
        let mut hub = HubCore::new(NodeId::new("me"), 4, 64);
        let (_, mut rx) = hub.connect(None).unwrap();
        let web = Service::new("web", 80);
        hub.on_member_event(
            &ev(
                EventKind::Joined,
                member("a", MemberState::Alive, 0, vec![web.clone()]),
            ),
            1000,
        );
        let got = drain(&mut rx);
        let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["joined", "service_registered"]);
        assert_eq!(got[0].member, "a");
        assert_eq!(got[0].state, "alive");
        assert_eq!(got[0].addr, "127.0.0.1:7000");
        assert_eq!(got[0].timestamp, "1970-01-01T00:00:01.000Z");
        assert_eq!(got[1].service.as_ref().unwrap().name, "web");
        assert_eq!((got[0].id, got[1].id), (1, 2));

        // A service update arrives as `updated`: registered api, nothing about web.
        let api = Service::new("api", 90);
        hub.on_member_event(
            &ev(
                EventKind::Updated,
                member("a", MemberState::Alive, 0, vec![web.clone(), api]),
            ),
            2000,
        );
        let kinds: Vec<String> = drain(&mut rx).into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["updated", "service_registered"]);

        // Suspect: web stays listed (api went with this record); failed: all gone.
        hub.on_member_event(
            &ev(
                EventKind::Suspected,
                member("a", MemberState::Suspect, 0, vec![web.clone()]),
            ),
            3000,
        );
        let got = drain(&mut rx);
        assert_eq!(
            got.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["suspected", "service_deregistered"]
        );
        hub.on_member_event(
            &ev(
                EventKind::Failed,
                member("a", MemberState::Dead, 0, vec![web]),
            ),
            4000,
        );
        let got = drain(&mut rx);
        assert_eq!(
            got.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["failed", "service_deregistered"]
        );
        assert_eq!(got[1].service.as_ref().unwrap().name, "web");
        assert_eq!(got[1].state, "dead");
    }

    #[test]
    fn late_clients_get_history_and_resume_after_an_id() {
        let mut hub = HubCore::new(NodeId::new("me"), 4, 64);
        for i in 0..(RING as u64 + 10) {
            hub.on_member_event(
                &ev(
                    EventKind::Updated,
                    member("a", MemberState::Alive, i, vec![]),
                ),
                i,
            );
        }
        let (history, _rx) = hub.connect(None).unwrap();
        assert_eq!(history.len(), RING);
        let (history, _rx2) = hub.connect(Some(RING as u64 + 5)).unwrap();
        assert_eq!(history.len(), 5);
    }

    #[test]
    fn clients_are_bounded_and_slow_ones_dropped() {
        let mut hub = HubCore::new(NodeId::new("me"), 2, 3);
        let (_, mut fast) = hub.connect(None).unwrap();
        let (_, slow) = hub.connect(None).unwrap();
        assert_eq!(hub.connect(None).unwrap_err(), TooManyClients(2));
        for i in 0..5 {
            hub.on_member_event(
                &ev(
                    EventKind::Updated,
                    member("a", MemberState::Alive, i, vec![]),
                ),
                i,
            );
            drain(&mut fast);
        }
        assert_eq!(hub.clients(), 1, "the slow client was dropped");
        assert_eq!(hub.dropped_slow, 1);
        drop(slow);
        // A closed client frees its slot at the next connect.
        drop(fast);
        assert!(hub.connect(None).is_ok());
        assert_eq!(hub.clients(), 1);
    }

    #[test]
    fn own_services_are_diffed_too() {
        let mut hub = HubCore::new(NodeId::new("me"), 2, 16);
        let (_, mut rx) = hub.connect(None).unwrap();
        hub.diff_services(
            &member("me", MemberState::Alive, 0, vec![Service::new("db", 5432)]),
            1,
        );
        hub.diff_services(&member("me", MemberState::Alive, 0, vec![]), 2);
        let got = drain(&mut rx);
        assert_eq!(
            got.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            [SERVICE_REGISTERED, SERVICE_DEREGISTERED]
        );
        assert_eq!(got[0].member, "me");
        // Events about ourselves other than these are not diffed.
        hub.on_member_event(
            &ev(
                EventKind::SelfRefuted,
                member("me", MemberState::Suspect, 3, vec![]),
            ),
            3,
        );
        assert_eq!(drain(&mut rx).len(), 1);
    }

    #[test]
    fn sse_reader_and_formatter() {
        let text = "retry: 2000\n: connected\n\nid: 7\ndata: {\"id\":7,\"timestamp\":\"t\",\"ts_ms\":1,\"kind\":\"joined\",\"member\":\"n2\",\"incarnation\":0,\"state\":\"alive\",\"addr\":\"a:1\"}\n\n: keepalive\n\n";
        let mut seen = Vec::new();
        read_sse(text.as_bytes(), |id, d| {
            seen.push((id, d.to_string()));
            true
        })
        .unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, Some(7));
        let e: EventRecord = serde_json::from_str(&seen[0].1).unwrap();
        let line = format_event(&e);
        assert!(line.starts_with("t  joined"), "{line}");
        assert!(
            line.contains("n2") && line.contains("inc=0") && line.ends_with("a:1"),
            "{line}"
        );
    }
}
