//! Every message the actors exchange, in one place.
//!
//! The flow of a datagram (see ARCHITECTURE.md for the map):
//!
//! ```text
//! socket -> Inbound -> Transport --ProbeMsg--> FailureDetector
//!                               --Rumors----> Membership --publishes--> Snapshot
//!                               --SyncMsg---> Membership       (read by FD, Gossip,
//!                               --Discovery-> Gossip            Rumor, API, events)
//! any actor --Send--> Rumor (adds piggybacked rumors) --Outbound--> Transport -> socket
//! ```

use actix::prelude::*;
use std::net::SocketAddr;

use crate::protocol::checks::{CheckDef, CheckState};
use crate::protocol::services::{Health, Service};
use crate::protocol::wire::{EncodedMsg, Msg};
use crate::protocol::{Member, MemberState, NodeId};

// ----- into and out of the transport -----

/// A datagram that arrived from the network (real or simulated).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

/// Encoded messages for one peer; the transport frames them into as many
/// datagrams as needed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Outbound {
    pub to: SocketAddr,
    pub msgs: Vec<EncodedMsg>,
}

/// Messages for everyone on the local subnet (broadcast bootstrap).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BroadcastOut {
    pub msgs: Vec<EncodedMsg>,
}

/// Fault injection: drop a fraction of datagrams, or all to/from some peers.
#[derive(Message, Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[rtype(result = "()")]
#[serde(deny_unknown_fields)]
pub struct SetFaults {
    #[serde(default)]
    pub loss_in: f64,
    #[serde(default)]
    pub loss_out: f64,
    #[serde(default)]
    pub block: Vec<SocketAddr>,
}

/// Changes or lists the transport's keyring. Answers the installed keys
/// (base64, primary first) or what is wrong.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "Result<Vec<String>, String>")]
pub enum KeyringOp {
    List,
    Install(String),
    Use(String),
    Remove(String),
}

/// Stop sending and receiving for good (after a graceful leave, or a
/// simulated crash).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Silence;

// ----- routed by the transport after decoding -----

/// Ping, Ack, PingReq or Nack from `sender` at `from`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ProbeMsg {
    pub from: SocketAddr,
    pub sender: NodeId,
    pub msg: Msg,
}

/// Membership rumors from one datagram. `via_sync` marks records delivered by
/// push-pull rather than by rumor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Rumors {
    pub from: SocketAddr,
    pub updates: Vec<(Member, Option<NodeId>)>,
    pub via_sync: bool,
    /// The node that sent the datagram.
    pub sender: NodeId,
}

/// A push-pull message (SyncStart, SyncDigest, SyncWant).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SyncMsg {
    pub from: SocketAddr,
    pub sender: NodeId,
    pub msg: Msg,
}

/// Discover or DiscoverReply (broadcast bootstrap).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DiscoveryMsg {
    pub from: SocketAddr,
    pub sender: NodeId,
    pub msg: Msg,
}

// ----- the rumor engine -----

/// Queue a rumor about `member` for dissemination.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Spread {
    pub member: Member,
    pub by: Option<NodeId>,
}

/// Send these messages to `to`, with as many pending rumors piggybacked as fit.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Send {
    pub to: SocketAddr,
    pub msgs: Vec<EncodedMsg>,
}

/// One gossip round: send pending rumors (if any) to each of these peers.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct GossipRound {
    pub peers: Vec<SocketAddr>,
}

/// Resolves once the rumor about `id` has been transmitted `times` times, or
/// as often as any rumor is (its retransmit limit, when that is fewer), or to
/// every peer, in a smaller cluster.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct WaitSent {
    pub id: NodeId,
    pub times: u32,
}

// ----- membership -----

/// A snapshot of the member table, self included.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<Member>")]
pub struct GetMembers;

/// The member table itself, a persistent map that costs O(1) to copy (the
/// simulator's invariant checks read 10,000 of them).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "crate::protocol::Table")]
pub struct GetTable;

/// Start a push-pull exchange with `peer` (`join`: we know nothing yet).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StartSync {
    pub peer: SocketAddr,
    pub join: bool,
    /// The periodic anti-entropy exchange: when no digest page comes back,
    /// try another live member (see `membership::SYNC_ATTEMPTS`). Not for
    /// joins, seeds and reconnections, which have their own retries and
    /// whose point is the peer they name.
    pub retry: bool,
}

/// The failure detector's verdict about a member at an incarnation: Suspect
/// after a failed probe, Dead when the suspicion times out.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Accuse {
    pub id: NodeId,
    pub incarnation: u64,
    pub state: MemberState,
}

/// Publish this node's own services (the registry's whole list).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PublishServices(pub Vec<Service>);

/// Mark ourselves as left (incarnation + 1) and spread it. Returns the record.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Member")]
pub struct LeaveCluster;

/// Receive every membership event from now on (the event stream's typed
/// feed; actors read the snapshot instead).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MemberEvent>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A member we did not know, or one that came back from dead or left.
    Joined,
    /// New incarnation or services of an alive member.
    Updated,
    Suspected,
    /// Another member confirmed a suspicion we already hold.
    Confirmed,
    /// A suspect member refuted the suspicion.
    AliveAgain,
    Failed,
    Left,
    /// A dead or left member's tombstone expired.
    Reclaimed,
    /// We had to refute a rumor about ourselves.
    SelfRefuted,
    /// Another address that answers holds our NODE_ID (the member is the
    /// other holder's record: our id, its address).
    NameConflict,
}

/// Membership asks the failure detector whether a process answers to our
/// own NODE_ID at `addr` (another holder of our name), or nothing does (a
/// previous life of ours). Answers after a few probe timeouts.
#[derive(Message, Debug, Clone)]
#[rtype(result = "bool")]
pub struct ProbeOwnName {
    pub addr: SocketAddr,
}

/// A change in the member table (never about ourselves, except SelfRefuted
/// and NameConflict).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct MemberEvent {
    pub kind: EventKind,
    pub member: Member,
    /// The accuser, for Suspected and Confirmed.
    pub by: Option<NodeId>,
}

/// Another node confirmed a suspicion of `member` (at its incarnation) that
/// this node already holds: evidence for the failure detector, not a change
/// to the table (which the snapshot carries). Losing one only delays the
/// verdict, as a lost datagram would.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Confirmation {
    pub member: Member,
    pub by: NodeId,
}

// ----- failure detector, gossip: lifecycle -----

/// Stop probing, answering and gossiping (the node is leaving).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopActivity;

// ----- service registry -----

/// Registers (or replaces) one service instance with its checks. An error
/// names the field at fault, and nothing already stored changes.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), String>")]
pub struct Register {
    pub service: Service,
    pub checks: Vec<CheckDef>,
}

impl Register {
    /// A registration without checks.
    pub fn plain(service: Service) -> Self {
        Register {
            service,
            checks: Vec::new(),
        }
    }
}

/// Deregisters the instance with this id (the name, unless an id was given).
/// Ok(true) if it was registered.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<bool, String>")]
pub struct Deregister(pub String);

/// A TTL check's report from the application (`PUT /v1/checks/{id}/pass`,
/// Consul's `/v1/agent/check/pass/{id}`, `gossip check pass ID`). Err names
/// an unknown check, or one that is not a TTL check.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), String>")]
pub struct TtlUpdate {
    pub check_id: String,
    pub status: Health,
    pub note: Option<String>,
}

/// The checks this node runs, with their last status and output.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<CheckState>")]
pub struct LocalChecks;

#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<Service>")]
pub struct LocalServices;

// ----- health checks -----

/// The registry's declaration of one instance's checks (an empty list when
/// it is deregistered). Checks whose definition is unchanged keep their
/// state; the others start over at their `initial_status`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SetChecks {
    pub service_id: String,
    pub checks: Vec<CheckDef>,
}

/// The checks actor's verdict on one instance: the worst of its checks.
/// Sent only when it differs from the last one sent for that instance.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SetHealth {
    pub service_id: String,
    pub health: Health,
}

// ----- leave coordinator -----

/// Leave the cluster gracefully; resolves when the node has gone quiet.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Leave;

/// Sent by the leave coordinator to whoever runs the node, once it has left.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct HasLeft;
