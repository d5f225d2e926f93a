"""Capabilities and statistics documents from hand-built kernel states (no kernel)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from types import MappingProxyType

from vdsm_net.caps import LinkStats, bond_opts, capabilities, statistics
from vdsm_net.capsdoc import check_document
from vdsm_net.kernel.bond_options import normalize
from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.qos import HostQos, QosTree
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
                ipv4=frozenset({IPv4Interface("192.0.2.5/24")}),
                ipv6=frozenset({IPv6Interface("2001:db8::5/64")}),
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
                ipv4=frozenset({IPv4Interface("198.51.100.7/24")}),
            ),
            Device("virbr0", "bridge", 1500, True),
        ],
        {
            Route(4, IPv4Address("192.0.2.1"), "red"),
            Route(6, IPv6Address("2001:db8::1"), "red", table=100),
            Route(4, IPv4Address("198.51.100.1"), "eth0.7", table=7),
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


NO_IP = {
    "addr": "",
    "netmask": "",
    "gateway": "",
    "ipv4addrs": [],
    "ipv6addrs": [],
    "ipv6gateway": "::",
    "ipv4defaultroute": False,
    "dhcpv4": False,
    "dhcpv6": False,
    "ipv6autoconf": False,
}


def test_networks_are_read_from_the_kernel() -> None:
    doc = capabilities(host(), config(RED, ISO, BLUE), dirty=False)
    assert check_document(doc, extra_keys=True) == []
    assert doc["networks"]["red"] == {
        "iface": "red",
        "bridged": True,
        # VDSM: the bridge's port that is a NIC, bond or VLAN device (not the VM tap)
        "southbound": "bond0.100",
        "vlanid": 100,
        "mtu": 9000,
        "isolated": False,
        "ports": ["bond0.100", "vnet0"],
        "stp": "on",
        "switch": "legacy",
        "addr": "192.0.2.5",
        "netmask": "255.255.255.0",
        "ipv4addrs": ["192.0.2.5/24"],
        "ipv6addrs": ["2001:db8::5/64"],
        "gateway": "192.0.2.1",
        "ipv6gateway": "2001:db8::1",
        "ipv4defaultroute": True,
        "dhcpv4": False,
        "dhcpv6": False,
        "ipv6autoconf": False,
        "defaultRoute": True,
        "nameservers": [],  # the resolver file's: none given to capabilities() here
    }
    assert doc["networks"]["iso"] == {
        **NO_IP,
        "iface": "iso",
        "bridged": True,
        "southbound": None,
        "mtu": 1500,
        "isolated": True,
        "ports": [],
        "stp": "off",
        "switch": "legacy",
        "defaultRoute": False,
    }
    blue: dict[str, object] = dict(doc["networks"]["blue"])
    assert (blue["iface"], blue["bridged"], blue.get("vlanid")) == ("eth0.7", False, 7)
    assert (blue["southbound"], blue["interface"]) == ("eth0.7", "eth0.7")
    assert "ports" not in blue and "stp" not in blue
    # a gateway in the network's own table, but not the host's default route
    assert (blue["gateway"], blue["defaultRoute"], blue["ipv4defaultroute"]) == (
        "198.51.100.1",
        False,
        False,
    )
    assert (blue["addr"], blue["netmask"]) == ("198.51.100.7", "255.255.255.0")


def test_addr_is_the_address_in_the_gateways_subnet() -> None:
    nic = Device(
        "eth0",
        "",
        1500,
        True,
        ipv4=frozenset({IPv4Interface("10.0.0.5/8"), IPv4Interface("192.0.2.5/24")}),
        mac="52:54:00:00:00:01",
    )
    routes = {Route(4, IPv4Address("192.0.2.1"), "eth0")}
    doc = capabilities(make_state([nic], routes), config(), dirty=False)
    facts = doc["nics"]["eth0"]
    assert (facts["addr"], facts["netmask"], facts["ipv4defaultroute"]) == (
        "192.0.2.5",
        "255.255.255.0",
        True,
    )


def test_devices_sections() -> None:
    doc = capabilities(
        host(), config(), dirty=True, pending=True, nameservers=["192.0.2.53"], supports_ipv6=False
    )
    assert check_document(doc, extra_keys=True) == []
    assert (doc["netConfigDirty"], doc["netConfigPending"]) == (True, True)
    assert (doc["nameservers"], doc["supportsIPv6"]) == (["192.0.2.53"], False)
    assert doc["networks"] == {}
    assert doc["bridges"]["iso"] == {**NO_IP, "ports": [], "mtu": 1500, "stp": "off", "opts": {}}
    assert doc["bridges"]["red"]["ports"] == ["bond0.100", "vnet0"]
    assert (doc["bridges"]["red"]["stp"], doc["bridges"]["red"]["addr"]) == ("on", "192.0.2.5")
    assert sorted(doc["bridges"]) == ["iso", "red", "virbr0"]
    # NICs: physical (and simulated) devices; not lo, not a VM tap, nothing the agent owns
    assert sorted(doc["nics"]) == ["eth0", "eth1", "eth2"]
    assert doc["nics"]["eth0"] == {
        **NO_IP,
        "hwaddr": "52:54:00:00:00:01",
        "mtu": 1500,
        "speed": 1000,
        "operstate": "up",
    }
    assert doc["vlans"] == {
        "bond0.100": {**NO_IP, "iface": "bond0", "vlanid": 100, "mtu": 9000},
        "eth0.7": {
            **NO_IP,
            "addr": "198.51.100.7",
            "netmask": "255.255.255.0",
            "ipv4addrs": ["198.51.100.7/24"],
            "gateway": "198.51.100.1",
            "iface": "eth0",
            "vlanid": 7,
            "mtu": 1500,
        },
    }
    assert doc["bondings"] == {
        "bond0": {
            **NO_IP,
            "hwaddr": "",
            "slaves": ["eth1", "eth2"],
            # VDSM: the mode as the kernel's number, the others only off their defaults
            "opts": {"mode": "1", "miimon": "100"},
            "mtu": 9000,
            "active_slave": "eth2",
            "switch": "legacy",
            "speed": 0,
        }
    }


def test_bond_options_as_vdsm_reports_them() -> None:
    # 802.3ad turns miimon on (100) by itself: a default of that mode, so not reported
    assert bond_opts(normalize({"mode": "802.3ad"})) == {"mode": "4"}
    assert bond_opts(normalize({"mode": "802.3ad", "xmit_hash_policy": "layer2+3"})) == {
        "mode": "4",
        "xmit_hash_policy": "2",
    }
    assert bond_opts(normalize({"mode": "active-backup", "miimon": "100"})) == {
        "mode": "1",
        "miimon": "100",
    }
    assert bond_opts(normalize({})) == {"mode": "0"}


def test_802_3ad_facts_of_bond_and_slaves() -> None:
    bond = Device(
        "bond0",
        "bond",
        1500,
        True,
        mac="02:00:00:00:00:01",
        bond_options=MappingProxyType(normalize({"mode": "802.3ad"})),
        ad_aggregator_id=1,
        ad_partner_mac="00:00:00:00:00:00",
    )
    slave = Device(
        "eth1",
        "veth",
        1500,
        True,
        master="bond0",
        mac="02:00:00:00:00:01",
        perm_mac="02:00:00:00:00:02",
        ad_aggregator_id=1,
    )
    doc = capabilities(make_state([bond, slave]), config(), dirty=False)
    assert check_document(doc, extra_keys=True) == []
    b = doc["bondings"]["bond0"]
    assert (b["hwaddr"], b.get("ad_aggregator_id"), b.get("ad_partner_mac")) == (
        "02:00:00:00:00:01",
        "1",
        "00:00:00:00:00:00",
    )
    nic = doc["nics"]["eth1"]
    assert (nic.get("permhwaddr"), nic.get("ad_aggregator_id")) == ("02:00:00:00:00:02", "1")


def test_network_whose_device_is_missing_is_not_reported() -> None:
    # VDSM's netinfo skips a network whose device is gone (docs/api.md, capabilities)
    doc = capabilities(make_state([]), config(RED), dirty=False)
    assert doc["networks"] == {}
def test_network_whose_top_device_is_gone_is_not_reported() -> None:
    # docs/api.md, capabilities: a bridge (or a bridgeless network's device) deleted behind the
    # agent's back.
    state = host()
    without_bridge = make_state([d for n, d in state.devices.items() if n != "red"])
    doc = capabilities(without_bridge, config(RED, ISO, BLUE), dirty=False)
    assert sorted(doc["networks"]) == ["blue", "iso"]
    without_vlan = make_state([d for n, d in state.devices.items() if n != "eth0.7"])
    doc = capabilities(without_vlan, config(RED, ISO, BLUE), dirty=False)
    assert sorted(doc["networks"]) == ["iso", "red"]


def test_bridge_that_lost_its_port_reports_no_southbound_and_no_vlan() -> None:
    state = host()
    detached = make_state(
        [d.evolve(master=None) if n == "bond0.100" else d for n, d in state.devices.items()]
    )
    red = capabilities(detached, config(RED), dirty=False)["networks"]["red"]
    assert (red["southbound"], "vlanid" in red) == (None, False)
    assert capabilities(state, config(RED), dirty=False)["networks"]["red"]["vlanid"] == 100


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


def test_statistics_state_is_up_only_with_carrier() -> None:
    """VDSM's "up" is IFF_UP and IFF_RUNNING: an administratively up device whose operstate
    is not "up" or "unknown" (a NIC without carrier) is "down"."""
    operstates = ["up", "unknown", "lowerlayerdown", "down", "dormant", "notpresent"]
    devices = [Device(f"eth{i}", "", 1500, True, operstate=o) for i, o in enumerate(operstates)]
    devices.append(Device("eth9", "", 1500, False, operstate="unknown"))
    stats = {d.name: LinkStats() for d in devices}
    doc = statistics(stats, make_state(devices), config(), sample_time=0.0)
    assert {n: s["state"] for n, s in doc["interfaces"].items()} == {
        "eth0": "up", "eth1": "up", "eth2": "down", "eth3": "down", "eth4": "down",
        "eth5": "down", "eth9": "down",
    }


def test_host_qos_is_read_from_the_kernels_classes() -> None:
    red_qos = HostQos.from_json({"out": {"ls": {"m2": 400}, "ul": {"m2": 8000}}}, "q")
    blue_qos = HostQos.from_json({"out": {"ls": {"m1": 16, "d": 5, "m2": 900}}}, "q")
    assert red_qos is not None and blue_qos is not None
    on_bond, on_eth0 = QosTree.desired({100: red_qos}), QosTree.desired({7: blue_qos})
    assert on_bond is not None and on_eth0 is not None
    running = config(RED, BLUE, ISO)
    doc = capabilities(host(), running, dirty=False,
                       qos={"bond0": on_bond, "eth0": on_eth0})
    assert check_document(doc) == []
    zeros = {"m1": 0, "d": 0}
    red = {"out": {"ls": {**zeros, "m2": 400}, "ul": {**zeros, "m2": 8000}}}
    blue = {"out": {"ls": {"m1": 16, "d": 5, "m2": 900}}}
    # On the VLAN's base (bond0, eth0), in the class of the VLAN tag.
    assert doc["networks"]["red"]["hostQos"] == red
    assert doc["networks"]["blue"]["hostQos"] == blue
    assert "hostQos" not in doc["networks"]["iso"]
    assert doc["bondings"]["bond0"]["qos"] == [{"hostQos": red, "vlan": 100}]
    assert doc["nics"]["eth0"]["qos"] == [{"hostQos": blue, "vlan": 7}]
    # No class for the network's tag: no hostQos (as VDSM: only when the class exists).
    other = capabilities(host(), running, dirty=False, qos={"bond0": on_eth0})
    assert "hostQos" not in other["networks"]["red"] and "qos" not in other["bondings"]["bond0"]
    assert "hostQos" not in capabilities(host(), running, dirty=False)["networks"]["red"]
