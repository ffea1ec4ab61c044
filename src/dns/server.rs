//! The DNS server's sockets: UDP and TCP on one address, served on a thread
//! of its own with a single-threaded Tokio runtime, so that a flood of DNS
//! queries never delays the gossip actors' probes and acks.
//!
//! Owns: the sockets, the [`Zone`] derived from the newest snapshot (rebuilt
//! on the first query after Membership publishes a new one), the forwarder.
//! Reads: `SnapshotRx`. Sends no actor message.
//!
//! Bounds: at most [`MAX_TCP_CONNECTIONS`] TCP connections, each closed
//! after [`TCP_IDLE`] without a request; at most [`MAX_FORWARDS`] forwarded
//! questions in flight (more get SERVFAIL at once).

use hickory_proto::op::Message;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use super::forward::Forwarder;
use super::respond::{forwarded, respond, Reply, Via};
use super::zone::Zone;
use super::DnsSettings;
use crate::metrics::Metrics;
use crate::snapshot::SnapshotRx;

pub const MAX_TCP_CONNECTIONS: usize = 256;
pub const TCP_IDLE: Duration = Duration::from_secs(10);
pub const MAX_FORWARDS: usize = 256;

/// A running DNS server; dropping it stops it and joins its thread.
pub struct DnsServer {
    /// Where it listens (UDP and TCP on the same port).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds UDP and TCP on `addr` (port 0: any free port, the same for both)
/// now, so the caller learns at once if it cannot, then serves on a new
/// thread.
pub fn start(
    addr: SocketAddr,
    settings: DnsSettings,
    recursors: Vec<SocketAddr>,
    snapshot: SnapshotRx,
    metrics: Arc<Metrics>,
) -> io::Result<DnsServer> {
    let (udp, tcp) = bind_both(addr)?;
    let addr = udp.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("dns: cannot start its runtime: {e}");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &rt,
                serve(udp, tcp, settings, recursors, snapshot, metrics, stop_rx),
            );
        })?;
    Ok(DnsServer {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

fn bind_both(addr: SocketAddr) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..if addr.port() == 0 { 20 } else { 1 } {
        let udp = std::net::UdpSocket::bind(addr)?;
        let at = udp.local_addr()?;
        match std::net::TcpListener::bind(at) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port")))
}

/// What every task of the server shares (one thread: `Rc`, `RefCell`).
struct Shared {
    settings: DnsSettings,
    snapshot: SnapshotRx,
    zone: RefCell<Rc<Zone>>,
    metrics: Arc<Metrics>,
    forwarder: Option<Forwarder>,
    forwards: Cell<usize>,
    tcp_connections: Cell<usize>,
    rng: RefCell<SmallRng>,
}

impl Shared {
    /// The zone of the newest snapshot, rebuilt if Membership published
    /// since the last query. The snapshot is cloned out of the channel
    /// first: building never holds the channel's lock.
    fn zone(&self) -> Rc<Zone> {
        let newest = self.snapshot.borrow().index;
        if self.zone.borrow().index != newest {
            let snap = self.snapshot.borrow().clone();
            *self.zone.borrow_mut() = Rc::new(Zone::build(&snap, &self.settings));
        }
        self.zone.borrow().clone()
    }

    /// Answers `request`; forwards (awaiting the recursors) when asked to.
    async fn answer(&self, request: &[u8], via: Via) -> Option<Vec<u8>> {
        let started = Instant::now();
        let zone = self.zone();
        let reply = {
            let mut rng = self.rng.borrow_mut();
            respond(request, via, &zone, self.forwarder.is_some(), &mut *rng)
        };
        let reply = match reply {
            Reply::Forward(req) => self.forward(&req, via).await,
            other => other,
        };
        match reply {
            Reply::Send {
                bytes,
                qtype,
                code,
                truncated,
            } => {
                if code == hickory_proto::op::ResponseCode::FormErr {
                    Metrics::inc(&self.metrics.dns.malformed);
                }
                if truncated {
                    Metrics::inc(&self.metrics.dns.truncated);
                }
                self.metrics.dns.answered(qtype, code, started.elapsed());
                Some(bytes)
            }
            Reply::Drop | Reply::Forward(_) => {
                Metrics::inc(&self.metrics.dns.malformed);
                None
            }
        }
    }

    async fn forward(&self, req: &Message, via: Via) -> Reply {
        let Some(fwd) = &self.forwarder else {
            return Reply::Drop;
        };
        if self.forwards.get() >= MAX_FORWARDS {
            let busy = super::zone::Answer {
                code: hickory_proto::op::ResponseCode::ServFail,
                ..Default::default()
            };
            return forwarded(req, via, busy);
        }
        Metrics::inc(&self.metrics.dns.forwarded);
        self.forwards.set(self.forwards.get() + 1);
        let answer = fwd.answer(req).await;
        self.forwards.set(self.forwards.get() - 1);
        forwarded(req, via, answer)
    }
}

async fn serve(
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    settings: DnsSettings,
    recursors: Vec<SocketAddr>,
    snapshot: SnapshotRx,
    metrics: Arc<Metrics>,
    stop: oneshot::Receiver<()>,
) {
    let (udp, tcp) = match (UdpSocket::from_std(udp), TcpListener::from_std(tcp)) {
        (Ok(u), Ok(t)) => (Rc::new(u), t),
        (Err(e), _) | (_, Err(e)) => {
            log::error!("dns: cannot use its sockets: {e}");
            return;
        }
    };
    let forwarder = if recursors.is_empty() {
        None
    } else {
        match Forwarder::new(&recursors) {
            Ok(f) => Some(f),
            Err(e) => {
                log::error!("dns: cannot forward to {recursors:?}: {e}; names outside the domain get REFUSED");
                None
            }
        }
    };
    let first = Zone::build(&snapshot.borrow().clone(), &settings);
    let shared = Rc::new(Shared {
        settings,
        snapshot,
        zone: RefCell::new(Rc::new(first)),
        metrics,
        forwarder,
        forwards: Cell::new(0),
        tcp_connections: Cell::new(0),
        rng: RefCell::new(SmallRng::from_entropy()),
    });
    tokio::select! {
        _ = serve_udp(udp, shared.clone()) => {}
        _ = serve_tcp(tcp, shared.clone()) => {}
        _ = stop => {}
    }
}

async fn serve_udp(sock: Rc<UdpSocket>, shared: Rc<Shared>) {
    // Queries are small; a longer datagram is cut here and then fails to
    // decode (FORMERR), which is the right answer for it anyway.
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                log::debug!("dns: udp receive: {e}");
                continue;
            }
        };
        let request = &buf[..n];
        // Answering in place is the common, fast path; only a forwarded
        // question waits, and it waits in a task of its own.
        let is_forward = shared.forwarder.is_some();
        if !is_forward {
            if let Some(bytes) = shared.answer(request, Via::Udp).await {
                let _ = sock.send_to(&bytes, from).await;
            }
            continue;
        }
        let request = request.to_vec();
        let (sock, shared) = (sock.clone(), shared.clone());
        tokio::task::spawn_local(async move {
            if let Some(bytes) = shared.answer(&request, Via::Udp).await {
                let _ = sock.send_to(&bytes, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Rc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, most likely: wait, then go on.
                log::warn!("dns: tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shared.tcp_connections.get() >= MAX_TCP_CONNECTIONS {
            continue; // dropped: closes it
        }
        shared.tcp_connections.set(shared.tcp_connections.get() + 1);
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            let _ = serve_connection(stream, &shared).await;
            shared.tcp_connections.set(shared.tcp_connections.get() - 1);
        });
    }
}

/// RFC 1035 4.2.2: each message is preceded by its length in two bytes.
async fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let n = u16::from_be_bytes(len) as usize;
        buf.resize(n, 0);
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if let Some(bytes) = shared.answer(&buf, Via::Tcp).await {
            let mut out = Vec::with_capacity(bytes.len() + 2);
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&bytes);
            stream.write_all(&out).await?;
        }
    }
}
