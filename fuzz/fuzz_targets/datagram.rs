//! Fuzzes what a datagram goes through before it can change anything: the
//! frame, the envelope decoder, and the merge of every rumor it carries into a
//! member table. Run: `cargo fuzz run datagram fuzz/corpus/datagram`
//! (see SECURITY.md).
#![no_main]

use gossip::fuzzing::feed_datagram;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_datagram(data);
});
