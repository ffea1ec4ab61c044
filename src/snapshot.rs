//! The published snapshot: one writer, many readers.
//!
//! The Membership actor owns the member table. After every change it
//! publishes an immutable [`Snapshot`] of it on a `tokio::sync::watch`
//! channel; everyone else (the other actors, the HTTP API, the event stream,
//! the DNS server, the Consul face) reads the latest snapshot without a
//! round trip through Membership's mailbox, and awaits the next one with
//! [`SnapshotRx::changed`]. A reader that missed some snapshots loses
//! nothing: the newest one holds every fact, so it rebuilds what it derives
//! from it (a probe order, a peer sample, a catalog) by diffing the snapshot
//! it last saw against the current one (`OrdMap::diff` skips the chunks the
//! two share).
//!
//! The table is the `imbl::OrdMap` Membership already keeps, so publishing
//! costs one `Arc` and an O(1) clone: the snapshot shares every chunk with
//! the live table and with the snapshots before it. The same holds for the
//! peer sets the view keeps next to it (`live`, `dead`): the failure
//! detector, the gossip scheduler and the rumor actor all sample the one
//! copy published here.
//!
//! Besides the table, a snapshot holds the two facts a reader cannot tell
//! from the records alone: who accused each suspect member (the failure
//! detector needs it to count confirmations), and how many times this node
//! has refuted a rumor about itself (its local health rises with each).
//! Actors await new snapshots through [`changes`], a stream of data-free
//! ticks; what changed is the diff of the snapshot they last saw against
//! the current one ([`Snapshot::diff`]).

use futures_util::Stream;
use imbl::ordmap::DiffItem;
use imbl::OrdMap;
use std::sync::Arc;
use tokio::sync::watch;

use crate::protocol::peers::PeerSet;
use crate::protocol::services::{catalog, Instance};
use crate::protocol::view::{Failed, View};
use crate::protocol::{Member, NodeId, Table};

#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Raised by one on every publication: never 0, never goes back within
    /// one run of the agent (it restarts at 1 with the process).
    pub index: u64,
    /// This node's id; its own record is in `table`.
    pub me: NodeId,
    /// Every member this node knows of, itself included, with their services.
    pub table: Table,
    /// Alive and suspect members, self included, for random choice.
    pub live: PeerSet,
    /// Dead members whose tombstones are not reclaimed yet (not left ones).
    pub dead: PeerSet,
    /// For each suspect member, the node whose accusation made it suspect
    /// at its current incarnation.
    pub accusers: OrdMap<NodeId, NodeId>,
    /// How many times this node has refuted a suspicion about itself.
    pub refutations: u64,
    /// The reconnect book (`View::reconnect_book`): members declared dead
    /// within `reconnect_timeout_ms`, with their last address, including
    /// those whose tombstones have left `table`. The gossip scheduler tries
    /// a sample of them every `reconnect_interval_ms`.
    pub reconnect: OrdMap<NodeId, Failed>,
}

/// One member's change between two snapshots: its record before (None: new
/// to the table) and after (None: reclaimed).
pub type Change<'a> = (Option<&'a Member>, Option<&'a Member>);

impl Snapshot {
    /// Nothing known yet, not even ourselves (index 0: before the first
    /// publication): what a reader has seen before it first looks.
    pub fn empty(me: NodeId) -> Self {
        Snapshot {
            index: 0,
            me,
            table: OrdMap::new(),
            live: PeerSet::default(),
            dead: PeerSet::default(),
            accusers: OrdMap::new(),
            refutations: 0,
            reconnect: OrdMap::new(),
        }
    }

    pub fn own(&self) -> Option<&Member> {
        self.table.get(&self.me).map(|m| &**m)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.table.values().map(|m| &**m)
    }

    /// The service catalog: instances on alive and suspect members.
    pub fn catalog(&self) -> std::collections::BTreeMap<String, Vec<Instance>> {
        catalog(self.members())
    }

    /// Whether `id` is alive or suspect, by its record.
    pub fn is_live(&self, id: &NodeId) -> bool {
        self.live.contains(id)
    }

    /// Live members other than this node.
    pub fn peer_count(&self) -> usize {
        self.live.len() - usize::from(self.live.contains(&self.me))
    }

    /// The members whose records differ between `self` (older) and `newer`,
    /// in id order. Costs what changed, not the table's size: the two maps
    /// share every chunk neither has written since (`OrdMap::diff` skips
    /// them).
    pub fn diff<'a>(&'a self, newer: &'a Snapshot) -> impl Iterator<Item = Change<'a>> + 'a {
        self.table.diff(&newer.table).map(|d| match d {
            DiffItem::Add(_, m) => (None, Some(&**m)),
            DiffItem::Update { old, new } => (Some(&**old.1), Some(&**new.1)),
            DiffItem::Remove(_, m) => (Some(&**m), None),
        })
    }
}

pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;

/// A tick each time a snapshot newer than the current one is published
/// (several publications between two polls give one tick: the reader reads
/// the newest). Ends when the publisher is gone.
pub fn changes(rx: &SnapshotRx) -> impl Stream<Item = ()> + 'static {
    let mut rx = rx.clone();
    rx.mark_unchanged();
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        rx.mark_unchanged();
        Some(((), rx))
    })
}

/// The writer's end, held by Membership alone.
pub struct Publisher {
    tx: watch::Sender<Arc<Snapshot>>,
    index: u64,
}

fn snapshot_of(
    index: u64,
    me: NodeId,
    view: &View,
    accusers: OrdMap<NodeId, NodeId>,
    refutations: u64,
) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        index,
        me,
        table: view.table(),
        live: view.live(),
        dead: view.dead(),
        accusers,
        refutations,
        reconnect: view.reconnect_book(),
    })
}

impl Publisher {
    /// A channel whose first snapshot (index 1) holds `view`.
    pub fn new(me: NodeId, view: &View) -> (Publisher, SnapshotRx) {
        let (tx, rx) = watch::channel(snapshot_of(1, me, view, OrdMap::new(), 0));
        (Publisher { tx, index: 1 }, rx)
    }

    /// Publishes a new snapshot of `view` (O(1) clones of its maps).
    pub fn publish(&mut self, view: &View, accusers: OrdMap<NodeId, NodeId>, refutations: u64) {
        self.index += 1;
        let me = self.tx.borrow().me.clone();
        self.tx
            .send_replace(snapshot_of(self.index, me, view, accusers, refutations));
    }

    pub fn subscribe(&self) -> SnapshotRx {
        self.tx.subscribe()
    }

    pub fn index(&self) -> u64 {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::MemberState;
    use futures_util::StreamExt;
    use tokio::time::Instant;

    fn alive(id: &str, port: u16) -> Member {
        Member::new_alive(
            NodeId::new(id),
            format!("127.0.0.1:{port}").parse().unwrap(),
            0,
        )
    }

    #[test]
    fn every_publication_raises_the_index_and_wakes_readers() {
        let me = NodeId::new("a");
        let mut view = View::new(10);
        view.apply(&alive("a", 1), Instant::now()).unwrap();
        let (mut publisher, mut rx) = Publisher::new(me.clone(), &view);
        assert_eq!(rx.borrow().index, 1);
        assert!(!rx.has_changed().unwrap());
        view.apply(&alive("b", 2), Instant::now()).unwrap();
        publisher.publish(&view, OrdMap::new(), 0);
        assert!(rx.has_changed().unwrap());
        let snap = rx.borrow_and_update().clone();
        assert_eq!(snap.index, 2);
        assert_eq!(snap.table.len(), 2);
        assert_eq!(snap.own().unwrap().id, me);
        assert_eq!((snap.live.len(), snap.peer_count()), (2, 1));
    }

    #[test]
    fn diff_lists_exactly_what_changed() {
        let now = Instant::now();
        let mut view = View::new(10);
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            view.apply(&alive(id, i as u16), now).unwrap();
        }
        let (mut publisher, rx) = Publisher::new(NodeId::new("a"), &view);
        let before = rx.borrow().clone();
        view.apply(
            &Member {
                state: MemberState::Dead,
                ..alive("b", 1)
            },
            now,
        )
        .unwrap();
        view.apply(&alive("e", 9), now).unwrap();
        publisher.publish(&view, OrdMap::new(), 0);
        let after = rx.borrow().clone();
        let changed: Vec<_> = before
            .diff(&after)
            .map(|(old, new)| {
                (
                    old.map(|m| m.state),
                    new.map(|m| (m.id.to_string(), m.state)),
                )
            })
            .collect();
        assert_eq!(
            changed,
            vec![
                (
                    Some(MemberState::Alive),
                    Some(("b".into(), MemberState::Dead))
                ),
                (None, Some(("e".into(), MemberState::Alive))),
            ]
        );
        assert_eq!(after.diff(&after).count(), 0);
    }

    #[tokio::test]
    async fn changes_tick_once_for_a_burst_and_end_with_the_publisher() {
        let mut view = View::new(10);
        view.apply(&alive("a", 1), Instant::now()).unwrap();
        let (mut publisher, rx) = Publisher::new(NodeId::new("a"), &view);
        let mut ticks = Box::pin(changes(&rx));
        for i in 0..5 {
            view.apply(&alive(&format!("n{i}"), 10 + i), Instant::now())
                .unwrap();
            publisher.publish(&view, OrdMap::new(), 0);
        }
        assert_eq!(ticks.next().await, Some(()));
        assert_eq!(rx.borrow().table.len(), 6);
        drop(publisher);
        assert_eq!(ticks.next().await, None);
    }
}
