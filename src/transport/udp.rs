//! The real network: one UDP socket for gossip, and with broadcast bootstrap a
//! second socket on `discovery_port` that sends and hears the discovery
//! broadcasts.
//!
//! Sends go through one task fed by a channel, so datagrams leave in the order
//! they were handed over and `send` never blocks an actor. Receives run in
//! their own task that turns each datagram into an `Inbound` message, into
//! the transport's bounded mailbox (a full one drops and counts).

use actix::prelude::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::Link;
use crate::messages::Inbound;
use crate::metrics::Metrics;

/// Largest datagram we accept; anything longer is truncated and fails to decode.
pub const RECV_BUFFER: usize = 65_536;

pub struct UdpLink {
    tx: mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
    broadcast_to: Option<SocketAddr>,
    closed: Arc<AtomicBool>,
    sockets: Vec<Arc<UdpSocket>>,
    metrics: Arc<Metrics>,
}

impl UdpLink {
    /// Binds the gossip socket (and the discovery socket when `discovery` is
    /// `Some((port, broadcast_ip))`).
    pub async fn bind(
        bind: SocketAddr,
        discovery: Option<(u16, Ipv4Addr)>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<UdpLink> {
        let sock = Arc::new(UdpSocket::bind(bind).await?);
        let mut sockets = vec![sock.clone()];
        let mut broadcast_to = None;
        if let Some((port, ip)) = discovery {
            let disc =
                UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await?;
            disc.set_broadcast(true)?;
            sockets.push(Arc::new(disc));
            broadcast_to = Some(SocketAddr::new(IpAddr::V4(ip), port));
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<(SocketAddr, Vec<u8>)>();
        let senders = sockets.clone();
        let m = metrics.clone();
        let metrics = metrics.clone();
        actix_rt::spawn(async move {
            while let Some((to, data)) = rx.recv().await {
                // Broadcasts leave from the discovery socket (which has
                // SO_BROADCAST); everything else from the gossip socket.
                let s = if Some(to) == broadcast_to {
                    &senders[1]
                } else {
                    &senders[0]
                };
                if let Err(e) = s.send_to(&data, to).await {
                    Metrics::inc(&m.send_errors);
                    log::debug!("send to {to} failed: {e}");
                }
            }
        });
        Ok(UdpLink {
            tx,
            broadcast_to,
            closed: Arc::new(AtomicBool::new(false)),
            sockets,
            metrics,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sockets[0].local_addr()
    }

    /// Starts delivering received datagrams to `to`.
    pub fn start_receiving(&self, to: Recipient<Inbound>) {
        for sock in &self.sockets {
            let sock = sock.clone();
            let to = to.clone();
            let closed = self.closed.clone();
            let metrics = self.metrics.clone();
            actix_rt::spawn(async move {
                let mut buf = vec![0u8; RECV_BUFFER];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            if closed.load(Ordering::Relaxed) {
                                break;
                            }
                            // The transport's mailbox is bounded: a flood
                            // faster than it decodes is dropped and counted
                            // here, not queued without end.
                            let m = Inbound {
                                from,
                                data: buf[..n].to_vec(),
                            };
                            if to.try_send(m).is_err() {
                                Metrics::inc(&metrics.receive_queue_drops);
                            }
                        }
                        Err(e) => {
                            // ICMP errors (port unreachable) surface here on
                            // Linux; they are not fatal to the socket.
                            log::debug!("recv error: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                    }
                }
            });
        }
    }
}

impl Link for UdpLink {
    fn send(&self, to: SocketAddr, datagram: Vec<u8>) {
        if !self.closed.load(Ordering::Relaxed) {
            let _ = self.tx.send((to, datagram));
        }
    }

    fn broadcast(&self, datagram: Vec<u8>) {
        if let Some(to) = self.broadcast_to {
            self.send(to, datagram);
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// The broadcast address of the interface that carries `ip`, read from
/// `ip -4 addr`-equivalent data in /proc (no extra crates): falls back to the
/// /24 around `ip`, which is what a Docker bridge network uses by default.
pub fn broadcast_address_for(ip: Ipv4Addr) -> Ipv4Addr {
    let prefix = interface_prefix(ip).unwrap_or(24);
    let mask: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ipv4Addr::from(u32::from(ip) | !mask)
}

/// Prefix length of the route that covers `ip`, from /proc/net/route.
fn interface_prefix(ip: Ipv4Addr) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    let ipn = u32::from(ip);
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?.swap_bytes();
            (mask != 0 && ipn & mask == dest).then_some(mask.count_ones())
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_of_a_slash_24() {
        // 192.0.2.0/24 (TEST-NET-1) is on no interface here: the /24 fallback.
        assert_eq!(
            broadcast_address_for(Ipv4Addr::new(192, 0, 2, 7)),
            Ipv4Addr::new(192, 0, 2, 255)
        );
    }
}
