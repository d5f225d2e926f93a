"""Time the backend's ops on the running kernel, in a scratch network namespace.

    python contrib/bench/bench_backend.py [N]      (root; VLAN rows need 8021q, e.g. in UML)

Prints milliseconds per op for: bridge create, VLAN create, enslave, MTU, address, read_state,
and deleting N bridges (and N VLAN+bridge stacks) one request per device vs one group request.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from ipaddress import IPv4Interface

from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import (
    AddAddress,
    CreateBridge,
    CreateVlan,
    DeleteDevices,
    Op,
    SetMaster,
    SetMtu,
    SetUp,
)


def ip(ns: str, *args: str, check: bool = True) -> bool:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, check=check).returncode == 0


def timed(label: str, count: int, fn: Callable[[], object]) -> None:
    start = time.perf_counter()
    fn()
    total = time.perf_counter() - start
    print(f"{label:<44} {count:>5} {total * 1000:>10.1f} ms {total * 1000 / count:>8.3f} ms/dev")


def run(n: int) -> None:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with Backend(netns=ns) as b:
            bench(ns, b, n)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def bench(ns: str, b: Backend, n: int) -> None:
    def apply(ops: Sequence[Op]) -> Callable[[], None]:
        return lambda: b.apply(ops)

    bridges = [f"br{i}" for i in range(n)]
    print(f"{'operation':<44} {'count':>5} {'total':>13} {'per device':>13}")
    timed("CreateBridge (create + sticky MTU)", n, apply([CreateBridge(x, 1500) for x in bridges]))
    timed("SetMtu on bridges", n, apply([SetMtu(x, 4000) for x in bridges]))
    timed("SetUp on bridges", n, apply([SetUp(x, True) for x in bridges]))
    timed(
        "AddAddress",
        n,
        apply([AddAddress(x, IPv4Interface(f"10.{i // 250}.{i % 250}.1/24"))
               for i, x in enumerate(bridges)]),
    )
    timed("read_state", 1, b.read_state)
    timed("DeleteDevices one request per bridge", n, apply([DeleteDevices((x,)) for x in bridges]))
    b.apply([CreateBridge(x, 1500) for x in bridges])
    b.read_state()
    timed("DeleteDevices one group request, bridges", n, apply([DeleteDevices(tuple(bridges))]))

    if not ip(ns, "link", "add", "eth0", "type", "dummy", check=False):
        ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
    ip(ns, "link", "set", "eth0", "up")
    has_vlan = ip(
        ns, "link", "add", "link", "eth0", "name", "probe.1", "type", "vlan", "id", "1", check=False
    )
    if not has_vlan:
        print("(no 8021q in this kernel: VLAN rows skipped)")
        return
    ip(ns, "link", "del", "probe.1")
    vlans = [f"eth0.{i + 1}" for i in range(n)]

    def stacks() -> list[Op]:
        ops: list[Op] = []
        for v, x in zip(vlans, bridges, strict=True):
            ops += [
                CreateVlan(v, "eth0", int(v.split(".")[1]), 1500),
                CreateBridge(x, 1500),
                SetMaster(v, x),
            ]
        return ops

    timed("CreateVlan", n, apply([CreateVlan(v, "eth0", i + 1, 1500) for i, v in enumerate(vlans)]))
    timed("CreateBridge (with VLANs present)", n, apply([CreateBridge(x, 1500) for x in bridges]))
    timed(
        "SetMaster vlan -> bridge",
        n,
        apply([SetMaster(v, x) for v, x in zip(vlans, bridges, strict=True)]),
    )
    timed(
        "DeleteDevices one request per VLAN+bridge",
        n,
        apply([DeleteDevices((x, v)) for v, x in zip(vlans, bridges, strict=True)]),
    )
    b.apply(stacks())
    b.read_state()
    timed(
        "DeleteDevices one group request, VLAN+bridge",
        n,
        apply([DeleteDevices(tuple(bridges + vlans))]),
    )


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
