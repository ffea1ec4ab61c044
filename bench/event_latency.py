#!/usr/bin/env python3
"""Time from a service registration to its event on /v1/events, same node.

    python3 bench/event_latency.py                  # 10 tries, median
    python3 bench/event_latency.py --tries 20 --binary target/release/gossip

Starts one `gossip agent` on 127.0.0.1 (free ports), holds one SSE
connection to its /v1/events, then for each try registers a new service
(PUT /v1/services) and measures, from just before the request is sent, the
time until the `service_registered` event for it is read from the stream.
Prints each try and the median in milliseconds; exits 1 if an event does
not arrive within 5 s. The agent is killed by its PID on every exit path.
Python 3 standard library only.
"""

import argparse
import atexit
import http.client
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROC = None


def kill_agent():
    if PROC is not None and PROC.poll() is None:
        PROC.kill()
        PROC.wait(timeout=5)


atexit.register(kill_agent)


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put_service(api, name, port):
    host, p = api.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(p), timeout=5)
    body = json.dumps({"name": name, "port": port}).encode()
    conn.request("PUT", "/v1/services", body, {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def read_events(api, out):
    """Puts (monotonic time, event dict) for every SSE data line."""
    host, p = api.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(p)), timeout=30)
    except OSError:
        return  # not listening yet: the caller retries
    s.sendall(("GET /v1/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n" % api).encode())
    f = s.makefile("rb")
    for raw in f:
        now = time.monotonic()
        line = raw.decode(errors="replace").rstrip("\r\n")
        if line.startswith(": connected"):
            out.put((now, "connected"))
        elif line.startswith("data:"):
            try:
                out.put((now, json.loads(line[5:].strip())))
            except ValueError:
                pass


def main():
    global PROC
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=10)
    ap.add_argument("--binary", default=None, help="gossip binary (default: target/release, else target/debug)")
    a = ap.parse_args()
    binary = a.binary
    if binary is None:
        for cand in ("target/release/gossip", "target/debug/gossip"):
            if (ROOT / cand).exists():
                binary = str(ROOT / cand)
                break
    if binary is None:
        sys.exit("no gossip binary: run `cargo build` first or pass --binary")
    binary = os.path.abspath(binary)

    port, api_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    api = "127.0.0.1:%d" % api_port
    env = dict(os.environ)
    env.update({
        "NODE_ID": "latency", "NODE_IP": "127.0.0.1", "NODE_PORT": str(port),
        "BIND_ADDR": "127.0.0.1:%d" % port, "API_ADDR": api, "SEED_NODES": "",
        "CLUSTER_NAME": "latency-%d" % port, "RUST_LOG": "warn", "BROADCAST": "false",
    })
    logdir = tempfile.mkdtemp(prefix="event-latency-")
    with open(os.path.join(logdir, "agent.log"), "wb") as log:
        PROC = subprocess.Popen([binary, "agent"], env=env, cwd=logdir,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    events = queue.Queue()
    deadline = time.monotonic() + 10
    while True:
        try:
            threading.Thread(target=read_events, args=(api, events), daemon=True).start()
            t, what = events.get(timeout=2)
            if what == "connected":
                break
        except queue.Empty:
            pass
        if time.monotonic() > deadline or PROC.poll() is not None:
            sys.exit("the agent's event stream did not open (log in %s)" % logdir)
        time.sleep(0.2)

    times = []
    for i in range(a.tries):
        name = "lat%d" % i
        t0 = time.monotonic()
        status = put_service(api, name, 20000 + i)
        if status >= 300:
            sys.exit("PUT /v1/services answered %d" % status)
        while True:
            try:
                t, e = events.get(timeout=max(0.01, t0 + 5 - time.monotonic()))
            except queue.Empty:
                sys.exit("no service_registered event for %s within 5 s" % name)
            if isinstance(e, dict) and e.get("kind") == "service_registered" \
                    and (e.get("service") or {}).get("name") == name:
                ms = (t - t0) * 1000
                times.append(ms)
                print("try %2d: %.2f ms" % (i + 1, ms))
                break
        time.sleep(0.2)
    print("median of %d: %.2f ms (min %.2f, max %.2f)" % (
        len(times), statistics.median(times), min(times), max(times)))


if __name__ == "__main__":
    main()
