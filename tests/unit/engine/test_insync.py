"""The one meaning of "in sync" (docs/engine-cli.md): golden cases of ``insync.judge`` (an
attachment
against the agent's capabilities, docs/api.md), and the setupNetworks entry that makes a host
match its logical definition."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine_client.insync import IN_SYNC, Difference, Verdict, desired_attrs, judge
from engine_client.models import Attachment, IpSettings, LogicalNetwork

RED = LogicalNetwork(dc="dc1", name="red", vlan=100, mtu=9000, vm=True)
ON_ETH1 = Attachment(host="h1", network="red", nic="eth1")


def caps_with(**net: Any) -> dict[str, Any]:
    entry = {
        "iface": "red",
        "bridged": True,
        "southbound": "eth1.100",
        "vlanid": 100,
        "mtu": 9000,
        "isolated": False,
        "ports": ["eth1.100"],
        "stp": False,
        "ipv4addrs": [],
        "ipv6addrs": [],
        "gateway": "",
        "ipv6gateway": "",
        "defaultRoute": False,
    }
    entry.update(net)
    return {
        "networks": {"red": entry},
        "bridges": {"red": {"ports": ["eth1.100"], "mtu": 9000, "stp": False}},
        "nics": {
            "eth1": {"hwaddr": "02:00:00:00:00:01", "mtu": 9000, "speed": 0, "operstate": "up"}
        },
        "vlans": {"eth1.100": {"iface": "eth1", "vlanid": 100, "mtu": 9000}},
        "bondings": {},
        "netConfigDirty": False,
    }


def test_desired_attrs_nic_vlan() -> None:
    assert desired_attrs(RED, ON_ETH1) == {"nic": "eth1", "vlan": 100, "mtu": 9000, "bridged": True}


def test_desired_attrs_bond_untagged_non_vm() -> None:
    blue = LogicalNetwork(dc="dc1", name="blue", mtu=1500, vm=False)
    att = Attachment(host="h1", network="blue", bond="bond0")
    assert desired_attrs(blue, att) == {"bonding": "bond0", "mtu": 1500, "bridged": False}


def test_desired_attrs_isolated_has_no_uplink_and_no_vlan() -> None:
    att = Attachment(host="h1", network="red", isolated=True)
    assert desired_attrs(RED, att) == {"mtu": 9000, "bridged": True}


def diffs(verdict: Verdict) -> dict[str, tuple[Any, Any]]:
    return {d.key: (d.expected, d.found) for d in verdict.differences}


def test_in_sync() -> None:
    assert judge(RED, ON_ETH1, caps_with()) == IN_SYNC
    assert judge(RED, ON_ETH1, caps_with()).in_sync
    assert judge(RED, ON_ETH1, caps_with()).describe() == ""


def test_missing_on_host() -> None:
    caps = caps_with()
    caps["networks"] = {}
    verdict = judge(RED, ON_ETH1, caps)
    assert diffs(verdict) == {"network": ("present", "absent")}
    assert (verdict.in_sync, verdict.missing) == (False, True)
    assert verdict.describe() == "missing on host"


def test_capabilities_never_read_is_out_of_sync() -> None:
    caps: dict[str, object] | None
    for caps in ({}, None):
        verdict = judge(RED, ON_ETH1, caps)
        assert diffs(verdict) == {"capabilities": ("read", "never read")}


def test_vlan_and_mtu_differ_each_named_expected_and_found() -> None:
    caps = caps_with(southbound="eth1.200", vlanid=200, mtu=1500)
    caps["vlans"] = {"eth1.200": {"iface": "eth1", "vlanid": 200, "mtu": 1500}}
    verdict = judge(RED, ON_ETH1, caps)
    assert diffs(verdict) == {"vlan": (100, 200), "mtu": (9000, 1500)}
    assert verdict.describe() == "vlan: expected 100, found 200; mtu: expected 9000, found 1500"
    assert verdict.to_json() == [
        {"key": "vlan", "expected": 100, "found": 200},
        {"key": "mtu", "expected": 9000, "found": 1500},
    ]


def test_untagged_on_host_but_tagged_in_definition() -> None:
    caps = caps_with(southbound="eth1")
    del caps["networks"]["red"]["vlanid"]
    assert diffs(judge(RED, ON_ETH1, caps)) == {"vlan": (100, None)}


def test_bridged_and_southbound_differ() -> None:
    caps = caps_with(bridged=False, iface="eth2.100", southbound="eth2.100")
    caps["vlans"] = {"eth2.100": {"iface": "eth2", "vlanid": 100, "mtu": 9000}}
    verdict = judge(RED, ON_ETH1, caps)
    assert diffs(verdict) == {"bridged": (True, False), "southbound": ("eth1", "eth2")}
    assert verdict.describe() == (
        "bridged: expected yes, found no; southbound: expected eth1, found eth2"
    )


def test_bridge_without_its_uplink_port() -> None:
    # The agent reports no southbound (and no VLAN id) once the NIC or VLAN device is gone
    # from the bridge: out of sync, naming both.
    caps = caps_with(southbound=None, ports=[])
    del caps["networks"]["red"]["vlanid"]
    verdict = judge(RED, ON_ETH1, caps)
    assert diffs(verdict) == {"vlan": (100, None), "southbound": ("eth1", None)}
    assert verdict.describe() == (
        "vlan: expected 100, found none; southbound: expected eth1, found none"
    )


def test_vlan_device_name_not_listed_in_vlans_is_split() -> None:
    caps = caps_with()
    caps["vlans"] = {}
    assert judge(RED, ON_ETH1, caps).in_sync


def test_bond_attachment() -> None:
    att = Attachment(host="h1", network="red", bond="bond0")
    caps = caps_with(southbound="bond0.100")
    caps["vlans"] = {"bond0.100": {"iface": "bond0", "vlanid": 100, "mtu": 9000}}
    assert judge(RED, att, caps).in_sync
    assert diffs(judge(RED, ON_ETH1, caps)) == {"southbound": ("eth1", "bond0")}


def test_isolated_attachment() -> None:
    att = Attachment(host="h1", network="red", isolated=True)
    caps = caps_with(southbound=None, isolated=True, ports=[])
    del caps["networks"]["red"]["vlanid"]
    assert judge(RED, att, caps).in_sync
    # The host still has an uplink: out of sync.
    assert diffs(judge(RED, att, caps_with())) == {
        "vlan": (None, 100),
        "southbound": (None, "eth1"),
    }
    # An isolated network is missing like any other.
    caps["networks"] = {}
    assert judge(RED, att, caps).describe() == "missing on host"


def test_non_vm_network_must_not_be_a_bridge() -> None:
    blue = LogicalNetwork(dc="dc1", name="red", vlan=100, mtu=9000, vm=False)
    assert diffs(judge(blue, ON_ETH1, caps_with())) == {"bridged": (False, True)}


def test_network_being_removed_is_out_of_sync_until_its_host_removed_it() -> None:
    removing = replace(RED, removing=True)
    verdict = judge(removing, ON_ETH1, caps_with())
    assert verdict.differences == (Difference("removal", "removed", "still on host"),)
    assert verdict.describe() == "being removed: still on host"
    # Absent from the capabilities is no proof: a deleted bridge is absent and configured.
    caps = caps_with()
    caps["networks"] = {}
    assert not judge(removing, ON_ETH1, caps).in_sync


def test_unconfirmed_change_on_the_host_is_not_in_sync() -> None:
    caps = caps_with()
    caps["netConfigPending"] = True
    assert diffs(judge(RED, ON_ETH1, caps)) == {
        "pending": ("confirmed state", "unconfirmed change")
    }
    caps["netConfigPending"] = False
    assert judge(RED, ON_ETH1, caps).in_sync


# -- the attachment's own IP settings -----------------------------------------------------

STATIC4 = replace(ON_ETH1, ip=IpSettings("static", "10.0.0.5/24", "10.0.0.1"))
STATIC6 = replace(ON_ETH1, ip=IpSettings("static", "2001:db8::5/64", "2001:db8::1"))
DHCP = replace(ON_ETH1, ip=IpSettings("dhcp"))


def test_desired_attrs_carry_the_attachments_ip() -> None:
    base = {"nic": "eth1", "vlan": 100, "mtu": 9000, "bridged": True}
    assert desired_attrs(RED, STATIC4) == base | {
        "ipaddr": "10.0.0.5", "prefix": 24, "gateway": "10.0.0.1"
    }
    assert desired_attrs(RED, STATIC6) == base | {
        "ipv6addr": "2001:db8::5/64", "ipv6gateway": "2001:db8::1"
    }
    assert desired_attrs(RED, DHCP) == base | {"bootproto": "dhcp"}


def test_static_ipv4_in_sync() -> None:
    caps = caps_with(ipv4addrs=["10.0.0.5/24"], gateway="10.0.0.1")
    assert judge(RED, STATIC4, caps) == IN_SYNC


def test_static_ipv4_missing_names_address_and_gateway() -> None:
    verdict = judge(RED, STATIC4, caps_with())
    assert diffs(verdict) == {
        "ipv4_boot_protocol": ("static", "none"),
        "ipv4_address": ("10.0.0.5/24", None),
        "ipv4_gateway": ("10.0.0.1", None),
    }
    assert verdict.describe() == (
        "ipv4_boot_protocol: expected static, found none; "
        "ipv4_address: expected 10.0.0.5/24, found none; "
        "ipv4_gateway: expected 10.0.0.1, found none"
    )


def test_another_address_or_an_extra_one_is_out_of_sync() -> None:
    other = caps_with(ipv4addrs=["10.0.0.6/24"], gateway="10.0.0.1")
    assert diffs(judge(RED, STATIC4, other)) == {"ipv4_address": ("10.0.0.5/24", "10.0.0.6/24")}
    extra = caps_with(ipv4addrs=["10.0.0.5/24", "10.0.9.9/16"], gateway="10.0.0.1")
    assert diffs(judge(RED, STATIC4, extra)) == {
        "ipv4_address": ("10.0.0.5/24", "10.0.0.5/24, 10.0.9.9/16")
    }
    prefix = caps_with(ipv4addrs=["10.0.0.5/16"], gateway="10.0.0.1")
    assert diffs(judge(RED, STATIC4, prefix)) == {"ipv4_address": ("10.0.0.5/24", "10.0.0.5/16")}


def test_no_ip_settings_but_an_address_on_the_host_is_out_of_sync() -> None:
    caps = caps_with(ipv4addrs=["192.0.2.7/24"])
    assert diffs(judge(RED, ON_ETH1, caps)) == {
        "ipv4_boot_protocol": ("none", "static"),
        "ipv4_address": (None, "192.0.2.7/24"),
    }


def test_static_ipv6() -> None:
    good = caps_with(ipv6addrs=["2001:db8::5/64"], ipv6gateway="2001:db8::1")
    assert judge(RED, STATIC6, good) == IN_SYNC
    assert diffs(judge(RED, STATIC6, caps_with(ipv6gateway="::"))) == {
        "ipv6_boot_protocol": ("static", "none"),
        "ipv6_address": ("2001:db8::5/64", None),
        "ipv6_gateway": ("2001:db8::1", None),
    }


def test_dhcp_compares_the_protocol_not_the_leased_address() -> None:
    leased = caps_with(dhcpv4=True, ipv4addrs=["198.51.100.20/24"], gateway="198.51.100.1")
    assert judge(RED, DHCP, leased) == IN_SYNC
    assert diffs(judge(RED, DHCP, caps_with())) == {"ipv4_boot_protocol": ("dhcp", "none")}
    assert diffs(judge(RED, STATIC4, leased)) == {
        "ipv4_boot_protocol": ("static", "dhcp"),
        "ipv4_address": ("10.0.0.5/24", "198.51.100.20/24"),
        "ipv4_gateway": ("10.0.0.1", "198.51.100.1"),
    }
