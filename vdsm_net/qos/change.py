"""Host QoS in the setupNetworks transaction: which devices a change shapes, the undo record
read before it, the apply after the links are in place, the rollback, and the sync of a
whole config (restore, agent start).

A network's shaping lives on its southbound NIC or bond (never on its VLAN device or
bridge), in the class of its VLAN tag or, untagged, in the default class. A device's tree is
planned from every network of the new config on it, so the classes of networks a request
does not name stay as they are (their plan is empty).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.model import NetConfig
from vdsm_net.qos.model import HostQos
from vdsm_net.qos.plan import TcOp, plan, plan_device
from vdsm_net.qos.tree import QosTree

log = logging.getLogger("vdsm_net.qos")


class QosBackend(Protocol):
    """What the transaction needs from the kernel (``vdsm_net.qos.kernel.QosKernel``)."""

    def read_tree(self, dev: str) -> QosTree | None: ...
    def read_trees(self, devices: Mapping[str, int]) -> dict[str, QosTree]: ...
    def apply(self, ops: Iterable[TcOp]) -> None: ...
    def close(self) -> None: ...


def shaping_of(config: NetConfig) -> dict[str, dict[int | None, HostQos]]:
    """Southbound device -> its QoS networks (VLAN tag, None untagged -> hostQos)."""
    out: dict[str, dict[int | None, HostQos]] = {}
    for net in config.networks.values():
        if net.host_qos is not None and net.southbound is not None:
            out.setdefault(net.southbound, {})[net.vlan] = net.host_qos
    return out


@dataclass(frozen=True)
class QosChange:
    """The shaping a setupNetworks changes: the devices it touches and, for each, what it
    should carry afterwards; ``before`` is the undo record (None: no ``1389:`` HFSC root,
    or no such device yet)."""

    desired: Mapping[str, Mapping[int | None, HostQos]] = field(default_factory=dict)
    before: Mapping[str, QosTree | None] = field(default_factory=dict)

    @property
    def devices(self) -> list[str]:
        return sorted(self.desired)

    def __bool__(self) -> bool:
        return bool(self.desired)


def change_of(running: NetConfig, new: NetConfig, named: Iterable[str]) -> QosChange:
    """The devices whose shaping the request may change: the old and new southbounds of the
    named networks that had or get ``hostQos`` (VDSM touches nothing else)."""
    devices: set[str] = set()
    for name in named:
        for config in (running, new):
            net = config.networks.get(name)
            if net is not None and net.host_qos is not None and net.southbound is not None:
                devices.add(net.southbound)
    shaping = shaping_of(new)
    return QosChange(desired={dev: shaping.get(dev, {}) for dev in sorted(devices)})


def record_before(kernel: QosBackend, change: QosChange) -> QosChange:
    """The change with its undo record: each device's tree as it is now."""
    return QosChange(desired=change.desired,
                     before={dev: _read(kernel, dev)[1] for dev in change.devices})


def _targets(
    kernel: QosBackend, change: QosChange
) -> tuple[dict[str, QosTree | None], dict[str, Mapping[int | None, HostQos]]]:
    """(each device's tree now, what it should carry) for the devices ``change`` shapes. A
    device of the old config that is gone (a deleted bond) has nothing left to unshape."""
    found = {dev: _read(kernel, dev) for dev in change.devices}
    current = {dev: tree for dev, (exists, tree) in found.items()
               if exists or change.desired[dev]}
    return current, {dev: change.desired[dev] for dev in current}


def planned_ops(kernel: QosBackend, change: QosChange) -> list[TcOp]:
    """The tc operations ``apply_change`` would run now (a ``dryRun`` plan's); a device to
    shape that does not exist yet (a bond the same change makes) gets its whole tree."""
    return plan(*_targets(kernel, change))


def apply_change(kernel: QosBackend, change: QosChange) -> int:
    """Shape the devices as ``change`` wants (after the links are in place), verify by
    reading back; the number of tc operations. A device to shape that is gone fails the
    change."""
    current, desired = _targets(kernel, change)
    ops = plan(current, desired)
    if ops:
        log.info("host QoS: %d tc operations on %s", len(ops), ", ".join(sorted(current)))
        kernel.apply(ops)
        left = plan({dev: kernel.read_tree(dev) for dev in current}, desired)
        if left:
            raise NetError(ErrorKind.KERNEL, "host QoS verification failed: the kernel's "
                           "qdiscs still differ; remaining: "
                           + "; ".join(str(op) for op in left[:5]))
    return len(ops)


def undo_change(kernel: QosBackend, change: QosChange) -> None:
    """Put back the trees of ``change.before`` on the devices that still exist (run after
    the links are reverted, so a bond the change deleted is back, one it made is gone)."""
    ops: list[TcOp] = []
    for dev, before in sorted(change.before.items()):
        exists, now = _read(kernel, dev)
        if exists:
            ops += plan_device(dev, now, before)
    if ops:
        log.info("host QoS: rolling back with %d tc operations", len(ops))
        kernel.apply(ops)


def sync_config(kernel: QosBackend, config: NetConfig, devices: Mapping[str, int]) -> int:
    """Shape every device of ``devices`` (name -> ifindex: the kernel's) as ``config`` says:
    its QoS networks' southbounds get their trees, a device with the agent's tree and no QoS
    network loses it. Restore and agent start; the number of tc operations."""
    shaping = {dev: nets for dev, nets in shaping_of(config).items() if dev in devices}
    shaped = kernel.read_trees(devices)
    current: dict[str, QosTree | None] = {dev: shaped.get(dev) for dev in shaping}
    current.update(shaped)
    ops = plan(current, shaping)
    if ops:
        log.info("host QoS: %d tc operations to match the config on %s", len(ops),
                 ", ".join(sorted(current)))
        kernel.apply(ops)
    return len(ops)


def _read(kernel: QosBackend, dev: str) -> tuple[bool, QosTree | None]:
    """(whether ``dev`` exists, its tree)."""
    try:
        return True, kernel.read_tree(dev)
    except NetError as err:
        if err.kind is ErrorKind.BAD_NIC:
            return False, None
        raise
