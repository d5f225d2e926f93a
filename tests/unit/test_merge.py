"""merge(): removals, replacements and every semantic rule, with its exact message."""

from __future__ import annotations

from typing import Any

import pytest

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import bond_options
from vdsm_net.merge import merge
from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.request import parse_config, parse_setup_request
from vdsm_net.state import Device, KernelState, make_state

E = ErrorKind

CURRENT = make_state(
    [
        Device("lo", "", 65536, True),
        Device("eth0", "", 1500, True),
        Device("eth1", "", 1500, True),
        Device("eth2", "", 1500, True),
        Device("eth3", "", 1500, True, master="br-ext"),
        Device("br-ext", "bridge", 1500, True),  # not the agent's (libvirt's, say)
        Device("red", "veth", 1500, True),  # a foreign device named like a network
        Device("eth0.7", "vlan", 1500, True, vlan_base="eth0", vlan_id=7),  # foreign VLAN
        Device("verylongnic0", "", 1500, True),
        Device("blue", "bridge", 1500, True, owned=True),
        Device("bond9", "bond", 1500, True, owned=True),
        Device("bond5", "bond", 1500, True),  # foreign bond
        Device("vnet0", "tun", 1500, True),  # a VM's tap
        Device("vx0", "vxlan", 1500, True),
    ]
)
RUNNING = parse_config(
    {
        "networks": {
            "blue": {"nic": "eth1", "vlan": 10},
            "green": {"bonding": "bond9", "bridged": False},
        },
        "bondings": {"bond9": {"nics": ["eth2"]}},
    }
)


def run(params: dict[str, Any], running: NetConfig = RUNNING,
        current: KernelState = CURRENT) -> NetConfig:
    return merge(running, parse_setup_request(params), current)


ERRORS: list[tuple[dict[str, Any], ErrorKind, str]] = [
    ({"networks": {"pink": {"remove": True}}}, E.BAD_BRIDGE,
     "networks.pink: cannot remove pink: it is not configured"),
    ({"bondings": {"bond7": {"remove": True}}}, E.BAD_BONDING,
     "bondings.bond7: cannot remove bond7: it is not configured"),
    ({"bondings": {"bond9": {"remove": True}}}, E.USED_BOND,
     "bondings.bond9: cannot remove bond bond9: used by network green"),
    ({"networks": {"pink": {"bonding": "bond7"}}}, E.BAD_BONDING,
     "networks.pink.bonding: no such bond bond7"),
    ({"networks": {"pink": {"nic": "eth2"}}}, E.USED_NIC,
     "networks.pink.nic: eth2 is a slave of bond bond9 and cannot carry a network"),
    ({"bondings": {"bond1": {"nics": ["eth2", "eth0"]}}}, E.USED_NIC,
     "bondings.bond9.nics: eth2 is already a slave of bond1"),
    ({"bondings": {"bond1": {"nics": ["eth1"]}}}, E.USED_NIC,
     "networks.blue.nic: eth1 is a slave of bond bond1 and cannot carry a network"),
    ({"networks": {"pink": {"nic": "eth9"}}}, E.BAD_NIC, "networks.pink.nic: no such NIC eth9"),
    ({"networks": {"pink": {"nic": "blue"}}}, E.BAD_NIC,
     "networks.pink.nic: blue is not a NIC (it is an owned bridge)"),
    ({"networks": {"pink": {"nic": "br-ext"}}}, E.BAD_NIC,
     "networks.pink.nic: br-ext is not a NIC (it is a bridge)"),
    ({"networks": {"pink": {"nic": "eth0.7"}}}, E.BAD_NIC,
     "networks.pink.nic: eth0.7 is not a NIC (it is a vlan)"),
    ({"networks": {"pink": {"nic": "vnet0"}}}, E.BAD_NIC,
     "networks.pink.nic: vnet0 is not a NIC (it is a tun)"),
    ({"bondings": {"bond1": {"nics": ["eth0", "vx0"]}}}, E.BAD_NIC,
     "bondings.bond1.nics: vx0 is not a NIC (it is a vxlan)"),
    ({"networks": {"pink": {"nic": "eth3"}}}, E.USED_NIC,
     "networks.pink.nic: eth3 is already used by br-ext, which the agent does not own"),
    ({"bondings": {"bond1": {"nics": ["eth0", "eth8"]}}}, E.BAD_NIC,
     "bondings.bond1.nics: no such NIC eth8"),
    ({"bondings": {"bond1": {"nics": ["eth3"]}}}, E.USED_NIC,
     "bondings.bond1.nics: eth3 is already used by br-ext, which the agent does not own"),
    ({"networks": {"red": {"nic": "eth0"}}}, E.BAD_BRIDGE,
     "networks.red: the name red is taken by a device that the agent does not own (veth)"),
    ({"networks": {"eth0": {"nic": "eth1", "vlan": 11}}}, E.BAD_BRIDGE,
     "networks.eth0: the name eth0 is taken by a device that the agent does not own (physical)"),
    ({"networks": {"pink": {"nic": "eth0", "vlan": 7}}}, E.BAD_BRIDGE,
     "networks.pink.vlan: the name eth0.7 is taken by a device that the agent does not own "
     "(vlan)"),
    ({"bondings": {"bond5": {"nics": ["eth0"]}}}, E.BAD_BRIDGE,
     "bondings.bond5: the name bond5 is taken by a device that the agent does not own (bond)"),
    ({"networks": {"bond9": {"nic": "eth0"}}}, E.BAD_BRIDGE,
     "networks.bond9: the name bond9 is already used as a bond in the configuration"),
    ({"networks": {"eth1": {"nic": "eth0", "bridged": False}}}, E.BAD_BRIDGE,
     "networks.eth1: the name eth1 is already used as a NIC in the configuration"),
    ({"networks": {"pink": {"nic": "eth1", "vlan": 10}}}, E.BAD_PARAMS,
     "networks.pink: eth1 vlan 10 already carries network blue"),
    ({"networks": {"pink": {"bonding": "bond9"}}}, E.BAD_PARAMS,
     "networks.pink: bond9 already carries network green"),
    ({"networks": {"pink": {"nic": "verylongnic0", "vlan": 100}}}, E.BAD_VLAN,
     "networks.pink.vlan: VLAN device name verylongnic0.100 is longer than 15 characters"),
]


@pytest.mark.parametrize(("params", "kind", "message"), ERRORS, ids=[m for _, _, m in ERRORS])
def test_rejects_with_exact_message(params: dict[str, Any], kind: ErrorKind, message: str) -> None:
    with pytest.raises(NetError) as info:
        run(params)
    assert (info.value.kind, info.value.message) == (kind, message)


def test_default_route_given_to_another_network_moves_there() -> None:
    # VDSM: the network that had it loses it (and its name servers), keeping its gateway.
    running = parse_config({"networks": {"blue": {
        "nic": "eth1", "ipaddr": "10.0.0.2", "prefix": 24, "gateway": "10.0.0.1",
        "defaultRoute": True, "nameservers": ["10.0.0.53"]}}})
    config = run({"networks": {"pink": {"nic": "eth0", "defaultRoute": True}}}, running)
    assert [n for n, c in config.networks.items() if c.default_route] == ["pink"]
    blue = config.networks["blue"]
    assert (blue.gateway, blue.nameservers) == ("10.0.0.1", ())


def test_two_default_routes_in_one_request_are_refused() -> None:
    with pytest.raises(NetError) as info:
        run({"networks": {"pink": {"nic": "eth0", "defaultRoute": True},
                          "grey": {"nic": "eth1", "defaultRoute": True}}})
    assert (info.value.kind, info.value.message) == (
        E.BAD_PARAMS, "networks: defaultRoute is set on more than one network (grey, pink)"
    )


ADOPTABLE = make_state([
    Device("eth0", "", 1500, True),
    Device("eth1", "", 1500, True, master="bond8"),
    Device("eth2", "", 1500, True, master="bond8"),
    Device("bond8", "bond", 1500, True, mac="02:00:00:00:08:08",
           bond_options=bond_options.normalize({"mode": "802.3ad", "lacp_rate": "fast"})),
    Device("bond6", "bond", 1500, True),  # an installer's bond without slaves
])


def test_a_network_on_someone_elses_bond_adopts_it_as_it_is() -> None:
    config = run({"networks": {"pink": {"bonding": "bond8"}}}, NetConfig(), ADOPTABLE)
    bond = config.bondings["bond8"]
    assert (bond.nics, dict(bond.options), bond.hwaddr) == (
        ("eth1", "eth2"), {"mode": "802.3ad", "lacp_rate": "fast"}, "02:00:00:00:08:08")
    # Persisted, it reads back the same (the agent owns it from now on).
    assert parse_config(config.to_json()) == config


def test_a_slaveless_foreign_bond_is_not_adopted() -> None:
    with pytest.raises(NetError) as info:
        run({"networks": {"pink": {"bonding": "bond6"}}}, NetConfig(), ADOPTABLE)
    assert (info.value.kind, info.value.message) == (
        E.BAD_BONDING, "networks.pink.bonding: no such bond bond6 (a bond of that name has no "
        "slaves: nothing to adopt)")


def test_moving_the_default_route_in_one_request() -> None:
    running = parse_config({"networks": {"blue": {"nic": "eth1", "defaultRoute": True}}})
    config = run({"networks": {"blue": {"nic": "eth1"}, "pink": {"nic": "eth0",
                                                                  "defaultRoute": True}}}, running)
    assert [n for n, c in config.networks.items() if c.default_route] == ["pink"]


def test_replacement_takes_defaults_and_others_stay() -> None:
    config = run({"networks": {"blue": {"nic": "eth1", "vlan": 11}}})
    assert config.networks["blue"] == NetworkConfig(name="blue", nic="eth1", vlan=11)
    assert config.networks["green"] == RUNNING.networks["green"]
    assert config.bondings == RUNNING.bondings


def test_remove_network_and_its_bond_together() -> None:
    config = run({"networks": {"green": {"remove": True}}, "bondings": {"bond9": {"remove": True}}})
    assert sorted(config.networks) == ["blue"] and dict(config.bondings) == {}


def test_move_nic_from_network_into_a_bond() -> None:
    config = run({"networks": {"blue": {"remove": True}},
                  "bondings": {"bond1": {"nics": ["eth1"]}}})
    assert config.bondings["bond1"].nics == ("eth1",)


def test_own_devices_are_not_collisions() -> None:
    # The bridge "blue" and the bond "bond9" exist and are owned: re-sending is fine.
    config = run({"networks": {"blue": {"nic": "eth1", "vlan": 10, "mtu": 9000}},
                  "bondings": {"bond9": {"nics": ["eth2"], "options": "mode=1"}}})
    assert config.networks["blue"].mtu == 9000


def test_untouched_entries_are_not_rechecked_against_the_kernel() -> None:
    # The running config's NIC vanished (unplugged): unrelated changes still go through.
    gone = make_state([d for d in CURRENT.devices.values() if d.name != "eth1"])
    config = run({"networks": {"pink": {"nic": "eth0"}}}, current=gone)
    assert sorted(config.networks) == ["blue", "green", "pink"]


def test_isolated_networks_share_no_device_pair() -> None:
    config = run({"networks": {"iso1": {}, "iso2": {"stp": True}}})
    assert config.networks["iso1"].isolated and config.networks["iso2"].isolated


def test_tagged_and_untagged_on_one_nic() -> None:
    config = run({"networks": {"pink": {"nic": "eth1"}, "teal": {"nic": "eth1", "vlan": 12}}})
    assert {config.networks[n].vlan for n in ("blue", "pink", "teal")} == {10, None, 12}
