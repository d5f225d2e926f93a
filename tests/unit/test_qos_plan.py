"""Host QoS without a kernel: parsing hostQos (errors name the field), the kernel units
VDSM uses, and the plan from one tree to another."""

from __future__ import annotations

from typing import Any

import pytest

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.qos import ClassCurves, HostQos, KernelCurve, QosTree, plan, plan_device
from vdsm_net.qos.plan import (
    AddClass,
    AddDefaultFilter,
    AddIngress,
    AddLeaf,
    AddRoot,
    AddVlanFilter,
    DeleteClass,
    DeleteFilter,
    DeleteIngress,
    DeleteRoot,
)


def qos(out: dict[str, Any]) -> HostQos:
    parsed = HostQos.from_json({"out": out}, "hostQos")
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(("value", "field", "text"), [
    ([], "hostQos", "expected an object"),
    ({"in": {}}, "hostQos", "unknown key 'in'"),
    ({"out": {"xx": {"m2": 1}}}, "hostQos.out", "unknown curve 'xx'"),
    ({"out": {"ul": {"m2": 1000}}}, "hostQos.out.ls", "link-share curve"),
    ({"out": {"ls": {"m2": "fast"}}}, "hostQos.out.ls.m2", "'fast'"),
    ({"out": {"ls": {"m2": True}}}, "hostQos.out.ls.m2", "True"),
    ({"out": {"ls": {"m2": -1}}}, "hostQos.out.ls.m2", "-1"),
    ({"out": {"ls": {"m2": 2**32}}}, "hostQos.out.ls.m2", str(2**32)),
    ({"out": {"ls": {"m1": 5, "d": 1}}}, "hostQos.out.ls.m2", "must be > 0"),
    ({"out": {"ls": {"m2": 5, "x": 1}}}, "hostQos.out.ls", "unknown key 'x'"),
    ({"out": {"ls": {"m1": 1, "d": 2**30, "m2": 5}}}, "hostQos.out.ls.d", str(2**30)),
])
def test_bad_host_qos_names_the_field_and_value(value: object, field: str, text: str) -> None:
    with pytest.raises(NetError) as err:
        HostQos.from_json(value, "hostQos")
    assert err.value.kind is ErrorKind.BAD_PARAMS
    assert err.value.message.startswith(field + ":"), err.value.message
    assert text in err.value.message


def test_zeros_are_not_given_as_vdsm_strips_them() -> None:
    assert HostQos.from_json({}, "q") is None
    assert HostQos.from_json({"out": {"ls": {"m1": 0, "d": 0, "m2": 0}}}, "q") is None
    parsed = qos({"ls": {"m1": 0, "d": 0, "m2": 400}, "ul": {"m1": 0, "d": 0, "m2": 8000}})
    assert parsed.to_json() == {"out": {"ls": {"m2": 400}, "ul": {"m2": 8000}}}
    assert parsed.to_json(with_zeros=True) == {
        "out": {"ls": {"m1": 0, "d": 0, "m2": 400}, "ul": {"m1": 0, "d": 0, "m2": 8000}}}
    # d without m1 is dropped, as VDSM hands tc d only with m1.
    assert qos({"ls": {"d": 7, "m2": 1}}).ls.d == 0


def test_kernel_units_follow_vdsm_ls_times_eight_then_tc_bits_to_bytes() -> None:
    curves = ClassCurves.of(qos({"ls": {"m1": 2000, "d": 500, "m2": 900},
                                 "rt": {"m1": 100_000, "d": 1000, "m2": 50_001},
                                 "ul": {"m2": 8_000_000}}))
    assert curves.ls == KernelCurve(m1=2000, d=4000, m2=900)
    assert curves.rt == KernelCurve(m1=12_500, d=1000, m2=6250)  # 50001 bit -> 6250 B/s
    assert curves.ul == KernelCurve(m1=0, d=0, m2=1_000_000)
    back = curves.to_host_qos()
    assert back is not None
    assert back.to_json() == {"out": {"ls": {"m1": 2000, "d": 500, "m2": 900},
                                      "rt": {"m1": 100_000, "d": 1000, "m2": 50_000},
                                      "ul": {"m2": 8_000_000}}}


A = qos({"ls": {"m2": 400}, "ul": {"m2": 8_000_000}})
B = qos({"ls": {"m1": 10, "d": 5, "m2": 900}})
C = qos({"ls": {"m2": 100}})


def test_fresh_device_gets_the_whole_tree_in_kernel_order() -> None:
    ops = plan({"eth0": None}, {"eth0": {10: A, 20: B}})
    assert [type(op) for op in ops] == [
        DeleteRoot, DeleteIngress, AddRoot, AddIngress,
        AddClass, AddLeaf, AddClass, AddLeaf, AddClass, AddLeaf,
        AddDefaultFilter, AddVlanFilter, AddVlanFilter]
    added = {op.minor: op.curves for op in ops if isinstance(op, AddClass)}
    assert set(added) == {10, 20, 0x1388}
    # The default class shares like the tagged network with the largest ls m2, whole.
    assert added[0x1388] == ClassCurves(rt=None, ls=ClassCurves.of(B).ls, ul=None)
    assert [op.vlan for op in ops if isinstance(op, AddVlanFilter)] == [10, 20]


def test_untagged_network_is_the_default_class() -> None:
    tree = QosTree.desired({None: C, 10: A})
    assert tree is not None
    assert tree.classes[0x1388] == ClassCurves.of(C)
    assert tree.vlan_filters == frozenset({10})


def test_nothing_to_do_when_the_tree_is_as_wanted() -> None:
    want = {"eth0": {10: A, None: C}}
    assert plan({"eth0": QosTree.desired(want["eth0"])}, want) == []
    assert plan({"eth1": None}, {}) == []


def test_a_changed_class_is_remade_behind_its_filter() -> None:
    have = QosTree.desired({10: A, 20: B})
    ops = plan_device("eth0", have, QosTree.desired({10: C, 20: B}))
    assert ops == [DeleteFilter("eth0", 10), DeleteClass("eth0", 10),
                   AddClass("eth0", 10, ClassCurves.of(C)), AddLeaf("eth0", 10),
                   AddVlanFilter("eth0", 10)]


def test_a_removed_network_takes_its_filter_and_class_and_the_last_takes_the_tree() -> None:
    have = QosTree.desired({10: A, None: C})
    assert plan_device("eth0", have, QosTree.desired({None: C})) == [
        DeleteFilter("eth0", 10), DeleteClass("eth0", 10)]
    assert plan({"eth0": have}, {"eth0": {}}) == [DeleteRoot("eth0"), DeleteIngress("eth0")]


def test_missing_pieces_of_a_tree_are_put_back() -> None:
    want = QosTree.desired({10: A})
    assert want is not None
    damaged = QosTree(classes=want.classes, vlan_filters=frozenset({99}),
                      leaves=frozenset({0x1388}), default_filter=False, ingress=False)
    ops = plan_device("eth0", damaged, want)
    assert ops == [AddIngress("eth0"), DeleteFilter("eth0", 99),
                   DeleteClass("eth0", 10), AddClass("eth0", 10, ClassCurves.of(A)),
                   AddLeaf("eth0", 10), AddVlanFilter("eth0", 10), AddDefaultFilter("eth0")]
