#!/usr/bin/env python3
"""10,000 open Consul blocking queries on one agent (issue 15's figure).

    python3 bench/consul_blocking.py                 # 10,000 queries
    python3 bench/consul_blocking.py -n 2000 --json

Starts two `gossip agent` processes on 127.0.0.1 (target/release/gossip, built
when missing), opens N connections to node1, each a blocking
`GET /v1/health/service/web?index=I&wait=10m`, and measures:
  * node1's resident memory (VmRSS) before and with the N queries open;
  * node1's CPU while they are open and nothing changes (utime+stime from
    /proc/PID/stat over --idle-secs), as a % of one core, beside the same
    measure before any query was opened (the agent's own probing);
  * after one registration of `web` on node2: the time until every query has
    returned (and that each returned the new instance, with a higher index).

Python 3 standard library only; raises its file-descriptor limit to the hard
limit first (`ulimit -n`; each query is one socket here and one in the agent).
Every process it starts is killed by PID on exit. Only 127.0.0.1 is used.
"""

import argparse
import asyncio
import atexit
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCS = []


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


atexit.register(stop_all)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(binary, name, udp, api, seeds, logdir):
    env = {k: v for k, v in os.environ.items() if k not in ("SERVICES", "API_TOKEN")}
    env.update(
        NODE_ID=name,
        NODE_IP="127.0.0.1",
        NODE_PORT=str(udp),
        API_ADDR=f"127.0.0.1:{api}",
        SEED_NODES=seeds,
        CLUSTER_NAME="bench-consul",
        RUST_LOG="warn",
    )
    log = open(Path(logdir) / f"{name}.log", "w")
    p = subprocess.Popen([binary, "agent"], env=env, stdout=log, stderr=log)
    PROCS.append(p)
    return p


def http(method, port, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=body
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers, r.read()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def open_query(port, path, opened):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    opened.append(1)
    data = await reader.read()
    writer.close()
    return time.monotonic(), data


def cpu_percent(pid, secs):
    c0, w0 = cpu_ticks(pid), time.monotonic()
    time.sleep(secs)
    c1, w1 = cpu_ticks(pid), time.monotonic()
    return 100.0 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (w1 - w0)


async def run(args, api1, api2, pid1):
    _, headers, _ = http("GET", api1, "/v1/health/service/web")
    index = int(headers["X-Consul-Index"])
    path = f"/v1/health/service/web?index={index}&wait=10m"
    opened = []
    tasks = []
    t_open = time.monotonic()
    for i in range(args.n):
        tasks.append(asyncio.create_task(open_query(api1, path, opened)))
        if i % 500 == 499:
            await asyncio.sleep(0.2)  # stay within the listen backlog
    while len(opened) < args.n:
        await asyncio.sleep(0.1)
    open_secs = time.monotonic() - t_open
    await asyncio.sleep(3)  # let the agent read every request
    early = sum(t.done() for t in tasks)
    rss_open = rss_kib(pid1)
    c0, w0 = cpu_ticks(pid1), time.monotonic()
    await asyncio.sleep(args.idle_secs)
    c1, w1 = cpu_ticks(pid1), time.monotonic()
    idle_cpu = 100.0 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (w1 - w0)
    early += sum(t.done() for t in tasks)
    body = json.dumps({"Name": "web", "ID": "web-bench", "Port": 8080}).encode()
    t0 = time.monotonic()
    cpu0 = cpu_ticks(pid1)
    status, _, _ = http("PUT", api2, "/v1/agent/service/register", body)
    assert status == 200, status
    done = await asyncio.gather(*tasks)
    fanout_cpu = (cpu_ticks(pid1) - cpu0) / os.sysconf("SC_CLK_TCK")
    ends = sorted(t for t, _ in done)
    ok = sum(1 for _, d in done if b" 200 OK" in d[:20] and b"web-bench" in d)
    return {
        "queries": args.n,
        "open_secs": round(open_secs, 2),
        "returned_before_registration": early,
        "rss_mib_with_queries": round(rss_open / 1024, 1),
        "idle_cpu_percent_of_a_core": round(idle_cpu, 2),
        "idle_secs": args.idle_secs,
        "registration_to_first_return_ms": round((ends[0] - t0) * 1000, 1),
        "registration_to_median_return_ms": round((ends[len(ends) // 2] - t0) * 1000, 1),
        "registration_to_all_returned_ms": round((ends[-1] - t0) * 1000, 1),
        "returned_with_the_new_instance": ok,
        # The agent's CPU from the registration until the last return: how
        # much of that time was the agent's work, the rest the client's.
        "agent_cpu_secs_during_fanout": round(fanout_cpu, 2),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10_000, help="blocking queries (10000)")
    ap.add_argument("--idle-secs", type=float, default=10.0)
    ap.add_argument("--binary", default=str(ROOT / "target/release/gossip"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.n + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"the hard file-descriptor limit ({hard}) is below {need}; raise `ulimit -Hn`")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    if not Path(args.binary).exists():
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)

    logdir = tempfile.mkdtemp(prefix="consul-bench-")
    udp1, udp2, api1, api2 = free_port(), free_port(), free_port(), free_port()
    a = start_agent(args.binary, "node1", udp1, api1, "", logdir)
    start_agent(args.binary, "node2", udp2, api2, f"127.0.0.1:{udp1}", logdir)
    deadline = time.time() + 30
    while True:
        try:
            _, _, body = http("GET", api1, "/v1/agent/members")
            if len(json.loads(body)) == 2:
                break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit(f"the agents did not meet; logs in {logdir}")
        time.sleep(0.2)
    rss_before = rss_kib(a.pid)
    # The agent's own cost (probes, gossip, stats), before any query.
    cpu_before = cpu_percent(a.pid, args.idle_secs)
    result = asyncio.run(run(args, api1, api2, a.pid))
    result["rss_mib_before"] = round(rss_before / 1024, 1)
    result["idle_cpu_percent_without_queries"] = round(cpu_before, 2)
    result["fd_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:40} {v}")


if __name__ == "__main__":
    main()
