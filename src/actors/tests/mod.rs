//! Actor tests: each actor alone, its collaborators replaced by recording
//! mailboxes, under tokio's paused clock (timers fire in virtual time, so a
//! 6-second suspicion takes no wall time and the outcome is deterministic).

mod checks;
mod failure;
mod gossip;
mod leave;
mod membership;
mod registry;
mod restart;
mod rumor;
mod transport;

use std::net::SocketAddr;

use crate::protocol::{Member, MemberState, NodeId};

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn member(id: &str, port: u16, inc: u64, state: MemberState) -> Member {
    Member {
        state,
        ..Member::new_alive(NodeId::new(id), addr(port), inc)
    }
}

pub fn id(s: &str) -> NodeId {
    NodeId::new(s)
}
