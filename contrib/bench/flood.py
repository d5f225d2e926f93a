"""The local operator during a TCP flood: ``Host.ping2`` latency on the Unix socket while
unauthenticated TCP connections (no TLS handshake ever started) are held, and the agent's memory.

    python -m contrib.bench flood [--connections 2000] [--pings 300] [--rounds 2]

``vdsm-net-agent`` runs in a fresh namespace with mutual TLS on 127.0.0.1:54321 and the default
limits (docs/limits.md). The baseline is the same pings with no flood, in the same process and
namespace. Each round (tests/flood.py) opens the connections, times the pings, and closes the
connections; VmRSS is read before the first round, while each round holds its connections,
and once the agent has closed them all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.daemon import AgentProcess, http_post
from tests.flood import PING
from tests.netns import NetNS
from tests.pki_helpers import issue, make_ca

ROOT = Path(__file__).resolve().parents[2]
PORT = 54321


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _summary(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
            "max_ms": round(ordered[-1], 2)}


def _baseline(agent: AgentProcess, pings: int) -> list[float]:
    out = []
    for _ in range(pings):
        start = time.perf_counter()
        status, _ = http_post(agent.socket, PING, timeout=30)
        out.append((time.perf_counter() - start) * 1000)
        assert status == 200
    return out


def _round(ns: NetNS, agent: AgentProcess, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    flood = subprocess.Popen(
        ns.exec_argv(sys.executable, "-m", "tests.flood", "--port", str(PORT), "--socket",
                     str(agent.socket), "--connections", str(args.connections),
                     "--pings", str(args.pings)),
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert flood.stdin is not None and flood.stdout is not None
    held = json.loads(flood.stdout.readline())
    during = {"rss_mib": round(_rss_mib(pid), 1), "fds": _fds(pid)}
    flood.stdin.write("\n")
    flood.stdin.flush()
    pinged = json.loads(flood.stdout.readline())
    flood.stdin.write("\n")
    flood.stdin.flush()
    flood.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _fds(pid) > args.idle_fds and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    return {"opened": held["opened"], "connect_failed": held["failed"], "during": during,
            "pings": _summary(pinged["latencies_ms"]), "ping_failures": len(pinged["failures"]),
            "closed_by_agent": pinged["closed_by_agent"],
            "after": {"rss_mib": round(_rss_mib(pid), 1), "fds": _fds(pid)}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    ns = NetNS("bflood")
    try:
        with tempfile.TemporaryDirectory(prefix="vdsm-net-bench-flood-") as tmp:
            base = Path(tmp)
            ca = make_ca(base)
            server = issue(ca, "agent", server=True)
            config = base / "agent.toml"
            config.write_text(f'[rpc]\nlisten = "127.0.0.1:{PORT}"\n[tls]\ncert = "{server.cert}"'
                              f'\nkey = "{server.key}"\nca = "{ca.cert}"\n')
            agent = AgentProcess(ns, base / "state", "--config", str(config)).start()
            assert agent.proc is not None
            pid = agent.proc.pid
            for _ in range(20):
                agent.call("Host.getNetworkCapabilities")
            args.idle_fds = _fds(pid)
            result: dict[str, Any] = {
                "rss_before_mib": round(_rss_mib(pid), 1), "fds_before": args.idle_fds,
                "baseline_pings": _summary(_baseline(agent, args.pings)),
                "rounds": [_round(ns, agent, pid, args) for _ in range(args.rounds)],
            }
            agent.stop()
            return result
    finally:
        ns.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=2000, help="TCP connections per round")
    p.add_argument("--pings", type=int, default=300, help="Host.ping2 calls timed per round")
    p.add_argument("--rounds", type=int, default=2, help="floods, one after the other")
    p.add_argument("--json", type=Path, help="also write the result to this file")
    args = p.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
