"""Agent benchmarks: one ``setupNetworks`` through the real ``Agent`` pipeline against ``ip -batch``
doing the same device operations in the same kernel, in fresh network namespaces.

    python -m contrib.bench agent [--native] [--sizes 50,200,1000] [--profile DIR]

Without ``--native`` the networks are bridged VLANs on one dummy NIC (needs 8021q: run inside
UML, which ``python -m contrib.bench all`` does). With ``--native`` they are untagged bridged
networks, one veth NIC each, which this host's kernel can build.

Rows per size N: apply (agent vs ``ip -batch``), the same request re-sent (nothing to do), the
MTU of one network changed, ``getNetworkCapabilities``, removing all N (agent vs ``ip -batch``
deleting device by device). Output: a human table on stdout and, with ``--json PATH``, the
numbers as JSON (read back on the host when run inside UML).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.agenthelp import AgentInNs
from tests.netns import NetNS
from vdsm_net.state import OWNED_GROUP

T = TypeVar("T")
NIC = "eth1"


@dataclass
class SizeResult:
    n: int
    mode: str
    agent_apply: float
    ip_apply: float
    resend: float
    mtu_one: float
    caps: float
    agent_remove: float
    ip_remove: float
    ip_group_remove: float

    @property
    def apply_ratio(self) -> float:
        return self.agent_apply / self.ip_apply

    @property
    def remove_ratio(self) -> float:
        return self.agent_remove / self.ip_remove


def net_name(i: int) -> str:
    return f"n{i:04d}"


def nic_name(i: int, native: bool) -> str:
    return f"nic{i}" if native else NIC


def request(n: int, native: bool, mtu_of_first: int | None = None) -> dict[str, Any]:
    nets: dict[str, Any] = {}
    for i in range(n):
        attrs: dict[str, Any] = {"nic": nic_name(i, native)}
        if not native:
            attrs["vlan"] = i + 1
        if i == 0 and mtu_of_first is not None:
            attrs["mtu"] = mtu_of_first
        nets[net_name(i)] = attrs
    return nets


def make_nics(ns: NetNS, n: int, native: bool) -> None:
    if not native:
        ns.add_nic(NIC, dummy=True)
        return
    # veth pairs: the kernel here has no dummy. The peer stays in the namespace, up.
    lines = []
    for i in range(n):
        lines += [f"link add nic{i} type veth peer name nic{i}p", f"link set nic{i}p up",
                  f"link set nic{i} up"]
    ip_batch(ns, lines)


def ip_batch(ns: NetNS, lines: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["ip", "-n", ns.name, "-batch", "-"], input="\n".join(lines) + "\n",
                   text=True, check=True, capture_output=True)
    return time.perf_counter() - start


def mac_of(ns: NetNS, dev: str) -> str:
    return str(ns.link(dev)["address"])


def ip_create_lines(ns: NetNS, n: int, native: bool) -> list[str]:
    """What the agent does, as `ip` commands: owned group, the NIC's MAC on the bridge, the
    two-step MTU that makes a bridge's MTU stick, ports attached, everything up."""
    lines = []
    macs = {nic_name(i, native): mac_of(ns, nic_name(i, native)) for i in range(n)}
    for i in range(n):
        nic = nic_name(i, native)
        br = net_name(i)
        port = nic if native else f"{NIC}.{i + 1}"
        if not native:
            lines.append(f"link add link {NIC} name {port} mtu 1500 group {OWNED_GROUP} "
                         f"type vlan id {i + 1}")
        lines += [
            f"link add {br} address {macs[nic]} group {OWNED_GROUP} type bridge stp_state 0",
            f"link set {br} mtu 1499",
            f"link set {br} mtu 1500",
            f"link set {port} master {br}",
        ]
        if not native:
            lines.append(f"link set {port} up")
        lines.append(f"link set {br} up")
    return lines


def ip_delete_lines(n: int, native: bool) -> list[str]:
    lines = []
    for i in range(n):
        lines.append(f"link del {net_name(i)}")
        if not native:
            lines.append(f"link del {NIC}.{i + 1}")
    return lines


class Timer:
    def __init__(self, profile_dir: Path | None) -> None:
        self.profile_dir = profile_dir

    async def time(self, label: str, fn: Callable[[], Awaitable[T]]) -> tuple[float, T]:
        prof = cProfile.Profile() if self.profile_dir is not None else None
        start = time.perf_counter()
        if prof is not None:
            prof.enable()
        try:
            result = await fn()
        finally:
            if prof is not None:
                prof.disable()
        took = time.perf_counter() - start
        if prof is not None and self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(str(self.profile_dir / f"{label}.prof"))
        return took, result


async def bench_size(n: int, native: bool, timer: Timer) -> SizeResult:
    mode = "bridge (native)" if native else "vlan+bridge"
    # Baseline: ip -batch in a namespace of its own, same NICs.
    base = NetNS("bip")
    try:
        make_nics(base, n, native)
        ip_apply = ip_batch(base, ip_create_lines(base, n, native))
        ip_remove = ip_batch(base, ip_delete_lines(n, native))
        ip_batch(base, ip_create_lines(base, n, native))
        ip_group_remove = ip_batch(base, [f"link del group {OWNED_GROUP}"])
    finally:
        base.close()

    ns = NetNS("bag")
    try:
        make_nics(ns, n, native)
        with tempfile.TemporaryDirectory(prefix="vdsm-net-bench-") as tmp:
            agent = AgentInNs(ns, Path(tmp))
            try:
                await agent.caps()  # open the backend sockets before timing
                nets = request(n, native)
                t_apply, _ = await timer.time(f"apply-{n}", lambda: agent.setup(nets))
                t_resend, _ = await timer.time(f"resend-{n}", lambda: agent.setup(nets))
                one = {net_name(0): request(1, native, mtu_of_first=1400)[net_name(0)]}
                t_mtu, _ = await timer.time(f"mtu-{n}", lambda: agent.setup(one))
                t_caps, doc = await timer.time(f"caps-{n}", agent.caps)
                assert len(doc["networks"]) == n, len(doc["networks"])
                gone = {net_name(i): {"remove": True} for i in range(n)}
                t_remove, _ = await timer.time(f"remove-{n}", lambda: agent.setup(gone))
            finally:
                agent.close()
    finally:
        ns.close()
    return SizeResult(n, mode, t_apply, ip_apply, t_resend, t_mtu, t_caps, t_remove, ip_remove,
                      ip_group_remove)


def print_table(results: list[SizeResult]) -> None:
    ms = 1000
    print(f"{'mode':<16} {'N':>5} {'apply':>9} {'ip-batch':>9} {'ratio':>6} {'resend':>8} "
          f"{'re/ap':>6} {'mtu1':>8} {'caps':>8} {'remove':>8} {'ip-del':>8} {'ratio':>6} "
          f"{'ip-grp':>8}   (ms)")
    for r in results:
        print(f"{r.mode:<16} {r.n:>5} {r.agent_apply * ms:>9.0f} {r.ip_apply * ms:>9.0f} "
              f"{r.apply_ratio:>6.2f} {r.resend * ms:>8.1f} {r.resend / r.agent_apply:>6.3f} "
              f"{r.mtu_one * ms:>8.1f} {r.caps * ms:>8.1f} {r.agent_remove * ms:>8.0f} "
              f"{r.ip_remove * ms:>8.0f} {r.remove_ratio:>6.2f} {r.ip_group_remove * ms:>8.0f}")
    if len(results) >= 2:
        a, b = results[0], results[-1]
        k = b.n / a.n
        print(f"growth {a.n}->{b.n} (x{k:g} networks): apply x{b.agent_apply / a.agent_apply:.1f}"
              f", ip-batch x{b.ip_apply / a.ip_apply:.1f}, caps x{b.caps / a.caps:.1f}, "
              f"mtu1 x{b.mtu_one / a.mtu_one:.1f}, remove x{b.agent_remove / a.agent_remove:.1f}")


async def main_async(args: argparse.Namespace) -> list[SizeResult]:
    timer = Timer(Path(args.profile) if args.profile else None)
    results = []
    for n in args.sizes:
        results.append(await bench_size(n, args.native, timer))
        print_table(results[-1:])
    return results


def parse_sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="contrib.bench agent")
    p.add_argument("--native", action="store_true", help="untagged bridges on veth NICs")
    p.add_argument("--sizes", type=parse_sizes, default=[50, 200, 1000])
    p.add_argument("--profile", help="write one cProfile file per timed step to this directory")
    p.add_argument("--json", help="write the results as JSON to this file")
    args = p.parse_args(argv)
    results = asyncio.run(main_async(args))
    print()
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
