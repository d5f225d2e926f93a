"""Capabilities and statistics documents from hand-built kernel states (no kernel)."""

from __future__ import annotations

import json
from types import MappingProxyType

from vdsm_net.caps import LinkStats, capabilities, statistics
from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.state import Device, KernelState, Route, make_state


def config(*nets: NetworkConfig) -> NetConfig:
    return NetConfig(networks=MappingProxyType({n.name: n for n in nets}))


def host() -> KernelState:
    return make_state(
        [
            Device("lo", "", 65536, True, mac="00:00:00:00:00:00", operstate="unknown"),
            Device("eth0", "", 1500, True, mac="52:54:00:00:00:01", operstate="up", speed=1000),
            Device("eth1", "veth", 9000, True, master="bond0", mac="52:54:00:00:00:02"),
            Device("eth2", "veth", 9000, True, master="bond0", mac="52:54:00:00:00:03"),
            Device(
                "bond0",
                "bond",
                9000,
                True,
                owned=True,
                bond_options=MappingProxyType({"mode": "active-backup", "miimon": "100"}),
                active_slave="eth2",
            ),
            Device(
                "bond0.100",
                "vlan",
                9000,
                True,
                master="red",
                owned=True,
                vlan_base="bond0",
                vlan_id=100,
            ),
            Device(
                "red",
                "bridge",
                9000,
                True,
                owned=True,
                stp=True,
                ipv4=frozenset({"192.0.2.5/24"}),
                ipv6=frozenset({"2001:db8::5/64"}),
            ),
            Device("vnet0", "tun", 9000, True, master="red"),
            Device("iso", "bridge", 1500, True, owned=True),
            Device(
                "eth0.7",
                "vlan",
                1500,
                True,
                owned=True,
                vlan_base="eth0",
                vlan_id=7,
                ipv4=frozenset({"198.51.100.7/24"}),
            ),
            Device("virbr0", "bridge", 1500, True),
        ],
        {
            Route(4, "192.0.2.1", "red"),
            Route(6, "2001:db8::1", "red", table=100),
            Route(4, "198.51.100.1", "eth0.7", table=7),
        },
    )


RED = NetworkConfig(
    "red",
    bonding="bond0",
    vlan=100,
    mtu=9000,
    stp=True,
    ipv4="192.0.2.5/24",
    gateway="192.0.2.1",
    default_route=True,
)
ISO = NetworkConfig("iso")
BLUE = NetworkConfig(
    "blue", nic="eth0", vlan=7, bridged=False, ipv4="198.51.100.7/24", gateway="198.51.100.1"
)


def test_networks_are_read_from_the_kernel() -> None:
    doc = capabilities(host(), config(RED, ISO, BLUE), dirty=False)
    assert doc["networks"]["red"] == {
        "iface": "red",
        "bridged": True,
        "southbound": "bond0",
        "vlanid": 100,
        "mtu": 9000,
        "isolated": False,
        "ports": ["bond0.100", "vnet0"],
        "stp": True,
        "ipv4addrs": ["192.0.2.5/24"],
        "ipv6addrs": ["2001:db8::5/64"],
        "gateway": "192.0.2.1",
        "ipv6gateway": "2001:db8::1",
        "defaultRoute": True,
        "dhcpv4": False,
        "dhcpv6": False,
        "ipv6autoconf": False,
    }
    assert doc["networks"]["iso"] == {
        "iface": "iso",
        "bridged": True,
        "southbound": None,
        "mtu": 1500,
        "isolated": True,
        "ports": [],
        "stp": False,
        "ipv4addrs": [],
        "ipv6addrs": [],
        "gateway": "",
        "ipv6gateway": "",
        "defaultRoute": False,
        "dhcpv4": False,
        "dhcpv6": False,
        "ipv6autoconf": False,
    }
    blue = doc["networks"]["blue"]
    assert (blue["iface"], blue["bridged"], blue["vlanid"]) == ("eth0.7", False, 7)
    assert "ports" not in blue and "stp" not in blue
    # a gateway in the network's own table, but not the host's default route
    assert (blue["gateway"], blue["defaultRoute"]) == ("198.51.100.1", False)


def test_devices_sections() -> None:
    doc = capabilities(host(), config(), dirty=True)
    assert doc["netConfigDirty"] is True
    assert doc["networks"] == {}
    assert doc["bridges"] == {
        "iso": {"ports": [], "mtu": 1500, "stp": False},
        "red": {"ports": ["bond0.100", "vnet0"], "mtu": 9000, "stp": True},
        "virbr0": {"ports": [], "mtu": 1500, "stp": False},
    }
    # NICs: physical (and simulated) devices; not lo, not a VM tap, nothing the agent owns
    assert sorted(doc["nics"]) == ["eth0", "eth1", "eth2"]
    assert doc["nics"]["eth0"] == {
        "hwaddr": "52:54:00:00:00:01",
        "mtu": 1500,
        "speed": 1000,
        "operstate": "up",
    }
    assert doc["vlans"] == {
        "bond0.100": {"iface": "bond0", "vlanid": 100, "mtu": 9000},
        "eth0.7": {"iface": "eth0", "vlanid": 7, "mtu": 1500},
    }
    assert doc["bondings"] == {
        "bond0": {
            "slaves": ["eth1", "eth2"],
            "opts": {"mode": "active-backup", "miimon": "100"},
            "mtu": 9000,
            "active_slave": "eth2",
        }
    }


def test_network_whose_device_is_missing_falls_back_to_its_config() -> None:
    doc = capabilities(make_state([]), config(RED), dirty=False)
    red = doc["networks"]["red"]
    assert (red["mtu"], red["stp"], red["ports"], red["ipv4addrs"]) == (9000, True, [], [])


def test_capabilities_document_is_json_serialisable() -> None:
    doc = capabilities(host(), config(RED, ISO, BLUE), dirty=False)
    assert json.loads(json.dumps(doc)) == doc


def test_statistics() -> None:
    state = host().devices
    stats = {
        "lo": LinkStats(rx=5, tx=5),
        "red": LinkStats(rx=100, tx=200, rx_dropped=1, tx_dropped=2, rx_errors=3, tx_errors=4),
        "eth0": LinkStats(rx=7, tx=8, duplex="full"),
        "iso": LinkStats(),
    }
    ks = make_state([state["red"], state["eth0"], state["iso"].evolve(up=False), state["lo"]])
    doc = statistics(stats, ks, config(RED, ISO, BLUE), sample_time=1234.5)
    assert doc["sampleTime"] == 1234.5
    assert sorted(doc["interfaces"]) == ["eth0", "iso", "red"]
    assert doc["interfaces"]["eth0"] == {
        "rx": 7,
        "tx": 8,
        "rxDropped": 0,
        "txDropped": 0,
        "rxErrors": 0,
        "txErrors": 0,
        "state": "up",
        "speed": 1000,
        "duplex": "full",
    }
    assert doc["networks"]["red"] == {
        "rx": 100,
        "tx": 200,
        "rxDropped": 1,
        "txDropped": 2,
        "rxErrors": 3,
        "txErrors": 4,
        "state": "up",
        "speed": 0,
        "duplex": "unknown",
    }
    assert doc["networks"]["iso"]["state"] == "down"
    assert "blue" not in doc["networks"]  # its top device has no counters: not reported
