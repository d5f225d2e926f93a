"""Fault injection at every step of a setupNetworks (docs/transaction.md: all-or-nothing).

The request builds a bond with two slaves, two VLANs on it (one bridged with an IPv4 address
and the default route, one bridgeless with IPv6), a bridge on a NIC that shares its base with a
VLAN network whose MTU goes down, and removes a network. Its plan is read with ``dryRun``; then,
for every k, operation k fails for real (tests/faults.py: the kernel refuses a create because
the name was taken meanwhile, or the backend raises the kernel error) after operations < k
really ran, and the kernel dump must equal the one before the request. Then the rollback itself
fails: the error says ROLLBACK FAILED and ``Agent.restore()`` converges to the safe config.

One agent per test function, loops inside: a UML test run is slow to start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, RpcError
from tests.dump import Dump, assert_same_state, dump_state
from tests.faults import INJECTED, FailingBackend, Faults, remove_collisions
from tests.netns import NetNS
from vdsm_net.journal import JOURNAL_FILE
from vdsm_net.kernel.backend import Backend

pytestmark = pytest.mark.needs("vlan", "bond", "dummy")

NICS = ("eth1", "eth2", "eth3", "eth4")
SAFE = {
    "base": {"nic": "eth3", "vlan": 3, "mtu": 4000},
    "old": {"nic": "eth4", "ipaddr": "192.0.2.10", "prefix": 24},
}
NETWORKS: dict[str, Any] = {
    "red": {"bonding": "bond0", "vlan": 10, "mtu": 9000, "ipaddr": "198.51.100.2",
            "prefix": 24, "gateway": "198.51.100.1", "defaultRoute": True},
    "blue": {"bonding": "bond0", "vlan": 20, "bridged": False, "ipv6addr": "2001:db8::2/64"},
    "green": {"nic": "eth3", "mtu": 2000},
    "base": {"nic": "eth3", "vlan": 3, "mtu": 1500},
    "old": {"remove": True},
}
BONDINGS = {"bond0": {"nics": ["eth1", "eth2"], "options": "mode=active-backup miimon=100"}}


class Bench:
    def __init__(self, ns: NetNS, tmp_path: Path) -> None:
        for nic in NICS:
            ns.add_nic(nic)
        self.ns = ns
        self.faults = Faults()
        self.state_dir = tmp_path / "state"
        self.agent = AgentInNs(ns, self.state_dir, backend_factory=lambda: FailingBackend(
            Backend(netns=ns.name), ns, self.faults))

    async def make_safe(self) -> Dump:
        await self.agent.setup(SAFE)
        await self.agent.call("Host.setSafeNetworkConfig")
        return dump_state(self.ns.name)

    async def plan(self) -> list[dict[str, Any]]:
        result = await self.agent.setup(NETWORKS, BONDINGS, dryRun=True)
        ops: list[dict[str, Any]] = result["plan"]
        kinds = {op["op"] for op in ops}
        # The request exercises every phase of the plan order (docs/transaction.md).
        assert {"CreateBond", "SetMaster", "CreateVlan", "CreateBridge", "SetMtu",
                "DeleteDevices", "AddAddress", "AddRoute", "SetUp"} <= kinds, kinds
        return ops

    async def failing_setup(self) -> RpcError:
        with pytest.raises(RpcError) as err:
            await self.agent.setup(NETWORKS, BONDINGS)
        assert err.value.code == 41, err.value.message
        return err.value

    async def networks(self) -> list[str]:
        return sorted((await self.agent.caps())["networks"])

    @property
    def journal(self) -> Path:
        return self.state_dir / JOURNAL_FILE


@pytest.fixture
def bench(netns: NetNS, tmp_path: Path) -> Iterator[Bench]:
    b = Bench(netns, tmp_path)
    try:
        yield b
    finally:
        b.agent.close()


async def test_failure_at_every_step_restores_the_previous_state(bench: Bench) -> None:
    before = await bench.make_safe()
    ops = await bench.plan()
    started = time.monotonic()
    collisions = 0
    for k, op in enumerate(ops):
        plan = bench.faults.arm(k)
        err = await bench.failing_setup()
        assert plan.failed and plan.failed[0].startswith(f"{k}: "), (k, plan.failed)
        assert "ROLLBACK FAILED" not in err.message, (k, err.message)
        if plan.collisions:
            collisions += 1
            # The kernel's own refusal, naming the device; the foreign device is left alone.
            assert plan.collisions[0] in err.message and INJECTED not in err.message, err.message
            assert bench.ns.link(plan.collisions[0])["linkinfo"]["info_kind"] == "dummy"
            remove_collisions(bench.ns, plan)
        else:
            assert INJECTED in err.message, err.message
        assert_same_state(before, dump_state(bench.ns.name), f"after a failure at op {k} {op}")
        assert not bench.journal.exists(), "the undo journal outlived a successful rollback"
        assert await bench.networks() == ["base", "old"]
    bench.faults.disarm()
    print(f"fault injection: {len(ops)} steps failed one by one ({collisions} by a real name "
          f"collision) in {time.monotonic() - started:.1f} s")
    # Without a fault the same request goes through.
    await bench.agent.setup(NETWORKS, BONDINGS)
    assert bench.ns.link("bond0.10")["master"] == "red"
    assert bench.ns.link("eth1")["master"] == "bond0"
    assert await bench.networks() == ["base", "blue", "green", "red"]


async def test_failed_rollback_is_loud_and_restore_converges(bench: Bench) -> None:
    safe = await bench.make_safe()
    ops = await bench.plan()
    n = len(ops)
    cases = [(k, j) for k in (1, n // 3, (2 * n) // 3, n - 1) for j in (0, 2)]
    started = time.monotonic()
    for k, j in cases:
        # op k of the change fails, then op j of the rollback (global index k + 1 + j).
        plan = bench.faults.arm(k, k + 1 + j, collide=False)
        err = await bench.failing_setup()
        if len(plan.failed) < 2:  # the rollback had fewer than j + 1 operations
            assert j > 0 and "ROLLBACK FAILED" not in err.message, (k, j, err.message)
            assert_same_state(safe, dump_state(bench.ns.name), f"after k={k}")
            continue
        assert "ROLLBACK FAILED" in err.message, (k, j, err.message)
        assert "vdsm-net-agent restore" in err.message
        assert bench.journal.exists(), "the undo journal must survive a failed rollback"
        bench.faults.disarm()
        report = bench.agent.agent.restore()
        assert report.reverted_journal, report
        assert_same_state(safe, dump_state(bench.ns.name),
                          f"after restore (change failed at op {k}, rollback at op {j})")
        assert not bench.journal.exists()
        assert await bench.networks() == ["base", "old"]
    print(f"failed rollbacks: {len(cases)} cases in {time.monotonic() - started:.1f} s")
    # A change that went through but was never made safe is undone by restore too.
    bench.faults.disarm()
    await bench.agent.setup(NETWORKS, BONDINGS)
    bench.agent.agent.restore()
    assert_same_state(safe, dump_state(bench.ns.name), "after restoring an unsafe change")
