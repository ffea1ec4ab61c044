//! From request bytes to response bytes: decoding with hickory-proto,
//! checking the request, EDNS0, and fitting the answer into what the
//! transport carries. No sockets here: the server glue calls [`respond`]
//! and sends what it returns.
//!
//! UDP answers fit in 512 bytes, or in the size the client advertises with
//! EDNS0 (capped at [`MAX_UDP_PAYLOAD`]). An answer that does not fit keeps
//! as many of its (shuffled) records as fit, with their additional records,
//! and sets TC so the client retries over TCP, which carries it whole.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use rand::Rng;

use super::zone::{Answer, Zone};

/// The largest UDP payload we send, and advertise in our OPT record.
pub const MAX_UDP_PAYLOAD: u16 = 4096;
/// Without EDNS0, RFC 1035's limit.
pub const CLASSIC_UDP_PAYLOAD: u16 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
}

/// What to do with one request.
#[derive(Debug)]
pub enum Reply {
    /// Send these bytes back.
    Send {
        bytes: Vec<u8>,
        qtype: Option<RecordType>,
        code: ResponseCode,
        truncated: bool,
    },
    /// A question outside our domain, to forward to the recursors.
    Forward(Box<Message>),
    /// Nothing to answer (too short to carry an id, or itself a response).
    Drop,
}

/// Answers one request. `forwarding` says whether names outside the domain
/// go to recursors (else they are REFUSED).
pub fn respond(
    request: &[u8],
    via: Via,
    zone: &Zone,
    forwarding: bool,
    rng: &mut impl Rng,
) -> Reply {
    let req = match Message::from_vec(request) {
        Ok(m) => m,
        Err(_) => return malformed(request),
    };
    if req.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    let (mut resp, limit) = skeleton(&req, via, forwarding);
    if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return finish(resp, None, ResponseCode::BADVERS, Answer::default(), limit);
    }
    let qtype = req.queries.first().map(|q| q.query_type());
    if req.metadata.op_code != OpCode::Query {
        return finish(resp, qtype, ResponseCode::NotImp, Answer::default(), limit);
    }
    let [query] = req.queries.as_slice() else {
        return finish(resp, qtype, ResponseCode::FormErr, Answer::default(), limit);
    };
    resp.add_query(query.clone());
    let qtype = query.query_type();
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY)
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
    {
        return finish(
            resp,
            Some(qtype),
            ResponseCode::Refused,
            Answer::default(),
            limit,
        );
    }
    let answer = zone.answer(query.name(), qtype, rng);
    if answer.code == ResponseCode::Refused && forwarding {
        return Reply::Forward(Box::new(req));
    }
    resp.metadata.authoritative = answer.code != ResponseCode::Refused;
    finish(resp, Some(qtype), answer.code, answer, limit)
}

/// The response header for `req`, and the most bytes it may take.
fn skeleton(req: &Message, via: Via, forwarding: bool) -> (Message, u16) {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.metadata.recursion_available = forwarding;
    let limit = match (via, &req.edns) {
        (Via::Tcp, _) => u16::MAX,
        (Via::Udp, Some(e)) => e.max_payload().clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
        (Via::Udp, None) => CLASSIC_UDP_PAYLOAD,
    };
    if req.edns.is_some() {
        let mut ours = Edns::new();
        ours.set_max_payload(MAX_UDP_PAYLOAD);
        resp.set_edns(ours);
    }
    (resp, limit)
}

/// The response to a forwarded request, once the recursors answered.
pub fn forwarded(req: &Message, via: Via, answer: Answer) -> Reply {
    let (mut resp, limit) = skeleton(req, via, true);
    let qtype = req.queries.first().map(|q| q.query_type());
    resp.add_queries(req.queries.iter().cloned());
    finish(resp, qtype, answer.code, answer, limit)
}

/// FORMERR for a request we could not decode, if it has a header to
/// answer (and is not itself a response: answering those could loop).
fn malformed(request: &[u8]) -> Reply {
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return Reply::Drop;
    }
    let id = u16::from_be_bytes([request[0], request[1]]);
    let op = OpCode::from_u8((request[2] >> 3) & 0x0f);
    let resp = Message::error_msg(id, op, ResponseCode::FormErr);
    match resp.to_vec() {
        Ok(bytes) => Reply::Send {
            bytes,
            qtype: None,
            code: ResponseCode::FormErr,
            truncated: false,
        },
        Err(_) => Reply::Drop,
    }
}

/// Fills in `answer` and encodes, keeping the longest prefix of the answer
/// records (with their additional records) that fits in `limit` bytes.
pub fn finish(
    mut resp: Message,
    qtype: Option<RecordType>,
    code: ResponseCode,
    answer: Answer,
    limit: u16,
) -> Reply {
    resp.metadata.response_code = code;
    resp.authorities = answer.authority;
    let records = answer.records;
    let build = |resp: &Message, n: usize| -> Message {
        let mut m = resp.clone();
        let mut glue: Vec<Record> = Vec::new();
        for (rec, extra) in &records[..n] {
            m.answers.push(rec.clone());
            if let Some(x) = extra {
                if !glue.iter().any(|g| g.name == x.name) {
                    glue.push(x.clone());
                }
            }
        }
        m.additionals = glue;
        m
    };
    let mut n = records.len();
    let mut truncated = false;
    let bytes = loop {
        let msg = build(&resp, n);
        match encode(&msg, limit) {
            Some(b) => break b,
            None if n > 0 => {
                // Halve until it fits, then grow back one at a time: a
                // handful of encodes, only for answers that overflow.
                truncated = true;
                let mut lo = 0;
                let mut hi = n;
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2;
                    if encode(&build(&resp, mid), limit).is_some() {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                n = lo;
                if n == 0 {
                    let mut m = build(&resp, 0);
                    m.metadata.truncation = true;
                    m.authorities.clear();
                    break encode(&m, limit).unwrap_or_default();
                }
            }
            None => {
                let mut m = msg;
                m.authorities.clear();
                m.metadata.truncation = true;
                truncated = true;
                break encode(&m, limit).unwrap_or_default();
            }
        }
    };
    let bytes = if truncated {
        // Set TC on whatever prefix went out.
        let mut b = bytes;
        if b.len() >= 3 {
            b[2] |= 0x02;
        }
        b
    } else {
        bytes
    };
    Reply::Send {
        bytes,
        qtype,
        code,
        truncated,
    }
}

/// The encoding of `msg` if it fits in `limit` bytes whole.
fn encode(msg: &Message, limit: u16) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_max_size(limit);
    msg.emit(&mut enc).ok()?;
    // The encoder drops records that overflow and sets TC itself; we want
    // all or nothing, so a TC we did not ask for means "does not fit".
    if !msg.metadata.truncation && buf.len() >= 3 && buf[2] & 0x02 != 0 {
        return None;
    }
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::DnsSettings;
    use crate::protocol::services::{Service, ServiceSet};
    use crate::protocol::{Member, NodeId};
    use crate::snapshot::Snapshot;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use imbl::OrdMap;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn zone(instances: usize) -> Zone {
        let services = (0..instances)
            .map(|i| {
                let mut s = Service::new("web", 80);
                s.id = format!("w{i}");
                s.address = Some(format!("10.1.{}.{}", i / 250, i % 250));
                s
            })
            .collect();
        let me = NodeId::new("n1");
        let m = Member {
            services: ServiceSet::new(1, services),
            ..Member::new_alive(me.clone(), "10.0.0.1:1".parse().unwrap(), 1)
        };
        let mut table = OrdMap::new();
        table.insert(me.clone(), std::sync::Arc::new(m));
        Zone::build(
            &Snapshot {
                index: 2,
                table,
                ..Snapshot::empty(me)
            },
            &DnsSettings {
                domain: "gossip.".into(),
                ttl: 0,
                a_record_limit: 0,
                only_passing: false,
            },
        )
    }

    fn query(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn ask(z: &Zone, req: &[u8], via: Via) -> (Message, usize) {
        let mut rng = SmallRng::seed_from_u64(9);
        match respond(req, via, z, false, &mut rng) {
            Reply::Send { bytes, .. } => (Message::from_vec(&bytes).unwrap(), bytes.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn small_answers_go_whole() {
        let z = zone(3);
        let (m, _) = ask(
            &z,
            &query("web.service.gossip.", RecordType::SRV, None),
            Via::Udp,
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative && !m.metadata.truncation);
        assert_eq!(m.answers.len(), 3);
        assert_eq!(m.additionals.len(), 3);
        assert!(m.edns.is_none(), "no OPT unless asked");
    }

    #[test]
    fn udp_truncates_at_512_unless_edns_says_more() {
        let z = zone(60);
        let q = query("web.service.gossip.", RecordType::A, None);
        let (m, len) = ask(&z, &q, Via::Udp);
        assert!(m.metadata.truncation);
        assert!(len <= 512 && !m.answers.is_empty() && m.answers.len() < 60);
        let (m, len) = ask(
            &z,
            &query("web.service.gossip.", RecordType::A, Some(4096)),
            Via::Udp,
        );
        assert!(!m.metadata.truncation && m.answers.len() == 60 && len > 512);
        assert_eq!(m.edns.as_ref().unwrap().max_payload(), MAX_UDP_PAYLOAD);
        let (m, _) = ask(&z, &q, Via::Tcp);
        assert!(!m.metadata.truncation && m.answers.len() == 60);
    }

    #[test]
    fn truncated_srv_keeps_glue_for_what_it_keeps() {
        let z = zone(60);
        let (m, len) = ask(
            &z,
            &query("web.service.gossip.", RecordType::SRV, Some(1232)),
            Via::Udp,
        );
        assert!(m.metadata.truncation && len <= 1232);
        assert_eq!(m.answers.len(), m.additionals.len());
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        let z = zone(1);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut junk = query("web.service.gossip.", RecordType::A, None);
        junk.truncate(20);
        match respond(&junk, Via::Udp, &z, false, &mut rng) {
            Reply::Send { bytes, code, .. } => {
                assert_eq!(code, ResponseCode::FormErr);
                assert_eq!(bytes[..2], junk[..2], "the id is echoed");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            respond(&[1, 2, 3], Via::Udp, &z, false, &mut rng),
            Reply::Drop
        ));
        // A response is never answered (no loops between two servers).
        let (m, _) = ask(
            &z,
            &query("web.service.gossip.", RecordType::A, None),
            Via::Udp,
        );
        let resp = m.to_vec().unwrap();
        assert!(matches!(
            respond(&resp, Via::Udp, &z, false, &mut rng),
            Reply::Drop
        ));
        // Random bytes never panic.
        for _ in 0..2000 {
            let len = rng.gen_range(0..100);
            let b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = respond(&b, Via::Udp, &z, false, &mut rng);
        }
    }

    #[test]
    fn request_checks() {
        let z = zone(1);
        let mut two = Message::query();
        for n in ["a.gossip.", "b.gossip."] {
            two.add_query(Query::query(Name::from_ascii(n).unwrap(), RecordType::A));
        }
        let (m, _) = ask(&z, &two.to_vec().unwrap(), Via::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        let mut e = Edns::new();
        e.set_version(1);
        let mut q = Message::from_vec(&query("web.service.gossip.", RecordType::A, None)).unwrap();
        q.set_edns(e);
        let (m, _) = ask(&z, &q.to_vec().unwrap(), Via::Udp);
        // 16 is BADVERS with an OPT record (BADSIG to a TSIG reader).
        assert_eq!(u16::from(m.metadata.response_code), 16);
        let (m, _) = ask(&z, &query("gossip.", RecordType::AXFR, None), Via::Tcp);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        let (m, _) = ask(&z, &query("example.com.", RecordType::A, None), Via::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative && !m.metadata.recursion_available);
        let mut rng = SmallRng::seed_from_u64(1);
        let fwd = respond(
            &query("example.com.", RecordType::A, None),
            Via::Udp,
            &z,
            true,
            &mut rng,
        );
        assert!(matches!(fwd, Reply::Forward(_)));
    }
}
