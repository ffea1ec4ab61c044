//! A diagnostic trace of a simulation, for questions the summary cannot
//! answer ("why did this node learn of this death late?", "what is this
//! traffic made of?"). Off unless asked for by environment variables:
//!
//! * `SIM_WIRE_LOG=<path>`: one line per datagram the network handles, per
//!   membership event a node emits, per change of a node's local health
//!   score, and per scenario marker, written to `<path>`;
//! * `SIM_WIRE_STATS=1`: on stderr at the end, the messages and datagrams
//!   sent, by kind (count and bytes), for each phase between markers.
//!
//! Both record from the moment the loss is turned on (`start`), so forming
//! the cluster costs nothing, until the faults stop (`stop`). The `join`
//! scenario, which is all forming, records nothing.
//!
//! Log lines (tab-separated; times in virtual ms; nodes and members as slots):
//!
//! ```text
//! D <sent> <due> <fate> <from> <to> <bytes> <msg>...   a datagram
//! E <at> <node> <kind> <member> <state> <inc> <by|->   a membership event
//! H <at> <node> <score>                                a health score change
//! M <at> <what>...                                     a scenario marker
//! ```
//!
//! `fate` is `ok` (scheduled for delivery at `due`; it may still be dropped
//! there if the receiver is down: the victims of a crash), `lost`, `cut`.
//! Each message is one word: `p:<seq>:<target>` ping, `a:<seq>` ack,
//! `r:<seq>:<target>` ping-req, `n:<seq>` nack,
//! `u:<member>:<state>:<inc>:<by|->` rumor, `s` sync start,
//! `d:<page>/<pages>:<entries>` digest page, `w:<ids>` sync want,
//! `t:<member>:<state>:<inc>` push-pull record, `?` anything else, `!` a
//! datagram that does not decode. Every message word ends with `=<bytes>`,
//! its encoded size. bench/sim_wire.py analyses the log.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};

use super::observer::slot_of;
use crate::messages::{EventKind, MemberEvent};
use crate::protocol::wire::{unframe, Envelope, Msg, KIND_PLAIN, MAX_NESTING};
use crate::protocol::{MemberState, NodeId};
use serde::Deserialize;

#[derive(Default)]
struct Sink {
    out: Option<BufWriter<File>>,
    /// (phase, what) -> (count, bytes), with `SIM_WIRE_STATS`.
    stats: Option<BTreeMap<(String, String), (u64, u64)>>,
    phase: String,
    on: bool,
}

thread_local! {
    // The simulator runs on one thread; a node's actors and the network all
    // live on it, so a thread-local sink needs no locking.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Opens the log named by `SIM_WIRE_LOG` and the counters of
/// `SIM_WIRE_STATS`, if asked for (not yet recording). Returns an error text
/// if the file cannot be created.
pub fn init() -> Result<(), String> {
    let mut sink = Sink::default();
    if let Some(path) = std::env::var_os("SIM_WIRE_LOG") {
        let f = File::create(&path)
            .map_err(|e| format!("SIM_WIRE_LOG={}: {e}", path.to_string_lossy()))?;
        sink.out = Some(BufWriter::with_capacity(1 << 20, f));
    }
    if std::env::var_os("SIM_WIRE_STATS").is_some() {
        sink.stats = Some(BTreeMap::new());
    }
    if sink.out.is_some() || sink.stats.is_some() {
        SINK.with(|s| *s.borrow_mut() = Some(sink));
    }
    Ok(())
}

/// Whether anything was asked for (recording or not).
pub fn enabled() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Starts recording (the loss is on), with a marker.
pub fn start(at: u64, what: &str) {
    SINK.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut() {
            s.on = true;
        }
    });
    marker(at, what);
}

/// Whether lines are being recorded (callers skip their work otherwise).
pub fn recording() -> bool {
    SINK.with(|s| s.borrow().as_ref().is_some_and(|s| s.on))
}

fn write(line: &str) {
    SINK.with(|s| {
        if let Some(out) = s
            .borrow_mut()
            .as_mut()
            .filter(|s| s.on)
            .and_then(|s| s.out.as_mut())
        {
            // A diagnostic: a full disk must not stop the simulation.
            let _ = out.write_all(line.as_bytes());
        }
    });
}

fn count(what: &str, bytes: usize) {
    SINK.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut().filter(|s| s.on) {
            let phase = s.phase.clone();
            if let Some(stats) = s.stats.as_mut() {
                let e = stats.entry((phase, what.to_string())).or_default();
                e.0 += 1;
                e.1 += bytes as u64;
            }
        }
    });
}

/// Stops recording (the faults stop; the settling is not recorded), and
/// prints the counters.
pub fn stop(at: u64) {
    marker(at, "stop");
    SINK.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut() {
            s.on = false;
            if let Some(out) = s.out.as_mut() {
                let _ = out.flush();
            }
            for ((phase, what), (n, bytes)) in s.stats.iter().flatten() {
                eprintln!("wire\t{phase}\t{what}\t{n}\t{bytes}");
            }
        }
    });
}

/// Flushes the log (at the end of the run).
pub fn finish() {
    SINK.with(|s| {
        if let Some(out) = s.borrow_mut().as_mut().and_then(|s| s.out.as_mut()) {
            let _ = out.flush();
        }
    });
}

/// A scenario marker; it also starts a new phase for the counters.
pub fn marker(at: u64, what: &str) {
    write(&format!("M\t{at}\t{what}\n"));
    SINK.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut() {
            s.phase = format!("{at}ms {what}");
        }
    });
}

fn slot(id: &NodeId) -> String {
    slot_of(id).map_or_else(|| id.as_str().to_string(), |s| s.to_string())
}

fn state(s: MemberState) -> &'static str {
    match s {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

/// A message as one log word, and its encoded size.
fn word(m: &Msg) -> (String, usize) {
    let size = rmp_serde::to_vec(m).map_or(0, |v| v.len());
    let w = match m {
        Msg::Ping { seq, target } => format!("p:{seq}:{}", slot(target)),
        Msg::Ack { seq } => format!("a:{seq}"),
        Msg::PingReq { seq, target, .. } => format!("r:{seq}:{}", slot(target)),
        Msg::Nack { seq } => format!("n:{seq}"),
        Msg::Update { member, by } => format!(
            "u:{}:{}:{}:{}",
            slot(&member.id),
            state(member.state),
            member.incarnation,
            by.as_ref().map_or("-".to_string(), slot)
        ),
        Msg::SyncStart { .. } => "s".to_string(),
        Msg::SyncDigest {
            page,
            pages,
            entries,
            ..
        } => format!("d:{page}/{pages}:{}", entries.len()),
        Msg::SyncWant { ids } => format!("w:{}", ids.len()),
        Msg::State { member } => format!(
            "t:{}:{}:{}",
            slot(&member.id),
            state(member.state),
            member.incarnation
        ),
        _ => "?".to_string(),
    };
    (format!("{w}={size}"), size)
}

/// A message's kind for the counters: rumors by the state they carry.
fn kind(m: &Msg) -> String {
    match m {
        Msg::Update { member, .. } => format!("update-{}", state(member.state)),
        m => m.kind().to_string(),
    }
}

/// What a datagram is for, by its first message: a probe (a ping of a
/// suspect carries its suspicion: the buddy system), a rumor-only datagram
/// (eager push or gossip round), a push-pull step.
fn purpose(msgs: &[Msg]) -> String {
    match msgs.first() {
        Some(Msg::Ping { target, .. }) => {
            let buddy = msgs.iter().any(|m| {
                matches!(m, Msg::Update { member, .. }
                    if &member.id == target && member.state == MemberState::Suspect)
            });
            let p = if buddy { "ping-of-suspect" } else { "ping" };
            p.to_string()
        }
        Some(Msg::Update { .. }) => "gossip".to_string(),
        Some(m) => m.kind().to_string(),
        None => "empty".to_string(),
    }
}

/// The messages of a plaintext datagram (None if it does not decode: the
/// simulator's nodes never seal).
fn decode(data: &[u8]) -> Option<Vec<Msg>> {
    let (kind, body) = unframe(data).ok()?;
    if kind != KIND_PLAIN {
        return None;
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_NESTING);
    Envelope::deserialize(&mut de).ok().map(|e| e.msgs)
}

/// A datagram's fate, decided when it was sent.
pub fn datagram(sent: u64, due: Option<u64>, fate: &str, from: usize, to: usize, data: &[u8]) {
    if !recording() {
        return;
    }
    let msgs = decode(data);
    count(&format!("datagram {fate}"), data.len());
    let text = match &msgs {
        Some(msgs) => {
            count(&format!("datagram-for {}", purpose(msgs)), data.len());
            let mut words = Vec::with_capacity(msgs.len());
            for m in msgs {
                let (w, size) = word(m);
                count(&format!("msg {}", kind(m)), size);
                words.push(w);
            }
            words.join("\t")
        }
        None => "!".to_string(),
    };
    let due = due.map_or("-".to_string(), |d| d.to_string());
    write(&format!(
        "D\t{sent}\t{due}\t{fate}\t{from}\t{to}\t{}\t{text}\n",
        data.len()
    ));
}

pub fn event(at: u64, node: usize, e: &MemberEvent) {
    if !recording() {
        return;
    }
    let kind = match e.kind {
        EventKind::Joined => "joined",
        EventKind::Updated => "updated",
        EventKind::Suspected => "suspected",
        EventKind::Confirmed => "confirmed",
        EventKind::AliveAgain => "alive-again",
        EventKind::Failed => "failed",
        EventKind::Left => "left",
        EventKind::Reclaimed => "reclaimed",
        EventKind::SelfRefuted => "self-refuted",
        EventKind::NameConflict => "name-conflict",
    };
    let mut line = String::new();
    let _ = writeln!(
        line,
        "E\t{at}\t{node}\t{kind}\t{}\t{}\t{}\t{}",
        slot(&e.member.id),
        state(e.member.state),
        e.member.incarnation,
        e.by.as_ref().map_or("-".to_string(), slot)
    );
    write(&line);
}

pub fn health(at: u64, node: usize, score: u64) {
    write(&format!("H\t{at}\t{node}\t{score}\n"));
}
