//! How datagrams leave and enter a node. The [`Transport`] actor
//! (src/actors/transport.rs) is the same for real and simulated networks; only
//! the [`Link`] differs: [`udp::UdpLink`] sends through a real socket,
//! [`sim::SimLink`] through the simulator's in-memory network. Inbound
//! datagrams reach the transport as [`Inbound`](crate::messages::Inbound)
//! messages from either.

pub mod sim;
pub mod udp;

use std::net::SocketAddr;

/// The transport's only door to the world.
pub trait Link: 'static {
    /// Sends one datagram; never blocks and never fails loudly (UDP is lossy
    /// anyway). Implementations count their own errors.
    fn send(&self, to: SocketAddr, datagram: Vec<u8>);
    /// Sends one datagram to every node on the local subnet. A link without
    /// broadcast ignores it.
    fn broadcast(&self, _datagram: Vec<u8>) {}
    /// Stops receiving and sending.
    fn close(&self) {}
}
