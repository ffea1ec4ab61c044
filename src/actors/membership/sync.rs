//! The membership actor's side of push-pull (anti-entropy), in its own
//! file: answering a peer's start with our digest, acting on each digest
//! page as it arrives (`protocol::sync_plan`), and the periodic exchange
//! that is retried with another member when it brings nothing back.
//!
//! Takes: `SyncMsg` (start, digest pages, want-lists from peers) and
//! `StartSync` (from the gossip scheduler). Sends: `Send` to the rumor actor
//! (digest pages, want-lists, records).

use super::*;

/// Incomplete digests kept at once (each is one push-pull in progress).
const MAX_PARTIAL_SYNCS: usize = 8;
/// How long the pages of one push-pull are waited for (to settle the ids
/// between two pages); each page is acted on as it arrives.
pub(super) const PARTIAL_SYNC_TTL: Duration = Duration::from_secs(5);
/// Room left in a datagram for the SyncDigest/SyncWant wrapper.
const PAGE_WRAPPER: usize = 32;
/// A periodic push-pull that brings nothing back within `SYNC_RETRY_AFTER`
/// (no digest page, or not the records it asked for) goes to another live
/// member, up to this many exchanges in all. At 30% loss an exchange loses
/// its start or its first page about half the time, and a member that had
/// missed every copy of a rumor (a leave, in the simulator's 100-node leave
/// at 30% loss) then waited for the next period, 30 s or more past 32
/// members. A peer whose
/// view hashes like ours answers nothing, so a retry also follows agreement:
/// two small datagrams per period.
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

#[derive(Debug, Clone, Copy)]
pub(super) struct AwaitingSync {
    pub(super) peer: SocketAddr,
    pub(super) attempts: u8,
    /// Which exchange a retry timer is for (a newer one replaces it).
    pub(super) token: u64,
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
        // An awaited exchange is done when there is nothing to fetch, or
        // when the fetched records arrive (`Rumors` via sync): a lost want
        // or a lost answer is retried elsewhere like a lost start.
        if plan.want.is_empty() && self.awaiting_sync.is_some_and(|a| a.peer == from) {
            self.awaiting_sync = None;
        }
        let want_pages = paginate(plan.want, self.room.saturating_sub(PAGE_WRAPPER));
        let msgs = want_pages
            .into_iter()
            .map(|ids| encode_msg(&Msg::SyncWant { ids }))
            .collect();
        self.send_to(from, msgs);
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

    /// Waits for the exchange with `peer` to bring what it should (a digest
    /// page with nothing to fetch, or the fetched records), then tries
    /// another live member if it did not (`SYNC_ATTEMPTS`).
    fn await_sync(&mut self, peer: SocketAddr, attempts: u8, ctx: &mut Context<Self>) {
        // Never reused: a timer left from an exchange that was answered must
        // not fire on the next one.
        self.sync_tokens = self.sync_tokens.wrapping_add(1);
        let token = self.sync_tokens;
        self.awaiting_sync = Some(AwaitingSync {
            peer,
            attempts,
            token,
        });
        ctx.run_later(SYNC_RETRY_AFTER, move |act, ctx| {
            guard(ctx, |ctx| {
                let Some(a) = act.awaiting_sync.filter(|a| a.token == token) else {
                    return; // answered, or replaced by a newer exchange
                };
                act.awaiting_sync = None;
                if a.attempts >= SYNC_ATTEMPTS || act.leaving {
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
