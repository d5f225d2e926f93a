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


# `tc -j` prints HFSC's options as text inside its JSON ("options":{default 1388 }), so the
# kernel's view is read from tc's text output.

_RATE_UNITS = {"bit": 1, "Kbit": 1000, "Mbit": 1000**2, "Gbit": 1000**3}
_TIME_UNITS = {"us": 1, "ms": 1000, "s": 1000**2}


def _number(text: str, units: dict[str, int]) -> int:
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * units[unit])
    raise ValueError(f"no unit in {text!r}")


def qdiscs(ns: NetNS, dev: str) -> dict[str, tuple[str, str]]:
    """handle -> (kind, parent or "root") from `tc qdisc show`."""
    out = {}
    for line in ns.sh("tc", "qdisc", "show", "dev", dev).stdout.splitlines():
        words = line.split()
        parent = "root" if "root" in words else words[words.index("parent") + 1]
        out[words[2]] = (words[1], parent)
    return out


def classes(ns: NetNS, dev: str) -> dict[str, dict[str, tuple[int, int, int]]]:
    """HFSC classes: handle -> {rt|ls|ul: (m1 bit/s, d us, m2 bit/s)} from `tc class show`."""
    out = {}
    for line in ns.sh("tc", "class", "show", "dev", dev).stdout.splitlines():
        words = line.split()
        if words[:2] != ["class", "hfsc"] or "root" in words:
            continue
        curves = {}
        for i, word in enumerate(words):
            if word in ("sc", "rt", "ls", "ul") and words[i + 1] == "m1":
                curve = (_number(words[i + 2], _RATE_UNITS), _number(words[i + 4], _TIME_UNITS),
                         _number(words[i + 6], _RATE_UNITS))
                for name in ("rt", "ls") if word == "sc" else (word,):
                    curves[name] = curve
        out[words[2]] = curves
    return out


def filters(ns: NetNS, dev: str) -> dict[int, tuple[str, str, str, str]]:
    """Filters on 1389: with a flowid: pref -> (kind, protocol, flowid, match text)."""
    out = {}
    text = ns.sh("tc", "filter", "show", "dev", dev, "parent", "1389:").stdout
    entry: list[str] = []
    for line in [*text.splitlines(), "filter"]:
        if line.startswith("filter") and entry:
            # tc marks u32's flowid "*flowid" (as for the filter tc itself makes from VDSM's
            # "match u8 0 0 flowid 0x1388").
            words = [w.removeprefix("*") for w in entry[0].split()]
            if "flowid" in words:
                out[int(words[words.index("pref") + 1])] = (
                    words[words.index("pref") + 2], words[words.index("protocol") + 1],
                    words[words.index("flowid") + 1], " ".join(" ".join(entry[1:]).split()))
            entry = []
        entry.append(line)
    return out


def shaping(ns: NetNS, dev: str) -> tuple[object, ...]:
    """The kernel's view of a device's shaping, without the per-flow entries fq_codel shows
    as classes while it has packets queued."""
    return qdiscs(ns, dev), classes(ns, dev), filters(ns, dev)


def dump_all(ns: NetNS, dev: str) -> str:
    return "\n".join(ns.sh("tc", what, "show", "dev", dev).stdout
                     for what in ("qdisc", "class", "filter"))


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
