"""Host QoS in the kernel, through netlink (pyroute2's tc support; no ``tc`` binary): the
operations of plan.py, and the reader that turns a device's qdiscs, classes and filters back
into a QosTree and the networks' ``hostQos``.

Synchronous, like the agent's kernel backend: the agent calls it from a worker thread.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import TC_H_INGRESS, TC_H_ROOT

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import route_socket as rs
from vdsm_net.kernel.constants import (
    NLA_TYPE_MASK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    RTM_GETQDISC,
    RTM_NEWQDISC,
    TCA_KIND,
)
from vdsm_net.qos.model import HostQos
from vdsm_net.qos.plan import TcOp
from vdsm_net.qos.tree import (
    DEFAULT_FILTER_PREF,
    DEFAULT_MINOR,
    INGRESS_HANDLE,
    LEAF_KIND,
    ROOT_HANDLE,
    ClassCurves,
    KernelCurve,
    QosTree,
    class_handle,
    minor_of,
)

LOG = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
# What VDSM ignores when deleting: the object is not there (tc says EINVAL, ENOENT, or
# EOPNOTSUPP depending on the object and the kernel version).
_MISSING = (errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP)


_TCMSG = struct.Struct("=BBHiIII")  # family, pads, ifindex, handle, parent, info
_NLMSGHDR_SIZE = 16
_NLA = struct.Struct("=HH")


@dataclass(frozen=True)
class _Qdisc:
    index: int
    handle: int
    parent: int
    kind: str


def _parse_qdisc(data: bytes, offset: int, length: int) -> _Qdisc:
    """An RTM_NEWQDISC's ifindex, handle, parent and TCA_KIND (nothing else is read)."""
    _, _, _, index, handle, parent, _ = _TCMSG.unpack_from(data, offset + _NLMSGHDR_SIZE)
    kind = ""
    at, end = offset + _NLMSGHDR_SIZE + _TCMSG.size, offset + length
    while at + _NLA.size <= end:
        size, number = _NLA.unpack_from(data, at)
        if size < _NLA.size:
            break
        if number & NLA_TYPE_MASK == TCA_KIND:
            kind = data[at + _NLA.size: at + size].split(b"\0", 1)[0].decode()
            break
        at += (size + 3) & ~3
    return _Qdisc(index, handle, parent, kind)


class QosKernel:
    """Netlink tc on the devices of one network namespace (``netns``: tests only)."""

    def __init__(self, netns: str | None = None) -> None:
        self._ipr = IPRoute(netns=netns) if netns else IPRoute()
        # Qdisc dumps on the agent's raw socket: the kernel dumps every device's qdiscs
        # whatever the request says, and pyroute2 decodes each in ~0.3 ms (a capabilities
        # call on a host of 500 devices paid 140 ms for it).
        self._sock = rs.RouteSocket.open(netns)

    def __enter__(self) -> QosKernel:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()
        self._sock.close()

    # -- applying -----------------------------------------------------------------------

    def apply(self, ops: Iterable[TcOp]) -> None:
        """Apply in order; the first refusal raises NetError(KERNEL) naming the operation.
        Earlier operations stay applied: rolling back is the caller's (plan back to the
        tree read before)."""
        for op in ops:
            LOG.debug("tc: %s", op)
            try:
                op.apply(self)
            except NetlinkError as err:
                raise NetError(ErrorKind.KERNEL,
                               f"host QoS on {op.dev}: {op} refused: {err}") from err

    def delete_root(self, dev: str) -> None:
        self._ignore_missing("del", index=self._index(dev), parent=TC_H_ROOT)

    def delete_ingress(self, dev: str) -> None:
        self._ignore_missing("del", index=self._index(dev), parent=TC_H_INGRESS,
                             handle=INGRESS_HANDLE)

    def add_root(self, dev: str) -> None:
        self._ipr.tc("add", "hfsc", index=self._index(dev), handle=ROOT_HANDLE,
                     parent=TC_H_ROOT, default=DEFAULT_MINOR)

    def add_ingress(self, dev: str) -> None:
        self._ipr.tc("add", "ingress", index=self._index(dev))

    def add_class(self, dev: str, minor: int, curves: ClassCurves) -> None:
        given = {"rsc": curves.rt, "fsc": curves.ls, "usc": curves.ul}
        self._ipr.tc("add-class", "hfsc", index=self._index(dev), handle=class_handle(minor),
                     parent=ROOT_HANDLE,
                     **{key: {"m1": c.m1, "d": c.d, "m2": c.m2}
                        for key, c in given.items() if c is not None})

    def delete_class(self, dev: str, minor: int) -> None:
        self._ignore_missing("del-class", index=self._index(dev),
                             handle=class_handle(minor), parent=ROOT_HANDLE)

    def add_leaf(self, dev: str, minor: int) -> None:
        self._ipr.tc("add", LEAF_KIND, index=self._index(dev), parent=class_handle(minor),
                     handle=minor << 16)

    def add_default_filter(self, dev: str) -> None:
        # tc's "u32 match u8 0 0 flowid 0x1388": one key matching anything, at offset 0.
        self._ipr.tc("add-filter", "u32", index=self._index(dev), parent=ROOT_HANDLE,
                     prio=DEFAULT_FILTER_PREF, protocol=ETH_P_ALL, target=DEFAULT_MINOR,
                     keys=["0x0/0x0+0"])

    def add_vlan_filter(self, dev: str, vlan: int) -> None:
        # tc's "basic match 'meta(vlan eq <tag>)' flowid 1389:<tag>".
        match = [{"kind": "meta", "object": {"kind": "vlan_tag", "opnd": "eq"},
                  "value": vlan}]
        self._ipr.tc("add-filter", "basic", index=self._index(dev), parent=ROOT_HANDLE,
                     prio=vlan, protocol=ETH_P_ALL, classid=class_handle(vlan), match=match)

    def delete_filter(self, dev: str, pref: int) -> None:
        # Every filter of that preference on the root (what `tc filter del pref N` does).
        self._ignore_missing("del-filter", index=self._index(dev), parent=ROOT_HANDLE,
                             info=pref << 16)

    # -- reading ------------------------------------------------------------------------

    def read_tree(self, dev: str) -> QosTree | None:
        """The shaping of ``dev`` (None when its root is not a ``1389:`` HFSC qdisc)."""
        index = self._index(dev)
        return self._tree(index, [q for q in self._qdiscs() if q.index == index])

    def read_trees(self, devices: Mapping[str, int]) -> dict[str, QosTree]:
        """The shaping of those ``devices`` (name -> ifindex) that carry a ``1389:`` HFSC
        root: one dump of every qdisc, then classes and filters of the shaped ones only."""
        by_index: dict[int, list[_Qdisc]] = {}
        for qdisc in self._qdiscs():
            by_index.setdefault(qdisc.index, []).append(qdisc)
        trees = {}
        for name, index in sorted(devices.items()):
            qdiscs = by_index.get(index, [])
            if not any(_is_root(q) for q in qdiscs):
                continue
            try:
                tree = self._tree(index, qdiscs)
            except NetlinkError as err:
                if err.code != errno.ENODEV:  # gone since the dump
                    raise
                continue
            if tree is not None:
                trees[name] = tree
        return trees

    def _qdiscs(self) -> list[_Qdisc]:
        request = rs.Request(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP,
                             _TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0))
        try:
            return self._sock.request(request, RTM_NEWQDISC, _parse_qdisc)
        except rs.KernelRefused as err:
            raise NetError(ErrorKind.KERNEL, f"host QoS: reading the qdiscs failed: "
                           f"{err.ack.reason()}") from err

    def _tree(self, index: int, qdiscs: list[_Qdisc]) -> QosTree | None:
        if not any(_is_root(q) for q in qdiscs):
            return None
        classes = {
            c["handle"] & 0xFFFF: _class_curves(c)
            for c in self._ipr.get_classes(index=index)
            if c["parent"] == ROOT_HANDLE and c["handle"] >> 16 == ROOT_HANDLE >> 16
            and c.get_attr("TCA_KIND") == "hfsc"
        }
        leaves = frozenset(
            q.parent & 0xFFFF for q in qdiscs
            if q.parent >> 16 == ROOT_HANDLE >> 16 and q.parent != ROOT_HANDLE
            and q.kind == LEAF_KIND and q.handle >> 16 == q.parent & 0xFFFF
        )
        vlan_filters: set[int] = set()
        default_filter = False
        for pref, kind, classid in self._filters(index):
            if kind == "basic" and classid == class_handle(pref):
                vlan_filters.add(pref)
            elif kind == "u32" and pref == DEFAULT_FILTER_PREF and classid == DEFAULT_MINOR:
                default_filter = True
        ingress = any(q.parent == TC_H_INGRESS for q in qdiscs)
        return QosTree(classes=classes, vlan_filters=frozenset(vlan_filters),
                       leaves=leaves, default_filter=default_filter, ingress=ingress)

    def host_qos(self, dev: str, vlan: int | None) -> HostQos | None:
        """What VDSM reports as a network's ``hostQos``: the curves of its class on the NIC
        or bond ``dev`` (the VLAN's class, or the default class when untagged)."""
        tree = self.read_tree(dev)
        if tree is None:
            return None
        curves = tree.classes.get(minor_of(vlan))
        return None if curves is None else curves.to_host_qos()

    # -- internals ----------------------------------------------------------------------

    def _index(self, dev: str) -> int:
        try:
            links = self._ipr.link("get", ifname=dev)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                raise NetError(ErrorKind.BAD_NIC, f"host QoS: no device {dev!r}") from err
            raise
        return int(links[0]["index"])

    def _filters(self, index: int) -> Iterator[tuple[int, str, int | None]]:
        """(preference, kind, classid) of the filters on the root; u32's hash-table
        entries (no classid) included with classid None."""
        for f in self._ipr.get_filters(index=index, parent=ROOT_HANDLE):
            kind = f.get_attr("TCA_KIND")
            options = f.get_attr("TCA_OPTIONS")
            classid = None
            if options is not None:
                classid = options.get_attr("TCA_BASIC_CLASSID" if kind == "basic"
                                           else "TCA_U32_CLASSID")
            yield f["info"] >> 16, str(kind), classid

    def _ignore_missing(self, *args: Any, **kwargs: Any) -> None:
        try:
            self._ipr.tc(*args, **kwargs)
        except NetlinkError as err:
            if err.code not in _MISSING:
                raise


def _is_root(qdisc: _Qdisc) -> bool:
    """The agent's root: HFSC with handle ``1389:`` (another root is not the agent's)."""
    return qdisc.parent == TC_H_ROOT and qdisc.handle == ROOT_HANDLE and qdisc.kind == "hfsc"


def _class_curves(msg: Any) -> ClassCurves:
    options = msg.get_attr("TCA_OPTIONS")

    def curve(name: str) -> KernelCurve | None:
        raw = options.get_attr(name) if options is not None else None
        if raw is None or (raw["m1"] == 0 and raw["m2"] == 0):
            return None
        return KernelCurve(m1=int(raw["m1"]), d=int(raw["d"]), m2=int(raw["m2"]))

    return ClassCurves(rt=curve("TCA_HFSC_RSC"), ls=curve("TCA_HFSC_FSC"),
                       ul=curve("TCA_HFSC_USC"))
