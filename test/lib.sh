# test/lib.sh: shared helpers for the Docker test scripts (sourced, not run).
#
#   bash test/test_join.sh      # from the repository root
#   cd test && bash test_join.sh
#
# What every script gets from here:
# - the working directory is the repository root, whatever it was run from;
# - its own compose project (COMPOSE_PROJECT_NAME=gossiptest unless set), so
#   a cluster the user started with plain `docker-compose up` is not touched;
# - the image is built (bash docker/build.sh) when gossip:latest is missing,
#   or always with GOSSIP_REBUILD=1; an image whose label
#   org.opencontainers.image.revision is not this checkout's commit is
#   refused, naming that command;
# - a trap that ALWAYS tears the cluster down (`docker-compose down -v`),
#   stops the background processes the script started, and removes its
#   temporary files; on failure it first prints every node's view and the
#   tail of each node's log;
# - wait helpers with timeouts that fail with "expected X ..., saw Y";
# - FIGURE lines with the timings measured.
#
# How views are read: each node's own view, from its own API, exactly what
# `docker-compose exec -T nodeN gossip members --json` prints. A small Python
# probe on the host (written out below) reads every node's API at
# 127.0.0.1:(NODE_PORT+1000) *inside that container's network namespace*
# (setns, needs root), which is cheap enough to poll all nodes every 100 ms
# on a 2-core machine. Where that is not allowed it falls back to
# `docker exec <container> gossip members --json`. GOSSIP_PROBE=exec forces
# the fallback, GOSSIP_PROBE=netns forbids it.
#
# Network rule: the tests talk only to 127.0.0.1 inside containers they
# created, and the only broadcast happens inside the compose bridge network.

set -euo pipefail
export LC_ALL=C

GT_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GT_ROOT="$(cd "$GT_LIB_DIR/.." && pwd)"
cd "$GT_ROOT"

export COMPOSE_PROJECT_NAME="${GOSSIP_TEST_PROJECT:-gossiptest}"
export COMPOSE_FILE="$GT_ROOT/docker-compose.yml"
unset COMPOSE_PROFILES COMPOSE_PATH_SEPARATOR || true
GT_IMAGE="${GOSSIP_IMAGE:-gossip:latest}"   # docker-compose.yml reads the same variable
GT_NET="${COMPOSE_PROJECT_NAME}_gossipnet"
TEST_NAME="$(basename "$0" .sh)"
STRICT_FIGURES="${STRICT_FIGURES:-0}"

# the seven nodes of a plain `docker-compose up -d`
ALL7="node1 node2 node3 node4 node5 node6 node7"

GT_TMP="$(mktemp -d "${TMPDIR:-/tmp}/gossiptest.XXXXXX")"
GT_PROBE="$GT_TMP/probe.py"
GT_BG_PIDS=()
GT_T0="${EPOCHREALTIME}"
GT_FAILED=0

# ---------------------------------------------------------------- output

log() {
    local t
    t=$(awk -v a="$GT_T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%6.1f", b-a}')
    echo "[$TEST_NAME +${t}s] $*"
}

fail() {
    GT_FAILED=1
    echo "FAIL [$TEST_NAME]: $*" >&2
    exit 1
}

# figure NAME SECONDS [TARGET]: print a measured timing (and whether it meets
# the project's target). With STRICT_FIGURES=1 a missed target fails the test.
figure() {
    local name=$1 secs=$2 target=${3:-} verdict=""
    if [ -n "$target" ]; then
        if awk -v s="$secs" -v t="$target" 'BEGIN{exit !(s<=t)}'; then
            verdict="  (target <= ${target} s: met)"
        else
            verdict="  (target <= ${target} s: NOT MET)"
        fi
    fi
    echo "FIGURE [$TEST_NAME] ${name}: ${secs} s${verdict}"
    if [ -n "$target" ] && [ "$STRICT_FIGURES" = 1 ] && [[ "$verdict" == *"NOT MET"* ]]; then
        fail "expected ${name} <= ${target} s, saw ${secs} s"
    fi
}

# secs_between FROM TO  (epoch seconds, fractional) -> "1.23"
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }

now() { echo "$EPOCHREALTIME"; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) printf "%.2f", a[(NR+1)/2]; else printf "%.2f", (a[NR/2]+a[NR/2+1])/2 }'; }

# ---------------------------------------------------------------- teardown

gt_teardown() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    for pid in "${GT_BG_PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ "$rc" != 0 ] || [ "$GT_FAILED" = 1 ]; then
        echo "---- [$TEST_NAME] views at failure:" >&2
        show_views >&2 2>&1
        echo "---- [$TEST_NAME] docker-compose ps:" >&2
        docker-compose ps >&2 2>&1
        echo "---- [$TEST_NAME] last log lines of each node:" >&2
        docker-compose logs --no-color --tail=15 >&2 2>&1
    fi
    # a paused container is unpaused first so that it can be stopped cleanly
    local paused
    paused=$(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter status=paused 2>/dev/null)
    [ -n "$paused" ] && docker unpause $paused >/dev/null 2>&1
    if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
        echo "[$TEST_NAME] KEEP_CLUSTER=1: leaving project $COMPOSE_PROJECT_NAME running (docker-compose -p $COMPOSE_PROJECT_NAME down -v to remove)"
        rm -rf "$GT_TMP"
        exit "$rc"
    fi
    echo "[$TEST_NAME] teardown: docker-compose down -v"
    docker-compose down -v --remove-orphans -t 10 >/dev/null 2>&1 \
        || echo "[$TEST_NAME] WARNING: docker-compose down failed" >&2
    rm -rf "$GT_TMP"
    if [ "$rc" = 0 ] && [ "$GT_FAILED" = 0 ] && [ "${GT_NO_PASS_LINE:-0}" != 1 ]; then
        echo "PASS [$TEST_NAME]"
    fi
    exit "$rc"
}
trap gt_teardown EXIT
trap 'echo "[$TEST_NAME] interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- docker / compose

require_docker() {
    command -v docker >/dev/null 2>&1 || fail "expected the docker client on PATH, saw none"
    command -v docker-compose >/dev/null 2>&1 || fail "expected docker-compose on PATH, saw none"
    command -v python3 >/dev/null 2>&1 || fail "expected python3 on PATH, saw none"
    timeout 30 docker info >/dev/null 2>&1 || fail "expected a Docker engine answering 'docker info', saw none"
}

# image_commit: the commit gossip:latest was built from (its OCI label)
image_commit() {
    docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$GT_IMAGE" 2>/dev/null
}

# build the static binary and the image when the image is missing; refuse an
# image built from another commit than this checkout's (it would test other code)
ensure_image() {
    if [ "${GOSSIP_REBUILD:-0}" = 1 ] || ! docker image inspect "$GT_IMAGE" >/dev/null 2>&1; then
        log "building the binary and the image (bash docker/build.sh)"
        bash "$GT_ROOT/docker/build.sh" >"$GT_TMP/build.log" 2>&1 || {
            tail -30 "$GT_TMP/build.log" >&2
            fail "expected docker/build.sh to build $GT_IMAGE, saw it fail (log above)"
        }
    fi
    local want have
    want=$(git -C "$GT_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
    have=$(image_commit)
    if [ "$want" = unknown ]; then
        log "WARNING: not a git checkout: cannot check which commit $GT_IMAGE was built from"
    elif [ "$have" != "$want" ]; then
        fail "$GT_IMAGE was built from commit ${have:-<no label>}, this checkout is $want: rebuild it with 'bash docker/build.sh'"
    fi
}

# start from nothing: remove whatever an earlier, interrupted run left
fresh_start() {
    require_docker
    ensure_image
    docker-compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
}

# up [SERVICES...]: docker-compose up -d, sets UP_ISSUED and UP_DONE (epochs)
up() {
    UP_ISSUED=$(now)
    docker-compose up -d --no-build "$@" >"$GT_TMP/up.log" 2>&1 || {
        cat "$GT_TMP/up.log" >&2
        fail "expected 'docker-compose up -d $*' to succeed, saw it fail (output above)"
    }
    UP_DONE=$(now)
}

# cid SERVICE: container id of a compose service (v1 and v2 alike)
cid() {
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=$1" | head -n1
}

# the exact user-facing command: the JSON view of node $1
members_json() { docker-compose exec -T "$1" gossip members --json; }

# ---------------------------------------------------------------- views

probe() { python3 "$GT_PROBE" "$@"; }

# state_of X Y: state of node X in node Y's view ("absent", or "no-answer")
state_of() { probe state "$1" "$2"; }

# show_views: every node's view as a table
show_views() { probe table 2>&1 || true; }

# wait_for DESC TIMEOUT_S MODE STATES "TARGETS" "OBSERVERS"
#   MODE all : every observer answers and sees every target in one of STATES
#   MODE none: no observer sees any target in one of STATES
#   STATES is a |-separated list (alive|suspect|dead|left|absent)
# On success sets DONE_AT (epoch of the sweep that satisfied it); on timeout
# fails with "expected DESC within T s, saw ...".
wait_for() {
    local desc=$1 timeout=$2 mode=$3 states=$4 targets=$5 observers=$6 out
    if out=$(probe wait --timeout "$timeout" --mode "$mode" --states "$states" \
                 --targets "$targets" --observers "$observers"); then
        DONE_AT=$out
    else
        fail "expected $desc within ${timeout} s, saw: $out"
    fi
}

# wait_bg DESC TIMEOUT_S MODE STATES "TARGETS" "OBSERVERS": like wait_for, but
# starts polling now, in the background, so that the action that follows is
# timed from the moment it happens, not from when its command returns;
# wait_collect then waits for the result (sets DONE_AT, or fails).
wait_bg() {
    GT_WAIT_DESC=$1 GT_WAIT_TIMEOUT=$2
    python3 "$GT_PROBE" wait --timeout "$2" --mode "$3" --states "$4" \
        --targets "$5" --observers "$6" >"$GT_TMP/wait.out" &
    GT_WAIT_PID=$!
    GT_BG_PIDS+=("$GT_WAIT_PID")
    sleep 0.5   # let it take its first look before anything happens
}
wait_collect() {
    if wait "$GT_WAIT_PID"; then
        DONE_AT=$(cat "$GT_TMP/wait.out")
    else
        fail "expected $GT_WAIT_DESC within ${GT_WAIT_TIMEOUT} s, saw: $(cat "$GT_TMP/wait.out")"
    fi
}

# event_time SERVICE ACTION SINCE [SIGNAL]: epoch of the first Docker event
# ACTION (kill, die, pause, unpause, start, ...) of SERVICE's container since
# epoch SINCE; for "kill", SIGNAL picks the signal (15 for stop, 9 for kill).
event_time() {
    local c t
    c=$(cid "$1")
    t=$(docker events --since "$3" --until "$EPOCHREALTIME" --filter "container=$c" \
            --filter "event=$2" --format '{{.TimeNano}} {{index .Actor.Attributes "signal"}}' \
        | awk -v sig="${4:-}" '(sig == "" || $2 == sig) { printf "%.3f\n", $1 / 1e9; exit }')
    [ -n "$t" ] || fail "expected a Docker '$2' event for $1 since $3, saw none"
    echo "$t"
}

# watch_start FILE "OBSERVERS": record every observer's view every 100 ms in
# the background until watch_stop.
watch_start() {
    # python3 itself in the background (not the probe function: killing a
    # backgrounded function's subshell would leave the python running)
    python3 "$GT_PROBE" watch --out "$1" --observers "$2" &
    GT_WATCH_PID=$!
    GT_BG_PIDS+=("$GT_WATCH_PID")
    sleep 0.3
}
watch_stop() {
    kill "$GT_WATCH_PID" 2>/dev/null || true
    wait "$GT_WATCH_PID" 2>/dev/null || true
}

# epochs of container events
started_at() { probe started "$@"; }      # latest StartedAt among the services
finished_at() { probe finished "$1"; }    # FinishedAt of one service

# ---------------------------------------------------------------- the probe

cat >"$GT_PROBE" <<'PY'
"""Reads gossip nodes' views for the docker tests. Written out by test/lib.sh."""
import argparse, ctypes, datetime, http.client, json, os, signal, socket, subprocess, sys, time

PROJECT = os.environ["COMPOSE_PROJECT_NAME"]
MODE = os.environ.get("GOSSIP_PROBE", "auto")   # auto | netns | exec
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)


def run(args, timeout=20):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout


def parse_time(s):
    """Docker's RFC 3339 with nanoseconds -> epoch seconds."""
    if not s or s.startswith("0001-"):
        return None
    s = s.rstrip("Z")
    if "." in s:
        head, frac = s.split(".", 1)
        frac = (frac + "000000")[:6]
    else:
        head, frac = s, "0"
    dt = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp() + int(frac) / 1e6


class NoNetns(Exception):
    pass


class Cluster:
    def __init__(self):
        self.info = {}
        self.stamp = 0.0
        self.netns = MODE != "exec"

    def refresh(self):
        cids = run(["docker", "ps", "-aq", "--filter",
                    f"label=com.docker.compose.project={PROJECT}"]).split()
        info = {}
        if cids:
            try:
                data = json.loads(run(["docker", "inspect"] + cids) or "[]")
            except ValueError:
                data = []
            for c in data:
                svc = c["Config"]["Labels"].get("com.docker.compose.service")
                env = dict(e.split("=", 1) for e in c["Config"]["Env"] or [] if "=" in e)
                api = env.get("API_ADDR")
                if api:
                    port = int(api.rsplit(":", 1)[1])
                elif env.get("NODE_PORT"):
                    port = int(env["NODE_PORT"]) + 1000
                else:
                    port = 8946
                st = c["State"]
                status = st["Status"]
                if st.get("Paused"):
                    status = "paused"
                info[svc] = dict(cid=c["Id"], pid=st.get("Pid", 0), status=status, port=port,
                                 started=parse_time(st.get("StartedAt")),
                                 finished=parse_time(st.get("FinishedAt")),
                                 exit=st.get("ExitCode"))
        self.info = info
        self.stamp = time.time()

    def maybe_refresh(self, max_age=0.5):
        if time.time() - self.stamp > max_age:
            self.refresh()

    def _socket_in(self, pid):
        """A TCP socket created inside the network namespace of process pid."""
        try:
            me = os.open("/proc/self/ns/net", os.O_RDONLY)
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        except OSError as e:
            raise NoNetns(str(e))
        try:
            if LIBC.setns(target, CLONE_NEWNET) != 0:
                raise NoNetns(os.strerror(ctypes.get_errno()))
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if LIBC.setns(me, CLONE_NEWNET) != 0:
                    raise SystemExit("probe: cannot return to its own network namespace")
        finally:
            os.close(target)
            os.close(me)

    def _get_netns(self, i, timeout=0.6):
        s = self._socket_in(i["pid"])
        try:
            s.settimeout(timeout)
            s.connect(("127.0.0.1", i["port"]))
            conn = http.client.HTTPConnection("127.0.0.1", i["port"], timeout=timeout)
            conn.sock = s
            conn.request("GET", "/v1/members", headers={"Connection": "close"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                return None
            return body
        except (OSError, http.client.HTTPException):
            return None
        finally:
            s.close()

    def sweep(self, nodes):
        """{node: {member: state} or None when the node does not answer}"""
        self.maybe_refresh()
        bodies, pending = {}, {}
        for n in nodes:
            i = self.info.get(n)
            if not i or i["status"] != "running" or not i["pid"]:
                bodies[n] = None
                continue
            if self.netns:
                try:
                    bodies[n] = self._get_netns(i)
                    continue
                except NoNetns as e:
                    if MODE == "netns":
                        raise SystemExit(f"probe: cannot enter a container's network namespace: {e}")
                    self.netns = False
            pending[n] = subprocess.Popen(["docker", "exec", i["cid"], "/gossip", "members", "--json"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for n, p in pending.items():
            try:
                out, _ = p.communicate(timeout=5)
                bodies[n] = out if p.returncode == 0 else None
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                bodies[n] = None
        views = {}
        for n in nodes:
            b = bodies.get(n)
            try:
                views[n] = {m["id"]: m["state"] for m in json.loads(b)} if b else None
            except (ValueError, KeyError, TypeError):
                views[n] = None
        if any(v is None and self.info.get(n, {}).get("status") == "running" for n, v in views.items()):
            self.stamp = 0.0   # something changed (restart?): look again next sweep
        return views


def mismatches(views, mode, states, targets):
    bad = []
    for o, v in views.items():
        if v is None:
            if mode == "all":
                bad.append(f"{o}: no answer")
            continue
        for t in targets:
            s = v.get(t, "absent")
            if (mode == "all" and s not in states) or (mode == "none" and s in states):
                bad.append(f"{o} sees {t} {s}")
    return bad


def table(views, nodes):
    members = sorted({m for v in views.values() if v for m in v}, key=lambda x: (len(x), x))
    lines = ["view of  " + " ".join(f"{m:>8}" for m in members)]
    for n in nodes:
        v = views.get(n)
        if v is None:
            lines.append(f"{n:<8} (no answer)")
        else:
            lines.append(f"{n:<8} " + " ".join(f"{v.get(m, '-'):>8}" for m in members))
    return "\n".join(lines)


def split(s):
    return [x for x in s.replace(",", " ").split() if x]


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--timeout", type=float, required=True)
    w.add_argument("--mode", choices=["all", "none"], required=True)
    w.add_argument("--states", required=True)
    w.add_argument("--targets", required=True)
    w.add_argument("--observers", required=True)
    w.add_argument("--interval", type=float, default=0.1)
    wa = sub.add_parser("watch")
    wa.add_argument("--out", required=True)
    wa.add_argument("--observers", required=True)
    wa.add_argument("--interval", type=float, default=0.1)
    an = sub.add_parser("analyze")
    an.add_argument("file")
    an.add_argument("--states", required=True)
    an.add_argument("--targets", required=True)
    an.add_argument("--t0", type=float, help="report times relative to this epoch")
    st = sub.add_parser("state")
    st.add_argument("target")
    st.add_argument("observer")
    tb = sub.add_parser("table")
    tb.add_argument("nodes", nargs="*")
    s1 = sub.add_parser("started")
    s1.add_argument("nodes", nargs="+")
    s2 = sub.add_parser("finished")
    s2.add_argument("node")
    s3 = sub.add_parser("exitcode")
    s3.add_argument("node")
    a = ap.parse_args()
    c = Cluster()

    if a.cmd == "wait":
        states, targets, observers = a.states.split("|"), split(a.targets), split(a.observers)
        deadline = time.time() + a.timeout
        while True:
            views = c.sweep(observers)
            bad = mismatches(views, a.mode, states, targets)
            t = time.time()
            if not bad:
                print(f"{t:.3f}")
                return 0
            if t > deadline:
                print("; ".join(bad) + "\n" + table(views, observers))
                return 1
            time.sleep(a.interval)

    if a.cmd == "watch":
        observers = split(a.observers)
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        with open(a.out, "a") as f:
            while not stop:
                views = c.sweep(observers)
                f.write(json.dumps({"t": time.time(), "views": views}) + "\n")
                f.flush()
                time.sleep(a.interval)
        return 0

    if a.cmd == "analyze":
        states, targets = a.states.split("|"), split(a.targets)
        rows = [json.loads(l) for l in open(a.file) if l.strip()]
        if not rows:
            print("no samples recorded")
            return 1
        t0 = a.t0 if a.t0 else rows[0]["t"]
        bad, worst, answered, spans = [], {}, {}, {}
        rank = {"alive": 0, "absent": 1, "left": 1, "suspect": 2, "dead": 3}
        for r in rows:
            for o, v in r["views"].items():
                if v is None:
                    continue
                answered[o] = answered.get(o, 0) + 1
                for t in targets:
                    if t == o:
                        continue
                    s = v.get(t, "absent")
                    if rank.get(s, 0) > rank.get(worst.get(t, ("alive",))[0], 0):
                        worst[t] = (s, o, r["t"] - t0)
                    if s != "alive":
                        first, last = spans.get((t, s), (r["t"], r["t"]))
                        spans[(t, s)] = (min(first, r["t"]), max(last, r["t"]))
                    if s in states:
                        bad.append(f"{o} sees {t} {s} at +{r['t'] - t0:.1f}s")
        span = rows[-1]["t"] - rows[0]["t"]
        print(f"samples: {len(rows)} sweeps over {span:.1f} s "
              f"(every {span / max(len(rows) - 1, 1) * 1000:.0f} ms); answers per node: "
              + ", ".join(f"{o}={n}" for o, n in sorted(answered.items())))
        for t in targets:
            s = worst.get(t)
            print(f"worst state of {t} seen: " + (f"{s[0]} (in {s[1]}'s view at {s[2]:+.1f}s)" if s else "alive"))
        for (t, s), (first, last) in sorted(spans.items()):
            print(f"  {t} seen {s} by someone from {first - t0:+.1f}s to {last - t0:+.1f}s")
        if bad:
            print(f"{len(bad)} violating observations, first: " + "; ".join(bad[:8]))
            return 1
        return 0

    if a.cmd == "state":
        c.refresh()
        v = c.sweep([a.observer])[a.observer]
        print("no-answer" if v is None else v.get(a.target, "absent"))
        return 0

    if a.cmd == "table":
        c.refresh()
        nodes = a.nodes or sorted(c.info, key=lambda x: (len(x), x))
        print(table(c.sweep(nodes), nodes))
        return 0

    c.refresh()
    if a.cmd == "started":
        ts = [c.info[n]["started"] for n in a.nodes if n in c.info and c.info[n]["started"]]
        if not ts:
            return 1
        print(f"{max(ts):.3f}")
    elif a.cmd == "finished":
        t = c.info.get(a.node, {}).get("finished")
        if not t:
            return 1
        print(f"{t:.3f}")
    elif a.cmd == "exitcode":
        print(c.info.get(a.node, {}).get("exit"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
PY
