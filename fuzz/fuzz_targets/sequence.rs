//! Fuzzes a node's wire state across datagrams: a sequence of plain and
//! sealed datagrams from a few addresses goes through decoding, the replay
//! guard, the amplification budget, the member table and push-pull planning,
//! checking that no unverified address ever gets more than twice what it
//! sent. Run: `cargo fuzz run sequence fuzz/corpus/sequence` (see
//! SECURITY.md).
#![no_main]

use gossip::fuzzing::feed_sequence;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_sequence(data);
});
