"""render(): the desired state of the managed devices (docs/api.md: MTU, ports, addresses)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

from vdsm_net.kernel import bond_options
from vdsm_net.model import NetConfig
from vdsm_net.render import network_table, render
from vdsm_net.request import parse_config
from vdsm_net.state import BOND, BRIDGE, MAIN_TABLE, VLAN, Device, KernelState, Route, make_state

MAC1 = "52:54:00:00:00:11"
NICS = [
    Device("eth0", "", 1500, True, mac="52:54:00:00:00:10",
           ipv4=frozenset({IPv4Interface("192.168.0.10/24")})),
    Device("eth1", "", 1500, True, mac=MAC1),
    Device("eth2", "", 1500, False, mac="52:54:00:00:00:12"),
    Device("eth3", "", 9000, True, mac="52:54:00:00:00:13"),
]
HOST = make_state(NICS, {Route(4, IPv4Address("192.168.0.1"), "eth0")})


def config(networks: dict[str, Any], bondings: dict[str, Any] | None = None) -> NetConfig:
    return parse_config({"networks": networks, "bondings": bondings or {}})


def rendered(new: NetConfig, current: KernelState = HOST,
             previous: NetConfig | None = None) -> KernelState:
    return render(new, current, previous or NetConfig())


def test_bridged_vlan_network_chain() -> None:
    state = rendered(config({"red": {"nic": "eth1", "vlan": 100, "mtu": 9000, "stp": True}}))
    assert sorted(state.devices) == ["eth1", "eth1.100", "red"]
    assert state.devices["eth1"] == NICS[1].evolve(mtu=9000)
    assert state.devices["eth1.100"] == Device(
        "eth1.100", VLAN, 9000, True, master="red", owned=True, vlan_base="eth1", vlan_id=100
    )
    assert state.devices["red"] == Device("red", BRIDGE, 9000, True, owned=True, stp=True, mac=MAC1)


def test_unmanaged_devices_are_absent() -> None:
    state = rendered(config({"iso": {}}))
    assert list(state.devices) == ["iso"]
    assert state.devices["iso"].mac is None
    assert state.routes == frozenset()  # eth0's route is not managed: not desired, not deleted


def test_existing_bridge_mac_is_not_managed() -> None:
    red = Device("red", BRIDGE, 1500, True, owned=True, mac="aa:aa:aa:aa:aa:aa")
    current = make_state([*NICS, red])
    state = rendered(config({"red": {"nic": "eth1"}}), current)
    assert state.devices["red"].mac is None
    assert state.devices["eth1"].master == "red"


def test_shared_base_gets_the_largest_mtu() -> None:
    state = rendered(config({"a": {"nic": "eth1", "vlan": 1, "mtu": 4000},
                             "b": {"nic": "eth1", "vlan": 2, "mtu": 9000},
                             "c": {"nic": "eth1", "bridged": False}}))
    assert state.devices["eth1"].mtu == 9000
    assert (state.devices["eth1.1"].mtu, state.devices["a"].mtu) == (4000, 4000)
    assert state.devices["eth1"].master is None  # "c" is bridgeless: no bridge above eth1


def test_bond_with_slaves_and_options() -> None:
    state = rendered(config({"n": {"bonding": "bond0", "mtu": 9000}},
                            {"bond0": {"nics": ["eth1", "eth2"], "options": "mode=4 miimon=100"}}))
    bond = state.devices["bond0"]
    assert (bond.kind, bond.mtu, bond.up, bond.owned, bond.master) == (BOND, 9000, True, True, "n")
    assert dict(bond.bond_options) == bond_options.normalize({"mode": "802.3ad", "miimon": "100"})
    for slave in ("eth1", "eth2"):
        assert (state.devices[slave].master, state.devices[slave].mtu) == ("bond0", 9000)
        assert state.devices[slave].up
    assert state.devices["n"].mac is None  # the bond does not exist yet: no MAC to copy


def test_bond_without_network_has_default_mtu() -> None:
    state = rendered(config({}, {"bond0": {"nics": ["eth3"]}}))
    assert state.devices["bond0"].mtu == 1500
    assert state.devices["eth3"].mtu == 1500


def test_nics_left_by_the_previous_config_go_back_to_defaults() -> None:
    previous = config({"red": {"nic": "eth3", "mtu": 9000}}, {"bond0": {"nics": ["eth2"]}})
    current = make_state([*NICS[:2], NICS[2].evolve(master="bond0"), NICS[3].evolve(master="red")])
    state = rendered(config({}), current, previous)
    assert state.devices["eth3"] == NICS[3].evolve(mtu=1500, master=None)
    assert state.devices["eth2"] == NICS[2].evolve(master=None)  # still down: up unchanged
    assert "bond0" not in state.devices and "red" not in state.devices


def test_missing_nic_is_not_desired() -> None:
    state = rendered(config({"red": {"nic": "eth9"}}))
    assert sorted(state.devices) == ["red"]


def test_addresses_on_top_device_and_default_route() -> None:
    state = rendered(config({
        "mgmt": {"nic": "eth1", "ipaddr": "10.0.0.5", "prefix": 24, "gateway": "10.0.0.1",
                 "defaultRoute": True, "ipv6addr": "2001:db8::5/64",
                 "ipv6gateway": "2001:db8::1"},
        "stor": {"nic": "eth3", "vlan": 7, "bridged": False, "ipaddr": "10.7.0.5", "prefix": 16,
                 "gateway": "10.7.0.1"},
    }))
    assert state.devices["mgmt"].ipv4 == {IPv4Interface("10.0.0.5/24")}
    assert state.devices["mgmt"].ipv6 == {IPv6Interface("2001:db8::5/64")}
    assert state.devices["eth3.7"].ipv4 == {IPv4Interface("10.7.0.5/16")}
    assert state.devices["eth1"].ipv4 == frozenset()
    assert state.routes == {
        Route(4, IPv4Address("10.0.0.1"), "mgmt", MAIN_TABLE),
        Route(6, IPv6Address("2001:db8::1"), "mgmt", MAIN_TABLE),
        Route(4, IPv4Address("10.7.0.1"), "eth3.7", network_table("stor")),
    }


def test_network_table_is_stable_and_out_of_the_way() -> None:
    assert network_table("stor") == network_table("stor") != network_table("stor2")
    assert 0x10000000 <= network_table("x") < 0x11000000


def test_only_addresses_of_own_making_are_removed() -> None:
    previous = config({"n": {"nic": "eth1", "bridged": False, "ipaddr": "10.0.0.5", "prefix": 24}})
    eth1 = NICS[1].evolve(
        ipv4=frozenset({IPv4Interface("10.0.0.5/24"), IPv4Interface("172.16.0.1/16")})
    )
    current = make_state([NICS[0], eth1])
    state = rendered(config({"n": {"nic": "eth1", "bridged": False, "ipaddr": "10.0.0.6",
                                   "prefix": 24}}), current, previous)
    assert state.devices["eth1"].ipv4 == {
        IPv4Interface("10.0.0.6/24"), IPv4Interface("172.16.0.1/16")
    }


def test_routes_of_own_making_are_replaced_and_others_kept() -> None:
    previous = config({"n": {"nic": "eth1", "bridged": False, "ipaddr": "10.0.0.5", "prefix": 24,
                             "gateway": "10.0.0.1", "defaultRoute": True}})
    current = make_state(
        [NICS[0], NICS[1].evolve(ipv4=frozenset({IPv4Interface("10.0.0.5/24")}))],
        {Route(4, IPv4Address("10.0.0.1"), "eth1"), Route(6, IPv6Address("fe80::1"), "eth1"),
         Route(4, IPv4Address("192.168.0.1"), "eth0")},
    )
    new = config({"n": {"nic": "eth1", "bridged": False, "ipaddr": "10.0.0.5", "prefix": 24}})
    state = rendered(new, current, previous)
    # the agent's default route goes; an RA route on the managed NIC stays; eth0 is unmanaged
    assert state.routes == {Route(6, IPv6Address("fe80::1"), "eth1")}
