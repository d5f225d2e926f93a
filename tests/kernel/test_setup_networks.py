"""Host.setupNetworks end to end on a real kernel: what the kernel reports after each call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, InjectingBackend, RpcError
from tests.dump import dump_state
from tests.netns import NetNS
from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import CreateVlan, Op

pytestmark = pytest.mark.needs("vlan", "bond", "dummy")


@pytest.fixture
async def agent(netns: NetNS, tmp_path: Path) -> AsyncIterator[AgentInNs]:
    netns.add_nic("eth1")
    netns.add_nic("eth2")
    netns.add_nic("eth3")
    a = AgentInNs(netns, tmp_path)
    try:
        yield a
    finally:
        a.close()


def info(link: dict[str, Any]) -> dict[str, Any]:
    return dict(link.get("linkinfo", {}).get("info_data", {}))


def kind(link: dict[str, Any]) -> str | None:
    found: str | None = link.get("linkinfo", {}).get("info_kind")
    return found


def add_tap(ns: NetNS, name: str, bridge: str) -> None:
    """A VM's tap stand-in: a veth whose end joins the bridge (libvirt gives it the bridge MTU)."""
    mtu = str(ns.link(bridge)["mtu"])
    ns.ip("link", "add", name, "mtu", mtu, "type", "veth", "peer", "name", name + "p")
    ns.ip("link", "set", name, "master", bridge, "up")


async def expect_error(coro: Any, code: int) -> RpcError:
    with pytest.raises(RpcError) as info_:
        await coro
    assert info_.value.code == code, info_.value.message
    return info_.value


async def test_bridged_vlan_network_with_mtu(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1", "vlan": 100, "mtu": 9000}})
    vlan = netns.link("eth1.100")
    assert kind(vlan) == "vlan"
    assert info(vlan)["id"] == 100
    assert vlan["link"] == "eth1"
    bridge = netns.link("red")
    assert kind(bridge) == "bridge"
    assert vlan["master"] == "red"
    assert [bridge["mtu"], vlan["mtu"], netns.link("eth1")["mtu"]] == [9000, 9000, 9000]
    assert "UP" in bridge["flags"] and "UP" in vlan["flags"]
    caps = await agent.caps()
    net = caps["networks"]["red"]
    assert net["mtu"] == 9000 and net["vlanid"] == 100 and net["bridged"] is True
    # VDSM's southbound of a tagged network is its VLAN device
    assert net["southbound"] == "eth1.100" and net["ports"] == ["eth1.100"]


async def test_vlan_change_keeps_bridge_and_tap(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1", "vlan": 100}})
    index = netns.link("red")["ifindex"]
    add_tap(netns, "vnet0", "red")
    await agent.setup({"red": {"nic": "eth1", "vlan": 200}})
    assert netns.link("red")["ifindex"] == index
    assert info(netns.link("eth1.200"))["id"] == 200
    assert netns.link("eth1.200")["master"] == "red"
    assert netns.link("vnet0")["master"] == "red"
    assert "eth1.100" not in netns.links()
    caps = await agent.caps()
    assert sorted(caps["networks"]["red"]["ports"]) == ["eth1.200", "vnet0"]
    assert sorted(caps["bridges"]["red"]["ports"]) == ["eth1.200", "vnet0"]


async def test_mtu_change_keeps_bridge_and_tap(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1", "vlan": 100, "mtu": 1500}})
    index = netns.link("red")["ifindex"]
    add_tap(netns, "vnet0", "red")
    await agent.setup({"red": {"nic": "eth1", "vlan": 100, "mtu": 9000}})
    assert netns.link("red")["ifindex"] == index
    assert netns.link("red")["mtu"] == 9000
    assert netns.link("eth1.100")["mtu"] == 9000
    assert netns.link("eth1")["mtu"] == 9000
    assert netns.link("vnet0")["master"] == "red"
    await agent.setup({"red": {"nic": "eth1", "vlan": 100, "mtu": 1400}})
    assert [netns.link(d)["mtu"] for d in ("red", "eth1.100", "eth1")] == [1400, 1400, 1400]
    assert netns.link("red")["ifindex"] == index


async def test_shared_base_takes_largest_mtu_and_returns_to_1500(
    agent: AgentInNs, netns: NetNS
) -> None:
    await agent.setup({
        "red": {"nic": "eth1", "vlan": 100, "mtu": 1500},
        "blue": {"nic": "eth1", "vlan": 200, "mtu": 9000},
        "green": {"nic": "eth1", "mtu": 4000},
    })
    assert netns.link("eth1")["mtu"] == 9000
    assert netns.link("eth1.100")["mtu"] == 1500
    assert netns.link("eth1.200")["mtu"] == 9000
    assert netns.link("green")["mtu"] == 4000
    await agent.setup({"blue": {"remove": True}})
    assert netns.link("eth1")["mtu"] == 4000
    await agent.setup({"red": {"remove": True}, "green": {"remove": True}})
    assert netns.link("eth1")["mtu"] == 1500
    links = netns.links()
    assert {"red", "blue", "green", "eth1.100", "eth1.200"}.isdisjoint(links)
    assert "eth1" in links  # a NIC is never deleted


async def test_bond_network_slaves_follow_bond_mtu(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup(
        {"red": {"bonding": "bond0", "vlan": 10, "mtu": 9000}},
        {"bond0": {"nics": ["eth1", "eth2"], "options": "mode=active-backup miimon=100"}},
    )
    bond = netns.link("bond0")
    assert kind(bond) == "bond"
    assert info(bond)["mode"] == "active-backup"
    assert info(bond)["miimon"] == 100
    for nic in ("eth1", "eth2"):
        assert netns.link(nic)["master"] == "bond0"
        assert netns.link(nic)["mtu"] == 9000
    assert bond["mtu"] == 9000
    assert netns.link("bond0.10")["master"] == "red"
    caps = await agent.caps()
    assert sorted(caps["bondings"]["bond0"]["slaves"]) == ["eth1", "eth2"]
    # VDSM spells the mode as the kernel's number
    assert caps["bondings"]["bond0"]["opts"] == {"mode": "1", "miimon": "100"}
    # a network cannot sit on a bond slave
    await expect_error(agent.setup({"blue": {"nic": "eth1"}}), 24)
    # nor can the bond go while a network uses it
    await expect_error(agent.setup(bondings={"bond0": {"remove": True}}), 31)
    await agent.setup({"red": {"remove": True}}, {"bond0": {"remove": True}})
    links = netns.links()
    assert "bond0" not in links
    assert links["eth1"].get("master") is None and links["eth1"]["mtu"] == 1500


async def test_isolated_network_is_a_bridge_without_uplink(
    agent: AgentInNs, netns: NetNS
) -> None:
    await agent.setup({"iso": {"mtu": 9000}})
    bridge = netns.link("iso")
    assert kind(bridge) == "bridge" and bridge["mtu"] == 9000
    assert [n for n, d in netns.links().items() if d.get("master") == "iso"] == []
    caps = await agent.caps()
    assert caps["networks"]["iso"]["isolated"] is True
    assert caps["networks"]["iso"]["southbound"] is None
    await expect_error(agent.setup({"iso2": {"vlan": 5}}), 26)
    await expect_error(agent.setup({"iso2": {"ipaddr": "10.0.0.1", "prefix": 24}}), 21)


async def test_bridgeless_vlan_network(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"mgmt": {"nic": "eth2", "vlan": 7, "bridged": False, "mtu": 1600}})
    assert "mgmt" not in netns.links()
    vlan = netns.link("eth2.7")
    assert vlan.get("master") is None and vlan["mtu"] == 1600
    caps = await agent.caps()
    assert caps["networks"]["mgmt"]["iface"] == "eth2.7"
    assert caps["networks"]["mgmt"]["bridged"] is False


async def test_static_ip_and_default_route(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"red": {
        "nic": "eth1", "ipaddr": "192.0.2.10", "netmask": "255.255.255.0",
        "gateway": "192.0.2.1", "defaultRoute": True,
        "ipv6addr": "2001:db8::10/64",
    }})
    addrs = {(a["local"], a["prefixlen"])
             for d in netns.ip_json("addr", "show", "dev", "red") for a in d["addr_info"]
             if a.get("scope") == "global"}
    assert addrs == {("192.0.2.10", 24), ("2001:db8::10", 64)}
    routes = netns.ip_json("route", "show", "default")
    assert [(r["gateway"], r["dev"]) for r in routes] == [("192.0.2.1", "red")]
    caps = await agent.caps()
    assert caps["networks"]["red"]["ipv4addrs"] == ["192.0.2.10/24"]
    assert caps["networks"]["red"]["defaultRoute"] is True
    await agent.setup({"red": {"nic": "eth1"}})
    assert netns.ip_json("route", "show", "default") == []


async def test_foreign_device_with_network_name_is_refused(
    agent: AgentInNs, netns: NetNS
) -> None:
    netns.ip("link", "add", "red", "type", "bridge")
    before = dump_state(netns.name)
    await expect_error(agent.setup({"red": {"nic": "eth1"}}), 27)
    assert dump_state(netns.name) == before


BAD_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any], int]] = [
    ("unknown attribute", {"red": {"nic": "eth1", "colour": "red"}}, {}, 21),
    ("vlan out of range", {"red": {"nic": "eth1", "vlan": 5000}}, {}, 26),
    ("mtu out of range", {"red": {"nic": "eth1", "mtu": 70000}}, {}, 21),
    ("remove with attributes", {"red": {"remove": True, "nic": "eth1"}}, {}, 21),
    ("two networks on one nic+vlan",
     {"red": {"nic": "eth1", "vlan": 5}, "blue": {"nic": "eth1", "vlan": 5}}, {}, 21),
    ("isolated with vlan", {"red": {"vlan": 5}}, {}, 26),
    ("two default routes",
     {"red": {"nic": "eth1", "ipaddr": "192.0.2.2", "prefix": 24, "gateway": "192.0.2.1",
              "defaultRoute": True},
      "blue": {"nic": "eth2", "ipaddr": "198.51.100.2", "prefix": 24,
               "gateway": "198.51.100.1", "defaultRoute": True}}, {}, 21),
    ("bad address", {"red": {"nic": "eth1", "ipaddr": "300.1.1.1", "prefix": 24}}, {}, 22),
    ("missing nic", {"red": {"nic": "eth9"}}, {}, 23),
    ("nic in bond and network",
     {"red": {"nic": "eth1"}}, {"bond0": {"nics": ["eth1", "eth2"]}}, 24),
    ("bad bond name", {}, {"bnd0": {"nics": ["eth1"]}}, 25),
    ("bad bond option", {}, {"bond0": {"nics": ["eth1"], "options": "mode=nope"}}, 25),
    ("unknown bond for network", {"red": {"bonding": "bond7"}}, {}, 25),
    ("bad network name", {"a/b": {"nic": "eth1"}}, {}, 27),
    ("name too long", {"x" * 16: {"nic": "eth1"}}, {}, 27),
    ("remove unknown network", {"nosuch": {"remove": True}}, {}, 27),
]


@pytest.mark.parametrize(("networks", "bondings", "code"),
                         [r[1:] for r in BAD_REQUESTS], ids=[r[0] for r in BAD_REQUESTS])
async def test_invalid_request_changes_nothing(
    agent: AgentInNs, netns: NetNS, networks: dict[str, Any], bondings: dict[str, Any],
    code: int,
) -> None:
    await agent.setup({"base": {"nic": "eth3", "vlan": 3}})
    before = dump_state(netns.name)
    await expect_error(agent.setup(networks, bondings), code)
    assert dump_state(netns.name) == before


async def test_kernel_refusal_mid_plan_rolls_back(netns: NetNS, tmp_path: Path) -> None:
    for nic in ("eth1", "eth2"):
        netns.add_nic(nic)

    def collide(call: int, ops: Sequence[Op]) -> None:
        # Between plan and apply something else takes the name of a VLAN device the plan
        # creates: the kernel refuses that creation after earlier ops took effect.
        if call == 1:
            assert any(isinstance(op, CreateVlan) and op.name == "eth2.20" for op in ops)
            netns.ip("link", "add", "link", "eth2", "name", "eth2.20", "type", "vlan",
                     "id", "20")

    a = AgentInNs(netns, tmp_path, backend_factory=lambda: InjectingBackend(
        Backend(netns=netns.name), collide))
    try:
        before = dump_state(netns.name)
        err = await expect_error(a.setup({
            "red": {"nic": "eth1", "vlan": 10, "mtu": 9000},
            "blue": {"nic": "eth2", "vlan": 20, "mtu": 9000},
        }), 41)
        assert "eth2.20" in err.message
        # the colliding device is not the agent's: the rollback leaves it alone
        assert netns.link("eth2.20")["linkinfo"]["info_data"]["id"] == 20
        netns.ip("link", "del", "eth2.20")
        assert dump_state(netns.name) == before
    finally:
        a.close()


async def test_address_refused_by_kernel_rolls_back(agent: AgentInNs, netns: NetNS) -> None:
    # The kernel disables IPv6 on a device whose MTU is below 1280, so it refuses the address
    # at the very end of a plan that has already created devices and changed MTUs.
    await agent.setup({"base": {"nic": "eth3", "vlan": 3, "mtu": 4000}})
    before = dump_state(netns.name)
    err = await expect_error(agent.setup({
        "red": {"nic": "eth1", "vlan": 10, "mtu": 9000},
        "blue": {"nic": "eth2", "mtu": 1200, "ipv6addr": "2001:db8::1/64"},
        "base": {"nic": "eth3", "vlan": 3, "mtu": 1500},
    }), 41)
    assert "2001:db8::1/64" in err.message
    assert dump_state(netns.name) == before
    caps = await agent.caps()
    assert sorted(caps["networks"]) == ["base"] and caps["networks"]["base"]["mtu"] == 4000


async def test_dry_run_plans_without_touching(agent: AgentInNs, netns: NetNS) -> None:
    before = dump_state(netns.name)
    result = await agent.setup({"red": {"nic": "eth1", "vlan": 100}}, dryRun=True)
    assert {"op": "CreateVlan", "name": "eth1.100", "base": "eth1", "vlan_id": 100,
            "mtu": 1500} in result["plan"]
    assert dump_state(netns.name) == before


async def test_resend_is_a_no_op(agent: AgentInNs, netns: NetNS) -> None:
    req = {"red": {"nic": "eth1", "vlan": 100}, "iso": {}}
    await agent.setup(req)
    assert (await agent.setup(req, dryRun=True))["plan"] == []


async def test_concurrent_calls_never_interleave(agent: AgentInNs, netns: NetNS) -> None:
    first = asyncio.create_task(agent.setup(
        {"red": {"nic": "eth1", "vlan": 100}}, connectivityCheck=True, connectivityTimeout=30))
    while "red" not in netns.links():
        await asyncio.sleep(0.02)
    # the first call is now waiting for confirmation, holding the transaction
    while not (await agent.caps())["netConfigPending"]:
        await asyncio.sleep(0.02)
    await expect_error(agent.setup({"blue": {"nic": "eth2"}}), 40)
    assert "blue" not in netns.links()
    await asyncio.sleep(0.05)
    await agent.call("Host.confirmConnectivity")
    assert await first == {}
    assert (await agent.caps())["netConfigPending"] is False


async def test_unconfirmed_change_rolls_back_with_error_10(
    netns: NetNS, tmp_path: Path
) -> None:
    netns.add_nic("eth1")
    a = AgentInNs(netns, tmp_path, connectivity_timeout=1.0)
    try:
        before = dump_state(netns.name)
        await expect_error(a.setup({"red": {"nic": "eth1", "vlan": 5, "mtu": 9000}},
                                   connectivityCheck=True), 10)
        assert dump_state(netns.name) == before
        assert (await a.caps())["networks"] == {}
    finally:
        a.close()


async def test_event_loop_serves_while_applying(agent: AgentInNs, netns: NetNS) -> None:
    networks = {f"n{i}": {"nic": "eth1", "vlan": 100 + i} for i in range(40)}
    task = asyncio.create_task(agent.setup(networks))
    pings = 0
    while not task.done():
        await agent.call("Host.ping2")
        pings += 1
        await asyncio.sleep(0)
    await task
    assert pings > 1, "the event loop was blocked for the whole apply"


async def test_capabilities_read_from_kernel(agent: AgentInNs, netns: NetNS) -> None:
    await agent.setup({"red": {"nic": "eth1", "mtu": 2000}})
    netns.ip("link", "set", "red", "mtu", "1800")  # changed behind the agent's back
    caps = await agent.caps()
    assert caps["networks"]["red"]["mtu"] == 1800
    assert caps["bridges"]["red"]["mtu"] == 1800
    assert isinstance(caps["nics"]["eth1"]["mtu"], int)
    assert caps["netConfigDirty"] is True
    await agent.call("Host.setSafeNetworkConfig")
    assert (await agent.caps())["netConfigDirty"] is False


async def test_lacp_bond_without_miimon_matches_the_kernels_default(
    agent: AgentInNs, netns: NetNS
) -> None:
    # The kernel turns MII monitoring on (100 ms) for 802.3ad; the desired state must say so
    # too, or a re-send would plan a change that the kernel immediately undoes.
    bond = {"bond0": {"nics": ["eth1", "eth2"], "options": "mode=802.3ad"}}
    await agent.setup({"red": {"bonding": "bond0"}}, bond)
    assert info(netns.link("bond0"))["miimon"] == 100
    assert (await agent.setup({"red": {"bonding": "bond0"}}, bond, dryRun=True))["plan"] == []
