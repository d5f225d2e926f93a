"""The HFSC tree VDSM builds on a network's NIC or bond, in the kernel's own units.

VDSM (``configurators/qos.py``) shapes a device this way, and so does the agent:

- root qdisc ``hfsc`` with handle ``1389:`` (5001; 0 stays free for the leaf of VLAN 0) and
  default class ``0x1388`` (5000), plus an ``ingress`` qdisc;
- one class per QoS network: ``1389:<vlan tag in hex>`` for a VLAN network, the default class
  ``1389:1388`` for the untagged one. When no untagged network has QoS, the default class
  gets only a link-share curve: the tagged networks' largest one (VDSM starts from the first
  network's ls and raises m2 to the largest as networks are added; a desired-state plan
  cannot depend on that history, so it takes the curve with the largest m2 whole);
- an ``fq_codel`` leaf under every class, with handle ``<class minor>:``;
- filters on ``1389:``, protocol all: ``basic match meta(vlan eq <tag>)`` with preference
  <tag> to each VLAN class, and ``u32 match u8 0 0`` with preference 5000 and flowid
  ``0x1388``. That flowid has major 0 (tc reads ``0x1388`` as a whole handle), so it names
  no class and HFSC falls back to its default class: untagged traffic lands in 1389:1388
  through the default either way. Kept as VDSM writes it, so trees either made read back.

Units: the kernel's curves are bytes/s and microseconds. ``tc`` turns ``Nbit`` into N/8
bytes/s. VDSM multiplies the whole ``ls`` curve (m1, d and m2) by 8 before handing it to tc
("tc always rounds them down to multiples of 8") and divides by 8 when reporting; so the
kernel's ls is m1, 8*d, m2 and rt/ul are m1/8, d, m2/8.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vdsm_net.qos.model import Curve, HostQos

ROOT_MAJOR = 0x1389
ROOT_HANDLE = ROOT_MAJOR << 16
DEFAULT_MINOR = 0x1388  # VDSM's NON_VLANNED_ID, 5000
DEFAULT_FILTER_PREF = 5000
INGRESS_HANDLE = 0xFFFF0000
LEAF_KIND = "fq_codel"


def class_handle(minor: int) -> int:
    return ROOT_HANDLE | minor


def minor_of(vlan: int | None) -> int:
    return DEFAULT_MINOR if vlan is None else vlan


@dataclass(frozen=True)
class KernelCurve:
    """A ``tc_service_curve``: bytes/s, microseconds, bytes/s."""

    m1: int
    d: int
    m2: int


@dataclass(frozen=True)
class ClassCurves:
    """The curves of one HFSC class as the kernel holds them (rsc, fsc, usc)."""

    rt: KernelCurve | None
    ls: KernelCurve | None
    ul: KernelCurve | None

    @classmethod
    def of(cls, qos: HostQos) -> ClassCurves:
        return cls(rt=_rate_curve(qos.rt), ls=_share_curve(qos.ls), ul=_rate_curve(qos.ul))

    def to_host_qos(self) -> HostQos | None:
        """The API form VDSM reports; None for a class without a link-share curve (not one
        VDSM makes)."""
        if self.ls is None:
            return None
        ls = Curve(m1=self.ls.m1, d=self.ls.d // 8, m2=self.ls.m2)
        return HostQos(ls=ls, ul=_api_rate(self.ul), rt=_api_rate(self.rt))


def _rate_curve(curve: Curve | None) -> KernelCurve | None:
    if curve is None:
        return None
    return KernelCurve(m1=curve.m1 // 8, d=curve.d, m2=curve.m2 // 8)


def _share_curve(curve: Curve) -> KernelCurve:
    return KernelCurve(m1=curve.m1, d=curve.d * 8, m2=curve.m2)


def _api_rate(curve: KernelCurve | None) -> Curve | None:
    if curve is None:
        return None
    return Curve(m1=curve.m1 * 8, d=curve.d, m2=curve.m2 * 8)


@dataclass(frozen=True)
class QosTree:
    """The shaping of one device under its ``1389:`` HFSC root: class minor -> curves, the
    classes with their fq_codel leaf, the VLAN tags with their filter, and whether the
    default (u32) filter and the ingress qdisc are there. A desired tree has them all."""

    classes: Mapping[int, ClassCurves]
    vlan_filters: frozenset[int]
    leaves: frozenset[int]
    default_filter: bool = True
    ingress: bool = True

    @classmethod
    def desired(cls, networks: Mapping[int | None, HostQos]) -> QosTree | None:
        """The tree for these networks (VLAN tag or None -> QoS); None when there are none."""
        if not networks:
            return None
        classes = {minor_of(vlan): ClassCurves.of(qos) for vlan, qos in networks.items()}
        if DEFAULT_MINOR not in classes:
            widest = max(sorted((vlan, qos) for vlan, qos in networks.items()
                                if vlan is not None), key=lambda item: item[1].ls.m2)[1]
            classes[DEFAULT_MINOR] = ClassCurves(rt=None, ls=_share_curve(widest.ls), ul=None)
        tags = frozenset(vlan for vlan in networks if vlan is not None)
        return cls(classes=dict(sorted(classes.items())), vlan_filters=tags,
                   leaves=frozenset(classes))
