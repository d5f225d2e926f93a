"""From the shaping a device has to the shaping it should have: a list of tc operations.

``plan`` is pure. Each operation names its device and applies itself through a ``TcKernel``
(kernel.py); the order is the kernel's: filters go before the class they point to (the
kernel refuses to delete a class a filter is bound to), a class before its leaf, a leaf
before the filter that sends traffic to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from vdsm_net.qos.model import HostQos
from vdsm_net.qos.tree import DEFAULT_FILTER_PREF, DEFAULT_MINOR, ClassCurves, QosTree


class TcKernel(Protocol):
    """What the operations need from the kernel (kernel.py implements it over netlink)."""

    def delete_root(self, dev: str) -> None: ...
    def delete_ingress(self, dev: str) -> None: ...
    def add_root(self, dev: str) -> None: ...
    def add_ingress(self, dev: str) -> None: ...
    def add_class(self, dev: str, minor: int, curves: ClassCurves) -> None: ...
    def delete_class(self, dev: str, minor: int) -> None: ...
    def add_leaf(self, dev: str, minor: int) -> None: ...
    def add_default_filter(self, dev: str) -> None: ...
    def add_vlan_filter(self, dev: str, vlan: int) -> None: ...
    def delete_filter(self, dev: str, pref: int) -> None: ...


@dataclass(frozen=True)
class DeleteRoot:
    """Remove the root qdisc and everything under it; the kernel puts back the device's
    default (noqueue, pfifo_fast, mq, ... whatever the device had before shaping)."""

    dev: str

    def apply(self, kernel: TcKernel) -> None:
        kernel.delete_root(self.dev)


@dataclass(frozen=True)
class DeleteIngress:
    dev: str

    def apply(self, kernel: TcKernel) -> None:
        kernel.delete_ingress(self.dev)


@dataclass(frozen=True)
class AddRoot:
    dev: str

    def apply(self, kernel: TcKernel) -> None:
        kernel.add_root(self.dev)


@dataclass(frozen=True)
class AddIngress:
    dev: str

    def apply(self, kernel: TcKernel) -> None:
        kernel.add_ingress(self.dev)


@dataclass(frozen=True)
class AddClass:
    dev: str
    minor: int
    curves: ClassCurves

    def apply(self, kernel: TcKernel) -> None:
        kernel.add_class(self.dev, self.minor, self.curves)


@dataclass(frozen=True)
class DeleteClass:
    """Remove a class (its leaf goes with it)."""

    dev: str
    minor: int

    def apply(self, kernel: TcKernel) -> None:
        kernel.delete_class(self.dev, self.minor)


@dataclass(frozen=True)
class AddLeaf:
    dev: str
    minor: int

    def apply(self, kernel: TcKernel) -> None:
        kernel.add_leaf(self.dev, self.minor)


@dataclass(frozen=True)
class AddDefaultFilter:
    dev: str

    def apply(self, kernel: TcKernel) -> None:
        kernel.add_default_filter(self.dev)


@dataclass(frozen=True)
class AddVlanFilter:
    dev: str
    vlan: int

    def apply(self, kernel: TcKernel) -> None:
        kernel.add_vlan_filter(self.dev, self.vlan)


@dataclass(frozen=True)
class DeleteFilter:
    dev: str
    pref: int

    def apply(self, kernel: TcKernel) -> None:
        kernel.delete_filter(self.dev, self.pref)


TcOp = (DeleteRoot | DeleteIngress | AddRoot | AddIngress | AddClass | DeleteClass | AddLeaf
        | AddDefaultFilter | AddVlanFilter | DeleteFilter)



def tc_op_json(op: TcOp) -> dict[str, Any]:
    """A tc operation in a ``dryRun`` plan: ``op`` and its fields, curves in kernel units
    (bytes/s and microseconds, as ``tc_service_curve`` holds them)."""
    return {"op": type(op).__name__, **asdict(op)}


DeviceQos = Mapping[int | None, HostQos]
"""The QoS networks of one device: VLAN tag (None: untagged) -> its QoS."""


def plan(current: Mapping[str, QosTree | None],
         desired: Mapping[str, DeviceQos]) -> list[TcOp]:
    """The operations that take every device in ``current`` or ``desired`` from its current
    tree (None: no ``1389:`` HFSC root) to the tree for its desired QoS networks (a device
    missing from ``desired`` or with no networks loses its shaping)."""
    ops: list[TcOp] = []
    for dev in sorted(set(current) | set(desired)):
        ops += plan_device(dev, current.get(dev), QosTree.desired(desired.get(dev, {})))
    return ops


def plan_device(dev: str, have: QosTree | None, want: QosTree | None) -> list[TcOp]:
    if want is None:
        return [] if have is None else [DeleteRoot(dev), DeleteIngress(dev)]
    if have is None:
        # As VDSM: delete and add, which flushes whatever root (and ingress) was there.
        ops: list[TcOp] = [DeleteRoot(dev), DeleteIngress(dev), AddRoot(dev), AddIngress(dev)]
        for minor, curves in want.classes.items():
            ops += [AddClass(dev, minor, curves), AddLeaf(dev, minor)]
        ops.append(AddDefaultFilter(dev))
        ops += [AddVlanFilter(dev, vlan) for vlan in sorted(want.vlan_filters)]
        return ops
    return _plan_changes(dev, have, want)


def _plan_changes(dev: str, have: QosTree, want: QosTree) -> list[TcOp]:
    ops: list[TcOp] = []
    if want.ingress and not have.ingress:
        ops.append(AddIngress(dev))
    elif have.ingress and not want.ingress:
        ops.append(DeleteIngress(dev))  # back to a tree read without one (a rollback)
    for minor in sorted(set(have.classes) - set(want.classes)):
        if minor in have.vlan_filters:
            ops.append(DeleteFilter(dev, minor))
        ops.append(DeleteClass(dev, minor))
    for vlan in sorted(have.vlan_filters - set(have.classes) - want.vlan_filters):
        ops.append(DeleteFilter(dev, vlan))  # a filter left without its class
    for minor, curves in want.classes.items():
        tagged = minor != DEFAULT_MINOR
        if minor in have.classes:
            if have.classes[minor] == curves and minor in have.leaves:
                if tagged and minor not in have.vlan_filters:
                    ops.append(AddVlanFilter(dev, minor))
                continue
            # Changed: re-made as VDSM does (an HFSC change cannot drop a curve).
            if tagged and minor in have.vlan_filters:
                ops.append(DeleteFilter(dev, minor))
            ops.append(DeleteClass(dev, minor))
        ops += [AddClass(dev, minor, curves), AddLeaf(dev, minor)]
        if tagged:
            ops.append(AddVlanFilter(dev, minor))
    if want.default_filter and not have.default_filter:
        ops.append(AddDefaultFilter(dev))
    elif have.default_filter and not want.default_filter:
        ops.append(DeleteFilter(dev, DEFAULT_FILTER_PREF))
    return ops


__all__ = ["DEFAULT_FILTER_PREF", "DeviceQos", "TcKernel", "TcOp", "plan", "plan_device"]
