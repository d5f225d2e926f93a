"""A flood of unauthenticated TCP connections against an agent, and the local operator's pings.

Run inside the agent's network namespace (``ip netns exec NS python -m tests.flood ...``): it
opens ``--connections`` TCP connections to the agent's listener and never starts a TLS
handshake on them, then times ``--pings`` ``Host.ping2`` calls on the agent's Unix socket (a new
connection each, as ``vdsm-net-client`` makes). It prints one JSON line per phase and waits for
a line on stdin between them, so that the caller can read the agent's memory meanwhile:

    {"phase": "held", "opened": 2000, "failed": 0}
    {"phase": "pinged", "latencies_ms": [...], "failures": [...], "closed_by_agent": 1744}

then closes every connection and exits. Used by tests/kernel/test_limits.py and by
``python -m contrib.bench flood``.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import socket
import sys
import time
from pathlib import Path

from tests.daemon import http_post

PING = b'{"jsonrpc": "2.0", "id": 1, "method": "Host.ping2", "params": {}}'


def _closed_by_peer(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the other side closed (readable, and EOF or a reset)."""
    poller = select.poll()  # not select(): descriptors past 1024
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed = 0
    for fd, _ in poller.poll(0):
        try:
            if by_fd[fd].recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:
            closed += 1
    return closed


def _ping(sock_path: Path) -> tuple[float, str | None]:
    start = time.perf_counter()
    try:
        status, raw = http_post(sock_path, PING, timeout=30)
    except OSError as exc:
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - start
    if status != 200 or json.loads(raw).get("result") != {}:
        return elapsed, f"HTTP {status}: {raw[:200]!r}"
    return elapsed, None


def _emit(doc: dict[str, object]) -> None:
    print(json.dumps(doc), flush=True)
    sys.stdin.readline()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="the agent's TCP address")
    p.add_argument("--port", type=int, required=True, help="the agent's TCP port")
    p.add_argument("--socket", type=Path, required=True, help="the agent's Unix socket")
    p.add_argument("--connections", type=int, default=2000, help="TCP connections to hold")
    p.add_argument("--pings", type=int, default=200, help="Host.ping2 calls to time")
    args = p.parse_args(argv)
    want = args.connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    held: list[socket.socket] = []
    failed = 0
    for _ in range(args.connections):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect((args.host, args.port))
        except OSError:
            failed += 1
            sock.close()
            continue
        held.append(sock)
    _emit({"phase": "held", "opened": len(held), "failed": failed})
    latencies: list[float] = []
    failures: list[str] = []
    for _ in range(args.pings):
        elapsed, problem = _ping(args.socket)
        latencies.append(elapsed * 1000)
        if problem is not None:
            failures.append(problem)
    _emit({"phase": "pinged", "latencies_ms": latencies, "failures": failures,
           "closed_by_agent": _closed_by_peer(held)})
    for sock in held:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
