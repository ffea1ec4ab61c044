//! The wire format: one versioned envelope per datagram.
//!
//! ```text
//! datagram  = version:u8  kind:u8  body
//! kind 0    : body = envelope                      (plaintext)
//! kind 1    : body = nonce:12  AEAD(envelope)      (encrypted; see crypto.rs)
//! envelope  = msgpack [version, cluster, from, addr, [msg, msg, ...]]
//! ```
//!
//! Messages are encoded one by one ([`encode_msg`]) so that the rumor engine
//! can measure them and fill a datagram up to `max_packet_bytes` exactly; the
//! [`Framer`] then glues a fixed header to as many messages as fit and splits
//! the rest into further datagrams. Decoding never panics: a datagram that
//! does not parse is an `Err` that the transport counts and drops.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

use super::member::{Member, MemberState, NodeId};

pub const PROTOCOL_VERSION: u8 = 1;
pub const KIND_PLAIN: u8 = 0;
pub const KIND_SEALED: u8 = 1;
/// version + kind bytes in front of every datagram.
pub const FRAME_PREFIX: usize = 2;
/// Worst-case msgpack array header for the message list (array32).
const LIST_HEADER_MAX: usize = 5;

/// Socket addresses as msgpack bin: 4 or 16 address bytes, then the port
/// big-endian. 8 bytes for IPv4, where serde's default spends 14.
pub mod addr_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::net::{IpAddr, SocketAddr};

    // Every record on the wire carries an address: built on the stack, not
    // in a `Vec` (one allocation per record, per datagram).
    pub fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        let mut b = [0u8; 18];
        let n = match a.ip() {
            IpAddr::V4(ip) => {
                b[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                b[..16].copy_from_slice(&ip.octets());
                16
            }
        };
        b[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
        s.serialize_bytes(&b[..n + 2])
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let got: serde_bytes_compat::Bytes = Deserialize::deserialize(d)?;
        let b = &got.buf[..got.len.min(18)];
        let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        match got.len {
            6 => Ok(SocketAddr::from(([b[0], b[1], b[2], b[3]], port(4)))),
            18 => {
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[..16]);
                Ok(SocketAddr::from((ip, port(16))))
            }
            n => Err(D::Error::custom(format!("socket address of {n} bytes"))),
        }
    }

    /// Accepts msgpack bin (and, leniently, an array of bytes).
    mod serde_bytes_compat {
        /// Up to 18 bytes (an IPv6 address and a port), and how many there
        /// were (more are refused in a sequence, counted in bytes).
        pub struct Bytes {
            pub len: usize,
            pub buf: [u8; 18],
        }
        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                        let mut buf = [0u8; 18];
                        let n = v.len().min(18);
                        buf[..n].copy_from_slice(&v[..n]);
                        Ok(Bytes { len: v.len(), buf })
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Bytes, A::Error> {
                        let mut buf = [0u8; 18];
                        let mut len = 0;
                        while let Some(b) = seq.next_element::<u8>()? {
                            if len >= 18 {
                                return Err(serde::de::Error::custom("socket address too long"));
                            }
                            buf[len] = b;
                            len += 1;
                        }
                        Ok(Bytes { len, buf })
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

/// Serializes a socket address with [`addr_bytes`].
pub struct AddrBytes(pub SocketAddr);

impl Serialize for AddrBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        addr_bytes::serialize(&self.0, s)
    }
}

/// A message already encoded as msgpack: cheap to clone and to measure.
pub type EncodedMsg = Arc<[u8]>;

/// One entry of a push-pull digest: enough to tell who has the newer record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub id: NodeId,
    pub incarnation: u64,
    pub state: MemberState,
    pub services_version: u64,
}

/// Everything that can travel inside an envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// Are you there, `target`? Answered with `Ack { seq }` to the sender.
    #[serde(rename = "p")]
    Ping { seq: u32, target: NodeId },
    #[serde(rename = "a")]
    Ack { seq: u32 },
    /// Please ping `target` at `addr` for me and relay the answer.
    #[serde(rename = "r")]
    PingReq {
        seq: u32,
        target: NodeId,
        #[serde(with = "addr_bytes")]
        addr: SocketAddr,
    },
    /// The relay got no answer from the target (so our own link is fine).
    #[serde(rename = "n")]
    Nack { seq: u32 },
    /// A membership rumor. `by` names the accuser of a suspicion.
    #[serde(rename = "u")]
    Update { member: Member, by: Option<NodeId> },
    /// Push-pull, step 1: my view hashes to `hash`. `join` asks for the full
    /// state, because the sender knows nothing yet.
    #[serde(rename = "s")]
    SyncStart { hash: u64, join: bool },
    /// Push-pull, step 2: one page of the answerer's digest.
    #[serde(rename = "d")]
    SyncDigest {
        round: u32,
        page: u16,
        pages: u16,
        entries: Vec<DigestEntry>,
    },
    /// Push-pull, step 3: send me your full records of these members.
    #[serde(rename = "w")]
    SyncWant { ids: Vec<NodeId> },
    /// A full member record sent by push-pull (not a rumor: it is not
    /// re-gossiped unless it changes what the receiver knew).
    #[serde(rename = "t")]
    State { member: Member },
    /// Broadcast bootstrap: is any member of my cluster out there?
    #[serde(rename = "D")]
    Discover,
    /// Answer to `Discover`: I am a member, join through me.
    #[serde(rename = "R")]
    DiscoverReply,
    /// A keyring change for the whole cluster (`gossip keys ... `). Only
    /// accepted inside a sealed datagram: holding a key is the authority.
    /// `id` is unique per operation and `at` is when it was made (ms since
    /// the Unix epoch): applied once, and refused outside the replay window.
    #[serde(rename = "k")]
    KeyOp {
        op: KeyOpKind,
        key: String,
        id: u64,
        at: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyOpKind {
    #[serde(rename = "i")]
    Install,
    #[serde(rename = "u")]
    Use,
    #[serde(rename = "r")]
    Remove,
}

impl Msg {
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Ping { .. } => "ping",
            Msg::Ack { .. } => "ack",
            Msg::PingReq { .. } => "ping-req",
            Msg::Nack { .. } => "nack",
            Msg::Update { .. } => "update",
            Msg::SyncStart { .. } => "sync-start",
            Msg::SyncDigest { .. } => "sync-digest",
            Msg::SyncWant { .. } => "sync-want",
            Msg::State { .. } => "state",
            Msg::Discover => "discover",
            Msg::DiscoverReply => "discover-reply",
            Msg::KeyOp { .. } => "key-op",
        }
    }
}

impl Msg {
    /// A new key operation, with a fresh id and the current time.
    pub fn key_op(op: KeyOpKind, key: String) -> Msg {
        Msg::KeyOp {
            op,
            key,
            id: rand::random(),
            at: unix_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    unix_micros() / 1000
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

pub fn encode_msg(msg: &Msg) -> EncodedMsg {
    // Encoding our own well-formed types into a Vec cannot fail.
    Arc::from(rmp_serde::to_vec(msg).expect("msgpack encoding of a Msg"))
}

/// Splits `items` into pages whose encodings each fit in `room` bytes (an
/// item larger than `room` gets a page of its own, which the framer will
/// refuse and count).
pub fn paginate<T: Serialize>(items: Vec<T>, room: usize) -> Vec<Vec<T>> {
    let mut pages: Vec<Vec<T>> = Vec::new();
    let mut page: Vec<T> = Vec::new();
    let mut used = 0;
    for item in items {
        let len = rmp_serde::to_vec(&item).map(|v| v.len()).unwrap_or(room);
        if !page.is_empty() && used + len > room {
            pages.push(std::mem::take(&mut page));
            used = 0;
        }
        used += len;
        page.push(item);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// A decoded datagram.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Envelope {
    pub version: u8,
    pub cluster: String,
    pub from: NodeId,
    #[serde(with = "addr_bytes")]
    pub addr: SocketAddr,
    pub msgs: Vec<Msg>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort,
    Version(u8),
    Sealed,
    Unsealed,
    Auth,
    Body(String),
    Cluster(String),
    /// Decoded, but a field is outside the bounds the API also enforces.
    Bounds(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooShort => write!(f, "datagram shorter than its frame"),
            DecodeError::Version(v) => write!(f, "unknown protocol version {v}"),
            DecodeError::Sealed => write!(f, "encrypted datagram but no key is configured"),
            DecodeError::Unsealed => write!(f, "plaintext datagram but encryption is required"),
            DecodeError::Auth => {
                write!(f, "datagram failed authentication (wrong key, or tampered)")
            }
            DecodeError::Body(e) => write!(f, "malformed envelope: {e}"),
            DecodeError::Cluster(c) => write!(f, "datagram for cluster {c:?}"),
            DecodeError::Bounds(e) => write!(f, "out of bounds: {e}"),
        }
    }
}

/// Splits a datagram into its frame kind and body, checking the version.
pub fn unframe(datagram: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    if datagram.len() < FRAME_PREFIX {
        return Err(DecodeError::TooShort);
    }
    if datagram[0] != PROTOCOL_VERSION {
        return Err(DecodeError::Version(datagram[0]));
    }
    Ok((datagram[1], &datagram[FRAME_PREFIX..]))
}

/// Decodes a plaintext envelope body and checks it belongs to `cluster`.
pub fn decode_envelope(body: &[u8], cluster: &str) -> Result<Envelope, DecodeError> {
    // A legitimate envelope nests about 8 deep; msgpack's default limit of
    // 1,024 lets a crafted one recurse deep enough to overflow a thread's
    // stack (found by fuzzing), which aborts the process.
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_NESTING);
    let env = Envelope::deserialize(&mut de).map_err(|e| DecodeError::Body(e.to_string()))?;
    if env.version != PROTOCOL_VERSION {
        return Err(DecodeError::Version(env.version));
    }
    if env.cluster != cluster {
        return Err(DecodeError::Cluster(env.cluster));
    }
    check_bounds(&env).map_err(DecodeError::Bounds)?;
    Ok(env)
}

/// Deepest msgpack nesting accepted in an envelope.
pub const MAX_NESTING: usize = 32;
/// Longest node id accepted from the wire: what `NODE_ID` accepts at start.
pub const MAX_NODE_ID_LEN: usize = 64;
/// Most services one member record may carry: the largest `max_services`.
pub const MAX_WIRE_SERVICES: usize = 1024;
/// Longest key text in a key operation (base64 of 32 bytes is 44).
const MAX_KEY_TEXT: usize = 64;

/// A node id as `NODE_ID` accepts it: 1 to 64 characters, no spaces or
/// control characters.
pub fn validate_node_id(id: &NodeId) -> Result<(), String> {
    let s = id.as_str();
    if s.is_empty()
        || s.len() > MAX_NODE_ID_LEN
        || s.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "node id of {} bytes must be 1 to {MAX_NODE_ID_LEN} characters without spaces",
            s.len()
        ));
    }
    Ok(())
}

/// A member record as the API would let its owner publish it: a valid id,
/// at most [`MAX_WIRE_SERVICES`] services, each valid, no two with one id.
pub fn validate_member(m: &Member) -> Result<(), String> {
    validate_node_id(&m.id)?;
    let list = &m.services.list;
    if list.len() > MAX_WIRE_SERVICES {
        return Err(format!(
            "{} services for {}, at most {MAX_WIRE_SERVICES}",
            list.len(),
            m.id
        ));
    }
    let mut ids = std::collections::HashSet::with_capacity(list.len());
    for svc in list.iter() {
        svc.validate()
            .map_err(|e| format!("service of {}: {e}", m.id))?;
        if !ids.insert(svc.id()) {
            return Err(format!("{} lists service id {:?} twice", m.id, svc.id()));
        }
    }
    Ok(())
}

/// Every bound a decoded envelope must keep; the first one broken, named.
pub fn check_bounds(env: &Envelope) -> Result<(), String> {
    validate_node_id(&env.from)?;
    for msg in &env.msgs {
        match msg {
            Msg::Ping { target, .. } | Msg::PingReq { target, .. } => validate_node_id(target)?,
            Msg::Update { member, by } => {
                validate_member(member)?;
                if let Some(b) = by {
                    validate_node_id(b)?;
                }
            }
            Msg::State { member } => validate_member(member)?,
            Msg::SyncDigest { entries, .. } => {
                for e in entries {
                    validate_node_id(&e.id)?;
                }
            }
            Msg::SyncWant { ids } => {
                for id in ids {
                    validate_node_id(id)?;
                }
            }
            Msg::KeyOp { key, .. } if key.len() > MAX_KEY_TEXT => {
                return Err(format!("key text of {} bytes", key.len()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Builds envelopes for one sender: a fixed header plus as many messages as
/// fit in `max_packet` bytes, after `seal_overhead` bytes reserved for
/// encryption.
#[derive(Clone, Debug)]
pub struct Framer {
    header: Vec<u8>,
    max_packet: usize,
    seal_overhead: usize,
}

impl Framer {
    pub fn new(
        cluster: &str,
        from: &NodeId,
        addr: SocketAddr,
        max_packet: usize,
        seal_overhead: usize,
    ) -> Self {
        let mut header = Vec::new();
        rmp::encode::write_array_len(&mut header, 5).expect("vec write");
        for part in [
            rmp_serde::to_vec(&PROTOCOL_VERSION),
            rmp_serde::to_vec(cluster),
            rmp_serde::to_vec(from),
            rmp_serde::to_vec(&AddrBytes(addr)),
        ] {
            header.extend(part.expect("msgpack encoding of a header field"));
        }
        Framer {
            header,
            max_packet,
            seal_overhead,
        }
    }

    /// Bytes a plaintext datagram spends beyond its messages (at most).
    pub fn fixed_overhead(&self) -> usize {
        FRAME_PREFIX + self.header.len() + LIST_HEADER_MAX
    }

    /// Bytes available for messages in one datagram.
    pub fn room(&self) -> usize {
        self.max_packet
            .saturating_sub(FRAME_PREFIX + self.seal_overhead + self.header.len() + LIST_HEADER_MAX)
    }

    /// Packs messages in order into envelopes of at most `room()` message
    /// bytes each. A message larger than a whole datagram cannot be sent and
    /// is returned in the second list (the caller counts it).
    pub fn pack(&self, msgs: &[EncodedMsg]) -> (Vec<Vec<u8>>, usize) {
        let room = self.room();
        let mut out = Vec::new();
        let mut batch: Vec<&EncodedMsg> = Vec::new();
        let mut used = 0;
        let mut oversized = 0;
        for m in msgs {
            if m.len() > room {
                oversized += 1;
                continue;
            }
            if used + m.len() > room {
                out.push(self.envelope(&batch));
                batch.clear();
                used = 0;
            }
            used += m.len();
            batch.push(m);
        }
        if !batch.is_empty() {
            out.push(self.envelope(&batch));
        }
        (out, oversized)
    }

    /// The envelope (without the frame prefix) for these messages.
    fn envelope(&self, msgs: &[&EncodedMsg]) -> Vec<u8> {
        let body: usize = msgs.iter().map(|m| m.len()).sum();
        let mut env = Vec::with_capacity(self.header.len() + LIST_HEADER_MAX + body);
        env.extend_from_slice(&self.header);
        rmp::encode::write_array_len(&mut env, msgs.len() as u32).expect("vec write");
        for m in msgs {
            env.extend_from_slice(m);
        }
        env
    }
}

/// Puts the frame prefix in front of a plaintext envelope.
pub fn frame_plain(envelope: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(FRAME_PREFIX + envelope.len());
    d.push(PROTOCOL_VERSION);
    d.push(KIND_PLAIN);
    d.extend_from_slice(envelope);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::services::{Service, ServiceSet};

    fn framer(max: usize) -> Framer {
        Framer::new(
            "default",
            &NodeId::new("node1"),
            "127.0.0.1:8001".parse().unwrap(),
            max,
            0,
        )
    }

    fn roundtrip(f: &Framer, msgs: &[Msg]) -> Vec<Envelope> {
        let enc: Vec<EncodedMsg> = msgs.iter().map(encode_msg).collect();
        let (dgrams, oversized) = f.pack(&enc);
        assert_eq!(oversized, 0);
        dgrams
            .into_iter()
            .map(|e| {
                let d = frame_plain(&e);
                let (kind, body) = unframe(&d).unwrap();
                assert_eq!(kind, KIND_PLAIN);
                decode_envelope(body, "default").unwrap()
            })
            .collect()
    }

    #[test]
    fn envelope_roundtrips() {
        let member = Member {
            services: ServiceSet::new(2, vec![Service::new("web", 80)]),
            ..Member::new_alive(NodeId::new("node2"), "10.0.0.2:8002".parse().unwrap(), 7)
        };
        let msgs = vec![
            Msg::Ping {
                seq: 1,
                target: NodeId::new("node2"),
            },
            Msg::Update { member, by: None },
            Msg::SyncStart {
                hash: u64::MAX,
                join: true,
            },
        ];
        let envs = roundtrip(&framer(1400), &msgs);
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].from, NodeId::new("node1"));
        assert_eq!(envs[0].msgs, msgs);
    }

    #[test]
    fn a_ping_is_small() {
        let f = framer(1400);
        let ping = encode_msg(&Msg::Ping {
            seq: 100_000,
            target: NodeId::new("node12"),
        });
        let (d, _) = f.pack(&[ping]);
        assert!(
            d[0].len() + FRAME_PREFIX <= 48,
            "ping datagram is {} bytes",
            d[0].len()
        );
    }

    #[test]
    fn splits_to_fit_and_keeps_every_message() {
        let f = framer(300);
        let msgs: Vec<Msg> = (0..50)
            .map(|i| Msg::Update {
                member: Member::new_alive(
                    NodeId::new(&format!("member-{i}")),
                    "10.0.0.2:8002".parse().unwrap(),
                    i,
                ),
                by: None,
            })
            .collect();
        let enc: Vec<EncodedMsg> = msgs.iter().map(encode_msg).collect();
        let (dgrams, _) = f.pack(&enc);
        assert!(dgrams.len() > 1);
        for d in &dgrams {
            assert!(d.len() + FRAME_PREFIX <= 300, "{}", d.len());
        }
        let envs = roundtrip(&f, &msgs);
        let got: Vec<Msg> = envs.into_iter().flat_map(|e| e.msgs).collect();
        assert_eq!(got, msgs);
    }

    #[test]
    fn digest_pages_fit_in_a_datagram() {
        let f = framer(1400);
        let entries: Vec<DigestEntry> = (0..1000)
            .map(|i| DigestEntry {
                id: NodeId::new(&format!("node-{i}")),
                incarnation: i,
                state: MemberState::Alive,
                services_version: 3,
            })
            .collect();
        let pages = paginate(entries, f.room() - 32);
        assert!(
            pages.len() > 10 && pages.len() < 30,
            "{} pages",
            pages.len()
        );
        let n = pages.len() as u16;
        let mut total = 0;
        for (i, p) in pages.into_iter().enumerate() {
            total += p.len();
            let msg = encode_msg(&Msg::SyncDigest {
                round: u32::MAX,
                page: i as u16,
                pages: n,
                entries: p,
            });
            let (d, oversized) = f.pack(&[msg]);
            assert_eq!((d.len(), oversized), (1, 0));
        }
        assert_eq!(total, 1000);
    }

    #[test]
    fn oversized_message_is_reported_not_sent() {
        let f = framer(100);
        let big = encode_msg(&Msg::SyncWant {
            ids: (0..40).map(|i| NodeId::new(&format!("n{i}"))).collect(),
        });
        let (d, oversized) = f.pack(&[big]);
        assert!(d.is_empty());
        assert_eq!(oversized, 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(unframe(&[]), Err(DecodeError::TooShort));
        assert_eq!(unframe(&[9, 0, 1]), Err(DecodeError::Version(9)));
        for junk in [&b""[..], b"\x95", b"\xdd\xff\xff\xff\xff", b"\x95\x01\xa1x"] {
            assert!(decode_envelope(junk, "default").is_err());
        }
        let env = framer(1400).envelope(&[]);
        assert!(matches!(
            decode_envelope(&env, "other"),
            Err(DecodeError::Cluster(_))
        ));
    }

    fn decode_one(msg: Msg, from: &str) -> Result<Envelope, DecodeError> {
        let f = Framer::new(
            "default",
            &NodeId::new(from),
            "127.0.0.1:8001".parse().unwrap(),
            65_000,
            0,
        );
        let (d, _) = f.pack(&[encode_msg(&msg)]);
        decode_envelope(&d[0], "default")
    }

    fn bounds_error(r: Result<Envelope, DecodeError>) -> String {
        match r {
            Err(DecodeError::Bounds(e)) => e,
            other => panic!("expected a bounds error, got {other:?}"),
        }
    }

    #[test]
    fn node_ids_and_service_sets_are_bounded_on_decode() {
        let long = "x".repeat(MAX_NODE_ID_LEN + 1);
        let ok = Member::new_alive(NodeId::new("ok"), "10.0.0.2:1".parse().unwrap(), 1);
        // The sender's own id, and ids inside every message kind.
        assert!(bounds_error(decode_one(Msg::Ack { seq: 1 }, &long)).contains("node id"));
        assert!(bounds_error(decode_one(Msg::Ack { seq: 1 }, "with space")).contains("node id"));
        for msg in [
            Msg::Ping {
                seq: 1,
                target: NodeId::new(&long),
            },
            Msg::Update {
                member: Member {
                    id: NodeId::new(&long),
                    ..ok.clone()
                },
                by: None,
            },
            Msg::Update {
                member: ok.clone(),
                by: Some(NodeId::new("")),
            },
            Msg::SyncWant {
                ids: vec![NodeId::new("a"), NodeId::new(&long)],
            },
        ] {
            assert!(bounds_error(decode_one(msg, "n")).contains("node id"));
        }
        // Too many services, an invalid one, and one id twice.
        let many = ServiceSet::new(
            1,
            (0..MAX_WIRE_SERVICES + 1)
                .map(|i| Service::new(&format!("s{i}"), 80))
                .collect(),
        );
        let bad = ServiceSet::new(1, vec![Service::new("Not A Name", 80)]);
        let twice = ServiceSet::new(1, vec![Service::new("web", 80), Service::new("web", 81)]);
        for (set, says) in [(many, "services"), (bad, "service name"), (twice, "twice")] {
            let m = Msg::State {
                member: Member {
                    services: set,
                    ..ok.clone()
                },
            };
            let e = bounds_error(decode_one(m, "n"));
            assert!(e.contains(says), "{e}");
        }
        // Within bounds: fine.
        let fine = Msg::Update {
            member: Member {
                services: ServiceSet::new(1, vec![Service::new("web", 80)]),
                ..ok
            },
            by: Some(NodeId::new("n")),
        };
        assert!(decode_one(fine, &"y".repeat(MAX_NODE_ID_LEN)).is_ok());
    }
}
