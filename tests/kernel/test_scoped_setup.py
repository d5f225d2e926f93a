"""Scoped transactions on a real kernel: a change of a few networks reads, plans, journals and
verifies only their devices (vdsm_net.scope), and is still exact: the MTU max rule of a shared
base holds, unrelated networks stay as they are, a refusal rolls back, and a NIC held by a
device outside the scope is judged on the whole state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, RpcError
from tests.dump import assert_same_state, dump_state
from tests.netns import NetNS
from vdsm_net.errors import ErrorKind
from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import Op
from vdsm_net.scope import ReadScope
from vdsm_net.state import KernelState


class RecordingBackend:
    """The real backend; remembers the scope of every read and can make the kernel refuse
    (a foreign device takes a name) just before an apply."""

    def __init__(self, real: Backend, ns: NetNS) -> None:
        self.real = real
        self.ns = ns
        self.scopes: list[ReadScope | None] = []
        self.collide_with: str | None = None

    def read_state(self, scope: ReadScope | None = None) -> KernelState:
        self.scopes.append(scope)
        return self.real.read_state(scope)

    def read_stats(self) -> Any:
        return self.real.read_stats()

    def apply(self, ops: Sequence[Op]) -> None:
        if self.collide_with is not None:
            self.ns.ip("link", "add", self.collide_with, "type", "bridge")
            self.collide_with = None
        self.real.apply(ops)

    def close(self) -> None:
        self.real.close()


class Recorder:
    def __init__(self, ns: NetNS) -> None:
        self.ns = ns
        self.backends: list[RecordingBackend] = []

    def __call__(self) -> RecordingBackend:
        b = RecordingBackend(Backend(netns=self.ns.name), self.ns)
        self.backends.append(b)
        return b

    @property
    def tx(self) -> RecordingBackend:
        return self.backends[0]  # the transaction worker opens its backend first


def devices(dump: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {n: link for n, link in dump["links"].items() if n in names}


async def started(ns: NetNS, tmp_path: Path, nics: int) -> tuple[AgentInNs, Recorder]:
    for i in range(1, nics + 1):
        ns.add_nic(f"eth{i}")
    recorder = Recorder(ns)
    agent = AgentInNs(ns, tmp_path, backend_factory=recorder)
    await agent.setup({})  # opens the transaction worker's backend
    return agent, recorder


@pytest.mark.needs("vlan")
async def test_scoped_change_keeps_the_shared_base_mtu_max_and_unrelated_networks(
    netns: NetNS, tmp_path: Path
) -> None:
    agent, rec = await started(netns, tmp_path, 3)
    try:
        await agent.setup({
            "red": {"nic": "eth1", "vlan": 10, "mtu": 9000},
            "blue": {"nic": "eth1", "vlan": 20, "mtu": 1500},
            "green": {"nic": "eth2", "mtu": 4000},
            "iso": {"mtu": 2000},
        })
        netns.ip("link", "add", "vnet0", "mtu", "4000", "type", "veth", "peer", "name", "vnet0p")
        netns.ip("link", "set", "vnet0", "master", "green", "up")
        unrelated = {"green", "eth2", "iso", "vnet0", "eth3"}
        before = dump_state(netns.name)

        rec.tx.scopes.clear()
        await agent.setup({"blue": {"nic": "eth1", "vlan": 20, "mtu": 4000}})
        assert rec.tx.scopes and all(s is not None for s in rec.tx.scopes)
        for s in rec.tx.scopes:
            assert s is not None
            # red, a VLAN network on the same NIC, only sets a floor to eth1's MTU.
            assert s.devices == {"blue", "eth1", "eth1.20"}
        # The base keeps the largest MTU of its networks: red's 9000, not blue's new 4000.
        assert [netns.link(d)["mtu"] for d in ("eth1", "eth1.10", "red")] == [9000] * 3
        assert [netns.link(d)["mtu"] for d in ("eth1.20", "blue")] == [4000] * 2

        await agent.setup({"red": {"nic": "eth1", "vlan": 10, "mtu": 1500}})
        # red, the largest, went down: the base follows the largest left, blue's 4000.
        assert netns.link("eth1")["mtu"] == 4000
        assert [netns.link(d)["mtu"] for d in ("eth1.10", "red")] == [1500] * 2
        assert [netns.link(d)["mtu"] for d in ("eth1.20", "blue")] == [4000] * 2

        await agent.setup({"red": {"remove": True}})
        assert netns.link("eth1")["mtu"] == 4000
        assert "eth1.10" not in netns.links() and "red" not in netns.links()

        after = dump_state(netns.name)
        assert_same_state(devices(before, unrelated), devices(after, unrelated),
                          "unrelated devices")
        caps = await agent.caps()
        assert sorted(caps["networks"]) == ["blue", "green", "iso"]
        assert caps["networks"]["green"]["ports"] == ["eth2", "vnet0"]
    finally:
        agent.close()


async def test_scoped_mtu_change_reads_only_its_devices(netns: NetNS, tmp_path: Path) -> None:
    agent, rec = await started(netns, tmp_path, 3)
    try:
        await agent.setup({f"n{i}": {"nic": f"eth{i}"} for i in (1, 2, 3)})
        before = dump_state(netns.name)
        rec.tx.scopes.clear()
        await agent.setup({"n1": {"nic": "eth1", "mtu": 1400}})
        assert [set(s.devices) if s else None for s in rec.tx.scopes] == [{"n1", "eth1"}] * 2
        assert [netns.link(d)["mtu"] for d in ("n1", "eth1")] == [1400, 1400]
        unrelated = {"n2", "n3", "eth2", "eth3"}
        assert_same_state(devices(before, unrelated), devices(dump_state(netns.name), unrelated))
    finally:
        agent.close()


async def test_scoped_change_refused_by_the_kernel_rolls_back_exactly(
    netns: NetNS, tmp_path: Path
) -> None:
    agent, rec = await started(netns, tmp_path, 3)
    try:
        await agent.setup({"n1": {"nic": "eth1"}, "n2": {"nic": "eth2"}})
        before = dump_state(netns.name)
        rec.tx.collide_with = "n3"  # the kernel refuses to create n3: EEXIST
        with pytest.raises(RpcError) as err:
            await agent.setup({"n1": {"nic": "eth1", "mtu": 1400}, "n3": {"nic": "eth3"}})
        assert err.value.code == ErrorKind.KERNEL
        scopes = [s for s in rec.tx.scopes if s is not None]
        assert scopes and scopes[-1].devices == {"n1", "eth1", "n3", "eth3"}
        netns.ip("link", "del", "n3")
        assert_same_state(before, dump_state(netns.name), "state after the rollback")
        assert not (tmp_path / "journal.json").exists()
    finally:
        agent.close()


async def test_nic_held_by_a_device_outside_the_scope_is_refused(
    netns: NetNS, tmp_path: Path
) -> None:
    agent, rec = await started(netns, tmp_path, 2)
    try:
        netns.ip("link", "add", "virbr0", "type", "bridge")
        netns.ip("link", "set", "eth2", "master", "virbr0")
        before = dump_state(netns.name)
        rec.tx.scopes.clear()
        with pytest.raises(RpcError) as err:
            await agent.setup({"n2": {"nic": "eth2"}})
        assert err.value.code == ErrorKind.USED_NIC
        assert "virbr0" in err.value.message
        assert rec.tx.scopes[-1] is None  # judged on the whole state
        assert_same_state(before, dump_state(netns.name))
    finally:
        agent.close()
