"""Host QoS (vdsm_net/qos) on a real kernel: the HFSC tree VDSM builds, applied through
netlink and checked with the kernel's own view (`tc -j qdisc/class/filter show`), read back
into hostQos, changed, removed.

The host kernel here has no HFSC: these run in User-Mode Linux (needs "hfsc").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.netns import NetNS
from tests.tcview import classes, dump_all, filters, qdiscs, shaping
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.qos import DeviceQos, HostQos, plan
from vdsm_net.qos.kernel import QosKernel

pytestmark = [pytest.mark.kernel, pytest.mark.needs("hfsc")]


@pytest.fixture
def kernel(netns: NetNS) -> Iterator[QosKernel]:
    with QosKernel(netns=netns.name) as k:
        yield k


def qos(value: dict[str, Any]) -> HostQos:
    parsed = HostQos.from_json({"out": value}, "hostQos")
    assert parsed is not None
    return parsed


def apply(kernel: QosKernel, devices: dict[str, DeviceQos]) -> None:
    current = {dev: kernel.read_tree(dev) for dev in devices}
    kernel.apply(plan(current, devices))


VLAN10 = {"ls": {"m2": 400}, "ul": {"m2": 8_000_000}, "rt": {"m1": 100_000, "d": 1000,
                                                              "m2": 50_000}}
VLAN20 = {"ls": {"m1": 2000, "d": 500, "m2": 900}}
UNTAGGED = {"ls": {"m2": 100}, "ul": {"m2": 1_000_000}}


def test_untagged_network_gets_the_default_class(netns: NetNS, kernel: QosKernel) -> None:
    nic = netns.add_nic("eth0", dummy=False)
    apply(kernel, {nic: {None: qos(UNTAGGED)}})

    assert qdiscs(netns, nic) == {
        "1389:": ("hfsc", "root"), "ffff:": ("ingress", "ffff:fff1"),
        "1388:": ("fq_codel", "1389:1388"),
    }, dump_all(netns, nic)
    # As VDSM hands them to tc: ls scaled by 8, ul as given, in bit/s.
    assert classes(netns, nic) == {
        "1389:1388": {"ls": (0, 0, 800), "ul": (0, 0, 1_000_000)},
    }, dump_all(netns, nic)
    (default,) = filters(netns, nic).items()
    # flowid 0x1388 has major 0: tc shows it as ":1388", a handle that names no class.
    assert default[0] == 5000 and default[1][:3] == ("u32", "all", ":1388"), dump_all(netns, nic)
    assert "match 00000000/00000000 at 0" in default[1][3]
    assert kernel.host_qos(nic, None) == qos(UNTAGGED)


def test_tagged_networks_get_a_class_and_a_vlan_filter_each(netns: NetNS,
                                                            kernel: QosKernel) -> None:
    nic = netns.add_nic("eth0", dummy=False)
    apply(kernel, {nic: {10: qos(VLAN10), 20: qos(VLAN20)}})

    assert classes(netns, nic) == {
        "1389:a": {"rt": (100_000, 1000, 50_000), "ls": (0, 0, 3200), "ul": (0, 0, 8_000_000)},
        "1389:14": {"ls": (16_000, 4000, 7200)},
        # No untagged QoS network: the default class shares like the widest tagged one.
        "1389:1388": {"ls": (16_000, 4000, 7200)},
    }, dump_all(netns, nic)
    leaves = {h: q for h, q in qdiscs(netns, nic).items() if q[0] == "fq_codel"}
    assert leaves == {"a:": ("fq_codel", "1389:a"), "14:": ("fq_codel", "1389:14"),
                      "1388:": ("fq_codel", "1389:1388")}
    found = filters(netns, nic)
    assert sorted(found) == [10, 20, 5000], dump_all(netns, nic)
    assert found[10][:3] == ("basic", "all", "1389:a")
    assert found[20][:3] == ("basic", "all", "1389:14")
    assert "meta(vlan eq 10)" in found[10][3] and "meta(vlan eq 20)" in found[20][3], found
    assert kernel.host_qos(nic, 10) == qos(VLAN10)
    assert kernel.host_qos(nic, 20) == qos(VLAN20)
    assert kernel.host_qos(nic, None) == qos({"ls": VLAN20["ls"]})
    assert kernel.host_qos(nic, 30) is None


def test_change_and_removal_restore_the_previous_qdisc(netns: NetNS,
                                                       kernel: QosKernel) -> None:
    nic = netns.add_nic("eth0", dummy=False)
    before = netns.sh("tc", "qdisc", "show", "dev", nic).stdout
    apply(kernel, {nic: {10: qos(VLAN10), None: qos(UNTAGGED)}})
    assert kernel.host_qos(nic, None) == qos(UNTAGGED)

    # A curve dropped: the class is re-made without it (an HFSC change keeps old curves).
    apply(kernel, {nic: {10: qos({"ls": {"m2": 400}}), None: qos(UNTAGGED)}})
    assert classes(netns, nic)["1389:a"] == {"ls": (0, 0, 3200)}, dump_all(netns, nic)
    assert kernel.host_qos(nic, 10) == qos({"ls": {"m2": 400}})

    # The tagged network goes: its class, leaf and filter go; the default class stays.
    apply(kernel, {nic: {None: qos(UNTAGGED)}})
    assert set(classes(netns, nic)) == {"1389:1388"}
    assert "a:" not in qdiscs(netns, nic)
    assert sorted(filters(netns, nic)) == [5000]
    assert kernel.host_qos(nic, None) == qos(UNTAGGED)

    apply(kernel, {nic: {}})
    assert netns.sh("tc", "qdisc", "show", "dev", nic).stdout == before
    assert "noqueue" in before  # a veth's own default
    assert kernel.read_tree(nic) is None


def test_plan_against_the_read_tree_is_empty_once_applied(netns: NetNS,
                                                          kernel: QosKernel) -> None:
    nic = netns.add_nic("eth0", dummy=False)
    wanted: dict[str, DeviceQos] = {nic: {10: qos(VLAN10), 20: qos(VLAN20)}}
    apply(kernel, wanted)
    assert plan({nic: kernel.read_tree(nic)}, wanted) == []


def test_a_foreign_root_qdisc_is_replaced(netns: NetNS, kernel: QosKernel) -> None:
    nic = netns.add_nic("eth0", dummy=False)
    netns.sh("tc", "qdisc", "add", "dev", nic, "root", "handle", "1:", "fq_codel")
    assert kernel.read_tree(nic) is None
    apply(kernel, {nic: {None: qos(UNTAGGED)}})
    assert kernel.host_qos(nic, None) == qos(UNTAGGED)
    assert "1:" not in qdiscs(netns, nic)


def test_a_failure_leaves_what_was_done_and_planning_back_restores_it(
    netns: NetNS, kernel: QosKernel
) -> None:
    first = netns.add_nic("eth0", dummy=False)
    gone = netns.add_nic("eth1", dummy=False)
    apply(kernel, {first: {None: qos(UNTAGGED)}})
    saved = {first: kernel.read_tree(first), gone: kernel.read_tree(gone)}
    before = shaping(netns, first)
    ops = plan(saved, {first: {10: qos(VLAN10)}, gone: {20: qos(VLAN20)}})
    netns.ip("link", "del", gone)  # the second device vanishes under the change

    with pytest.raises(NetError) as err:
        kernel.apply(ops)
    assert err.value.kind is ErrorKind.BAD_NIC and "eth1" in err.value.message
    assert kernel.host_qos(first, 10) == qos(VLAN10)  # the first device was changed

    kernel.apply(plan({first: kernel.read_tree(first)}, {first: {None: qos(UNTAGGED)}}))
    assert shaping(netns, first) == before, dump_all(netns, first)


def test_an_unknown_device_is_a_clear_error(kernel: QosKernel) -> None:
    with pytest.raises(NetError) as err:
        kernel.read_tree("nosuch0")
    assert err.value.kind is ErrorKind.BAD_NIC and "nosuch0" in err.value.message
