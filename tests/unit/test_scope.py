"""scope_of(): which networks, devices and routing tables a setupNetworks touches, and the
proof that planning the scope alone gives the plan of the whole config (on a kernel that
matches the running config outside the scope)."""

from __future__ import annotations

import random
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

import pytest

from vdsm_net.errors import NetError
from vdsm_net.merge import merge
from vdsm_net.model import NetConfig
from vdsm_net.planner import plan
from vdsm_net.render import network_table, render
from vdsm_net.request import parse_config, parse_setup_request
from vdsm_net.scope import (
    MAX_DEVICES,
    ReadScope,
    base_floor,
    in_scope,
    is_closed,
    scope_of,
)
from vdsm_net.state import BRIDGE, MAIN_TABLE, Device, KernelState, Route, make_state

RUNNING = parse_config({
    "networks": {
        "red": {"nic": "eth1", "vlan": 10, "mtu": 9000},
        "blue": {"nic": "eth1", "vlan": 20},
        "green": {"nic": "eth2", "ipaddr": "192.0.2.5", "prefix": 24, "gateway": "192.0.2.1"},
        "mgmt": {"nic": "eth0", "bridged": False, "ipaddr": "10.0.0.5", "prefix": 24,
                 "gateway": "10.0.0.1", "defaultRoute": True},
        "iso": {},
        "storage": {"bonding": "bond0", "vlan": 30},
        "backup": {"bonding": "bond0", "bridged": False},
    },
    "bondings": {"bond0": {"nics": ["eth4", "eth5"], "options": "mode=active-backup"}},
})


def scope(networks: dict[str, Any], bondings: dict[str, Any] | None = None,
          running: NetConfig = RUNNING) -> ReadScope | None:
    request = parse_setup_request({"networks": networks, "bondings": bondings or {}})
    return scope_of(running, request)


# (request networks, networks in scope, devices read, (family, table) read)
CASES: list[tuple[str, dict[str, Any], set[str], set[str], set[tuple[int, int]]]] = [
    ("MTU of a network alone on its NIC",
     {"green": {"nic": "eth2", "mtu": 9000}},
     {"green"}, {"green", "eth2"}, {(4, network_table("green"))}),
    ("a network sharing its NIC with a VLAN network: the NIC, not the other's devices",
     {"blue": {"nic": "eth1", "vlan": 20, "mtu": 4000}},
     {"blue"}, {"blue", "eth1", "eth1.20"}, set()),
    ("a network moving to another NIC: both NICs and the untagged network on the new one",
     {"blue": {"nic": "eth2", "vlan": 20}},
     {"blue", "green"},
     {"blue", "green", "eth1", "eth1.20", "eth2", "eth2.20"},
     {(4, network_table("green"))}),
    ("a network on a bond: the bond and its slaves, not the bond's VLAN networks",
     {"backup": {"bonding": "bond0", "bridged": False, "mtu": 9000}},
     {"backup"}, {"backup", "bond0", "eth4", "eth5"}, set()),
    ("a VLAN network on a bond: the untagged network on the bond too",
     {"storage": {"bonding": "bond0", "vlan": 30, "mtu": 9000}},
     {"storage", "backup"}, {"storage", "backup", "bond0", "bond0.30", "eth4", "eth5"}, set()),
    ("a removed network",
     {"red": {"remove": True}},
     {"red"}, {"red", "eth1", "eth1.10"}, set()),
    ("a new network on a NIC no network uses",
     {"new": {"nic": "eth3", "vlan": 5}},
     {"new"}, {"new", "eth3", "eth3.5"}, set()),
    ("an isolated network shares nothing",
     {"iso": {"mtu": 9000}},
     {"iso"}, {"iso"}, set()),
    ("the default-route network: its gateway's table is read (the main table)",
     {"mgmt": {"nic": "eth0", "bridged": False, "ipaddr": "10.0.0.6", "prefix": 24,
               "gateway": "10.0.0.1", "defaultRoute": True}},
     {"mgmt"}, {"mgmt", "eth0"}, {(4, MAIN_TABLE)}),
]


@pytest.mark.parametrize(("request_nets", "networks", "devices", "tables"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_scope_of(request_nets: dict[str, Any], networks: set[str], devices: set[str],
                  tables: set[tuple[int, int]]) -> None:
    got = scope(request_nets)
    assert got is not None
    assert set(got.networks) == networks
    assert set(got.devices) == devices
    assert set(got.tables) == tables


def test_a_request_naming_a_bond_needs_the_whole_state() -> None:
    assert scope({}, {"bond0": {"nics": ["eth4"], "options": "mode=active-backup"}}) is None
    assert scope({"green": {"nic": "eth2"}}, {"bond1": {"nics": ["eth3"]}}) is None


def test_taking_the_default_route_or_adopting_a_bond_needs_the_whole_state() -> None:
    # mgmt holds the default route: moving it changes mgmt too (merge), outside the scope.
    green = {"nic": "eth2", "ipaddr": "192.0.2.5", "prefix": 24, "gateway": "192.0.2.1",
             "defaultRoute": True}
    assert scope({"green": green}) is None
    # The default-route network itself, redefined: nothing moves.
    mgmt = {"nic": "eth0", "bridged": False, "ipaddr": "10.0.0.6", "prefix": 24,
            "gateway": "10.0.0.1", "defaultRoute": True}
    assert scope({"mgmt": mgmt}) is not None
    # A bond the config does not define: merge may adopt it.
    assert scope({"green": {"bonding": "bond7"}}) is None


def test_a_large_request_needs_the_whole_state() -> None:
    many = {f"n{i}": {"nic": f"nic{i}"} for i in range(MAX_DEVICES // 2 + 1)}
    assert scope(many) is None
    few = {f"n{i}": {"nic": f"nic{i}"} for i in range(MAX_DEVICES // 2)}
    assert scope(few) is not None


def test_scope_round_trips_through_json() -> None:
    got = scope({"blue": {"nic": "eth2", "vlan": 20}})
    assert got is not None
    assert ReadScope.from_json(got.to_json()) == got


def test_closed_only_if_masters_and_bases_are_in_scope() -> None:
    s = ReadScope(frozenset({"red", "eth1", "eth1.10"}))
    vlan = Device("eth1.10", "vlan", 1500, True, master="red", owned=True, vlan_base="eth1",
                  vlan_id=10)
    red = Device("red", BRIDGE, 1500, True, owned=True)
    nic = Device("eth1", "", 1500, True)
    assert is_closed(make_state([vlan, red, nic]), s)
    # eth1 enslaved to a bridge the scope does not name (foreign, or a failed change's)
    assert not is_closed(make_state([vlan, red, nic.evolve(master="virbr0")]), s)
    assert not is_closed(make_state([vlan.evolve(vlan_base="eth9"), red, nic]), s)
    assert not is_closed(make_state([red, nic, Device("tap0", "tun", 1500, True)]), s)


# ---- scoped plan == whole plan ----------------------------------------------------------

NICS = [Device(f"eth{i}", "", 1500, True, mac=f"52:54:00:00:00:{i:02x}") for i in range(8)]
# The host's own default route, on no network.
HOST_ROUTE = Route(4, IPv4Address("10.9.9.1"), "eth7")


def kernel_of(running: NetConfig) -> KernelState:
    """A kernel that matches ``running``: NICs, what render makes, a VM tap and a foreign
    bridge (neither managed)."""
    base = make_state(NICS, {HOST_ROUTE})
    want = render(running, base, NetConfig())
    devices = {d.name: d for d in NICS}
    for name, d in want.devices.items():
        devices[name] = d.evolve(mac=d.mac or "02:00:00:00:00:01")
    bridges = sorted(n for n, d in devices.items() if d.kind == BRIDGE)
    devices["tap0"] = Device("tap0", "tun", 1500, True, master=bridges[0] if bridges else None)
    devices["virbr0"] = Device("virbr0", BRIDGE, 1500, True)
    # The kernel refuses a second default route of the same metric in a table.
    taken = {(r.family, r.table) for r in want.routes}
    host = {HOST_ROUTE} if (4, MAIN_TABLE) not in taken else set()
    return make_state(list(devices.values()), set(want.routes) | host)


def scoped_view(state: KernelState, s: ReadScope) -> KernelState:
    """What Backend.read_state(scope) returns for ``state``."""
    devices = [d for d in state.devices.values() if d.name in s.devices]
    routes = {r for r in state.routes if r.device in s.devices or (r.family, r.table) in s.tables}
    return make_state(devices, routes)


def random_network(rng: random.Random, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"mtu": rng.choice([1500, 4000, 9000])}
    where = rng.random()
    if where < 0.15:
        return attrs  # isolated
    if where < 0.35:
        attrs["bonding"] = rng.choice(["bond0", "bond1"])
    else:
        attrs["nic"] = rng.choice(["eth0", "eth1", "eth2", "eth3"])
    if rng.random() < 0.6:
        attrs["vlan"] = rng.randint(1, 4)
    attrs["bridged"] = rng.random() < 0.7
    return with_random_ip(rng, attrs, 0.3)


BONDS = {"bond0": {"nics": ["eth4", "eth5"], "options": "mode=active-backup"},
         "bond1": {"nics": ["eth6"], "options": "mode=balance-rr"}}


def random_case(rng: random.Random) -> tuple[NetConfig, dict[str, Any]] | None:
    nets = {f"net{i}": random_network(rng, f"net{i}") for i in range(rng.randint(1, 7))}
    try:
        running = merge(NetConfig(), parse_setup_request({"networks": nets, "bondings": BONDS}),
                        make_state(NICS))
    except NetError:
        return None
    changes: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        name = rng.choice([*sorted(running.networks), "new1", "new2"])
        if name in running.networks and rng.random() < 0.25:
            changes[name] = {"remove": True}
        else:
            changes[name] = random_network(rng, name)
    return running, changes


def random_vlan_network(rng: random.Random) -> dict[str, Any]:
    """Mostly VLANs on few bases, so that most networks of a base lie outside a scope."""
    attrs: dict[str, Any] = {"mtu": rng.choice([1500, 4000, 9000])}
    if rng.random() < 0.2:
        attrs["bonding"] = "bond0"
    else:
        attrs["nic"] = rng.choice(["eth0", "eth1", "eth2"])
    if rng.random() < 0.85:
        attrs["vlan"] = rng.randint(1, 40)
    attrs["bridged"] = rng.random() < 0.7
    return with_random_ip(rng, attrs, 0.2)


def with_random_ip(rng: random.Random, attrs: dict[str, Any], chance: float) -> dict[str, Any]:
    """With probability ``chance``, a static IPv4 with a gateway, the default route with the
    same probability."""
    if rng.random() < chance:
        attrs.update(ipaddr=f"192.0.{rng.randint(1, 200)}.5", prefix=24)
        attrs["gateway"] = attrs["ipaddr"][:-1] + "1"
        attrs["defaultRoute"] = rng.random() < chance
    return attrs


def random_vlan_case(rng: random.Random) -> tuple[NetConfig, dict[str, Any]] | None:
    """Many VLAN networks on few NICs; the request changes (MTU, base, VLAN), removes or
    adds one or two of them."""
    nets = {f"net{i}": random_vlan_network(rng) for i in range(rng.randint(2, 14))}
    try:
        running = merge(NetConfig(), parse_setup_request({"networks": nets, "bondings": BONDS}),
                        make_state(NICS))
    except NetError:
        return None
    changes: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        name = rng.choice([*sorted(running.networks), "new1"])
        old = running.networks.get(name)
        if old is not None and rng.random() < 0.3:
            changes[name] = {"remove": True}
        elif old is not None and rng.random() < 0.6:
            attrs = old.to_attrs()
            attrs["mtu"] = rng.choice([1500, 4000, 9000])  # the MTU of one
            changes[name] = attrs
        else:
            changes[name] = random_vlan_network(rng)
    return running, changes


@pytest.mark.parametrize("generate", [random_case, random_vlan_case])
def test_scoped_plan_equals_the_whole_plan(
    generate: Callable[[random.Random], tuple[NetConfig, dict[str, Any]] | None],
) -> None:
    rng = random.Random(1234)
    compared = 0
    left_out = 0
    for _ in range(3000):
        case = generate(rng)
        if case is None:
            continue
        running, changes = case
        try:
            request = parse_setup_request({"networks": changes})
        except NetError:
            continue
        current = kernel_of(running)
        try:
            whole_config = merge(running, request, current)
        except NetError as exc:
            s = scope_of(running, request)
            if s is None:  # the whole state: nothing to compare
                continue
            view = scoped_view(current, s)
            if not is_closed(view, s):
                continue
            with pytest.raises(NetError) as scoped_exc:
                merge(running, request, view)
            assert scoped_exc.value.message == exc.message
            continue
        whole = plan(current, render(whole_config, current, running))
        s = scope_of(running, request)
        if s is None:  # a default route moved, a bond adopted: read whole, nothing to compare
            continue
        view = scoped_view(current, s)
        assert is_closed(view, s), (running, changes)
        config = merge(running, request, view)
        assert config == whole_config
        floor = base_floor(config, s)
        left_out += bool(floor)
        desired = render(in_scope(config, s), view, in_scope(running, s), floor)
        assert set(desired.devices) <= s.devices
        scoped = plan(view, desired)
        assert [op.to_json() for op in scoped] == [op.to_json() for op in whole], (
            running.to_json(), changes)
        compared += 1
    assert compared > 1000
    # The VLAN cases exercise the narrow scope: networks of a base left out of it.
    assert left_out > (500 if generate is random_vlan_case else 0)
