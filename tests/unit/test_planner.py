"""plan(): a pure differ. Cases not covered by the golden files, built from typed states."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Interface

from vdsm_net.ops import (
    AddAddress,
    AddRoute,
    CreateBond,
    CreateBridge,
    CreateVlan,
    DelAddress,
    DeleteDevices,
    DelRoute,
    SetBondOptions,
    SetMaster,
    SetMtu,
    SetUp,
)
from vdsm_net.planner import plan
from vdsm_net.state import BOND, BRIDGE, VLAN, Device, Route, make_state

ETH1 = Device("eth1", "", 1500, True, mac="52:54:00:00:00:11")
ETH2 = Device("eth2", "", 1500, True, mac="52:54:00:00:00:12")
TAP = Device("vnet0", "tun", 1500, True, master="br")
BRIDGE_BR = Device("br", BRIDGE, 1500, True, owned=True)


def bond(name: str = "bond0", mode: str = "balance-rr", **kw: object) -> Device:
    return Device(name, BOND, 1500, True, owned=True, bond_options={"mode": mode}).evolve(**kw)


def vlan(base: str, vid: int, **kw: object) -> Device:
    return Device(f"{base}.{vid}", VLAN, 1500, True, owned=True, vlan_base=base,
                  vlan_id=vid).evolve(**kw)


def test_identical_states_plan_nothing() -> None:
    state = make_state([ETH1, vlan("eth1", 5, master="br"), BRIDGE_BR, TAP],
                       {Route(4, IPv4Address("10.0.0.1"), "br")})
    assert plan(state, state) == []


def test_empty_desired_deletes_owned_devices_only_in_one_op() -> None:
    current = make_state([ETH1, vlan("eth1", 5, master="br"), BRIDGE_BR, TAP, bond("bond3")])
    assert plan(current, make_state([])) == [DeleteDevices(("bond3", "br", "eth1.5"))]


def test_foreign_device_holding_a_desired_name_is_left_alone() -> None:
    current = make_state([Device("br", "veth", 1500, False)])
    assert plan(current, make_state([BRIDGE_BR])) == []


def test_uncreatable_missing_device_is_skipped() -> None:
    assert plan(make_state([]), make_state([ETH1, TAP])) == []


def test_new_vlan_mtu_never_exceeds_its_base() -> None:
    current = make_state([ETH1])
    desired = make_state([ETH1.evolve(mtu=9000), vlan("eth1", 3, mtu=9000)])
    assert plan(current, desired) == [
        SetMtu("eth1", 9000),
        CreateVlan("eth1.3", "eth1", 3, 9000),
        SetUp("eth1.3", True),
    ]


def test_bond_mode_change_recreates_bond_and_vlans_on_it() -> None:
    current = make_state([ETH1.evolve(master="bond0"), bond(), vlan("bond0", 7)])
    desired = make_state([ETH1.evolve(master="bond0"), bond(mode="active-backup"),
                          vlan("bond0", 7)])
    assert plan(current, desired) == [
        SetMaster("eth1", None),
        DeleteDevices(("bond0", "bond0.7")),
        CreateBond("bond0", {"mode": "active-backup"}, 1500, None),
        SetMaster("eth1", "bond0"),
        SetUp("bond0", True),
        CreateVlan("bond0.7", "bond0", 7, 1500),
        SetUp("bond0.7", True),
    ]


def test_bond_options_only_changed_keys() -> None:
    current = make_state([bond(bond_options={"mode": "802.3ad", "miimon": "100",
                                             "lacp_rate": "slow"})])
    desired = make_state([bond(bond_options={"mode": "802.3ad", "miimon": "100",
                                             "lacp_rate": "fast"})])
    assert plan(current, desired) == [SetBondOptions("bond0", {"lacp_rate": "fast"})]


def test_down_top_down_and_up_bottom_up() -> None:
    current = make_state([ETH1.evolve(up=False), vlan("eth1", 2, up=False), BRIDGE_BR,
                          ETH2, Device("br2", BRIDGE, 1500, True, owned=True)])
    desired = make_state([ETH1, vlan("eth1", 2), BRIDGE_BR.evolve(up=False),
                          ETH2.evolve(up=False), Device("br2", BRIDGE, 1500, False, owned=True)])
    assert plan(current, desired) == [
        SetUp("br", False), SetUp("br2", False), SetUp("eth2", False),
        SetUp("eth1", True), SetUp("eth1.2", True),
    ]


def test_addresses_and_routes() -> None:
    current = make_state(
        [ETH1.evolve(ipv4=frozenset({IPv4Interface("10.0.0.1/24")}),
                     ipv6=frozenset({IPv6Interface("2001:db8::1/64")}))],
        {Route(4, IPv4Address("10.0.0.254"), "eth1"), Route(4, IPv4Address("192.168.0.1"), "eth0")},
    )
    desired = make_state(
        [ETH1.evolve(ipv4=frozenset({IPv4Interface("10.0.0.2/24")}),
                     ipv6=frozenset({IPv6Interface("2001:db8::1/64")}))],
        {Route(4, IPv4Address("10.0.0.253"), "eth1", 300)},
    )
    assert plan(current, desired) == [
        DelRoute(Route(4, IPv4Address("10.0.0.254"), "eth1")),  # managed device
        DelAddress("eth1", IPv4Interface("10.0.0.1/24")),
        AddAddress("eth1", IPv4Interface("10.0.0.2/24")),
        AddRoute(Route(4, IPv4Address("10.0.0.253"), "eth1", 300)),
    ]  # eth0's main-table route: unmanaged device and another table: untouched


def test_new_default_route_displaces_a_foreign_one() -> None:
    eth0 = Device("eth0", "", 1500, True)
    current = make_state([eth0, ETH1], {Route(4, IPv4Address("192.168.0.1"), "eth0")})
    desired = make_state([ETH1], {Route(4, IPv4Address("10.0.0.254"), "eth1")})
    assert plan(current, desired) == [
        DelRoute(Route(4, IPv4Address("192.168.0.1"), "eth0")),
        AddRoute(Route(4, IPv4Address("10.0.0.254"), "eth1")),
    ]


def test_routes_of_deleted_devices_go_with_them() -> None:
    current = make_state([BRIDGE_BR.evolve(ipv4=frozenset({IPv4Interface("10.0.0.1/24")}))],
                         {Route(4, IPv4Address("10.0.0.254"), "br")})
    assert plan(current, make_state([])) == [DeleteDevices(("br",))]


def test_recreated_device_gets_its_addresses_and_routes_again() -> None:
    route = Route(4, IPv4Address("10.0.0.254"), "br")
    current = make_state([Device("br", VLAN, 1500, True, owned=True, vlan_base="x", vlan_id=1,
                                 ipv4=frozenset({IPv4Interface("10.0.0.1/24")}))], {route})
    desired = make_state(
        [BRIDGE_BR.evolve(ipv4=frozenset({IPv4Interface("10.0.0.1/24")}))], {route}
    )
    assert plan(current, desired) == [
        DeleteDevices(("br",)),
        CreateBridge("br", 1500, False, None),
        SetUp("br", True),
        AddAddress("br", IPv4Interface("10.0.0.1/24")),
        AddRoute(route),
    ]


def test_port_moves_between_bridges() -> None:
    current = make_state([ETH1.evolve(master="br"), BRIDGE_BR])
    desired = make_state([ETH1.evolve(master="br2"), BRIDGE_BR,
                          Device("br2", BRIDGE, 1500, True, owned=True)])
    assert plan(current, desired) == [
        SetMaster("eth1", None),
        CreateBridge("br2", 1500, False, None),
        SetMaster("eth1", "br2"),
        SetUp("br2", True),
    ]


def test_plan_json_is_serialisable() -> None:
    ops = plan(make_state([ETH1]), make_state([ETH1.evolve(master="bond0"), bond()]))
    assert [op.to_json()["op"] for op in ops] == ["CreateBond", "SetMaster", "SetUp"]
