"""Benchmarks, run on demand (never part of the test suite). As root, from the repository root:

    .venv/bin/python -m contrib.bench all          # everything below, then one summary
    .venv/bin/python -m contrib.bench agent-uml    # VLAN+bridge networks, inside User-Mode Linux
    .venv/bin/python -m contrib.bench agent        # untagged bridges on veth NICs, this kernel
    .venv/bin/python -m contrib.bench rss          # the agent daemon's memory with 1000 networks
    .venv/bin/python -m contrib.bench flood        # Unix pings during a TCP flood of 2000
    .venv/bin/python -m contrib.bench engine       # engine-client on 1/100/500/1000 mTLS hosts
    .venv/bin/python -m contrib.bench cluster      # engine-client on 20 real namespaced agents

Options after the name go to that benchmark (``--help``). Each compares against a baseline
run in the same process and kernel: ``ip -batch`` doing the same device operations, one
host alone. Times are wall clock on a shared machine: run twice, trust the smaller.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from contrib.bench import agent, cluster, engine, flood, rss

ROOT = Path(__file__).resolve().parents[2]


def agent_uml(argv: list[str]) -> int:
    from contrib.bench.uml_run import run_in_uml

    result = run_in_uml([sys.executable, "-m", "contrib.bench.agent", *argv], cwd=ROOT)
    print(result.output, end="")
    print(f"(UML guest: {result.seconds:.0f} s boot to power-off; console {result.console})")
    return result.returncode


def run_all(argv: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="vdsm-net-bench-"))
    steps: list[tuple[str, Callable[[list[str]], int], list[str]]] = [
        ("agent-uml", agent_uml, ["--json", str(tmp / "agent-uml.json")]),
        ("agent", agent.main, ["--native", "--json", str(tmp / "agent.json")]),
        ("rss", rss.main, ["--json", str(tmp / "rss.json")]),
        ("flood", flood.main, ["--json", str(tmp / "flood.json")]),
        ("engine", engine.main, ["--parallel", "50,500", "--json", str(tmp / "engine.json")]),
        ("cluster", cluster.main, ["--json", str(tmp / "cluster.json")]),
    ]
    status = 0
    for name, fn, args in steps:
        print(f"\n=== {name} ===", flush=True)
        status |= fn(args + argv)
    print("\n=== summary (markdown) ===")
    summary(tmp)
    return status


def _load(path: Path) -> object:
    return json.loads(path.read_text()) if path.exists() else None


def summary(tmp: Path) -> None:
    print("| agent | N | setupNetworks ms | ip -batch ms | ratio | re-send ms (x apply) "
          "| MTU of one ms | capabilities ms | remove all ms | ip -batch del ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("agent-uml", "agent"):
        rows = _load(tmp / f"{name}.json")
        for r in rows if isinstance(rows, list) else []:
            print(f"| {r['mode']} | {r['n']} | {r['agent_apply'] * 1000:.0f} | "
                  f"{r['ip_apply'] * 1000:.0f} | {r['agent_apply'] / r['ip_apply']:.2f} | "
                  f"{r['resend'] * 1000:.0f} ({r['resend'] / r['agent_apply']:.2f}) | "
                  f"{r['mtu_one'] * 1000:.0f} | {r['caps'] * 1000:.0f} | "
                  f"{r['agent_remove'] * 1000:.0f} | {r['ip_remove'] * 1000:.0f} |")
    m = _load(tmp / "rss.json")
    if isinstance(m, dict):
        print(f"\nagent daemon VmRSS: idle {m['idle_rss']:.0f} MiB, with {m['networks']} "
              f"networks {m['after_caps_rss']:.0f} MiB (VmHWM {m['peak_hwm']:.0f} MiB)")
    f = _load(tmp / "flood.json")
    if isinstance(f, dict):
        base = f["baseline_pings"]
        print(f"\nUnix-socket Host.ping2 without a flood: median {base['median_ms']} ms, p99 "
              f"{base['p99_ms']} ms; agent VmRSS before {f['rss_before_mib']} MiB")
        for r in f["rounds"]:
            print(f"  with {r['opened']} TCP connections: median {r['pings']['median_ms']} ms, "
                  f"p99 {r['pings']['p99_ms']} ms, {r['ping_failures']} failed; VmRSS "
                  f"{r['during']['rss_mib']} -> {r['after']['rss_mib']} MiB")
    rows = _load(tmp / "engine.json")
    print("\n| engine hosts | --parallel | wall s | engine peak RSS MiB | hosts updated |")
    print("|---|---|---|---|---|")
    for r in rows if isinstance(rows, list) else []:
        print(f"| {r['hosts']} | {r['parallel']} | {r['seconds']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r['ok']} |")
    c = _load(tmp / "cluster.json")
    if isinstance(c, dict):
        print(f"\nreal agents, network update: 1 host {c['one']:.2f} s, {c['hosts']} hosts "
              f"{c['many']:.2f} s")


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "all": run_all,
    "agent-uml": agent_uml,
    "agent": agent.main,
    "rss": rss.main,
    "flood": flood.main,
    "engine": engine.main,
    "cluster": cluster.main,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
