"""Request parsing: every rule of docs/api.md with its exact message, and fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.request_cases import RefusedCase, assert_refused, bond, case_ids, net
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.model import BondConfig, NetConfig, NetworkConfig, Removal, SetupOptions
from vdsm_net.request import parse_config, parse_setup_request

E = ErrorKind


ERRORS: list[RefusedCase] = [
    # shape
    (None, E.BAD_PARAMS, "params: expected an object, got null"),
    ([], E.BAD_PARAMS, "params: expected an object, got array"),
    ({"foo": 1}, E.BAD_PARAMS, "params.foo: unknown attribute (value 1)"),
    ({"networks": []}, E.BAD_PARAMS, "networks: expected an object, got array"),
    ({"networks": None}, E.BAD_PARAMS, "networks: expected an object, got null"),
    ({"bondings": "x"}, E.BAD_PARAMS, "bondings: expected an object, got string"),
    ({"options": 3}, E.BAD_PARAMS, "options: expected an object, got number"),
    ({"networks": {1: {}}}, E.BAD_PARAMS, "networks: keys must be strings, got 1"),
    (net("x"), E.BAD_PARAMS, "networks.red: expected an object, got string"),
    (net({"foo": 1}), E.BAD_PARAMS, "networks.red.foo: unknown attribute (value 1)"),
    (net({"nic": "eth1", "a b": 1}), E.BAD_PARAMS,
     'networks.red."a b": unknown attribute (value 1)'),
    # names
    (net({}, ""), E.BAD_BRIDGE, 'networks: bad network name "" (empty name)'),
    (net({}, "a" * 16), E.BAD_BRIDGE,
     f'networks: bad network name "{"a" * 16}" (longer than 15 characters)'),
    (net({}, "a.b"), E.BAD_BRIDGE, "networks: bad network name \"a.b\" (contains '.')"),
    (net({}, "a:b"), E.BAD_BRIDGE, "networks: bad network name \"a:b\" (contains '/' or ':')"),
    (net({}, "a/b"), E.BAD_BRIDGE, "networks: bad network name \"a/b\" (contains '/' or ':')"),
    (net({}, "-ab"), E.BAD_BRIDGE, "networks: bad network name \"-ab\" (starts with '-')"),
    (net({}, "a b"), E.BAD_BRIDGE, 'networks: bad network name "a b" (only printable ASCII '
     "without white space is allowed)"),
    (net({}, "réd"), E.BAD_BRIDGE, 'networks: bad network name "r\\u00e9d" (only printable '
     "ASCII without white space is allowed)"),
    # southbound
    (net({"nic": 5}), E.BAD_PARAMS, "networks.red.nic: expected a string, got 5"),
    (net({"nic": "eth 1"}), E.BAD_NIC, 'networks.red.nic: bad NIC name "eth 1" (only printable '
     "ASCII without white space is allowed)"),
    (net({"bonding": "bnd0"}), E.BAD_BONDING,
     'networks.red.bonding: bad bond name "bnd0" (must match bond\\w+)'),
    (net({"nic": "eth1", "bonding": "bond0"}), E.BAD_PARAMS,
     'networks.red: nic "eth1" and bonding "bond0" are exclusive'),
    # vlan
    (net({"nic": "eth1", "vlan": 5000}), E.BAD_VLAN,
     "networks.red.vlan: expected 0-4094, got 5000"),
    (net({"nic": "eth1", "vlan": -1}), E.BAD_VLAN, "networks.red.vlan: expected 0-4094, got -1"),
    (net({"nic": "eth1", "vlan": "x1"}), E.BAD_VLAN,
     'networks.red.vlan: expected 0-4094, got "x1"'),
    (net({"nic": "eth1", "vlan": True}), E.BAD_VLAN,
     "networks.red.vlan: expected 0-4094, got true"),
    (net({"nic": "eth1", "vlan": 10.0}), E.BAD_VLAN,
     "networks.red.vlan: expected 0-4094, got 10.0"),
    (net({"nic": "eth1", "vlan": 10**5000}), E.BAD_VLAN,
     "networks.red.vlan: expected 0-4094, got a huge integer"),
    (net({"nic": "eth1", "vlan": "9" * 5000}), E.BAD_VLAN,
     f'networks.red.vlan: expected 0-4094, got "{"9" * 40}..."'),
    # mtu, bools, bootproto
    (net({"nic": "eth1", "mtu": 67}), E.BAD_PARAMS, "networks.red.mtu: expected 68-65535, got 67"),
    (net({"nic": "eth1", "mtu": 65536}), E.BAD_PARAMS,
     "networks.red.mtu: expected 68-65535, got 65536"),
    (net({"nic": "eth1", "mtu": None}), E.BAD_PARAMS,
     "networks.red.mtu: expected 68-65535, got null"),
    (net({"nic": "eth1", "bridged": "yes"}), E.BAD_PARAMS,
     'networks.red.bridged: expected a boolean, got "yes"'),
    (net({"nic": "eth1", "stp": 2}), E.BAD_PARAMS, "networks.red.stp: expected a boolean, got 2"),
    (net({"nic": "eth1", "defaultRoute": []}), E.BAD_PARAMS,
     "networks.red.defaultRoute: expected a boolean, got an array"),
    (net({"nic": "eth1", "bootproto": "static"}), E.BAD_PARAMS,
     'networks.red.bootproto: expected "none" or "dhcp", got "static"'),
    (net({"nic": "eth1", "bridged": False, "stp": True}), E.BAD_PARAMS,
     "networks.red.stp: a bridgeless network has no bridge"),
    # remove
    (net({"remove": False}), E.BAD_PARAMS, "networks.red.remove: only true is allowed, got false"),
    (net({"remove": "maybe"}), E.BAD_PARAMS,
     'networks.red.remove: expected a boolean, got "maybe"'),
    (net({"remove": True, "nic": "eth1", "mtu": 1500}), E.BAD_PARAMS,
     "networks.red: remove cannot be combined with other attributes (mtu, nic)"),
    (bond({"remove": True, "nics": ["eth1"]}), E.BAD_PARAMS,
     "bondings.bond0: remove cannot be combined with other attributes (nics)"),
    # isolated networks
    (net({"vlan": 10}), E.BAD_VLAN,
     "networks.red.vlan: a VLAN needs a nic or a bonding to ride on"),
    (net({"vlan": 10, "bridged": False}), E.BAD_VLAN,
     "networks.red.vlan: a VLAN needs a nic or a bonding to ride on"),
    (net({"bridged": False}), E.BAD_PARAMS,
     "networks.red.bridged: a bridgeless network needs a nic or a bonding"),
    (net({"ipaddr": "10.0.0.1", "prefix": 24}), E.BAD_PARAMS,
     "networks.red.ipaddr: an isolated network (no nic or bonding) takes no IP settings"),
    (net({"ipv6addr": "2001:db8::1/64"}), E.BAD_PARAMS,
     "networks.red.ipv6addr: an isolated network (no nic or bonding) takes no IP settings"),
    (net({"bootproto": "dhcp"}), E.BAD_PARAMS,
     "networks.red.bootproto: an isolated network (no nic or bonding) takes no IP settings"),
    (net({"defaultRoute": True}), E.BAD_PARAMS,
     "networks.red.defaultRoute: an isolated network (no nic or bonding) takes no IP settings"),
    # IPv4
    (net({"nic": "eth1", "ipaddr": "10.0.0.300", "prefix": 24}), E.BAD_ADDR,
     'networks.red.ipaddr: bad IPv4 address "10.0.0.300"'),
    (net({"nic": "eth1", "ipaddr": "2001:db8::1", "prefix": 24}), E.BAD_ADDR,
     'networks.red.ipaddr: bad IPv4 address "2001:db8::1"'),
    (net({"nic": "eth1", "ipaddr": 167772161, "prefix": 24}), E.BAD_ADDR,
     "networks.red.ipaddr: expected a string, got 167772161"),
    (net({"nic": "eth1", "ipaddr": "0.0.0.0", "prefix": 24}), E.BAD_ADDR,
     "networks.red.ipaddr: 0.0.0.0 cannot be used as IPv4 address"),
    (net({"nic": "eth1", "ipaddr": "224.0.0.1", "prefix": 24}), E.BAD_ADDR,
     "networks.red.ipaddr: 224.0.0.1 cannot be used as IPv4 address"),
    (net({"nic": "eth1", "ipaddr": "10.0.0.1"}), E.BAD_ADDR,
     "networks.red.ipaddr: needs netmask or prefix"),
    (net({"nic": "eth1", "ipaddr": "10.0.0.1", "prefix": 33}), E.BAD_ADDR,
     "networks.red.prefix: expected 0-32, got 33"),
    (net({"nic": "eth1", "ipaddr": "10.0.0.1", "netmask": "255.0.255.0"}), E.BAD_ADDR,
     'networks.red.netmask: bad netmask "255.0.255.0"'),
    (net({"nic": "eth1", "ipaddr": "10.0.0.1", "netmask": "0.0.0.255"}), E.BAD_ADDR,
     'networks.red.netmask: bad netmask "0.0.0.255"'),
    (net({"nic": "eth1", "ipaddr": "10.0.0.1", "netmask": "24"}), E.BAD_ADDR,
     'networks.red.netmask: bad netmask "24"'),
    (net({"nic": "eth1", "ipaddr": "10.0.0.1", "netmask": "255.0.0.0", "prefix": 8}),
     E.BAD_PARAMS, "networks.red: netmask and prefix are exclusive"),
    (net({"nic": "eth1", "prefix": 8}), E.BAD_ADDR, "networks.red.prefix: needs ipaddr"),
    (net({"nic": "eth1", "netmask": "255.0.0.0"}), E.BAD_ADDR,
     "networks.red.netmask: needs ipaddr"),
    (net({"nic": "eth1", "gateway": "10.0.0.1"}), E.BAD_ADDR,
     "networks.red.gateway: needs ipaddr"),
    (net({"nic": "eth1", "ipaddr": "10.0.0.2", "prefix": 24, "gateway": "10.0.1.1"}),
     E.BAD_ADDR, "networks.red.gateway: 10.0.1.1 is not in 10.0.0.0/24, the subnet of ipaddr "
     "10.0.0.2/24"),
    (net({"nic": "eth1", "ipaddr": "10.0.0.2", "prefix": 32, "gateway": "10.0.0.1"}),
     E.BAD_ADDR, "networks.red.gateway: 10.0.0.1 is not in 10.0.0.2/32, the subnet of ipaddr "
     "10.0.0.2/32"),
    (net({"nic": "eth1", "ipaddr": "10.0.0.2", "prefix": 8, "gateway": "2001:db8::1"}),
     E.BAD_ADDR, 'networks.red.gateway: bad IPv4 gateway "2001:db8::1"'),
    (net({"nic": "eth1", "ipaddr": "10.0.0.2", "prefix": 8, "gateway": "255.255.255.255"}),
     E.BAD_ADDR, "networks.red.gateway: 255.255.255.255 cannot be used as IPv4 gateway"),
    (net({"nic": "eth1", "bootproto": "dhcp", "ipaddr": "10.0.0.2", "prefix": 8}),
     E.BAD_PARAMS, "networks.red.ipaddr: a static address conflicts with bootproto dhcp"),
    (net({"nic": "eth1", "bootproto": "dhcp", "dhcpv6": True}), E.BAD_PARAMS,
     "networks.red.dhcpv6: DHCPv6 is not supported by this agent; use ipv6autoconf (SLAAC) "
     "or a static ipv6addr"),
    (net({"nic": "eth1", "bootproto": "dhcp", "blockingdhcp": "soon"}), E.BAD_PARAMS,
     'networks.red.blockingdhcp: expected a boolean, got "soon"'),
    (net({"ipv6autoconf": True}), E.BAD_PARAMS,
     "networks.red.ipv6autoconf: an isolated network (no nic or bonding) takes no IP settings"),
    # IPv6
    (net({"nic": "eth1", "ipv6addr": "2001:db8::1"}), E.BAD_ADDR,
     'networks.red.ipv6addr: expected addr/prefixlen, got "2001:db8::1"'),
    (net({"nic": "eth1", "ipv6addr": "2001:db8::1/129"}), E.BAD_ADDR,
     'networks.red.ipv6addr: expected addr/prefixlen, got "2001:db8::1/129"'),
    (net({"nic": "eth1", "ipv6addr": "10.0.0.1/24"}), E.BAD_ADDR,
     'networks.red.ipv6addr: expected addr/prefixlen, got "10.0.0.1/24"'),
    (net({"nic": "eth1", "ipv6addr": "fe80::1/64"}), E.BAD_ADDR,
     "networks.red.ipv6addr: fe80::1 cannot be a static global address"),
    (net({"nic": "eth1", "ipv6gateway": "10.0.0.1"}), E.BAD_ADDR,
     'networks.red.ipv6gateway: bad IPv6 gateway "10.0.0.1"'),
    (net({"nic": "eth1", "ipv6gateway": "fe80::1%eth1"}), E.BAD_ADDR,
     'networks.red.ipv6gateway: bad IPv6 gateway "fe80::1%eth1"'),
    # two default routes
    ({"networks": {"a": {"nic": "eth1", "defaultRoute": True},
                   "b": {"nic": "eth2", "defaultRoute": "true"}}}, E.BAD_PARAMS,
     "networks: defaultRoute is set on more than one network (a, b)"),
    # bondings
    (bond({"nics": ["eth1"]}, "bond"), E.BAD_BONDING,
     'bondings: bad bond name "bond" (must match bond\\w+)'),
    (bond({"nics": ["eth1"]}, "bond-1"), E.BAD_BONDING,
     'bondings: bad bond name "bond-1" (must match bond\\w+)'),
    (bond({"nics": ["eth1"]}, "bond" + "x" * 12), E.BAD_BONDING,
     f'bondings: bad bond name "bond{"x" * 12}" (longer than 15 characters)'),
    (bond({"nics": ["eth1"]}, "bondé"), E.BAD_BONDING,
     'bondings: bad bond name "bond\\u00e9" (must match bond\\w+)'),
    (bond([]), E.BAD_PARAMS, "bondings.bond0: expected an object, got array"),
    (bond({"nics": ["eth1"], "slaves": []}), E.BAD_PARAMS,
     "bondings.bond0.slaves: unknown attribute (value an array)"),
    (bond({}), E.BAD_PARAMS, "bondings.bond0.nics: missing (a bond needs at least one NIC)"),
    (bond({"nics": []}), E.BAD_PARAMS,
     "bondings.bond0.nics: a bond needs at least one NIC, got []"),
    (bond({"nics": "eth1"}), E.BAD_BONDING,
     'bondings.bond0.nics: expected a non-empty list of NIC names, got "eth1"'),
    (bond({"nics": [1]}), E.BAD_BONDING, "bondings.bond0.nics: expected a string, got 1"),
    (bond({"nics": ["eth/1"]}), E.BAD_NIC,
     "bondings.bond0.nics: bad NIC name \"eth/1\" (contains '/' or ':')"),
    (bond({"nics": ["eth1", "eth1"]}), E.BAD_BONDING, "bondings.bond0.nics: eth1 is listed twice"),
    # bonding options
    (bond({"nics": ["eth1"], "options": 4}), E.BAD_BONDING,
     "bondings.bond0.options: expected a string, got 4"),
    (bond({"nics": ["eth1"], "options": "mode"}), E.BAD_BONDING,
     'bondings.bond0.options: expected key=value, got "mode"'),
    (bond({"nics": ["eth1"], "options": "mode="}), E.BAD_BONDING,
     'bondings.bond0.options: expected key=value, got "mode="'),
    (bond({"nics": ["eth1"], "options": "speed=10"}), E.BAD_BONDING,
     'bondings.bond0.options: unknown bonding option "speed"'),
    (bond({"nics": ["eth1"], "options": "active_slave=eth1"}), E.BAD_BONDING,
     'bondings.bond0.options: bonding option active_slave cannot be set (value "eth1"): the '
     "driver picks it at run time; use primary"),
    (bond({"nics": ["eth1"], "options": "mode=1 mode=2"}), E.BAD_BONDING,
     "bondings.bond0.options: option mode is given twice"),
    (bond({"nics": ["eth1"], "options": "mode=7"}), E.BAD_BONDING,
     "bondings.bond0.options: mode: expected one of balance-rr, active-backup, balance-xor, "
     "broadcast, 802.3ad, balance-tlb, balance-alb, got '7'"),
    (bond({"nics": ["eth1"], "options": "miimon=-5"}), E.BAD_BONDING,
     "bondings.bond0.options: miimon: expected an integer 0-2147483647, got '-5'"),
    (bond({"nics": ["eth1"], "options": "miimon=²"}), E.BAD_BONDING,
     'bondings.bond0.options: miimon: bad value "\\u00b2"'),
    (bond({"nics": ["eth1"], "options": "miimon=" + "9" * 100}), E.BAD_BONDING,
     f'bondings.bond0.options: miimon: bad value "{"9" * 40}..."'),
    (bond({"nics": ["eth1"], "options": "use_carrier=2"}), E.BAD_BONDING,
     "bondings.bond0.options: use_carrier: expected 0 or 1, got '2'"),
    (bond({"nics": ["eth1"], "options": "primary=a:b"}), E.BAD_BONDING,
     'bondings.bond0.options: primary: bad NIC name "a:b"'),
    # options
    ({"options": {"rollback": True}}, E.BAD_PARAMS,
     "options.rollback: unknown attribute (value true)"),
    ({"options": {"connectivityCheck": "no"}}, E.BAD_PARAMS,
     'options.connectivityCheck: expected a boolean, got "no"'),
    ({"options": {"connectivityTimeout": 0}}, E.BAD_PARAMS,
     "options.connectivityTimeout: expected a number of seconds > 0, got 0"),
    ({"options": {"connectivityTimeout": "5.5"}}, E.BAD_PARAMS,
     'options.connectivityTimeout: expected a number of seconds > 0, got "5.5"'),
    ({"options": {"connectivityTimeout": "0"}}, E.BAD_PARAMS,
     'options.connectivityTimeout: expected a number of seconds > 0, got "0"'),
    ({"options": {"connectivityTimeout": float("inf")}}, E.BAD_PARAMS,
     "options.connectivityTimeout: expected a number of seconds > 0, got inf"),
    ({"options": {"connectivityTimeout": 10**400}}, E.BAD_PARAMS,
     "options.connectivityTimeout: expected a number of seconds > 0, got a huge integer"),
    ({"options": {"dryRun": None}}, E.BAD_PARAMS, "options.dryRun: expected a boolean, got null"),
    ({"options": {"commitOnSuccess": 2}}, E.BAD_PARAMS,
     "options.commitOnSuccess: expected a boolean, got 2"),
]


@pytest.mark.parametrize(("params", "kind", "message"), ERRORS, ids=case_ids(ERRORS))
def test_rejects_with_exact_message(params: Any, kind: ErrorKind, message: str) -> None:
    assert_refused(params, kind, message)


def test_empty_request() -> None:
    request = parse_setup_request({}, default_timeout=30)
    assert dict(request.networks) == {} and dict(request.bondings) == {}
    assert request.options == SetupOptions(connectivity_timeout=30)


def test_full_network_resolves_every_attribute() -> None:
    request = parse_setup_request(
        net({
            "nic": "eth1", "vlan": "100", "mtu": "9000", "bridged": "false",
            "ipaddr": "10.1.2.3", "netmask": "255.255.252.0", "gateway": "10.1.0.1",
            "ipv6addr": "2001:DB8:0:0::7/64", "ipv6gateway": "2001:db8:0::1",
            "defaultRoute": 1,
        })
    )
    assert request.networks["red"] == NetworkConfig(
        name="red", nic="eth1", vlan=100, mtu=9000, bridged=False, ipv4="10.1.2.3/22",
        gateway="10.1.0.1", ipv6="2001:db8::7/64", ipv6gateway="2001:db8::1",
        default_route=True,
    )


def test_defaults_and_removal() -> None:
    request = parse_setup_request(
        {"networks": {"iso": {}, "old": {"remove": "true"}}, "bondings": {"bond1": {"remove": 1}}}
    )
    assert request.networks["iso"] == NetworkConfig(name="iso")
    assert request.networks["old"] == Removal("old")
    assert request.bondings["bond1"] == Removal("bond1")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("", {"mode": "balance-rr"}),
        ("mode=4 miimon=100", {"mode": "802.3ad", "miimon": "100"}),
        ("  lacp_rate=1   mode=802.3ad ", {"mode": "802.3ad", "lacp_rate": "fast"}),
        ("miimon=0100 xmit_hash_policy=layer3+4", {"mode": "balance-rr", "miimon": "100",
                                                   "xmit_hash_policy": "layer3+4"}),
        ("primary=eth2 mode=active-backup", {"mode": "active-backup", "primary": "eth2"}),
    ],
)
def test_bond_options_are_normalised(options: str, expected: dict[str, str]) -> None:
    request = parse_setup_request(bond({"nics": ["eth1", "eth2"], "options": options}))
    parsed = request.bondings["bond0"]
    assert isinstance(parsed, BondConfig)
    assert dict(parsed.options) == expected
    assert next(iter(parsed.options)) == "mode"
    assert parsed.nics == ("eth1", "eth2")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), ("true", True), (1, True), ("1", True),
     (False, False), ("false", False), (0, False), ("0", False)],
)
def test_option_booleans(value: object, expected: bool) -> None:
    opts = parse_setup_request({"options": {"connectivityCheck": value, "dryRun": value}}).options
    assert opts.connectivity_check is expected and opts.dry_run is expected


def test_connectivity_timeout() -> None:
    assert parse_setup_request({"options": {"connectivityTimeout": 2.5}}).options == SetupOptions(
        connectivity_timeout=2.5
    )
    # VDSM's int(connectivityTimeout): a string of digits is seconds.
    assert parse_setup_request({"options": {"connectivityTimeout": "30"}}).options == (
        SetupOptions(connectivity_timeout=30.0))


def test_config_round_trip() -> None:
    config = NetConfig(
        networks={
            "red": NetworkConfig(name="red", nic="eth1", vlan=5, mtu=9000, ipv4="10.0.0.1/24",
                                 gateway="10.0.0.254", default_route=True),
            "iso": NetworkConfig(name="iso", stp=True),
            "blue": NetworkConfig(name="blue", bonding="bond0", bridged=False,
                                  ipv6="2001:db8::1/64"),
        },
        bondings={"bond0": BondConfig("bond0", ("eth2", "eth3"),
                                      {"mode": "802.3ad", "miimon": "100"})},
    )
    assert parse_config(config.to_json()) == config


def test_config_refuses_removals() -> None:
    with pytest.raises(NetError) as info:
        parse_config({"networks": {"red": {"remove": True}}})
    assert info.value.message == "networks.red.remove: not allowed in a config"


# ---- fuzzing: any input shape yields NetError or a request, never another exception -------

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.sampled_from(["eth1", "bond0", "100", "true", "10.0.0.1", "255.255.255.0",
                       "2001:db8::1/64", "mode=4 miimon=100", "dhcp", "none", ""])
)
_keys = st.sampled_from(
    ["nic", "bonding", "vlan", "mtu", "bridged", "stp", "ipaddr", "netmask", "prefix", "gateway",
     "ipv6addr", "ipv6gateway", "bootproto", "defaultRoute", "remove", "nics", "options",
     "connectivityCheck", "connectivityTimeout", "dryRun", "red", "bond0"]
) | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)
_params = st.fixed_dictionaries(
    {},
    optional={
        "networks": st.dictionaries(_keys, st.dictionaries(_keys, _json, max_size=6) | _json,
                                    max_size=3),
        "bondings": st.dictionaries(_keys, st.dictionaries(_keys, _json, max_size=3) | _json,
                                    max_size=2),
        "options": st.dictionaries(_keys, _json, max_size=3) | _json,
    },
) | _json


@settings(max_examples=400, deadline=None)
@given(_params)
def test_any_input_gives_a_request_or_net_error(params: Any) -> None:
    try:
        request = parse_setup_request(params)
    except NetError as exc:
        assert exc.message and int(exc.kind) in {21, 22, 23, 25, 26, 27}
    else:
        assert isinstance(request.options, SetupOptions)


def test_dhcp_network_is_accepted() -> None:
    request = parse_setup_request({"networks": {"red": {
        "nic": "eth1", "bootproto": "dhcp", "blockingdhcp": True, "dhcpv6": False,
        "ipv6autoconf": "true"}}})
    red = request.networks["red"]
    assert isinstance(red, NetworkConfig)
    assert (red.dhcpv4, red.blocking_dhcp, red.ipv6autoconf, red.ipv4) == (True, True, True, None)
    assert red.to_attrs()["bootproto"] == "dhcp"
    assert parse_config({"networks": {"red": red.to_attrs()}}).networks["red"] == red
