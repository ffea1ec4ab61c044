//! The membership actor's side of push-pull (anti-entropy), in its own
//! file: answering a peer's start with our digest, acting on each digest
//! page as it arrives (`protocol::sync_plan`), and the periodic exchange
//! that is retried until it has brought every page and record it should.
//!
//! Takes: `SyncMsg` (start, digest pages, want-lists from peers) and
//! `StartSync` (from the gossip scheduler). Sends: `Send` to the rumor actor
//! (digest pages, want-lists, records).

use super::*;
use std::collections::HashSet;

/// Incomplete digests kept at once (each is one push-pull in progress).
const MAX_PARTIAL_SYNCS: usize = 8;
/// How long the pages of one push-pull are waited for (to settle the ids
/// between two pages); each page is acted on as it arrives.
pub(super) const PARTIAL_SYNC_TTL: Duration = Duration::from_secs(5);
/// Room left in a datagram for the SyncDigest/SyncWant wrapper.
const PAGE_WRAPPER: usize = 32;
/// A periodic push-pull that does not bring all it should within
/// `SYNC_RETRY_AFTER` (a digest page, or a record it asked for, is missing:
/// `AwaitingSync::complete`) is tried again (`watch_sync`), up to this many
/// tries in all. At 30% loss an exchange loses its start or its first page
/// about half the time, and a member that had missed every copy of a rumor
/// (a leave, in the simulator's 100-node leave at 30% loss) then waited for
/// the next period, 30 s or more past 32 members. A peer whose view hashes
/// like ours answers nothing, so a retry also follows agreement: two small
/// datagrams per period.
const SYNC_ATTEMPTS: u8 = 3;
const SYNC_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The pages of one peer's digest that have arrived: for each, the first and
/// last id it lists (`None` for a page out of order, which speaks only for
/// its own entries), so that the ids between two pages can be settled once
/// both are in (see `protocol::sync_plan`).
pub(super) struct PartialSync {
    pub(super) pages: Vec<Option<Option<(NodeId, NodeId)>>>,
    pub(super) started: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct AwaitingSync {
    pub(super) peer: SocketAddr,
    pub(super) attempts: u8,
    /// Which exchange a retry timer is for (a newer one replaces it).
    pub(super) token: u64,
    /// Every page of the peer's digest has arrived.
    pub(super) all_pages: bool,
    /// The records we asked for that have not arrived yet.
    pub(super) wanted: HashSet<NodeId>,
}

impl AwaitingSync {
    /// The exchange brought all it should: every digest page, and every
    /// record those pages made us ask for. A lost page or a lost record
    /// is retried like a lost start (`watch_sync`): at 30% loss a
    /// member that had missed a healed partition's refutation once lost
    /// the one digest page that would have told it, and its tombstone of
    /// a live member was reclaimed before the next period.
    pub(super) fn complete(&self) -> bool {
        self.all_pages && self.wanted.is_empty()
    }

    /// Records of `ids` arrived from the peer.
    pub(super) fn received<'a>(&mut self, ids: impl Iterator<Item = &'a NodeId>) {
        for id in ids {
            self.wanted.remove(id);
        }
    }
}

impl Membership {
    fn send_records<'a>(&self, to: SocketAddr, ids: impl Iterator<Item = &'a NodeId>) {
        let msgs = ids
            .filter_map(|id| self.view.get(id))
            .map(|m| encode_msg(&Msg::State { member: m.clone() }))
            .collect();
        self.send_to(to, msgs);
    }

    fn on_sync(&mut self, from: SocketAddr, msg: Msg) {
        match msg {
            Msg::SyncStart { hash, join } => {
                if join {
                    // Tombstones are not sent: a joiner ignores bad news
                    // about members it does not know.
                    let ids: Vec<NodeId> = self
                        .view
                        .iter()
                        .filter(|m| m.state.is_live())
                        .map(|m| m.id.clone())
                        .collect();
                    self.send_records(from, ids.iter());
                } else if hash != self.view.hash() {
                    let round: u32 = self.rng.gen();
                    let pages =
                        paginate(self.view.digest(), self.room.saturating_sub(PAGE_WRAPPER));
                    let n = pages.len().min(u16::MAX as usize) as u16;
                    let msgs = pages
                        .into_iter()
                        .take(n as usize)
                        .enumerate()
                        .map(|(i, entries)| {
                            encode_msg(&Msg::SyncDigest {
                                round,
                                page: i as u16,
                                pages: n,
                                entries,
                            })
                        })
                        .collect();
                    self.send_to(from, msgs);
                }
            }
            Msg::SyncDigest {
                round,
                page,
                pages,
                entries,
            } => self.on_digest_page(from, round, page, pages, entries),
            Msg::SyncWant { ids } => {
                // Each record once, however often the list names it.
                let mut seen = std::collections::HashSet::with_capacity(ids.len());
                let unique: Vec<&NodeId> = ids.iter().filter(|id| seen.insert(*id)).collect();
                Metrics::add(
                    &self.metrics.want_duplicates,
                    (ids.len() - unique.len()) as u64,
                );
                self.send_records(from, unique.into_iter().take(self.view.len()))
            }
            _ => {}
        }
    }

    fn on_digest_page(
        &mut self,
        from: SocketAddr,
        round: u32,
        page: u16,
        pages: u16,
        entries: Vec<DigestEntry>,
    ) {
        let max_pages = self.view.len().max(1024) as u16;
        if pages == 0 || page >= pages || pages > max_pages {
            Metrics::inc(&self.metrics.decode_errors);
            return;
        }
        let key = (from, round);
        if !self.partial.contains_key(&key) && self.partial.len() >= MAX_PARTIAL_SYNCS {
            let oldest = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.partial.remove(&k);
            }
            Metrics::inc(&self.metrics.limits_hit);
        }
        let p = self.partial.entry(key).or_insert_with(|| PartialSync {
            pages: vec![None; pages as usize],
            started: Instant::now(),
        });
        if p.pages.len() != pages as usize || p.pages[page as usize].is_some() {
            return;
        }
        let bounds = page_bounds(&entries);
        p.pages[page as usize] = Some(bounds.clone());
        // The ids between this page and an arrived neighbour.
        let i = page as usize;
        let neighbour = |j: usize| p.pages.get(j).cloned().flatten().flatten();
        let before = i.checked_sub(1).and_then(neighbour);
        let after = neighbour(i + 1);
        let done = p.pages.iter().all(Option::is_some);
        if done {
            self.partial.remove(&key);
        }
        let mut plan = plan_page(&self.view, &entries, page, pages);
        if let Some((first, last)) = &bounds {
            if let Some((_, prev_last)) = before {
                plan.send.extend(plan_gap(&self.view, &prev_last, first));
            }
            if let Some((next_first, _)) = after {
                plan.send.extend(plan_gap(&self.view, last, &next_first));
            }
        }
        self.send_records(from, plan.send.iter());
        // An awaited exchange is done when every page is in and every
        // record it made us fetch has arrived (`Rumors` via sync): a lost
        // page, want or answer is retried elsewhere like a lost start.
        if let Some(a) = self.awaiting_sync.as_mut().filter(|a| a.peer == from) {
            a.all_pages |= done;
            a.wanted.extend(plan.want.iter().cloned());
            if a.complete() {
                self.awaiting_sync = None;
            }
        }
        self.send_wants(from, plan.want);
    }

    /// Asks `to` for the records of `ids`, in as many pages as they need.
    fn send_wants(&self, to: SocketAddr, ids: Vec<NodeId>) {
        let want_pages = paginate(ids, self.room.saturating_sub(PAGE_WRAPPER));
        let msgs = want_pages
            .into_iter()
            .map(|ids| encode_msg(&Msg::SyncWant { ids }))
            .collect();
        self.send_to(to, msgs);
    }

    /// Sends the start of a push-pull exchange to `peer`.
    fn start_sync(&mut self, peer: SocketAddr, join: bool) {
        let msg = Msg::SyncStart {
            hash: self.view.hash(),
            join,
        };
        let mut msgs = vec![encode_msg(&msg)];
        if join {
            // Announce ourselves with the request: our first rumor may
            // have been used up on seeds that did not answer.
            msgs.push(encode_msg(&Msg::Update {
                member: self.own(),
                by: None,
            }));
        }
        self.send_to(peer, msgs);
    }

    /// Waits for the exchange with `peer` to bring what it should (every
    /// digest page, and the records they made us fetch), then tries again
    /// if it did not, up to `SYNC_ATTEMPTS` tries in all.
    fn await_sync(&mut self, peer: SocketAddr, attempts: u8, ctx: &mut Context<Self>) {
        let fresh = AwaitingSync {
            peer,
            attempts,
            token: 0,
            all_pages: false,
            wanted: HashSet::new(),
        };
        self.watch_sync(fresh, ctx);
    }

    /// Arms the retry timer of exchange `a`. When it fires with the
    /// exchange still incomplete: if only records are missing (every page
    /// came, a want or its answer was lost), the same peer is asked for
    /// them again, a want instead of a whole exchange (at 30% loss a
    /// member twice lost the one want that would have brought it a healed
    /// partition's refutation, and later reclaimed a live member's
    /// tombstone); otherwise the exchange starts again with another live
    /// member.
    fn watch_sync(&mut self, mut a: AwaitingSync, ctx: &mut Context<Self>) {
        // Never reused: a timer left from an exchange that was answered must
        // not fire on the next one.
        self.sync_tokens = self.sync_tokens.wrapping_add(1);
        let token = self.sync_tokens;
        a.token = token;
        self.awaiting_sync = Some(a);
        ctx.run_later(SYNC_RETRY_AFTER, move |act, ctx| {
            guard(ctx, |ctx| {
                let Some(a) = act.awaiting_sync.take_if(|a| a.token == token) else {
                    return; // answered, or replaced by a newer exchange
                };
                if a.attempts >= SYNC_ATTEMPTS || act.leaving {
                    return;
                }
                if a.all_pages {
                    Metrics::inc(&act.metrics.sync_retries);
                    act.send_wants(a.peer, a.wanted.iter().cloned().collect());
                    let again = AwaitingSync {
                        attempts: a.attempts + 1,
                        ..a
                    };
                    act.watch_sync(again, ctx);
                    return;
                }
                let me = act.me.clone();
                let other = act
                    .view
                    .live()
                    .sample(4, &[&me], &mut act.rng)
                    .into_iter()
                    .map(|(_, addr)| addr)
                    .find(|addr| *addr != a.peer);
                if let Some(next) = other {
                    Metrics::inc(&act.metrics.sync_retries);
                    act.start_sync(next, false);
                    act.await_sync(next, a.attempts + 1, ctx);
                }
            });
        });
    }
}

impl Handler<SyncMsg> for Membership {
    type Result = ();
    fn handle(&mut self, m: SyncMsg, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            if !self.leaving {
                self.on_sync(m.from, m.msg)
            }
        });
    }
}

impl Handler<StartSync> for Membership {
    type Result = ();
    fn handle(&mut self, m: StartSync, ctx: &mut Context<Self>) {
        guard(ctx, |ctx| {
            self.start_sync(m.peer, m.join);
            if m.retry {
                self.await_sync(m.peer, 1, ctx);
            }
        });
    }
}
