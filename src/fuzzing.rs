//! The decode-and-merge path that hostile input can reach, as functions for
//! the fuzzer (`fuzz/`) and for the property tests below: bytes in, no panic
//! out, and the member table stays within its bound. [`feed_sequence`] keeps
//! a node's wire state across datagrams (member table, push-pull plans,
//! replay and amplification guards, key operations) and checks that no
//! address that has not verified ever gets more than twice what it sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

use crate::protocol::amplification::{Admit, AmplificationGuard, AMPLIFICATION_FACTOR};
use crate::protocol::crypto::Keyring;
use crate::protocol::replay::{KeyOpLog, ReplayGuard};
use crate::protocol::sync_plan::plan_page;
use crate::protocol::view::View;
use crate::protocol::wire::{
    decode_envelope, encode_msg, unframe, EncodedMsg, Msg, KIND_PLAIN, KIND_SEALED,
};

pub const FUZZ_CLUSTER: &str = "default";
pub const FUZZ_MAX_MEMBERS: usize = 64;

/// Decodes `data` as a datagram and merges every rumor and record it holds
/// into a fresh table. Returns the table size (to keep the work observable).
pub fn feed_datagram(data: &[u8]) -> usize {
    let Ok((kind, body)) = unframe(data) else {
        return 0;
    };
    if kind != KIND_PLAIN {
        return 0;
    }
    let Ok(env) = decode_envelope(body, FUZZ_CLUSTER) else {
        return 0;
    };
    let mut view = View::new(FUZZ_MAX_MEMBERS);
    let now = Instant::now();
    for msg in env.msgs {
        if let Msg::Update { member, .. } | Msg::State { member } = msg {
            let _ = view.apply(&member, now);
        }
    }
    let _ = view.digest();
    assert!(view.len() <= FUZZ_MAX_MEMBERS);
    view.len()
}

/// The key sealed records of [`feed_sequence`] are sealed with.
pub const FUZZ_KEY: [u8; 32] = [7; 32];
const FUZZ_NOW_MICROS: u64 = 1_700_000_000_000_000;
const WINDOW_MS: u64 = 60_000;

/// What the node under [`feed_sequence`] keeps between datagrams.
struct Node {
    view: View,
    keyring: Keyring,
    replay: ReplayGuard,
    key_ops: KeyOpLog,
    guard: AmplificationGuard,
    /// Bytes in from, and out to, each address while it was not verified:
    /// the shadow books the 2x rule is checked against.
    books: HashMap<SocketAddr, (u64, u64)>,
    now: Instant,
    clock_micros: u64,
}

impl Node {
    fn send(&mut self, to: SocketAddr, msgs: Vec<EncodedMsg>) {
        let fixed = 40;
        let total: usize = fixed + msgs.iter().map(|m| m.len()).sum::<usize>();
        match self.guard.admit(&to) {
            Admit::Open => {}
            Admit::Credit(c) => {
                let sent = if total as u64 <= c {
                    total
                } else {
                    let _ = self.guard.hold(&to, msgs, self.now);
                    0
                };
                self.guard.on_send(&to, sent);
                let book = self.books.entry(to).or_default();
                book.1 += sent as u64;
                assert!(
                    book.1 <= book.0 * AMPLIFICATION_FACTOR,
                    "{to} got {} bytes for {}",
                    book.1,
                    book.0
                );
            }
        }
    }

    fn receive(&mut self, from: SocketAddr, data: &[u8]) {
        let Ok((kind, body)) = unframe(data) else {
            return;
        };
        let (stamp, plain) = match kind {
            KIND_PLAIN => (None, body.to_vec()),
            KIND_SEALED => match self.keyring.open(body, FUZZ_CLUSTER) {
                Ok((s, p)) => (Some(s), p),
                Err(_) => return,
            },
            _ => return,
        };
        let Ok(env) = decode_envelope(&plain, FUZZ_CLUSTER) else {
            return;
        };
        if let Some(s) = stamp {
            if self.replay.check(&env.from, s, self.clock_micros).is_err() {
                return;
            }
        }
        for m in &env.msgs {
            if let Msg::Ack { seq } = m {
                if let Some(held) = self.guard.on_ack(from, *seq) {
                    self.books.remove(&from);
                    self.send(from, held);
                }
            }
        }
        self.guard.on_receive(from, Some(&env.from), data.len());
        if !self.guard.is_verified(&from) {
            self.books.entry(from).or_default().0 += data.len() as u64;
        }
        if let Some((seq, id)) = self.guard.verification_due(&from, self.now) {
            self.send(from, vec![encode_msg(&Msg::Ping { seq, target: id })]);
        }
        for msg in env.msgs {
            match msg {
                Msg::Update { member, .. } | Msg::State { member } => {
                    let _ = self.view.apply(&member, self.now);
                }
                Msg::SyncDigest {
                    page,
                    pages,
                    entries,
                    ..
                } if pages > 0 && page < pages => {
                    let plan = plan_page(&self.view, &entries, page, pages);
                    let records = plan
                        .send
                        .iter()
                        .filter_map(|id| self.view.get(id))
                        .map(|m| encode_msg(&Msg::State { member: m.clone() }))
                        .collect();
                    self.send(from, records);
                }
                Msg::SyncStart { .. } => {
                    let all = self
                        .view
                        .iter()
                        .map(|m| encode_msg(&Msg::State { member: m.clone() }))
                        .collect();
                    self.send(from, all);
                }
                Msg::SyncWant { ids } => {
                    let mut seen = std::collections::HashSet::new();
                    let records = ids
                        .iter()
                        .filter(|id| seen.insert(*id))
                        .filter_map(|id| self.view.get(id))
                        .map(|m| encode_msg(&Msg::State { member: m.clone() }))
                        .collect();
                    self.send(from, records);
                }
                Msg::Ping { seq, .. } => self.send(from, vec![encode_msg(&Msg::Ack { seq })]),
                Msg::KeyOp { id, at, .. } if stamp.is_some() => {
                    let now_ms = self.clock_micros / 1000;
                    let first = self.key_ops.admit(id, at, now_ms, WINDOW_MS).is_ok();
                    assert!(
                        !first || self.key_ops.admit(id, at, now_ms, WINDOW_MS).is_err(),
                        "a key operation applied twice"
                    );
                }
                _ => {}
            }
        }
        assert!(self.view.len() <= FUZZ_MAX_MEMBERS);
        assert_eq!(self.view.digest().len(), self.view.len());
    }
}

/// Feeds a sequence of datagrams to one node. The input is a list of
/// records `flags:u8 source:u8 len:u16le bytes`: `source` picks one of 8
/// addresses, flag bit 0 seals `bytes` as an envelope under [`FUZZ_KEY`]
/// (with a stamp from the next 8 input bytes, so the fuzzer reaches the
/// replay guard), bit 1 advances the clock by a second. Returns the number of
/// datagrams fed.
pub fn feed_sequence(data: &[u8]) -> usize {
    let mut node = Node {
        view: View::new(FUZZ_MAX_MEMBERS),
        keyring: Keyring::new(&[FUZZ_KEY]),
        replay: ReplayGuard::new(WINDOW_MS, 8),
        key_ops: KeyOpLog::default(),
        guard: AmplificationGuard::new(4),
        books: HashMap::new(),
        now: Instant::now(),
        clock_micros: FUZZ_NOW_MICROS,
    };
    let mut rest = data;
    let mut fed = 0;
    while rest.len() >= 4 {
        let (flags, source) = (rest[0], rest[1]);
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        let mut stamp = FUZZ_NOW_MICROS;
        if flags & 1 != 0 && rest.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rest[..8]);
            stamp = FUZZ_NOW_MICROS.wrapping_add(u64::from_le_bytes(b) % 200_000_000);
            rest = &rest[8..];
        }
        let take = len.min(rest.len());
        let (bytes, tail) = rest.split_at(take);
        rest = tail;
        if flags & 2 != 0 {
            node.now += Duration::from_secs(1);
            node.clock_micros += 1_000_000;
            node.guard.expire(node.now);
        }
        let from = SocketAddr::from(([127, 0, 0, 1], 9000 + (source % 8) as u16));
        let datagram = if flags & 1 != 0 {
            match node.keyring.seal(bytes, FUZZ_CLUSTER, stamp) {
                Some(d) => d,
                None => continue,
            }
        } else {
            bytes.to_vec()
        };
        node.receive(from, &datagram);
        fed += 1;
    }
    fed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::{frame_plain, Framer};
    use crate::protocol::{Member, NodeId};
    use proptest::prelude::*;

    fn valid_datagram(n: usize) -> Vec<u8> {
        let f = Framer::new(
            FUZZ_CLUSTER,
            &NodeId::new("a"),
            "127.0.0.1:1".parse().unwrap(),
            1400,
            0,
        );
        let msgs: Vec<_> = (0..n)
            .map(|i| {
                encode_msg(&Msg::Update {
                    member: Member::new_alive(
                        NodeId::new(&format!("m{i}")),
                        "127.0.0.1:2".parse().unwrap(),
                        1,
                    ),
                    by: None,
                })
            })
            .collect();
        frame_plain(&f.pack(&msgs).0[0])
    }

    #[test]
    fn the_corpus_seeds_decode() {
        for entry in
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/datagram")).unwrap()
        {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            feed_datagram(&data);
        }
        assert_eq!(feed_datagram(&valid_datagram(5)), 5);
    }

    /// One sequence record: plain datagram `d` from source `src`.
    fn record(src: u8, d: &[u8]) -> Vec<u8> {
        let mut r = vec![0, src];
        r.extend_from_slice(&(d.len() as u16).to_le_bytes());
        r.extend_from_slice(d);
        r
    }

    #[test]
    fn a_sequence_builds_a_table_and_strangers_get_at_most_twice() {
        let mut seq = record(1, &valid_datagram(20));
        let join = {
            let f = Framer::new(
                FUZZ_CLUSTER,
                &NodeId::new("j"),
                "127.0.0.1:2".parse().unwrap(),
                1400,
                0,
            );
            let m = encode_msg(&Msg::SyncStart {
                hash: 0,
                join: true,
            });
            frame_plain(&f.pack(&[m]).0[0])
        };
        for _ in 0..5 {
            seq.extend(record(2, &join));
        }
        assert_eq!(feed_sequence(&seq), 6);
        for entry in
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/sequence")).unwrap()
        {
            feed_sequence(&std::fs::read(entry.unwrap().path()).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_sequences_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
            feed_sequence(&data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            feed_datagram(&data);
        }

        #[test]
        fn mutated_valid_datagrams_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let mut d = valid_datagram(4);
            for (at, byte) in flips {
                let i = at % d.len();
                d[i] = byte;
            }
            let keep = 2 + cut % (d.len() - 1);
            d.truncate(keep);
            feed_datagram(&d);
        }
    }
}
