#!/usr/bin/env python3
"""Reads a simulator trace (`SIM_WIRE_LOG=trace.tsv gossip sim ...`, see
src/sim/wirelog.rs for the format) and answers two questions:

    python3 bench/sim_wire.py tail trace.tsv [--factor 1.5]
        failure scenario: for every (survivor, victim) pair that learned of
        the death later than FACTOR x the median pair, why: the victim's
        first verdict anywhere came late (its first probe came late, or the
        first accuser's timer ran long), or this survivor got the verdict
        late (the dead rumor reached it late, or never, and its own timer
        decided).

    python3 bench/sim_wire.py nacks trace.tsv [--window 8000]
        failure scenario: the relays' nacks lost for probes of the victims
        (each missing one raises the prober's local health score).

    python3 bench/sim_wire.py deaths trace.tsv
        soak scenario: every death (all of them false) traced: who declared
        it, the declarer's probes of the member and how they failed, whether
        the member heard of the suspicion and refuted, whether the
        refutation reached the declarer, the declarer's health score.

    python3 bench/sim_wire.py traffic trace.tsv [--from MS] [--to MS]
        messages and bytes sent per node per second, by kind.

Standard library only."""

import argparse
import bisect
import statistics
import sys
from collections import Counter, defaultdict

# Pings with this bit in their seq are the transport's address verification
# (src/protocol/amplification.rs), not the failure detector's probes.
VERIFY_SEQ_BIT = 1 << 31


def words(parts):
    """The message words of a D line: (kind, fields..., size)."""
    for w in parts:
        body, _, size = w.rpartition("=")
        f = body.split(":")
        yield f, int(size) if size.isdigit() else 0


class Trace:
    def __init__(self, path, members=None):
        """Reads the trace. `members`: if given, only rumors, pings and
        ping-reqs about these members are kept (the victims)."""
        self.markers = []
        self.events = defaultdict(list)  # (node, member) -> [(at, kind, state, inc, by)]
        self.node_events = defaultdict(list)  # node -> [(at, kind, member, state, inc)]
        self.health = defaultdict(list)  # node -> [(at, score)]
        # (to, member) -> [(due, state, inc, by, from)] rumors delivered (fate ok)
        self.rumors_in = defaultdict(list)
        # (from, member) -> [(sent, state, inc, fate, to)] rumors sent
        self.rumors_out = defaultdict(list)
        self.pings = defaultdict(list)  # (from, target) -> [(sent, seq, fate, to)]
        self.ping_reqs = defaultdict(list)  # (from, target) -> [(sent, seq, fate, relay)]
        self.acks_in = defaultdict(dict)  # to -> {seq: first due}
        self.nacks_in = defaultdict(lambda: defaultdict(int))  # to -> {seq: count}
        self.verify_pings = Counter()
        self.probe_rate = Counter()  # second -> failure-detector pings sent (all targets)
        self.members = members
        self.first_ms = None
        self.last_ms = 0
        with open(path) as f:
            for line in f:
                self._line(line.rstrip("\n").split("\t"))

    def _line(self, p):
        t = p[0]
        if t == "D":
            sent = int(p[1])
            if self.first_ms is None:
                self.first_ms = sent
            self.last_ms = sent
            due = None if p[2] == "-" else int(p[2])
            fate, frm, to = p[3], int(p[4]), int(p[5])
            for f, _ in words(p[7:]):
                k = f[0]
                if k == "u":
                    m = int(f[1]) if f[1].isdigit() else f[1]
                    if self.members is not None and m not in self.members:
                        continue
                    by = None if f[4] == "-" else int(f[4])
                    self.rumors_out[(frm, m)].append((sent, f[2], int(f[3]), fate, to))
                    if fate == "ok":
                        self.rumors_in[(to, m)].append((due, f[2], int(f[3]), by, frm))
                elif k == "p":
                    m = int(f[2])
                    seq = int(f[1])
                    if seq >= VERIFY_SEQ_BIT:
                        # The transport's address verification, not a probe.
                        self.verify_pings[frm] += 1
                    elif self.members is None or m in self.members:
                        self.pings[(frm, m)].append((sent, seq, fate, to))
                    if seq < VERIFY_SEQ_BIT:
                        self.probe_rate[sent // 1000] += 1
                elif k == "r":
                    m = int(f[2])
                    if self.members is None or m in self.members:
                        self.ping_reqs[(frm, m)].append((sent, int(f[1]), fate, to))
                elif k == "a" and fate == "ok":
                    self.acks_in[to].setdefault(int(f[1]), due)
                elif k == "n" and fate == "ok":
                    self.nacks_in[to][int(f[1])] += 1
        elif t == "E":
            at, node, kind, member, state, inc, by = int(p[1]), int(p[2]), p[3], p[4], p[5], int(p[6]), p[7]
            member = int(member) if member.isdigit() else member
            by = None if by == "-" else int(by)
            self.events[(node, member)].append((at, kind, state, inc, by))
            self.node_events[node].append((at, kind, member, state, inc))
        elif t == "H":
            self.health[int(p[2])].append((int(p[1]), int(p[3])))
        elif t == "M":
            self.markers.append((int(p[1]), p[2]))

    def health_at(self, node, at):
        h = self.health.get(node, [])
        i = bisect.bisect_right([x[0] for x in h], at)
        return h[i - 1][1] if i else 0

    def health_max(self, node, a, b):
        return max([s for t, s in self.health.get(node, []) if a <= t <= b] + [self.health_at(node, a)])


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    return v[min(len(v), max(1, -(-len(v) * p // 100))) - 1]


def crash_marker(path):
    with open(path) as f:
        for line in f:
            if line.startswith("M\t") and "\tcrash " in line:
                p = line.rstrip("\n").split("\t")
                return int(p[1]), [int(x) for x in p[2].split()[1:]]
    sys.exit("no crash marker in the trace: run the failure scenario with SIM_WIRE_LOG set")


def tail(args):
    t0, victims = crash_marker(args.trace)
    vs = set(victims)
    tr = Trace(args.trace, members=vs)
    nodes = sorted({n for n, _ in tr.events} | {n for (n, _) in tr.pings})
    survivors = [x for x in nodes if x not in vs]
    # Per victim: the cluster's first ping, suspicion and verdict.
    first = {}
    for v in victims:
        pings = [s for (f, m), l in tr.pings.items() if m == v for s, *_ in l if s >= t0]
        sus = [(e[0], n) for (n, m), l in tr.events.items() if m == v for e in l if e[1] == "suspected" and e[0] >= t0]
        dead = [(e[0], n) for (n, m), l in tr.events.items() if m == v for e in l if e[1] == "failed" and e[0] >= t0]
        first[v] = {
            "ping": min(pings) - t0 if pings else None,
            "suspect": min(sus)[0] - t0 if sus else None,
            "accuser": min(sus)[1] if sus else None,
            "dead": min(dead)[0] - t0 if dead else None,
            "declarer": min(dead)[1] if dead else None,
        }
    pairs = {}
    for v in victims:
        for x in survivors:
            d = [e[0] for e in tr.events.get((x, v), []) if e[1] == "failed" and e[0] >= t0]
            pairs[(x, v)] = d[0] - t0 if d else None
    times = [d for d in pairs.values() if d is not None]
    p50, p99 = pct(times, 50), pct(times, 99)
    limit = args.factor * p50
    print(f"crash at {t0} ms; {len(victims)} victims, {len(survivors)} survivors, {len(times)} pairs detected "
          f"of {len(pairs)}; p50 {p50} ms, p99 {p99} ms, max {max(times)} ms; tail: pairs over {args.factor} x p50 "
          f"= {limit:.0f} ms")
    print("\nthe cluster, per second from 2 s before the crash: failure-detector pings sent (all targets); "
          "mean local health score; nodes at 4 or more:")
    end = max(t for t in times) + t0
    for sec in range((t0 - 2000) // 1000, end // 1000 + 1, 2):
        at = sec * 1000
        hs = [tr.health_at(x, at) for x in survivors]
        print(f"  {at - t0:6d} ms: {tr.probe_rate.get(sec, 0):5d} pings/s, health mean {statistics.mean(hs):.2f}, "
              f">= 4: {sum(h >= 4 for h in hs)}")
    print("\nper victim: first probe, first suspicion (accuser), first verdict (declarer), and the accuser's timer:")
    for v in victims:
        f = first[v]
        ds = [pairs[(x, v)] for x in survivors if pairs[(x, v)] is not None]
        late = sum(1 for d in ds if d > limit)
        acc = f["accuser"]
        conf = ""
        if acc is not None:
            ev = tr.events.get((acc, v), [])
            c = sorted({e[4] for e in ev if e[1] == "confirmed" and e[0] >= t0 and
                        (f["dead"] is None or e[0] - t0 <= f["dead"])})
            conf = f"; accuser's confirmations before the verdict: {len(c)}; accuser health at the suspicion " \
                   f"{tr.health_at(acc, t0 + f['suspect'])}"
        print(f"  n{v}: ping {f['ping']} ms, suspect {f['suspect']} ms (n{acc}), dead {f['dead']} ms (n{f['declarer']}), "
              f"everywhere {max(ds) if ds else None} ms, p50 {pct(ds, 50)} ms; pairs in tail {late}{conf}")
    reasons = Counter()
    examples = defaultdict(list)
    detail = Counter()
    for (x, v), d in sorted(pairs.items()):
        if d is not None and d <= limit:
            continue
        f = first[v]
        ins = tr.rumors_in.get((x, v), [])
        dead_in = [r[0] - t0 for r in ins if r[1] == "dead" and r[0] >= t0]
        sus_in = [r[0] - t0 for r in ins if r[1] == "suspect" and r[0] >= t0]
        by_rumor = bool(dead_in) and d is not None and min(dead_in) <= d
        ev = tr.events.get((x, v), [])
        sus_at = [e[0] - t0 for e in ev if e[1] == "suspected" and e[0] >= t0]
        confs = {e[4] for e in ev if e[1] == "confirmed" and e[0] >= t0 and (d is None or e[0] - t0 <= d)}
        own_pings = [s - t0 for s, *_ in tr.pings.get((x, v), []) if s >= t0 and (d is None or s - t0 <= d)]
        hmax = tr.health_max(x, t0, t0 + (d or 0))
        if f["dead"] is not None and f["dead"] > limit - 300:
            # Nominal: a probe period after the first probe, the suspicion;
            # its minimum timeout (at 1,000 nodes 2.7 s) later, the verdict.
            if f["ping"] is not None and f["dead"] - f["ping"] <= args.nominal:
                r = "A1 victim's first verdict late: its first probe came late (then all went at the nominal pace)"
            elif f["suspect"] is not None and f["suspect"] > f["ping"] + 1500:
                r = "A2 victim's first verdict late: its first probes raised no suspicion for a while"
            else:
                r = "A3 victim's first verdict late: the first accuser's timer ran long"
        elif d is None:
            r = "B0 never declared within the run"
        elif by_rumor:
            r = "B1 got the dead rumor late (dissemination)"
        else:
            r = "B2 own timer decided: the dead rumor never reached it before"
        reasons[r] += 1
        if r.startswith("B2"):
            timer = d - min(sus_at) if sus_at else None
            detail[f"B2 confirmations at the survivor: {min(len(confs), 9)}"] += 1
            detail[f"B2 pings of the victim it sent: {min(len(own_pings), 9)}"] += 1
            detail[f"B2 health max {hmax}"] += 1
            if timer is not None:
                detail[f"B2 timer (death - suspected) {timer // 1000} s"] += 1
        if r.startswith("B1"):
            detail[f"B1 dead rumor arrived {(min(dead_in) - f['dead']) // 1000} s after the first verdict"] += 1
        if len(examples[r]) < args.examples:
            examples[r].append(
                f"n{x} about n{v}: dead at {d} ms; suspected at {min(sus_at) if sus_at else None} ms; first suspect "
                f"rumor in {min(sus_in) if sus_in else None} ms, first dead rumor in "
                f"{min(dead_in) if dead_in else None} ms; confirmations {len(confs)}; pings it sent the victim (probes and relayed) at {own_pings[:6]}; "
                f"health max {hmax}; victim's first verdict {f['dead']} ms")
    print(f"\npairs over {limit:.0f} ms, by reason ({sum(reasons.values())} in all):")
    for r, n in sorted(reasons.items()):
        print(f"  {n:6d}  {r}")
        for e in examples[r]:
            print(f"            e.g. {e}")
    if detail:
        print("\ndetail:")
        for k, n in sorted(detail.items()):
            print(f"  {n:6d}  {k}")
    # The dead rumors: how many survivors each victim's verdict reached by
    # rumor, and the transmissions of dead rumors.
    print("\ndead rumors per victim: survivors that learned by rumor / by their own timer; dead-rumor "
          "datagrams sent (ok/lost), and the time the last rumor-learner got it:")
    for v in victims:
        by_r = own = 0
        last = 0
        for x in survivors:
            d = pairs[(x, v)]
            if d is None:
                continue
            din = [r[0] - t0 for r in tr.rumors_in.get((x, v), []) if r[1] == "dead" and r[0] >= t0]
            if din and min(din) <= d:
                by_r += 1
                last = max(last, min(din))
            else:
                own += 1
        sent = Counter(r[3] for (fr, m), l in tr.rumors_out.items() if m == v for r in l if r[1] == "dead")
        print(f"  n{v}: by rumor {by_r}, own timer {own}; dead rumors sent ok {sent['ok']} lost {sent['lost']}; "
              f"last rumor-learner at {last} ms (first verdict {first[v]['dead']} ms)")


def nacks(args):
    """Failure scenario: the failed probes of the victims in the first
    seconds after the crash, and the relays' nacks that did not come back
    (each one raises the prober's local health score by one)."""
    t0, victims = crash_marker(args.trace)
    tr = Trace(args.trace, members=set(victims))
    miss, probes, asked, back = Counter(), Counter(), 0, 0
    for (x, v), reqs in tr.ping_reqs.items():
        byseq = defaultdict(int)
        for sent, seq, _, _ in reqs:
            if t0 <= sent < t0 + args.window:
                byseq[seq] += 1
        for seq, n in byseq.items():
            r = min(n, tr.nacks_in.get(x, {}).get(seq, 0))
            probes[x] += 1
            asked += n
            back += r
            miss[x] += n - r
    if not probes:
        sys.exit("no probe of a victim went to relays in that window")
    print(f"{len(probes)} nodes probed victims through relays in the {args.window} ms after the crash; per node "
          f"{statistics.mean(probes.values()):.1f} such failed probes; relays asked {asked}, nacks back {back} "
          f"({back / max(1, asked):.1%}); missing nacks per node: mean {statistics.mean(miss.values()):.2f}, "
          f"max {max(miss.values())}")


def deaths(args):
    tr = Trace(args.trace)
    dd = sorted((e[0], n, m, e[3]) for (n, m), l in tr.events.items() for e in l if e[1] == "failed")
    print(f"{len(dd)} deaths declared ({len({d[2] for d in dd})} distinct members)\n")
    stats = Counter()
    spans = []
    copies = []
    for at, x, y, inc in dd:
        ev = tr.events.get((x, y), [])
        sus = [e for e in ev if e[1] == "suspected" and e[3] == inc and e[0] <= at]
        s_at = sus[-1][0] if sus else None
        s_by = sus[-1][4] if sus else None
        confs = sorted({e[4] for e in ev if e[1] == "confirmed" and e[3] == inc and e[0] <= at})
        # Who declared it first, and how the verdict reached x.
        first = min(((e[0], n) for (n, m), l in tr.events.items() if m == y for e in l
                     if e[1] == "failed" and e[3] == inc), default=None)
        dead_in = [r for r in tr.rumors_in.get((x, y), []) if r[1] == "dead" and r[2] == inc and r[0] <= at]
        how = f"by rumor from n{dead_in[0][4]}" if dead_in else "by its own timer"
        # x's probes of y around the suspicion.
        lo = (s_at or at) - 3000
        pings = [(s, seq, fate) for s, seq, fate, _ in tr.pings.get((x, y), []) if lo <= s <= at]
        acked = [p for p in pings if p[1] in tr.acks_in.get(x, {})]
        reqs = [(s, seq, fate) for s, seq, fate, _ in tr.ping_reqs.get((x, y), []) if lo <= s <= at]
        nacks = sum(tr.nacks_in.get(x, {}).get(seq, 0) for _, seq, _ in reqs)
        # Did y hear of the suspicion, and refute?
        heard = [r for r in tr.rumors_in.get((y, y), []) if r[1] == "suspect" and r[2] == inc
                 and (s_at is None or r[0] >= s_at - 5000) and r[0] <= at + 5000]
        refuted = [e for e in tr.node_events.get(y, []) if e[1] == "self-refuted" and e[0] <= at + 5000
                   and e[0] >= (s_at or at) - 5000]
        refutes_in = [r for r in tr.rumors_in.get((x, y), []) if r[1] == "alive" and r[2] > inc and r[0] <= at]
        refutes_sent = Counter(r[3] for r in tr.rumors_out.get((y, y), []) if r[1] == "alive" and r[2] > inc
                               and r[0] <= at)
        # Copies of the refutation addressed to x, and x's probes of y after
        # y refuted (each carried the stale suspicion to y: the buddy system).
        ref_at = min((e[0] for e in refuted), default=None)
        to_x_all = Counter(r[3] for (fr, m), l in tr.rumors_out.items() if m == y for r in l
                           if r[4] == x and r[1] == "alive" and r[2] > inc and r[0] <= at)
        later = [(p[0], p[1], p[2]) for p in pings if ref_at is not None and p[0] > ref_at]
        later_acked = [p for p in later if p[1] in tr.acks_in.get(x, {})]
        stats["deaths"] += 1
        stats["declared by own timer" if not dead_in else "declared on a dead rumor"] += 1
        stats["refuted before the verdict"] += bool(ref_at is not None and ref_at <= at)
        stats["no copy of the refutation reached the declarer"] += not refutes_in
        stats["declarer probed it after the refutation and got an ack"] += bool(later_acked)
        if ref_at is not None:
            last_sent = max((r[0] for (fr, m), l in tr.rumors_out.items() if m == y for r in l
                             if r[1] == "alive" and r[2] > inc and r[0] <= at), default=None)
            spans.append((last_sent - ref_at) if last_sent is not None else None)
        copies.append(sum(to_x_all.values()))
        print(f"t={at} ms: n{x} declared n{y}@{inc} dead ({how}; the first verdict: n{first[1]} at {first[0]} ms)")
        print(f"    copies of n{y}'s refutation sent to n{x} (by anyone) before the verdict: {dict(to_x_all)}; "
              f"n{x}'s pings of n{y} after the refutation: {len(later)}, acked {len(later_acked)}")
        print(f"    n{x} suspected it at {s_at} ms (accuser n{s_by}), {len(confs)} confirmations {confs}; "
              f"health of n{x}: {tr.health_at(x, at)} at the verdict, max {tr.health_max(x, lo, at)}; "
              f"of n{y}: {tr.health_at(y, at)}")
        print(f"    n{x}'s pings of n{y} since {lo} ms: {len(pings)} ({sum(p[2] == 'lost' for p in pings)} lost on the way "
              f"out, {len(acked)} acked); ping-reqs {len(reqs)} ({sum(r[2] == 'lost' for r in reqs)} lost), nacks back {nacks}")
        print(f"    n{y} heard of the suspicion: {len(heard)} rumors, first at {heard[0][0] if heard else None} ms; "
              f"refuted at {[e[0] for e in refuted][:3]}; its refutations sent before the verdict: "
              f"{dict(refutes_sent)}; refutations that reached n{x} before: {len(refutes_in)}")
    print("\nsummary:")
    for k, n in stats.items():
        print(f"  {n:4d}  {k}")
    print(f"  copies of the refutation addressed to the declarer: {copies}")
    print(f"  how long each refutation was still being sent after it was made (ms): {spans}")


def traffic(args):
    frm = args.from_ms
    to = args.to_ms
    msgs = Counter()
    mbytes = Counter()
    dgrams = Counter()
    dbytes = Counter()
    nodes = set()
    lo, hi = None, 0
    with open(args.trace) as f:
        for line in f:
            if not line.startswith("D\t"):
                continue
            p = line.rstrip("\n").split("\t")
            sent = int(p[1])
            if (frm is not None and sent < frm) or (to is not None and sent >= to):
                continue
            lo = sent if lo is None else lo
            hi = sent
            nodes.add(int(p[4]))
            ws = list(words(p[7:]))
            first = ws[0][0][0] if ws else "!"
            purpose = {"p": "ping", "a": "ack", "r": "ping-req", "n": "nack", "u": "gossip (rumors only)",
                       "s": "sync-start", "d": "sync-digest", "w": "sync-want", "t": "sync-records"}.get(first, first)
            if first == "p" and int(ws[0][0][1]) >= VERIFY_SEQ_BIT:
                purpose = "address verification ping (transport)"
            elif first == "a" and int(ws[0][0][1]) >= VERIFY_SEQ_BIT:
                purpose = "address verification ack"
            elif first == "p" and any(w[0] == "u" and w[1] == ws[0][0][2] and w[2] == "suspect" for w, _ in ws):
                purpose = "ping of a suspect (carries the suspicion)"
            dgrams[purpose] += 1
            dbytes[purpose] += int(p[6])
            for w, size in ws:
                k = {"p": "ping", "a": "ack", "r": "ping-req", "n": "nack", "s": "sync-start", "d": "sync-digest",
                     "w": "sync-want", "t": "sync-record"}.get(w[0], w[0])
                if w[0] in "pa" and int(w[1]) >= VERIFY_SEQ_BIT:
                    k += " (address verification)"
                if w[0] == "u":
                    k = f"rumor {w[2]}" + (" (confirmation or accusation)" if w[2] == "suspect" else "")
                    if w[2] == "alive" and int(w[3]) > 0:
                        k = "rumor alive, incarnation > 0 (refutation)"
                msgs[k] += 1
                mbytes[k] += size
    secs = max(1, hi - (lo or 0)) / 1000
    n = max(1, len(nodes))
    print(f"{lo} to {hi} ms ({secs:.1f} s), {n} sending nodes; per node per second:")
    print("\ndatagrams by purpose (first message):")
    for k, c in dbytes.most_common():
        print(f"  {dgrams[k] / n / secs:9.2f} datagrams/s {c / n / secs:10.0f} B/s  {k}")
    print(f"  {sum(dgrams.values()) / n / secs:9.2f} datagrams/s {sum(dbytes.values()) / n / secs:10.0f} B/s  all")
    print("\nmessages by kind (bytes: the message's own encoding, without the envelope):")
    for k, c in mbytes.most_common():
        print(f"  {msgs[k] / n / secs:9.2f} msgs/s {c / n / secs:10.0f} B/s  {k}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("tail")
    a.add_argument("trace")
    a.add_argument("--factor", type=float, default=1.5)
    a.add_argument("--examples", type=int, default=3)
    a.add_argument("--nominal", type=int, default=4200,
                   help="ms from a victim's first probe to its first verdict when nothing goes wrong "
                        "(probe period + minimum suspicion timeout + slack; 1 + 2.7 + 0.5 s at 1,000 nodes)")
    n = sub.add_parser("nacks")
    n.add_argument("trace")
    n.add_argument("--window", type=int, default=8000, help="ms after the crash")
    b = sub.add_parser("deaths")
    b.add_argument("trace")
    c = sub.add_parser("traffic")
    c.add_argument("trace")
    c.add_argument("--from", dest="from_ms", type=int)
    c.add_argument("--to", dest="to_ms", type=int)
    args = ap.parse_args()
    {"tail": tail, "nacks": nacks, "deaths": deaths, "traffic": traffic}[args.cmd](args)


if __name__ == "__main__":
    main()
