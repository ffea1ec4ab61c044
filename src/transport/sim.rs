//! The simulated link: what the transport actor sends through when the node
//! runs inside `gossip sim`. It hands every datagram to the in-memory network
//! (`crate::sim::network`), which decides loss, delay, duplication, reordering
//! and partitions and later delivers it to the receiver's transport as an
//! `Inbound` message, exactly as the UDP link's receive task would.

use std::cell::Cell;
use std::net::SocketAddr;

use super::Link;
use crate::sim::network::Net;

pub struct SimLink {
    net: Net,
    /// This node's slot in the network.
    slot: usize,
    closed: Cell<bool>,
}

impl SimLink {
    pub fn new(net: Net, slot: usize) -> Self {
        SimLink {
            net,
            slot,
            closed: Cell::new(false),
        }
    }
}

impl Link for SimLink {
    fn send(&self, to: SocketAddr, datagram: Vec<u8>) {
        if !self.closed.get() {
            self.net.send(self.slot, to, datagram);
        }
    }

    // No broadcast in the simulator: nodes bootstrap from seeds.

    fn close(&self) {
        self.closed.set(true);
    }
}
