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
//! the live table and with the snapshots before it.

use imbl::OrdMap;
use std::sync::Arc;
use tokio::sync::watch;

use crate::protocol::services::{catalog, Instance};
use crate::protocol::view::Failed;
use crate::protocol::{Member, NodeId};

#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Raised by one on every publication: never 0, never goes back within
    /// one run of the agent (it restarts at 1 with the process).
    pub index: u64,
    /// This node's id; its own record is in `table`.
    pub me: NodeId,
    /// Every member this node knows of, itself included, with their services.
    pub table: OrdMap<NodeId, Member>,
    /// The reconnect book (`View::reconnect_book`): members declared dead
    /// within `reconnect_timeout_ms`, with their last address, including
    /// those whose tombstones have left `table`. The gossip scheduler tries
    /// a sample of them every `reconnect_interval_ms`.
    pub reconnect: OrdMap<NodeId, Failed>,
}

impl Snapshot {
    pub fn own(&self) -> Option<&Member> {
        self.table.get(&self.me)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.table.values()
    }

    /// The service catalog: instances on alive and suspect members.
    pub fn catalog(&self) -> std::collections::BTreeMap<String, Vec<Instance>> {
        catalog(self.table.values())
    }
}

pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;

/// The writer's end, held by Membership alone.
pub struct Publisher {
    tx: watch::Sender<Arc<Snapshot>>,
    index: u64,
}

impl Publisher {
    /// A channel whose first snapshot (index 1) holds `table`.
    pub fn new(me: NodeId, table: OrdMap<NodeId, Member>) -> (Publisher, SnapshotRx) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot {
            index: 1,
            me,
            table,
            reconnect: OrdMap::new(),
        }));
        (Publisher { tx, index: 1 }, rx)
    }

    /// Publishes a new snapshot of `table` and the reconnect book (O(1)
    /// clones of them).
    pub fn publish(&mut self, table: OrdMap<NodeId, Member>, reconnect: OrdMap<NodeId, Failed>) {
        self.index += 1;
        let me = self.tx.borrow().me.clone();
        self.tx.send_replace(Arc::new(Snapshot {
            index: self.index,
            me,
            table,
            reconnect,
        }));
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

    #[test]
    fn every_publication_raises_the_index_and_wakes_readers() {
        let me = NodeId::new("a");
        let mut table = OrdMap::new();
        table.insert(
            me.clone(),
            Member::new_alive(me.clone(), "127.0.0.1:1".parse().unwrap(), 0),
        );
        let (mut publisher, mut rx) = Publisher::new(me.clone(), table.clone());
        assert_eq!(rx.borrow().index, 1);
        assert!(!rx.has_changed().unwrap());
        let b = NodeId::new("b");
        table.insert(
            b.clone(),
            Member::new_alive(b.clone(), "127.0.0.1:2".parse().unwrap(), 0),
        );
        publisher.publish(table, OrdMap::new());
        assert!(rx.has_changed().unwrap());
        let snap = rx.borrow_and_update().clone();
        assert_eq!(snap.index, 2);
        assert_eq!(snap.table.len(), 2);
        assert_eq!(snap.own().unwrap().id, me);
    }
}
