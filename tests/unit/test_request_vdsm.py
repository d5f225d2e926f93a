"""Request parsing of the attributes VDSM's engine sends beyond the basics: ``switch``,
``STP``, ``nameservers``, ``custom``/``bridge_opts``, a bond's ``hwaddr`` and every bonding
option (docs/api.md). Bad input: docs/api.md's code, and a message naming field and value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.request_cases import RefusedCase, assert_refused, bond, case_ids, net
from vdsm_net.errors import ErrorKind
from vdsm_net.model import NetConfig, Removal, frozen_map
from vdsm_net.request import parse_config, parse_setup_request

E = ErrorKind
MGMT = {"nic": "eth0", "ipaddr": "192.0.2.10", "prefix": 24, "gateway": "192.0.2.1",
        "defaultRoute": True}


ERRORS: list[RefusedCase] = [
    # switch
    (net({"nic": "eth0", "switch": "ovs"}), E.BAD_PARAMS,
     'networks.red.switch: only "legacy" is supported, got "ovs"'),
    (net({"nic": "eth0", "switch": 1}), E.BAD_PARAMS,
     'networks.red.switch: only "legacy" is supported, got 1'),
    (bond({"nics": ["eth1"], "switch": "ovs"}), E.BAD_PARAMS,
     'bondings.bond0.switch: only "legacy" is supported, got "ovs"'),
    # STP
    (net({"nic": "eth0", "STP": "maybe"}), E.BAD_PARAMS,
     'networks.red.STP: expected a boolean, got "maybe"'),
    # nameservers
    (net({**MGMT, "nameservers": "192.0.2.53"}), E.BAD_PARAMS,
     'networks.red.nameservers: expected a list of addresses, got "192.0.2.53"'),
    (net({**MGMT, "nameservers": ["192.0.2.300"]}), E.BAD_ADDR,
     'networks.red.nameservers: bad name server address "192.0.2.300"'),
    (net({**MGMT, "nameservers": [53]}), E.BAD_ADDR,
     "networks.red.nameservers: expected a string, got 53"),
    (net({**MGMT, "nameservers": ["0.0.0.0"]}), E.BAD_ADDR,
     'networks.red.nameservers: "0.0.0.0" cannot be a name server'),
    (net({"nic": "eth0", "nameservers": ["192.0.2.53"]}), E.BAD_PARAMS,
     'networks.red.nameservers: name servers (192.0.2.53) are allowed only on the '
     "defaultRoute network"),
    # custom, bridge_opts
    (net({"nic": "eth0", "custom": "x"}), E.BAD_PARAMS,
     "networks.red.custom: expected an object, got string"),
    (net({"nic": "eth0", "custom": {"bridge_opts": 1}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: expected a string, got 1"),
    (net({"nic": "eth0", "custom": {"bridge_opts": "nosuch=1"}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: unknown bridge option 'nosuch' (value '1')"),
    (net({"nic": "eth0", "custom": {"bridge_opts": "multicast_snooping"}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: expected key=value, got 'multicast_snooping'"),
    (net({"nic": "eth0", "custom": {"bridge_opts": "priority=65536"}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: priority: expected 0-65535, got '65536'"),
    (net({"nic": "eth0", "custom": {"bridge_opts": "forward_delay=1.5"}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: forward_delay: bad value '1.5'"),
    (net({"nic": "eth0", "custom": {"bridge_opts": "gc_timer=5"}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: bridge option gc_timer cannot be set (value '5')"),
    (net({"nic": "eth0", "custom": {"bridge_opts": "group_addr=01:80:c2"}}), E.BAD_PARAMS,
     "networks.red.custom.bridge_opts: group_addr: expected a MAC address, got '01:80:c2'"),
    (net({"nic": "eth0", "bridged": False, "custom": {"bridge_opts": "priority=1"}}),
     E.BAD_PARAMS, 'networks.red.custom.bridge_opts: a bridgeless network has no bridge (got '
     '"priority=1")'),
    (net({"remove": True, "mtu": 1500, "custom": {}}), E.BAD_PARAMS,
     "networks.red: remove cannot be combined with other attributes (mtu)"),
    # bond hwaddr
    (bond({"nics": ["eth1"], "hwaddr": "02:00:00:00:00"}), E.BAD_BONDING,
     'bondings.bond0.hwaddr: expected a MAC address xx:xx:xx:xx:xx:xx, got "02:00:00:00:00"'),
    (bond({"nics": ["eth1"], "hwaddr": "01:00:5e:00:00:01"}), E.BAD_BONDING,
     "bondings.bond0.hwaddr: 01:00:5e:00:00:01 is not a unicast MAC address"),
    (bond({"nics": ["eth1"], "hwaddr": 7}), E.BAD_BONDING,
     "bondings.bond0.hwaddr: expected a string, got 7"),
    # bonding options
    (bond({"nics": ["eth1"], "options": "arp_ip_target=192.0.2.1,192.0.2.x"}), E.BAD_BONDING,
     "bondings.bond0.options: arp_ip_target: bad IPv4 address '192.0.2.x' in "
     "'192.0.2.1,192.0.2.x'"),
    (bond({"nics": ["eth1"], "options": "arp_ip_target=192.0.2.1,192.0.2.1"}), E.BAD_BONDING,
     "bondings.bond0.options: arp_ip_target: '192.0.2.1' is listed twice"),
    (bond({"nics": ["eth1"], "options": "arp_ip_target=" + ",".join(
        f"192.0.2.{i}" for i in range(1, 18))}), E.BAD_BONDING,
     "bondings.bond0.options: arp_ip_target: at most 16 targets, got 17"),
    (bond({"nics": ["eth1"], "options": "ns_ip6_target=192.0.2.1"}), E.BAD_BONDING,
     "bondings.bond0.options: ns_ip6_target: bad IPv6 address '192.0.2.1' in '192.0.2.1'"),
    (bond({"nics": ["eth1"], "options": "ad_actor_sys_prio=0"}), E.BAD_BONDING,
     "bondings.bond0.options: ad_actor_sys_prio: expected an integer 1-65535, got '0'"),
    (bond({"nics": ["eth1"], "options": "lacp_active=maybe"}), E.BAD_BONDING,
     "bondings.bond0.options: lacp_active: expected one of off, on, got 'maybe'"),
    (bond({"nics": ["eth1"], "options": "num_grat_arp=2 num_unsol_na=3"}), E.BAD_BONDING,
     "bondings.bond0.options: option num_grat_arp is given twice"),
    (bond({"nics": ["eth1"], "options": "ad_actor_system=zz"}), E.BAD_BONDING,
     "bondings.bond0.options: ad_actor_system: expected a MAC address xx:xx:xx:xx:xx:xx, "
     "got 'zz'"),
    (bond({"nics": ["eth1"], "options": "coupled_control=1"}), E.BAD_BONDING,
     'bondings.bond0.options: unknown bonding option "coupled_control"'),
]


@pytest.mark.parametrize(("params", "kind", "message"), ERRORS, ids=case_ids(ERRORS))
def test_rejects_with_exact_message(params: Any, kind: ErrorKind, message: str) -> None:
    assert_refused(params, kind, message)


def test_switch_legacy_is_accepted_on_networks_and_bonds() -> None:
    request = parse_setup_request({
        "networks": {"red": {"bonding": "bond0", "switch": "legacy"}},
        "bondings": {"bond0": {"nics": ["eth1"], "switch": "legacy"}},
    })
    assert request.networks["red"] == parse_setup_request(
        net({"bonding": "bond0"})).networks["red"]


@pytest.mark.parametrize(("attrs", "stp"), [
    ({"STP": "on"}, True), ({"STP": "no"}, False), ({"stp": "yes"}, True),
    ({"stp": "OFF"}, False), ({"stp": False, "STP": "on"}, False),  # stp wins, as in VDSM
])
def test_stp_takes_vdsms_words_and_spelling(attrs: dict[str, Any], stp: bool) -> None:
    network = parse_setup_request(net({"nic": "eth0", **attrs})).networks["red"]
    assert network.stp is stp  # type: ignore[union-attr]


def test_nameservers_on_the_default_route_network() -> None:
    params = net({**MGMT, "nameservers": ["192.0.2.53", "2001:DB8::53", "fe80::1%eth0"]})
    network = parse_setup_request(params).networks["red"]
    assert network.nameservers == ("192.0.2.53", "2001:db8::53", "fe80::1%eth0")  # type: ignore[union-attr]
    # [] is allowed anywhere: it leaves the resolvers alone.
    empty = parse_setup_request(net({"nic": "eth0", "nameservers": []})).networks["red"]
    assert empty.nameservers == ()  # type: ignore[union-attr]


def test_bridge_opts_are_parsed_in_sysfs_spelling_and_kept_in_custom() -> None:
    custom = {"bridge_opts": "multicast_snooping=0 group_fwd_mask=16384 vlan_protocol=0x88A8",
              "other": "kept"}
    network = parse_setup_request(net({"nic": "eth0", "custom": custom})).networks["red"]
    assert dict(network.bridge_opts) == {  # type: ignore[union-attr]
        "group_fwd_mask": "0x4000", "multicast_snooping": "0", "vlan_protocol": "0x88a8"}
    assert dict(network.custom) == custom  # type: ignore[union-attr]


def test_stp_state_in_bridge_opts_wins_over_stp() -> None:
    # VDSM writes bridge_opts after the bridge is made: its stp_state wins.
    network = parse_setup_request(net({"nic": "eth0", "stp": False, "custom": {
        "bridge_opts": "stp_state=1 priority=100"}})).networks["red"]
    assert (network.stp, dict(network.bridge_opts)) == (True, {"priority": "100"})  # type: ignore[union-attr]


def test_remove_may_come_with_custom() -> None:
    request = parse_setup_request(net({"remove": True, "custom": {"x": "y"}}))
    assert request.networks["red"] == Removal("red")


def test_bond_hwaddr_and_every_option() -> None:
    options = ("mode=1 arp_interval=1000 arp_ip_target=192.0.2.1,192.0.2.2 "
               "ns_ip6_target=2001:db8::1 arp_all_targets=all arp_missed_max=3 "
               "num_unsol_na=2 resend_igmp=3 lp_interval=2 peer_notif_delay=100 "
               "fail_over_mac=1 primary_reselect=better all_slaves_active=1")
    config = parse_setup_request(bond({"nics": ["eth1", "eth2"], "hwaddr": "02:AB:00:00:00:01",
                                       "options": options})).bondings["bond0"]
    assert config.hwaddr == "02:ab:00:00:00:01"  # type: ignore[union-attr]
    assert dict(config.options) == {  # type: ignore[union-attr]
        "mode": "active-backup", "all_slaves_active": "1", "arp_all_targets": "all",
        "arp_interval": "1000", "arp_ip_target": "192.0.2.1,192.0.2.2", "arp_missed_max": "3",
        "fail_over_mac": "active", "lp_interval": "2", "ns_ip6_target": "2001:db8::1",
        "num_grat_arp": "2", "peer_notif_delay": "100", "primary_reselect": "better",
        "resend_igmp": "3",
    }


def test_new_attributes_survive_the_state_file() -> None:
    request = parse_setup_request({
        "networks": {"red": {**MGMT, "nameservers": ["192.0.2.53"], "custom": {
            "bridge_opts": "stp_state=1 multicast_snooping=0", "x": "y"}},
            "blue": {"bonding": "bond0"}},
        "bondings": {"bond0": {"nics": ["eth1"], "hwaddr": "02:00:00:00:00:01",
                               "options": "mode=4 ad_actor_system=02:00:00:00:00:09"}},
    })
    networks = {n: c for n, c in request.networks.items() if not isinstance(c, Removal)}
    bonds = {n: c for n, c in request.bondings.items() if not isinstance(c, Removal)}
    config = NetConfig(frozen_map(networks), frozen_map(bonds))
    assert parse_config(config.to_json()) == config
