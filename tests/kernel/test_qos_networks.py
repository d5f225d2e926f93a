"""hostQos through Host.setupNetworks on a real kernel (docs/qos.md): the HFSC tree on the
network's NIC (never its VLAN device or bridge), one class per network, read back into the
capabilities, changed, removed with the network or its hostQos, rolled back with the rest of
the transaction, re-applied by restore and at agent start.

The kernel's view comes from `tc qdisc/class/filter show` in the namespace (tests/tcview.py;
`tc -j` prints HFSC's options as invalid JSON, so "identical" is compared on tc's text).
HFSC is not in the build host's kernel: these run in User-Mode Linux (needs "hfsc"), and
the tagged ones need VLAN devices too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, RpcError
from tests.dump import dump_state
from tests.faults import INJECTED, FailingQos
from tests.netns import NetNS
from tests.tcview import classes, dump_all, filters, qdiscs, tc_view
from vdsm_net.persist import RUNNING
from vdsm_net.qos import HostQos, plan
from vdsm_net.qos.kernel import QosKernel

pytestmark = pytest.mark.needs("hfsc", "vlan")

# Rates and times in the API's units (bit/s, us); rt/ul rates multiples of 8 (the kernel
# holds bytes/s).
UNTAGGED = {"ls": {"m2": 100_000}, "ul": {"m2": 10_000_000}}
VLAN10 = {"ls": {"m2": 400_000}, "ul": {"m2": 8_000_000},
          "rt": {"m1": 100_000, "d": 1000, "m2": 50_000}}
VLAN20 = {"ls": {"m1": 2_000_000, "d": 500, "m2": 900_000}}


def reported(out: dict[str, dict[str, int]]) -> dict[str, Any]:
    """hostQos as VDSM's capabilities give it: every curve with m1, d and m2."""
    return {"out": {name: {"m1": c.get("m1", 0), "d": c.get("d", 0), "m2": c.get("m2", 0)}
                    for name, c in out.items()}}


@pytest.fixture
async def agent(netns: NetNS, tmp_path: Path) -> AsyncIterator[AgentInNs]:
    netns.add_nic("eth1")
    netns.add_nic("eth2")
    a = AgentInNs(netns, tmp_path / "state")
    try:
        yield a
    finally:
        a.close()


def hfsc_on(ns: NetNS, dev: str) -> bool:
    return any(kind == "hfsc" for kind, _ in qdiscs(ns, dev).values())


async def test_untagged_network_shapes_its_nic(agent: AgentInNs, netns: NetNS,
                                               tmp_path: Path) -> None:
    before = tc_view(netns)
    await agent.setup({"red": {"nic": "eth1", "hostQos": {"out": UNTAGGED}}})

    assert qdiscs(netns, "eth1") == {
        "1389:": ("hfsc", "root"), "ffff:": ("ingress", "ffff:fff1"),
        "1388:": ("fq_codel", "1389:1388"),
    }, dump_all(netns, "eth1")
    # ls scaled by 8 as VDSM hands it to tc, ul as given.
    assert classes(netns, "eth1") == {
        "1389:1388": {"ls": (0, 0, 800_000), "ul": (0, 0, 10_000_000)},
    }, dump_all(netns, "eth1")
    assert sorted(filters(netns, "eth1")) == [5000]
    assert not hfsc_on(netns, "red")  # the bridge is not shaped, its NIC is

    caps = await agent.caps()
    assert caps["networks"]["red"]["hostQos"] == reported(UNTAGGED)
    assert caps["nics"]["eth1"]["qos"] == [{"hostQos": reported(UNTAGGED), "vlan": -1}]
    assert "qos" not in caps["nics"]["eth2"]
    saved = json.loads((tmp_path / "state" / RUNNING).read_text())
    assert saved["networks"]["red"]["hostQos"] == {"out": UNTAGGED}

    await agent.setup({"red": {"remove": True}})
    assert tc_view(netns) == before


async def test_a_dry_run_plans_the_tc_operations_and_touches_nothing(
        agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1"}})
    before, kernel = tc_view(netns), dump_state(netns.name)
    # Only hostQos changes: no link operation, but the tc ones a real call would run.
    answer = await agent.setup({"red": {"nic": "eth1", "hostQos": {"out": UNTAGGED}}},
                               dryRun=True)
    planned = [(op["op"], op["dev"]) for op in answer["plan"]]
    assert planned == [("DeleteRoot", "eth1"), ("DeleteIngress", "eth1"), ("AddRoot", "eth1"),
                       ("AddIngress", "eth1"), ("AddClass", "eth1"), ("AddLeaf", "eth1"),
                       ("AddDefaultFilter", "eth1")], answer
    (add_class,) = (op for op in answer["plan"] if op["op"] == "AddClass")
    # In the kernel's units: bytes/s; ls scaled by 8 as VDSM hands it to tc.
    assert add_class["curves"] == {"rt": None, "ls": {"m1": 0, "d": 0, "m2": 100_000},
                                   "ul": {"m1": 0, "d": 0, "m2": 1_250_000}}
    assert tc_view(netns) == before and dump_state(netns.name) == kernel
    assert not hfsc_on(netns, "eth1")
    # Applied for real, the same request then plans nothing.
    await agent.setup({"red": {"nic": "eth1", "hostQos": {"out": UNTAGGED}}})
    assert hfsc_on(netns, "eth1")
    again = await agent.setup({"red": {"nic": "eth1", "hostQos": {"out": UNTAGGED}}},
                              dryRun=True)
    assert again == {"plan": []}


async def test_tagged_networks_get_a_class_each_changed_and_removed(
    agent: AgentInNs, netns: NetNS
) -> None:
    before = tc_view(netns)
    await agent.setup({
        "red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN10}},
        "blue": {"nic": "eth1", "vlan": 20, "bridged": False, "hostQos": {"out": VLAN20}},
        "plain": {"nic": "eth1", "vlan": 30},  # no QoS: no class of its own
    })
    assert classes(netns, "eth1") == {
        "1389:a": {"rt": (100_000, 1000, 50_000), "ls": (0, 0, 3_200_000),
                   "ul": (0, 0, 8_000_000)},
        "1389:14": {"ls": (16_000_000, 4000, 7_200_000)},
        # No untagged QoS network: the default class shares like the widest tagged one.
        "1389:1388": {"ls": (16_000_000, 4000, 7_200_000)},
    }, dump_all(netns, "eth1")
    found = filters(netns, "eth1")
    assert sorted(found) == [10, 20, 5000], dump_all(netns, "eth1")
    assert found[10][:3] == ("basic", "all", "1389:a")
    assert "meta(vlan eq 20)" in found[20][3] and found[20][2] == "1389:14"
    for vlan_device in ("eth1.10", "eth1.20", "eth1.30", "red"):
        assert not hfsc_on(netns, vlan_device), dump_all(netns, vlan_device)

    caps = await agent.caps()
    assert caps["networks"]["red"]["hostQos"] == reported(VLAN10)
    assert caps["networks"]["blue"]["hostQos"] == reported(VLAN20)
    assert "hostQos" not in caps["networks"]["plain"]
    assert caps["nics"]["eth1"]["qos"] == [
        {"hostQos": reported(VLAN10), "vlan": 10}, {"hostQos": reported(VLAN20), "vlan": 20},
    ]

    # New curves: the class is re-made with them (a dropped curve is gone).
    await agent.setup({"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": {
        "ls": {"m2": 1_000_000}}}}})
    assert classes(netns, "eth1")["1389:a"] == {"ls": (0, 0, 8_000_000)}
    # Now red's ls is the widest: the default class follows.
    assert classes(netns, "eth1")["1389:1388"] == {"ls": (0, 0, 8_000_000)}
    red = (await agent.caps())["networks"]["red"]
    assert red["hostQos"] == reported({"ls": {"m2": 1_000_000}})

    # blue loses its hostQos but stays: its class and filter go.
    await agent.setup({"blue": {"nic": "eth1", "vlan": 20, "bridged": False}})
    assert set(classes(netns, "eth1")) == {"1389:a", "1389:1388"}
    assert sorted(filters(netns, "eth1")) == [10, 5000]
    caps = await agent.caps()
    assert "hostQos" not in caps["networks"]["blue"]
    assert [q["vlan"] for q in caps["nics"]["eth1"]["qos"]] == [10]

    # The last QoS network goes: so does the tree (the NIC's qdiscs are as before).
    await agent.setup({"red": {"remove": True}, "blue": {"remove": True},
                       "plain": {"remove": True}})
    assert tc_view(netns) == before


async def test_a_network_moving_to_another_nic_takes_its_class(agent: AgentInNs,
                                                               netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN10}}})
    await agent.setup({"red": {"nic": "eth2", "vlan": 10, "hostQos": {"out": VLAN10}}})
    assert not hfsc_on(netns, "eth1"), dump_all(netns, "eth1")
    assert set(classes(netns, "eth2")) == {"1389:a", "1389:1388"}


BAD = [
    ({"out": {"ul": {"m2": 1000}}}, "networks.red.hostQos.out.ls", "ul"),
    ({"out": {"ls": {"m2": -5}}}, "networks.red.hostQos.out.ls.m2", "-5"),
    ({"out": {"ls": {"m2": 1.5}}}, "networks.red.hostQos.out.ls.m2", "1.5"),
    ({"out": {"ls": {"m2": "fast"}}}, "networks.red.hostQos.out.ls.m2", "'fast'"),
    ({"out": {"ls": {"m2": 100, "burst": 1}}}, "networks.red.hostQos.out.ls", "'burst'"),
    ({"out": {"xx": {"m2": 100}}}, "networks.red.hostQos.out", "'xx'"),
    ({"in": {"ls": {"m2": 100}}}, "networks.red.hostQos", "'in'"),
    ({"out": {"ls": {"m1": 100, "d": 10}}}, "networks.red.hostQos.out.ls.m2", "> 0"),
]


async def test_a_bad_hostqos_is_refused_and_changes_nothing(agent: AgentInNs,
                                                            netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN10}}})
    tc_before, links_before, caps_before = tc_view(netns), dump_state(netns.name), \
        await agent.caps()
    for value, field, shown in BAD:
        for request in (
            {"red": {"nic": "eth1", "vlan": 10, "hostQos": value}},
            # With a good new network beside it: that one is not made either.
            {"green": {"nic": "eth2", "vlan": 7, "hostQos": {"out": VLAN20}},
             "red": {"nic": "eth2", "vlan": 11, "hostQos": value}},
        ):
            with pytest.raises(RpcError) as err:
                await agent.setup(request)
            assert err.value.code == 21, err.value.message
            assert err.value.message.startswith(field) and shown in err.value.message, \
                err.value.message
    assert tc_view(netns) == tc_before
    assert dump_state(netns.name) == links_before
    with pytest.raises(RpcError) as err:
        await agent.setup({"iso": {"hostQos": {"out": VLAN10}}})
    assert err.value.code == 21 and "networks.iso.hostQos" in err.value.message
    caps = await agent.caps()
    # (Bridges' timers tick: the networks and NICs are what a refused QoS could change.)
    assert caps["networks"] == caps_before["networks"]
    assert caps["nics"] == caps_before["nics"]


@pytest.fixture
async def failing(netns: NetNS, tmp_path: Path) -> AsyncIterator[tuple[AgentInNs, FailingQos]]:
    netns.add_nic("eth1")
    netns.add_nic("eth2")
    # One applier for both workers: the caps worker only reads, never while the change
    # applies (the test awaits each call).
    qos = FailingQos(netns.name)
    a = AgentInNs(netns, tmp_path / "state", connectivity_timeout=0.5,
                  qos_factory=lambda: qos)
    try:
        yield a, qos
    finally:
        a.close()


CHANGE = {
    "red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": {"ls": {"m2": 300_000}}}},
    "blue": {"nic": "eth1", "vlan": 20, "hostQos": {"out": VLAN20}},
    "green": {"nic": "eth1", "hostQos": {"out": UNTAGGED}},
    "yellow": {"nic": "eth2", "vlan": 5, "hostQos": {"out": VLAN10}},
}


async def test_a_failure_rolls_the_qos_back(
    failing: tuple[AgentInNs, FailingQos], netns: NetNS
) -> None:
    agent, qos = failing
    await agent.setup({"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN10}}})
    tc_before, links_before = tc_view(netns), dump_state(netns.name)
    assert hfsc_on(netns, "eth1") and not hfsc_on(netns, "eth2")

    # Every tc operation of the change fails in turn, after the earlier ones happened.
    failed = 0
    for k in range(100):
        qos.arm(k)
        try:
            await agent.setup(CHANGE)
        except RpcError as refused:
            assert refused.code == 41 and INJECTED in refused.message, refused.message
            assert "rolled back" in refused.message
            assert tc_view(netns) == tc_before, f"tc operation {k}"
            assert dump_state(netns.name) == links_before, f"tc operation {k}"
            failed += 1
            continue
        break
    else:
        pytest.fail("the change never got through")
    # Both NICs' trees from scratch (eth1's changed): a dozen operations at least.
    assert failed >= 12, failed
    qos.arm(None)
    assert set(classes(netns, "eth1")) == {"1389:a", "1389:14", "1389:1388"}
    assert set(classes(netns, "eth2")) == {"1389:5", "1389:1388"}
    await agent.setup({name: {"remove": True} for name in ("blue", "green", "yellow")}
                      | {"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN10}}})
    assert tc_view(netns) == tc_before

    # No confirmation within the connectivity timeout: rolled back, QoS included.
    with pytest.raises(RpcError) as timeout:
        await agent.setup(CHANGE, connectivityCheck=True, connectivityTimeout=0.5)
    assert timeout.value.code == 10, timeout.value.message
    assert tc_view(netns) == tc_before
    assert dump_state(netns.name) == links_before

    # A change of the curves alone (no link operation) waits for the confirmation too.
    with pytest.raises(RpcError) as curves_only:
        await agent.setup({"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN20}}},
                          connectivityCheck=True, connectivityTimeout=0.5)
    assert curves_only.value.code == 10, curves_only.value.message
    assert tc_view(netns) == tc_before


async def test_restore_and_agent_start_reapply_the_qos(agent: AgentInNs, netns: NetNS,
                                                       tmp_path: Path) -> None:
    await agent.setup({"red": {"nic": "eth1", "vlan": 10, "hostQos": {"out": VLAN10}},
                       "green": {"nic": "eth1", "hostQos": {"out": UNTAGGED}}},
                      commitOnSuccess=True)
    shaped = tc_view(netns)
    netns.sh("tc", "qdisc", "del", "dev", "eth1", "root")
    assert not hfsc_on(netns, "eth1")

    report = await asyncio.to_thread(agent.agent.restore)
    assert report.ops > 0
    assert tc_view(netns) == shaped

    # A tree no network wants any more (left by a change that died) goes at start.
    netns.sh("tc", "qdisc", "del", "dev", "eth1", "root")
    stray = HostQos.from_json({"out": VLAN20}, "hostQos")
    assert stray is not None


    def shape_eth2() -> None:  # off the event loop: pyroute2's IPRoute runs its own
        with QosKernel(netns=netns.name) as kernel:
            kernel.apply(plan({"eth2": None}, {"eth2": {None: stray}}))

    await asyncio.to_thread(shape_eth2)
    assert hfsc_on(netns, "eth2")
    restarted = AgentInNs(netns, tmp_path / "state")
    try:
        await restarted.agent.start_clients()
        assert tc_view(netns) == shaped
        caps = await restarted.caps()
        assert caps["networks"]["red"]["hostQos"] == reported(VLAN10)
        assert caps["networks"]["green"]["hostQos"] == reported(UNTAGGED)
        await restarted.agent.stop_clients()
    finally:
        restarted.close()
