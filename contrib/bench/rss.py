"""The real agent daemon's memory: VmRSS idle, and after one setupNetworks of N networks.

    python -m contrib.bench rss [--networks 1000]

``vdsm-net-agent`` runs in a fresh namespace (``tests/daemon.py``: ``ip netns exec`` execs the
daemon, so the PID is the agent's) on N veth NICs; N untagged bridged networks, one per NIC,
are set up over its Unix socket. /proc/PID/status is read idle (after one capabilities call),
after the setup, and after a capabilities call on the loaded host (VmHWM: the peak).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from contrib.bench.agent import ip_batch, net_name
from tests.daemon import AgentProcess
from tests.netns import NetNS


def status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024  # MiB
    return out


def run(n: int) -> dict[str, float]:
    ns = NetNS("brss")
    try:
        lines = []
        for i in range(n):
            lines += [f"link add nic{i} type veth peer name nic{i}p", f"link set nic{i}p up",
                      f"link set nic{i} up"]
        ip_batch(ns, lines)
        with tempfile.TemporaryDirectory(prefix="vdsm-net-bench-rss-") as tmp:
            agent = AgentProcess(ns, Path(tmp) / "state").start()
            assert agent.proc is not None
            pid = agent.proc.pid
            assert "vdsm-net-agent" in Path(f"/proc/{pid}/cmdline").read_text()
            agent.call("Host.getNetworkCapabilities")
            idle = status(pid)
            nets = {net_name(i): {"nic": f"nic{i}"} for i in range(n)}
            start = time.perf_counter()
            agent.call("Host.setupNetworks", {"networks": nets, "bondings": {},
                                              "options": {"connectivityCheck": False}},
                       timeout=600)
            setup = time.perf_counter() - start
            loaded = status(pid)
            start = time.perf_counter()
            agent.call("Host.getNetworkCapabilities")
            caps = time.perf_counter() - start
            after_caps = status(pid)
            agent.stop()
    finally:
        ns.close()
    return {"networks": n, "idle_rss": idle["VmRSS"], "loaded_rss": loaded["VmRSS"],
            "after_caps_rss": after_caps["VmRSS"], "peak_hwm": after_caps["VmHWM"],
            "setup_s": setup, "caps_s": caps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="contrib.bench rss")
    p.add_argument("--networks", type=int, default=1000)
    p.add_argument("--json", help="write the result as JSON to this file")
    args = p.parse_args(argv)
    r = run(args.networks)
    print(f"agent daemon, {r['networks']} bridged networks (veth NICs, host kernel): "
          f"VmRSS idle {r['idle_rss']:.1f} MiB, after setupNetworks {r['loaded_rss']:.1f} MiB, "
          f"after getNetworkCapabilities {r['after_caps_rss']:.1f} MiB, VmHWM "
          f"{r['peak_hwm']:.1f} MiB (setupNetworks over the socket {r['setup_s']:.2f} s, "
          f"capabilities {r['caps_s'] * 1000:.0f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
