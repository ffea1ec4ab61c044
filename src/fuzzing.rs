//! The decode-and-merge path that hostile input can reach, as one function
//! for the fuzzer (`fuzz/`) and for the property test below: bytes in, no
//! panic out, and the member table stays within its bound.

use tokio::time::Instant;

use crate::protocol::view::View;
use crate::protocol::wire::{decode_envelope, unframe, Msg, KIND_PLAIN};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::{encode_msg, frame_plain, Framer};
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

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
