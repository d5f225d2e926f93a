"""Devices that vanish or change under a change, and devices that are not NICs (docs/api.md, §1.6).

A 200-network change (bridges on three NICs and 197 isolated bridges) is applied, and between the
apply and the verification's read-back the test (through the backend seam of the pipeline)
deletes a NIC the change uses, renames it, or deletes a bridge the change just made. Each time
the change fails with error 41 naming the device, and the kernel is back to its state before
(the deleted NIC, which nothing can bring back, aside; the renamed NIC, found by its ifindex,
restored under its new name).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, InjectingBackend, RpcError
from tests.dump import Dump, assert_same_state, dump_state
from tests.netns import NetNS
from vdsm_net.journal import JOURNAL_FILE
from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import Op

NICS = ("eth1", "eth2", "eth3", "eth4")
ISOLATED = 197
BIG: dict[str, Any] = {
    **{f"n{i}": {"nic": nic, "mtu": 1600} for i, nic in enumerate(NICS[:3])},
    **{f"iso{i}": {"mtu": 1500 + i} for i in range(ISOLATED)},
}


class Hostile:
    """What the test does to the kernel right after the next apply."""

    def __init__(self) -> None:
        self.action: Callable[[], object] | None = None

    def __call__(self, _calls: int, _ops: Sequence[Op]) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()


@pytest.fixture
async def bench(netns: NetNS, tmp_path: Path) -> AsyncIterator[tuple[AgentInNs, Hostile]]:
    for nic in NICS:
        netns.add_nic(nic)
    hostile = Hostile()
    agent = AgentInNs(netns, tmp_path, backend_factory=lambda: InjectingBackend(
        Backend(netns=netns.name), after_apply=hostile))
    # Something already there, which the failed change must leave as it is.
    await agent.setup({"kept": {"nic": "eth4", "mtu": 1400}, "kiso": {"mtu": 1450}})
    try:
        yield agent, hostile
    finally:
        agent.close()


async def _fails_41(agent: AgentInNs, networks: dict[str, Any]) -> str:
    with pytest.raises(RpcError) as info:
        await agent.setup(networks)
    assert info.value.code == 41, info.value.message
    assert "ROLLBACK FAILED" not in info.value.message, info.value.message
    return info.value.message


def _without(dump: Dump, names: set[str]) -> Dump:
    out = copy.deepcopy(dump)
    for section in ("links", "addresses", "bridge_ports"):
        for name in names:
            out[section].pop(name, None)
    out["routes"] = {k: v for k, v in out["routes"].items()
                     if not any(f"dev {n}" in k for n in names)}
    return out


async def test_nic_deleted_mid_change_fails_and_rolls_back(
    bench: tuple[AgentInNs, Hostile], netns: NetNS, tmp_path: Path
) -> None:
    agent, hostile = bench
    before = dump_state(netns.name)
    hostile.action = lambda: netns.ip("link", "del", "eth2")  # its veth peer eth2p goes too
    message = await _fails_41(agent, BIG)
    assert "eth2 disappeared" in message, message
    assert_same_state(_without(before, {"eth2", "eth2p"}), dump_state(netns.name))
    assert not (tmp_path / JOURNAL_FILE).exists()
    caps = await agent.caps()
    assert sorted(caps["networks"]) == ["kept", "kiso"]
    # The agent goes on: the same change without the vanished NIC succeeds.
    await agent.setup({k: v for k, v in BIG.items() if v.get("nic") != "eth2"})
    assert netns.link("eth3")["master"] == "n2"


async def test_nic_renamed_mid_change_fails_and_rolls_back(
    bench: tuple[AgentInNs, Hostile], netns: NetNS
) -> None:
    agent, hostile = bench
    before = dump_state(netns.name)

    def rename() -> None:
        netns.ip("link", "set", "eth1", "down")
        netns.ip("link", "set", "eth1", "name", "eth1x")

    hostile.action = rename
    message = await _fails_41(agent, BIG)
    assert "eth1 disappeared" in message, message
    # The rollback found the NIC by its ifindex and restored it under its new name (out of
    # the deleted bridge, MTU 1500, up); renamed back, the kernel is as before.
    renamed = netns.link("eth1x")
    assert "master" not in renamed and renamed["mtu"] == 1500 and "UP" in renamed["flags"]
    netns.ip("link", "set", "eth1x", "down")
    netns.ip("link", "set", "eth1x", "name", "eth1")
    netns.ip("link", "set", "eth1", "up")
    assert_same_state(before, dump_state(netns.name))


async def test_bridge_deleted_mid_change_fails_and_rolls_back(
    bench: tuple[AgentInNs, Hostile], netns: NetNS
) -> None:
    agent, hostile = bench
    before = dump_state(netns.name)
    hostile.action = lambda: netns.ip("link", "del", "iso7")
    message = await _fails_41(agent, BIG)
    assert "iso7 disappeared" in message, message
    assert_same_state(before, dump_state(netns.name))


async def test_nic_replaced_by_another_of_its_name_fails(
    bench: tuple[AgentInNs, Hostile], netns: NetNS
) -> None:
    agent, hostile = bench
    before = dump_state(netns.name)

    def replace() -> None:
        netns.ip("link", "del", "eth3")
        netns.add_nic("eth3")

    hostile.action = replace
    message = await _fails_41(agent, {"red": {"nic": "eth3", "mtu": 2000}})
    assert "eth3 was replaced" in message, message
    # The newcomer is not the agent's to configure: the rollback leaves it alone.
    assert "master" not in netns.link("eth3")
    assert "red" not in netns.links()
    after = dump_state(netns.name)
    assert_same_state(_without(before, {"eth3", "eth3p"}), _without(after, {"eth3", "eth3p"}))


async def test_loopback_is_not_a_nic(bench: tuple[AgentInNs, Hostile], netns: NetNS) -> None:
    agent, _ = bench
    before = dump_state(netns.name)
    for attrs in ({"nic": "lo"}, {"nic": "lo", "bridged": False},
                  {"nic": "lo", "bridged": False, "mtu": 1400, "ipaddr": "192.0.2.5",
                   "prefix": 24}):
        with pytest.raises(RpcError) as info:
            await agent.setup({"red": attrs})
        assert info.value.code == 23, (attrs, info.value.message)
        assert info.value.message == "networks.red.nic: lo is not a NIC (it is the loopback device)"
    assert netns.link("lo")["mtu"] == 65536
    assert_same_state(before, dump_state(netns.name))


async def test_devices_the_agent_made_are_not_nics(
    bench: tuple[AgentInNs, Hostile], netns: NetNS
) -> None:
    agent, _ = bench
    before = dump_state(netns.name)
    # "kept" is the agent's bridge on eth4, "kiso" its isolated bridge.
    for nic in ("kept", "kiso"):
        with pytest.raises(RpcError) as info:
            await agent.setup({"red": {"nic": nic, "bridged": False}})
        assert info.value.code == 23, info.value.message
        assert f"{nic} is not a NIC (it is an owned bridge)" in info.value.message
    assert_same_state(before, dump_state(netns.name))
