"""The kernel backend against a real kernel, each test in a fresh network namespace.

Assertions read the kernel's own report (``ip -d -j``), not the backend's belief; the
read_state round trips then check that the backend reads back what the kernel reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

import pytest

from tests.netns import NetNS
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import bond_options
from vdsm_net.kernel.backend import Backend
from vdsm_net.kernel.view import DOOMED_GROUP
from vdsm_net.ops import (
    AddAddress,
    AddRoute,
    CreateBond,
    CreateBridge,
    CreateVlan,
    DelAddress,
    DeleteDevices,
    DelRoute,
    Op,
    SetBondOptions,
    SetMaster,
    SetMtu,
    SetStp,
    SetUp,
)
from vdsm_net.state import MAIN_TABLE, OWNED_GROUP, Device, Route

pytestmark = pytest.mark.kernel


@pytest.fixture
def backend(netns: NetNS) -> Iterator[Backend]:
    with Backend(netns=netns.name) as b:
        yield b


def info_data(link: dict[str, Any]) -> dict[str, Any]:
    return dict(link["linkinfo"]["info_data"])


def add_tap(ns: NetNS, name: str, mtu: int) -> None:
    """A VM "tap" stand-in: a veth end with its own MTU (the host kernel has no tun here)."""
    ns.ip("link", "add", name, "mtu", str(mtu), "type", "veth", "peer", "name", name + "p")
    ns.ip("link", "set", name, "up")


# -- bridges ---------------------------------------------------------------------------


def test_create_bridge_is_owned_down_and_has_the_mtu(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBridge("br0", 1500), CreateBridge("br1", 9000, stp=True)])
    br0, br1 = netns.link("br0"), netns.link("br1")
    assert br0["linkinfo"]["info_kind"] == "bridge"
    assert br0["group"] == str(OWNED_GROUP)
    assert "UP" not in br0["flags"]
    assert (br0["mtu"], br1["mtu"]) == (1500, 9000)
    assert (info_data(br0)["stp_state"], info_data(br1)["stp_state"]) == (0, 1)


def test_bridge_mtu_sticks_when_a_smaller_tap_joins(netns: NetNS, backend: Backend) -> None:
    # Control: a bridge whose MTU was never set explicitly follows its smallest port.
    netns.ip("link", "add", "plain", "type", "bridge")
    add_tap(netns, "tap0", 1400)
    netns.ip("link", "set", "tap0", "master", "plain")
    assert netns.link("plain")["mtu"] == 1400

    backend.apply([CreateBridge("br0", 1500), SetUp("br0", True)])
    add_tap(netns, "tap1", 1400)
    backend.apply([SetMaster("tap1", "br0")])
    assert netns.link("tap1")["master"] == "br0"
    assert netns.link("br0")["mtu"] == 1500


def test_mac_of_created_bridge(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBridge("br0", 1500, mac="52:54:00:12:34:56")])
    assert netns.link("br0")["address"] == "52:54:00:12:34:56"


def test_set_stp_and_mtu(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBridge("br0", 1500)])
    backend.apply([SetStp("br0", True), SetMtu("br0", 4000)])
    link = netns.link("br0")
    assert (info_data(link)["stp_state"], link["mtu"]) == (1, 4000)
    backend.apply([SetStp("br0", False)])
    assert info_data(netns.link("br0"))["stp_state"] == 0


def test_mtu_chain_9000_nic_to_bridge(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1", dummy=False)
    backend.apply(
        [
            SetMtu("eth1", 9000),
            CreateBridge("net1", 9000),
            SetMaster("eth1", "net1"),
            SetUp("net1", True),
        ]
    )
    assert netns.link("eth1")["mtu"] == 9000
    assert netns.link("eth1")["master"] == "net1"
    assert netns.link("net1")["mtu"] == 9000
    backend.apply([SetMaster("eth1", None)])
    assert "master" not in netns.link("eth1")


def test_set_up_and_down(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBridge("br0", 1500), SetUp("br0", True)])
    assert "UP" in netns.link("br0")["flags"]
    backend.apply([SetUp("br0", False)])
    assert "UP" not in netns.link("br0")["flags"]


# -- deleting --------------------------------------------------------------------------


def test_delete_owned_devices_in_one_group_request(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBridge(f"br{i}", 1500) for i in range(5)])
    netns.ip("link", "add", "foreign", "type", "bridge")
    backend.apply([DeleteDevices(tuple(f"br{i}" for i in range(5)))])
    names = set(netns.links())
    assert not any(n.startswith("br") for n in names)
    assert "foreign" in names


def test_refuses_to_delete_a_nic_and_deletes_nothing(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1", dummy=False)
    backend.apply([CreateBridge("br0", 1500)])
    with pytest.raises(NetError) as err:
        backend.apply([DeleteDevices(("br0", "eth1"))])
    assert err.value.kind == ErrorKind.KERNEL
    assert "DeleteDevices" in err.value.message and "eth1" in err.value.message
    links = netns.links()
    assert {"br0", "eth1"} <= set(links)
    assert links["br0"]["group"] == str(OWNED_GROUP)


def test_refuses_to_delete_a_foreign_bridge(netns: NetNS, backend: Backend) -> None:
    netns.ip("link", "add", "virbr0", "type", "bridge")
    with pytest.raises(NetError, match="virbr0"):
        backend.apply([DeleteDevices(("virbr0",))])
    assert "virbr0" in netns.links()


def test_stray_doomed_device_is_owned_and_survives_another_delete(
    netns: NetNS, backend: Backend
) -> None:
    # As if the agent died between marking and deleting: the device stays owned and is
    # not swept away by the next, unrelated delete.
    backend.apply([CreateBridge("stray", 1500), CreateBridge("gone", 1500)])
    netns.ip("link", "set", "stray", "group", str(DOOMED_GROUP))
    state = backend.read_state()
    assert state.devices["stray"].owned
    backend.apply([DeleteDevices(("gone",))])
    links = netns.links()
    assert "gone" not in links
    assert links["stray"]["group"] == str(OWNED_GROUP)


def test_delete_missing_device_is_a_no_op(netns: NetNS, backend: Backend) -> None:
    backend.apply([DeleteDevices(("nothere",))])


# -- errors ----------------------------------------------------------------------------


def test_kernel_refusal_names_the_op_and_the_reason(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBridge("br0", 1500)])
    with pytest.raises(NetError) as err:
        backend.apply([SetMtu("br0", 1400), CreateBridge("br0", 1500), SetMtu("br0", 1300)])
    assert err.value.kind == ErrorKind.KERNEL
    assert err.value.message.startswith("CreateBridge(name=br0")
    assert "exists" in err.value.message
    # the op before the failure stays applied; the change to the device whose create failed
    # was never sent (it would have hit the device that holds the name)
    assert netns.link("br0")["mtu"] == 1400


def test_a_failed_create_sends_nothing_to_the_device_holding_the_name(
    netns: NetNS, backend: Backend
) -> None:
    netns.ip("link", "add", "br9", "mtu", "1500", "type", "bridge")  # not owned, down
    backend.read_state()
    before = netns.link("br9")
    with pytest.raises(NetError) as err:
        backend.apply([CreateBridge("br9", 1400), SetUp("br9", True), CreateBridge("br8", 1500)])
    assert err.value.message.startswith("CreateBridge(name=br9")
    after = netns.link("br9")
    assert (after["mtu"], after["flags"], after.get("group")) == (
        before["mtu"], before["flags"], before.get("group"))


def test_a_taken_ifindex_is_left_alone_and_the_device_created_elsewhere(
    netns: NetNS, backend: Backend
) -> None:
    """The backend chooses a new device's ifindex from its last read; a device created since
    (a VM's tap) may hold it. That device is not touched, and the plan still succeeds."""
    state = backend.read_state()
    taken = max(d.index for d in state.devices.values()) + 1
    netns.ip("link", "add", "tap0", "index", str(taken), "mtu", "1500", "type", "bridge")
    backend.apply([CreateBridge("br0", 1400), SetUp("br0", True)])
    tap = netns.link("tap0")
    assert (tap["ifindex"], tap["mtu"], "UP" in tap["flags"]) == (taken, 1500, False)
    assert "group" not in tap or tap["group"] == "default"
    br0 = netns.link("br0")
    assert br0["ifindex"] != taken
    assert (br0["mtu"], "UP" in br0["flags"], br0["group"]) == (1400, True, str(OWNED_GROUP))


def test_a_batch_longer_than_one_send_is_applied_in_order(
    netns: NetNS, backend: Backend
) -> None:
    """Over 128 requests go in several sends (vdsm_net.kernel.route_socket): all of them reach the
    kernel, in order, and a refusal in a later send names its own op."""
    names = [f"br{i}" for i in range(150)]
    ops: list[Op] = [CreateBridge(n, 1500) for n in names]  # 300 requests: create, MTU
    ops += [SetMtu(n, 1400 + i) for i, n in enumerate(names)]
    ops += [SetUp(n, True) for n in names]
    backend.apply(ops)
    links = netns.links()
    assert [(links[n]["mtu"], "UP" in links[n]["flags"]) for n in names] == [
        (1400 + i, True) for i in range(150)
    ]
    with pytest.raises(NetError) as err:
        backend.apply([SetMtu(n, 1300) for n in names[:140]] + [SetMtu("br140", 10)]
                      + [SetMtu("br141", 1300)])
    assert err.value.message.startswith("SetMtu(device=br140 mtu=10): mtu less than")
    links = netns.links()
    assert links["br139"]["mtu"] == 1300 and links["br140"]["mtu"] == 1540


def test_unknown_device_is_a_kernel_error(backend: Backend) -> None:
    with pytest.raises(NetError, match=r"SetMtu.*nothere"):
        backend.apply([SetMtu("nothere", 1500)])


# -- addresses and routes -------------------------------------------------------------


def test_addresses_and_default_routes(netns: NetNS, backend: Backend) -> None:
    backend.apply(
        [
            CreateBridge("net1", 1500),
            SetUp("net1", True),
            AddAddress("net1", IPv4Interface("192.0.2.10/24")),
            AddAddress("net1", IPv6Interface("2001:db8::10/64")),
            AddRoute(Route(4, IPv4Address("192.0.2.1"), "net1")),
            AddRoute(Route(6, IPv6Address("2001:db8::1"), "net1", table=100)),
        ]
    )
    addrs = {
        f"{a['local']}/{a['prefixlen']}": a
        for a in netns.ip_json("addr", "show", "dev", "net1")[0]["addr_info"]
    }
    assert "192.0.2.10/24" in addrs
    assert addrs["2001:db8::10/64"].get("tentative") is None  # nodad: usable at once
    v4 = netns.ip_json("-4", "route", "show", "default")
    assert [(r["gateway"], r["dev"]) for r in v4] == [("192.0.2.1", "net1")]
    v6 = netns.ip_json("-6", "route", "show", "default", "table", "100")
    assert [(r["gateway"], r["dev"]) for r in v6] == [("2001:db8::1", "net1")]

    state = backend.read_state()
    assert state.devices["net1"].ipv4 == {IPv4Interface("192.0.2.10/24")}
    assert state.devices["net1"].ipv6 == {IPv6Interface("2001:db8::10/64")}
    assert state.routes == {
        Route(4, IPv4Address("192.0.2.1"), "net1", MAIN_TABLE),
        Route(6, IPv6Address("2001:db8::1"), "net1", 100),
    }

    backend.apply(
        [
            DelRoute(Route(4, IPv4Address("192.0.2.1"), "net1")),
            DelRoute(Route(6, IPv6Address("2001:db8::1"), "net1", table=100)),
            DelAddress("net1", IPv4Interface("192.0.2.10/24")),
            DelAddress("net1", IPv6Interface("2001:db8::10/64")),
        ]
    )
    assert netns.ip_json("-4", "route", "show", "default") == []
    after = backend.read_state()
    assert after.routes == frozenset()
    assert after.devices["net1"].ipv4 == frozenset() == after.devices["net1"].ipv6


# -- read_state ------------------------------------------------------------------------


def test_read_state_round_trip_bridge(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1", dummy=False)
    backend.apply(
        [
            SetMtu("eth1", 4000),
            CreateBridge("net1", 4000, stp=True),
            SetMaster("eth1", "net1"),
            SetUp("net1", True),
            AddAddress("net1", IPv4Interface("198.51.100.5/24")),
        ]
    )
    state = backend.read_state()
    kernel = netns.link("net1")
    intent = Device(
        name="net1",
        kind="bridge",
        mtu=4000,
        up=True,
        owned=True,
        stp=True,
        mac=kernel["address"],
        ipv4=frozenset({IPv4Interface("198.51.100.5/24")}),
    )
    assert state.devices["net1"] == intent
    assert state.devices["net1"].index == kernel["ifindex"]
    eth1 = state.devices["eth1"]
    assert (eth1.kind, eth1.master, eth1.mtu, eth1.owned, eth1.up) == (
        "veth",
        "net1",
        4000,
        False,
        True,
    )
    assert eth1.is_nic
    assert state.ports_of("net1") == ["eth1"]


def test_read_state_sees_every_device_of_the_namespace(netns: NetNS, backend: Backend) -> None:
    for i in range(3):
        netns.add_nic(f"eth{i}", dummy=False)
    kernel = netns.links()
    state = backend.read_state()
    assert set(state.devices) == set(kernel)
    for name, dev in state.devices.items():
        assert (dev.mtu, dev.index, dev.mac) == (
            kernel[name]["mtu"],
            kernel[name]["ifindex"],
            kernel[name]["address"],
        )
        assert dev.operstate == kernel[name]["operstate"].lower()


def test_read_stats_match_the_kernel_counters(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1", dummy=False)
    # Three broadcast frames out of eth1, into its peer: known traffic on both counters.
    netns.sh("python3", "-c", SEND_FRAMES, "eth1")
    netns.ip("link", "set", "eth1", "down")  # freeze the counters
    stats = backend.read_stats()
    kernel = netns.ip_json("-s", "link", "show", "dev", "eth1")[0]["stats64"]
    s = stats["eth1"]
    assert (s.rx, s.tx, s.rx_dropped, s.tx_dropped, s.rx_errors, s.tx_errors) == (
        kernel["rx"]["bytes"],
        kernel["tx"]["bytes"],
        kernel["rx"]["dropped"],
        kernel["tx"]["dropped"],
        kernel["rx"]["errors"],
        kernel["tx"]["errors"],
    )
    assert s.tx >= 3 * 60
    assert stats["eth1p"].rx >= 3 * 60


SEND_FRAMES = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for _ in range(3):
    s.send(b"\\xff" * 6 + b"\\x02" * 6 + b"\\x88\\xb5" + b"\\0" * 46)
"""


# -- VLANs (UML on kernels without 8021q) ---------------------------------------------


@pytest.mark.needs("vlan")
def test_create_vlan_on_a_nic(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1")
    backend.apply([CreateVlan("eth1.100", "eth1", 100, 1500), SetUp("eth1.100", True)])
    link = netns.link("eth1.100")
    assert link["link"] == "eth1"
    assert info_data(link)["id"] == 100
    assert link["group"] == str(OWNED_GROUP)
    assert "UP" in link["flags"]
    dev = backend.read_state().devices["eth1.100"]
    assert dev == Device(
        name="eth1.100",
        kind="vlan",
        mtu=1500,
        up=True,
        owned=True,
        vlan_base="eth1",
        vlan_id=100,
        mac=link["address"],
    )


@pytest.mark.needs("vlan")
def test_vlan_up_on_a_down_base_says_why(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1")
    netns.ip("link", "set", "eth1", "down")
    backend.apply([CreateVlan("eth1.7", "eth1", 7, 1500)])
    with pytest.raises(NetError, match=r"SetUp\(device=eth1.7.*base device must be up"):
        backend.apply([SetUp("eth1.7", True)])


@pytest.mark.needs("vlan")
def test_mtu_chain_9000_nic_vlan_bridge(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1")
    backend.apply(
        [
            SetMtu("eth1", 9000),
            SetUp("eth1", True),
            CreateVlan("eth1.100", "eth1", 100, 9000),
            SetUp("eth1.100", True),
            CreateBridge("net1", 9000),
            SetMaster("eth1.100", "net1"),
            SetUp("net1", True),
        ]
    )
    links = netns.links()
    assert [links[n]["mtu"] for n in ("eth1", "eth1.100", "net1")] == [9000, 9000, 9000]
    assert links["eth1.100"]["master"] == "net1"


@pytest.mark.needs("vlan")
def test_delete_bridge_and_vlan_in_one_request_keeps_the_nic(
    netns: NetNS, backend: Backend
) -> None:
    netns.add_nic("eth1")
    backend.apply(
        [
            CreateVlan("eth1.5", "eth1", 5, 1500),
            CreateBridge("net5", 1500),
            SetMaster("eth1.5", "net5"),
        ]
    )
    backend.apply([DeleteDevices(("net5", "eth1.5"))])
    names = set(netns.links())
    assert "eth1" in names
    assert not names & {"net5", "eth1.5"}


# -- bonds (UML on kernels without bonding) -------------------------------------------


@pytest.mark.needs("bond", "dummy")
def test_bond_defaults_match_the_kernel(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBond("bond0", {"mode": "balance-rr"}, 1500)])
    assert backend.read_state().devices["bond0"].bond_options == bond_options.normalize({})


@pytest.mark.needs("bond", "dummy")
def test_create_bond_with_options_and_slaves(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1")
    netns.add_nic("eth2")
    opts = {"mode": "active-backup", "miimon": "100", "updelay": "200", "primary": "eth2"}
    backend.apply(
        [
            CreateBond("bond0", opts, 9000),
            SetMaster("eth1", "bond0"),
            SetMaster("eth2", "bond0"),
            SetUp("bond0", True),
        ]
    )
    links = netns.links()
    data = info_data(links["bond0"])
    assert (data["mode"], data["miimon"], data["updelay"]) == ("active-backup", 100, 200)
    assert data["primary"] == "eth2"
    assert links["bond0"]["group"] == str(OWNED_GROUP)
    assert [links[n].get("master") for n in ("eth1", "eth2")] == ["bond0", "bond0"]
    assert [links[n]["mtu"] for n in ("bond0", "eth1", "eth2")] == [9000, 9000, 9000]
    assert all("UP" in links[n]["flags"] for n in ("eth1", "eth2"))

    dev = backend.read_state().devices["bond0"]
    assert dev.bond_options == bond_options.normalize(opts)
    assert dev.active_slave in ("eth1", "eth2")
    assert (dev.kind, dev.mtu, dev.owned) == ("bond", 9000, True)


@pytest.mark.needs("bond", "dummy")
def test_change_bond_mode_and_mode_specific_options(netns: NetNS, backend: Backend) -> None:
    backend.apply([CreateBond("bond0", {"mode": "balance-rr"}, 1500), SetUp("bond0", True)])
    backend.apply([SetBondOptions("bond0", {"mode": "802.3ad", "lacp_rate": "fast"})])
    link = netns.link("bond0")
    assert (info_data(link)["mode"], info_data(link)["ad_lacp_rate"]) == ("802.3ad", "fast")
    assert "UP" in link["flags"]  # brought down for the mode change, then back up
    # back: lacp_rate returns to its default while the mode still allows it
    backend.apply([SetBondOptions("bond0", {"mode": "active-backup", "lacp_rate": "slow"})])
    got = backend.read_state().devices["bond0"].bond_options
    assert (got["mode"], got["lacp_rate"]) == ("active-backup", "slow")


@pytest.mark.needs("bond", "dummy")
def test_bond_monitor_off_after_delays(netns: NetNS, backend: Backend) -> None:
    backend.apply(
        [CreateBond("bond0", {"mode": "active-backup", "miimon": "100", "downdelay": "300"}, 1500)]
    )
    backend.apply([SetBondOptions("bond0", {"miimon": "0", "downdelay": "0"})])
    got = backend.read_state().devices["bond0"].bond_options
    assert (got["miimon"], got["downdelay"]) == ("0", "0")


@pytest.mark.needs("bond", "dummy")
def test_arp_monitor_and_mii_monitor_exclude_each_other(netns: NetNS, backend: Backend) -> None:
    arp = {"mode": "active-backup", "arp_interval": "200"}
    backend.apply([CreateBond("bond0", arp, 1500)])
    assert backend.read_state().devices["bond0"].bond_options == bond_options.normalize(arp)
    backend.apply([SetBondOptions("bond0", {"miimon": "100", "arp_interval": "0"})])
    data = info_data(netns.link("bond0"))
    assert (data["miimon"], data["arp_interval"]) == (100, 0)


@pytest.mark.needs("bond", "dummy")
def test_release_bond_slave_and_delete_bond(netns: NetNS, backend: Backend) -> None:
    netns.add_nic("eth1")
    backend.apply(
        [CreateBond("bond0", {"mode": "active-backup"}, 1500), SetMaster("eth1", "bond0")]
    )
    backend.apply([SetMaster("eth1", None), DeleteDevices(("bond0",))])
    links = netns.links()
    assert "bond0" not in links
    assert "master" not in links["eth1"]
