"""In-sync check of an attachment against the agent's capabilities (SPEC §1.4), and the
setupNetworks entry that makes a host match its logical definition."""

from __future__ import annotations

from typing import Any

from engine_client.insync import attachment_diff, describe_diff, desired_attrs, in_sync
from engine_client.models import Attachment, LogicalNetwork

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


def test_in_sync() -> None:
    assert attachment_diff(RED, ON_ETH1, caps_with()) == {}
    assert in_sync(RED, ON_ETH1, caps_with())


def test_missing_network() -> None:
    caps = caps_with()
    caps["networks"] = {}
    assert attachment_diff(RED, ON_ETH1, caps) == {"missing": ("present", "absent")}
    assert attachment_diff(RED, ON_ETH1, {}) == {"missing": ("present", "absent")}


def test_vlan_and_mtu_differ() -> None:
    caps = caps_with(southbound="eth1.200", vlanid=200, mtu=1500)
    caps["vlans"] = {"eth1.200": {"iface": "eth1", "vlanid": 200, "mtu": 1500}}
    diff = attachment_diff(RED, ON_ETH1, caps)
    assert diff == {"vlan": (100, 200), "mtu": (9000, 1500)}
    assert describe_diff(diff) == (
        "vlan: expected 100, host has 200; mtu: expected 9000, host has 1500"
    )


def test_untagged_on_host_but_tagged_in_definition() -> None:
    caps = caps_with(southbound="eth1", vlanid=None)
    del caps["networks"]["red"]["vlanid"]
    assert attachment_diff(RED, ON_ETH1, caps) == {"vlan": (100, None)}


def test_bridged_and_nic_differ() -> None:
    caps = caps_with(bridged=False, iface="eth2.100", southbound="eth2.100")
    caps["vlans"] = {"eth2.100": {"iface": "eth2", "vlanid": 100, "mtu": 9000}}
    assert attachment_diff(RED, ON_ETH1, caps) == {
        "bridged": (True, False),
        "nic": ("eth1", "eth2"),
    }


def test_vlan_device_name_not_listed_in_vlans_is_split() -> None:
    caps = caps_with()
    caps["vlans"] = {}
    assert attachment_diff(RED, ON_ETH1, caps) == {}


def test_bond_attachment() -> None:
    att = Attachment(host="h1", network="red", bond="bond0")
    caps = caps_with(southbound="bond0.100")
    caps["vlans"] = {"bond0.100": {"iface": "bond0", "vlanid": 100, "mtu": 9000}}
    assert attachment_diff(RED, att, caps) == {}
    assert attachment_diff(RED, ON_ETH1, caps) == {"nic": ("eth1", "bond0")}


def test_isolated_attachment() -> None:
    att = Attachment(host="h1", network="red", isolated=True)
    caps = caps_with(southbound=None, isolated=True, ports=[])
    del caps["networks"]["red"]["vlanid"]
    assert attachment_diff(RED, att, caps) == {}
    # The host still has an uplink: out of sync.
    assert attachment_diff(RED, att, caps_with()) == {"vlan": (None, 100), "nic": (None, "eth1")}


def test_unconfirmed_change_on_the_host_is_not_in_sync() -> None:
    caps = caps_with()
    caps["netConfigPending"] = True
    assert attachment_diff(RED, ON_ETH1, caps) == {
        "pending": ("confirmed state", "unconfirmed change in progress")
    }
    caps["netConfigPending"] = False
    assert in_sync(RED, ON_ETH1, caps)
