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
//! Service events are derived from the published snapshot (`snapshot.rs`):
//! on each new one the hub diffs the snapshot it last saw against it, this
//! node's own record included, so a registration here is an event as soon
//! as Membership publishes it (no polling). A service instance that appears
//! (or changes) gives `service_registered`; one that disappears, because it
//! was deregistered or because its node failed or left, gives
//! `service_deregistered`; one whose health alone changed gives
//! `service_health`, with `old_status` and `status`. The hub keeps no list
//! of services: what it compares is two snapshots.

use actix::prelude::*;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

use crate::messages::{EventKind, MemberEvent, Subscribe};
use crate::node::NodeHandle;
use crate::protocol::services::{health_changes, Health, Service};
use crate::protocol::{Member, NodeId};
use crate::snapshot::{changes, Snapshot, SnapshotRx};

/// Recent events kept for clients that connect (or reconnect) later.
pub const RING: usize = 256;
/// SSE clients served at once; more get 503.
pub const MAX_CLIENTS: usize = 32;
/// Events a client may lag behind before it is dropped.
pub const CLIENT_BUFFER: usize = 128;
/// A comment line sent to every client this often, so that closed
/// connections are noticed and proxies keep the stream open.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

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
    /// The snapshot whose services the clients have been told about.
    seen: Arc<Snapshot>,
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
            seen: Arc::new(Snapshot::empty(me.clone())),
            me,
            next_id: 1,
            ring: VecDeque::with_capacity(16),
            clients: Vec::new(),
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

    /// A membership event (about another member, or our own refutation).
    pub fn on_member_event(&mut self, e: &MemberEvent, ms: u64) {
        let mut rec = Self::record(kind_name(e.kind), &e.member, ms);
        rec.by = e.by.as_ref().map(|b| b.to_string());
        self.publish(rec);
    }

    /// A new snapshot: publishes the service instances that appeared or
    /// changed and those that went, on every member whose record differs
    /// from the snapshot seen last (ourselves included).
    pub fn on_snapshot(&mut self, now: Arc<Snapshot>, ms: u64) {
        if Arc::ptr_eq(&now, &self.seen) {
            return;
        }
        let seen = std::mem::replace(&mut self.seen, now.clone());
        let live = |m: Option<&Member>| -> Arc<Vec<Service>> {
            m.filter(|m| m.state.is_live())
                .map(|m| m.services.list.clone())
                .unwrap_or_default()
        };
        for (old, new) in seen.diff(&now) {
            let (before, after) = (live(old), live(new));
            if Arc::ptr_eq(&before, &after) || *before == *after {
                continue;
            }
            let Some(m) = new.or(old) else { continue };
            for (s, old_status) in health_changes(&before, &after) {
                let mut rec = Self::record(SERVICE_HEALTH.into(), m, ms);
                rec.service = Some(s.clone());
                rec.old_status = Some(old_status);
                rec.status = Some(s.health);
                self.publish(rec);
            }
            // A change of health alone is not a new registration.
            let health_only = |s: &Service| {
                before.iter().any(|b| {
                    b.health != s.health
                        && Service {
                            health: s.health,
                            ..b.clone()
                        } == *s
                })
            };
            for s in after
                .iter()
                .filter(|s| !before.contains(s) && !health_only(s))
            {
                let mut rec = Self::record(SERVICE_REGISTERED.into(), m, ms);
                rec.service = Some(s.clone());
                self.publish(rec);
            }
            for b in before.iter() {
                if !after.iter().any(|s| s.id() == b.id()) {
                    let mut rec = Self::record(SERVICE_DEREGISTERED.into(), m, ms);
                    rec.service = Some(b.clone());
                    self.publish(rec);
                }
            }
        }
    }

    /// The id of this node (whose own services are diffed like any other).
    pub fn me(&self) -> &NodeId {
        &self.me
    }
}

/// The event hub of one node (see the module docs).
pub struct EventHub {
    core: HubCore,
    snapshots: SnapshotRx,
}

impl EventHub {
    /// Starts the hub and subscribes it to `node`'s membership events (the
    /// subscription is queued before this returns, so no event is missed).
    /// Its first look at the snapshot lists the services already there.
    pub fn start(node: &NodeHandle) -> Addr<EventHub> {
        let membership = node.membership.clone();
        let snapshots = node.snapshot.clone();
        let me = node.id.clone();
        EventHub::create(move |ctx| {
            membership.do_send(Subscribe(ctx.address().recipient()));
            EventHub {
                core: HubCore::new(me, MAX_CLIENTS, CLIENT_BUFFER),
                snapshots,
            }
        })
    }

    fn catch_up(&mut self) {
        let now = self.snapshots.borrow().clone();
        self.core.on_snapshot(now, now_ms());
    }
}

impl Actor for EventHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(KEEPALIVE, |act, _| act.core.keepalive());
        self.catch_up();
        ctx.add_stream(changes(&self.snapshots));
    }
}

impl StreamHandler<()> for EventHub {
    fn handle(&mut self, _: (), _: &mut Context<Self>) {
        self.catch_up();
    }
    /// The node is gone; clients keep what they have.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<MemberEvent> for EventHub {
    type Result = ();
    fn handle(&mut self, e: MemberEvent, _: &mut Context<Self>) {
        // Membership publishes the snapshot with the change before the hub
        // reads the event: catching up right after it puts a member's
        // `joined` before its services, and its `failed` before their
        // deregistration.
        self.core.on_member_event(&e, now_ms());
        self.catch_up();
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

    /// A node's published snapshots, driven by hand.
    struct Table {
        view: crate::protocol::view::View,
        publisher: crate::snapshot::Publisher,
        rx: SnapshotRx,
    }

    impl Table {
        fn new() -> Self {
            let view = crate::protocol::view::View::new(100);
            let (publisher, rx) = crate::snapshot::Publisher::new(NodeId::new("me"), &view);
            Table {
                view,
                publisher,
                rx,
            }
        }
        fn set(&mut self, m: Member) -> Arc<Snapshot> {
            self.view.apply(&m, tokio::time::Instant::now()).unwrap();
            self.publisher.publish(&self.view, imbl::OrdMap::new(), 0);
            self.rx.borrow().clone()
        }
    }

    fn kinds(got: &[EventRecord]) -> Vec<&str> {
        got.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn a_change_of_health_is_a_service_health_event() {
        let mut hub = HubCore::new(NodeId::new("me"), 4, 64);
        let mut t = Table::new();
        let web = Service::new("web", 80);
        let a = |web: Service| member("a", MemberState::Alive, 0, vec![web]);
        hub.on_snapshot(t.set(a(web.clone())), 1000);
        let (_, mut rx) = hub.connect(Some(u64::MAX)).unwrap();
        let mut sick = web.clone();
        sick.health = Health::Critical;
        hub.on_snapshot(t.set(a(sick)), 2000);
        let got = drain(&mut rx);
        let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, [SERVICE_HEALTH]);
        assert_eq!(got[0].old_status, Some(Health::Passing));
        assert_eq!(got[0].status, Some(Health::Critical));
        assert_eq!(got[0].service.as_ref().unwrap().name, "web");
    }

    #[test]
    fn events_and_service_diffs_reach_clients() {
        let mut hub = HubCore::new(NodeId::new("me"), 4, 64);
        let mut t = Table::new();
        let (_, mut rx) = hub.connect(None).unwrap();
        let web = Service::new("web", 80);
        let a = member("a", MemberState::Alive, 0, vec![web.clone()]);
        hub.on_member_event(&ev(EventKind::Joined, a.clone()), 1000);
        hub.on_snapshot(t.set(a), 1000);
        let got = drain(&mut rx);
        assert_eq!(kinds(&got), ["joined", "service_registered"]);
        assert_eq!(got[0].member, "a");
        assert_eq!(got[0].state, "alive");
        assert_eq!(got[0].addr, "127.0.0.1:7000");
        assert_eq!(got[0].timestamp, "1970-01-01T00:00:01.000Z");
        assert_eq!(got[1].service.as_ref().unwrap().name, "web");
        assert_eq!((got[0].id, got[1].id), (1, 2));

        // A service update: registered api, nothing about web.
        let api = Service::new("api", 90);
        let mut a2 = member("a", MemberState::Alive, 0, vec![web.clone(), api]);
        a2.services.version = 2;
        hub.on_snapshot(t.set(a2), 2000);
        let got = drain(&mut rx);
        assert_eq!(kinds(&got), ["service_registered"]);
        assert_eq!(got[0].service.as_ref().unwrap().name, "api");

        // Suspect at a newer incarnation with web alone: api went; failed:
        // all gone.
        let mut sa = member("a", MemberState::Suspect, 1, vec![web.clone()]);
        sa.services.version = 3;
        hub.on_snapshot(t.set(sa), 3000);
        assert_eq!(kinds(&drain(&mut rx)), ["service_deregistered"]);
        let mut da = member("a", MemberState::Dead, 1, vec![web]);
        da.services.version = 3;
        hub.on_member_event(&ev(EventKind::Failed, da.clone()), 4000);
        hub.on_snapshot(t.set(da), 4000);
        let got = drain(&mut rx);
        assert_eq!(kinds(&got), ["failed", "service_deregistered"]);
        assert_eq!(got[1].service.as_ref().unwrap().name, "web");
        assert_eq!(got[1].state, "dead");
        // The same snapshot twice, or one without service changes: nothing.
        hub.on_snapshot(t.rx.borrow().clone(), 5000);
        assert!(drain(&mut rx).is_empty());
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
    fn own_services_are_diffed_too_and_missed_snapshots_are_not_missed_changes() {
        let mut hub = HubCore::new(NodeId::new("me"), 2, 16);
        let mut t = Table::new();
        let (_, mut rx) = hub.connect(None).unwrap();
        let db = Service::new("db", 5432);
        hub.on_snapshot(
            t.set(member("me", MemberState::Alive, 0, vec![db.clone()])),
            1,
        );
        let mut gone = member("me", MemberState::Alive, 0, vec![]);
        gone.services.version = 2;
        hub.on_snapshot(t.set(gone), 2);
        let got = drain(&mut rx);
        assert_eq!(kinds(&got), [SERVICE_REGISTERED, SERVICE_DEREGISTERED]);
        assert_eq!(got[0].member, "me");
        // Three snapshots published, only the last one read: the diff still
        // holds every net change.
        let mut back = member("me", MemberState::Alive, 0, vec![db]);
        back.services.version = 3;
        t.set(back);
        t.set(member(
            "b",
            MemberState::Alive,
            0,
            vec![Service::new("x", 1)],
        ));
        let last = t.set(member(
            "c",
            MemberState::Alive,
            0,
            vec![Service::new("y", 2)],
        ));
        hub.on_snapshot(last, 3);
        let got = drain(&mut rx);
        let what: Vec<(String, String)> = got
            .iter()
            .map(|e| (e.member.clone(), e.service.as_ref().unwrap().name.clone()))
            .collect();
        assert_eq!(
            what,
            [
                ("b".into(), "x".into()),
                ("c".into(), "y".into()),
                ("me".into(), "db".into())
            ]
        );
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
