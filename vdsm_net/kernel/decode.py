"""Lean decoders of the kernel's RTM_NEWLINK, RTM_NEWADDR and RTM_NEWROUTE messages: only
the fields the agent reads, into typed values.

pyroute2 decodes every attribute of every link (IPv4/IPv6 devconf arrays, bridge timers,
counters...) into nested objects: ~0.5 ms per device, so a dump of 3000 devices cost over a
second and dominated every setupNetworks and capabilities call. These walk the raw message
with ``struct`` and keep a handful of attributes (~20 µs per device). Pure: no pyroute2, no
I/O. Each takes ``(data, offset, length)`` of one message, as
``route_socket.RouteSocket.request`` hands them over.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from vdsm_net.kernel import bond_options, bridge_options
from vdsm_net.kernel.constants import (
    DEVCONF_ACCEPT_RA,
    DEVCONF_AUTOCONF,
    IFA_ADDRESS,
    IFA_FLAGS,
    IFA_LOCAL,
    IFLA_ADDRESS,
    IFLA_AF_SPEC,
    IFLA_BOND_ACTIVE_SLAVE,
    IFLA_BOND_AD_ACTOR_SYSTEM,
    IFLA_BOND_AD_INFO,
    IFLA_BOND_AD_INFO_AGGREGATOR,
    IFLA_BOND_AD_INFO_PARTNER_MAC,
    IFLA_BOND_ARP_IP_TARGET,
    IFLA_BOND_NS_IP6_TARGET,
    IFLA_BOND_SLAVE_AD_AGGREGATOR_ID,
    IFLA_BOND_SLAVE_PERM_HWADDR,
    IFLA_BR_STP_STATE,
    IFLA_GROUP,
    IFLA_IFNAME,
    IFLA_INET6_CONF,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_INFO_SLAVE_DATA,
    IFLA_INFO_SLAVE_KIND,
    IFLA_LINK,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_OPERSTATE,
    IFLA_STATS64,
    IFLA_VLAN_ID,
    NLA_TYPE_MASK,
    OPERSTATES,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_TABLE,
)
from vdsm_net.state import Address, Interface

NLMSG_HDR = 16  # struct nlmsghdr
IFINFO_HDR = 16  # struct ifinfomsg
IFADDR_HDR = 8  # struct ifaddrmsg
RTMSG_HDR = 12  # struct rtmsg

_EMPTY: Mapping[str, int] = MappingProxyType({})
_NO_OPTS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LinkCounters:
    """The first fields of struct rtnl_link_stats64 (IFLA_STATS64), in the kernel's order."""

    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0


_COUNTERS = len(LinkCounters.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Link:
    """One RTM_NEWLINK: ifinfomsg's index and flags, and the attributes the agent reads.
    An attribute the kernel did not send keeps its default (0: no such device referred to)."""

    index: int
    flags: int
    name: str = ""  # IFLA_IFNAME
    mtu: int = 0  # IFLA_MTU
    link: int = 0  # IFLA_LINK: a VLAN's base device
    master: int = 0  # IFLA_MASTER
    group: int | None = None  # IFLA_GROUP
    address: str | None = None  # IFLA_ADDRESS, "aa:bb:..."
    operstate: str = "unknown"  # IFLA_OPERSTATE, as OPERSTATES spells it
    counters: LinkCounters | None = None  # IFLA_STATS64
    # IFLA_AF_SPEC's IPv6 devconf: SLAAC on (autoconf and accept_ra); None without IPv6.
    ipv6_autoconf: bool | None = None
    kind: str = ""  # IFLA_INFO_KIND: "bridge", "vlan", "bond", "veth"...; "" for a NIC
    slave_kind: str = ""  # IFLA_INFO_SLAVE_KIND: the kind of its master ("bond"...)
    vlan_id: int | None = None  # IFLA_VLAN_ID, vlans only
    stp_state: int | None = None  # IFLA_BR_STP_STATE, bridges only
    # Bonds only: option name (bond_options.NETLINK_ATTRS) -> the kernel's number for it.
    bond: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    active_slave: int = 0  # IFLA_BOND_ACTIVE_SLAVE
    # Reported in the capabilities only (VDSM's netinfo), never planned:
    bridge_opts: Mapping[str, str] = field(default_factory=lambda: _NO_OPTS)  # sysfs spelling
    # Bonds: the options that are not one integer (bond_options.TEXT_ATTRS), sysfs-spelled
    # (address lists comma-joined, as VDSM writes them).
    bond_text: Mapping[str, str] = field(default_factory=lambda: _NO_OPTS)
    ad_aggregator_id: int | None = None  # IFLA_BOND_AD_INFO (802.3ad bonds)
    ad_partner_mac: str | None = None
    slave_perm_mac: str | None = None  # a bond slave's own MAC (IFLA_INFO_SLAVE_DATA)
    slave_ad_aggregator_id: int | None = None


def _str(data: bytes, start: int, end: int) -> str:
    return data[start:end].split(b"\0", 1)[0].decode("utf-8", "replace")


def _nlas(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in data[start:end]."""
    while start + 4 <= end:
        length, kind = _UNPACK_NLA(data, start)
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, start + 4, min(start + length, end)
        start += (length + 3) & ~3


# IFLA_BOND_* number -> (option name, struct format) of the options the agent reads.
_BOND_WIRE = {number: (name, fmt) for name, (number, fmt) in bond_options.NETLINK_ATTRS.items()}

_UNPACK_NLA = struct.Struct("HH").unpack_from
_UNPACK_U32 = struct.Struct("I").unpack_from
_UNPACK_U16 = struct.Struct("H").unpack_from
_UNPACK_IFINFO = struct.Struct("BxHiI").unpack_from
_UNPACK_IFADDR = struct.Struct("BBBBI").unpack_from
_UNPACK_RTMSG = struct.Struct("BBBBBBBBI").unpack_from


def parse_link(data: bytes, offset: int, length: int) -> Link:
    """Decode the RTM_NEWLINK message at data[offset:offset + length]."""
    _family, _type, index, flags = _UNPACK_IFINFO(data, offset + NLMSG_HDR)
    name = ""
    mtu = link = master = 0
    group: int | None = None
    address: str | None = None
    operstate = "unknown"
    counters: LinkCounters | None = None
    ipv6_autoconf: bool | None = None
    info: tuple[int, int] | None = None
    end = offset + length
    start = offset + NLMSG_HDR + IFINFO_HDR
    # The top-level walk inlined (no generator, no per-attribute calls): a link carries
    # some 60 attributes, most of them skipped, and a dump has one link per device.
    while start + 4 <= end:
        size, kind = _UNPACK_NLA(data, start)
        if size < 4:
            break
        kind &= NLA_TYPE_MASK
        s = start + 4
        e = start + size
        if e > end:
            e = end
        start += (size + 3) & ~3
        if kind == IFLA_IFNAME:
            name = _str(data, s, e)
        elif kind == IFLA_MTU:
            mtu = _UNPACK_U32(data, s)[0]
        elif kind == IFLA_LINK:
            link = _UNPACK_U32(data, s)[0]
        elif kind == IFLA_MASTER:
            master = _UNPACK_U32(data, s)[0]
        elif kind == IFLA_GROUP:
            group = _UNPACK_U32(data, s)[0]
        elif kind == IFLA_ADDRESS:
            address = data[s:e].hex(":")
        elif kind == IFLA_OPERSTATE:
            state = data[s]
            operstate = OPERSTATES[state] if state < len(OPERSTATES) else "unknown"
        elif kind == IFLA_STATS64:
            count = min(_COUNTERS, (e - s) // 8)
            counters = LinkCounters(*struct.unpack_from(f"{count}Q", data, s))
        elif kind == IFLA_LINKINFO:
            info = (s, e)
        elif kind == IFLA_AF_SPEC:
            ipv6_autoconf = _ipv6_autoconf(data, s, e)
    if info is None:
        return Link(index, flags, name, mtu, link, master, group, address, operstate, counters,
                    ipv6_autoconf)
    return Link(index, flags, name, mtu, link, master, group, address, operstate, counters,
                ipv6_autoconf, *_linkinfo(data, info[0], info[1]))


def _ipv6_autoconf(data: bytes, start: int, end: int) -> bool | None:
    for family, s, e in _nlas(data, start, end):
        if family != socket.AF_INET6:
            continue
        for attr, cs, ce in _nlas(data, s, e):
            if attr == IFLA_INET6_CONF and ce - cs >= 4 * (DEVCONF_AUTOCONF + 1):
                conf = struct.unpack_from(f"{DEVCONF_AUTOCONF + 1}i", data, cs)
                return bool(conf[DEVCONF_AUTOCONF] > 0 and conf[DEVCONF_ACCEPT_RA] > 0)
    return None


def _targets(data: bytes, start: int, end: int, size: int) -> str:
    """A nest of IPv4 (``size`` 4) or IPv6 (16) addresses, comma-joined."""
    return ",".join(str(ipaddress.ip_address(data[s : s + size]))
                    for _, s, e in _nlas(data, start, end) if e - s >= size)


_LinkInfo = tuple[
    str, str, int | None, int | None, Mapping[str, int], int,
    Mapping[str, str], Mapping[str, str], int | None, str | None, str | None, int | None,
]


def _linkinfo(data: bytes, start: int, end: int) -> _LinkInfo:
    """IFLA_LINKINFO: the kind, the slave kind and the kind's data (of known kinds), as the
    last fields of ``Link``."""
    kind = slave_kind = ""
    span: tuple[int, int] | None = None
    slave_span: tuple[int, int] | None = None
    for attr, s, e in _nlas(data, start, end):
        if attr == IFLA_INFO_KIND:
            kind = _str(data, s, e)
        elif attr == IFLA_INFO_SLAVE_KIND:
            slave_kind = _str(data, s, e)
        elif attr == IFLA_INFO_DATA:
            span = (s, e)
        elif attr == IFLA_INFO_SLAVE_DATA:
            slave_span = (s, e)
    vlan_id = stp_state = None
    bond: dict[str, int] = {}
    active_slave = 0
    bridge_opts: dict[str, str] = {}
    bond_text: dict[str, str] = {}
    ad_aggregator_id: int | None = None
    ad_partner_mac: str | None = None
    for attr, s, e in _nlas(data, *span) if span is not None else ():
        if kind == "vlan" and attr == IFLA_VLAN_ID and e - s >= 2:
            vlan_id = _UNPACK_U16(data, s)[0]
        elif kind == "bridge":
            if attr == IFLA_BR_STP_STATE and e - s >= 4:
                stp_state = _UNPACK_U32(data, s)[0]
            spelled = bridge_options.spell(attr, data[s:e])
            if spelled is not None:
                bridge_opts[spelled[0]] = spelled[1]
        elif kind == "bond" and attr == IFLA_BOND_ARP_IP_TARGET:
            bond_text[bond_options.ARP_IP_TARGET] = _targets(data, s, e, 4)
        elif kind == "bond" and attr == IFLA_BOND_NS_IP6_TARGET:
            bond_text[bond_options.NS_IP6_TARGET] = _targets(data, s, e, 16)
        elif kind == "bond" and attr == IFLA_BOND_AD_ACTOR_SYSTEM and e - s >= 6:
            bond_text[bond_options.AD_ACTOR_SYSTEM] = data[s : s + 6].hex(":")
        elif kind == "bond" and attr == IFLA_BOND_AD_INFO:
            for sub, ss, se in _nlas(data, s, e):
                if sub == IFLA_BOND_AD_INFO_AGGREGATOR and se - ss >= 2:
                    ad_aggregator_id = _UNPACK_U16(data, ss)[0]
                elif sub == IFLA_BOND_AD_INFO_PARTNER_MAC and se - ss >= 6:
                    ad_partner_mac = data[ss : ss + 6].hex(":")
        elif kind == "bond" and attr == IFLA_BOND_ACTIVE_SLAVE and e - s >= 4:
            active_slave = _UNPACK_U32(data, s)[0]
        elif kind == "bond" and attr in _BOND_WIRE:
            option, fmt = _BOND_WIRE[attr]
            if e - s >= struct.calcsize(fmt):
                bond[option] = struct.unpack_from(fmt, data, s)[0]
    slave_perm_mac: str | None = None
    slave_ad_aggregator_id: int | None = None
    if slave_span is not None and slave_kind == "bond":
        for attr, s, e in _nlas(data, *slave_span):
            if attr == IFLA_BOND_SLAVE_PERM_HWADDR and e - s >= 6:
                slave_perm_mac = data[s : s + 6].hex(":")
            elif attr == IFLA_BOND_SLAVE_AD_AGGREGATOR_ID and e - s >= 2:
                slave_ad_aggregator_id = _UNPACK_U16(data, s)[0]
    return (kind, slave_kind, vlan_id, stp_state,
            MappingProxyType(bond) if bond else _EMPTY, active_slave,
            MappingProxyType(bridge_opts) if bridge_opts else _NO_OPTS,
            MappingProxyType(bond_text) if bond_text else _NO_OPTS,
            ad_aggregator_id, ad_partner_mac, slave_perm_mac, slave_ad_aggregator_id)


@dataclass(frozen=True, slots=True)
class AddressMsg:
    """One RTM_NEWADDR: the device, scope and flags (IFA_FLAGS, the full 32 bits, when the
    kernel sends it) and the address with its prefix."""

    index: int
    scope: int
    flags: int
    interface: Interface


def _ip(family: int, raw: bytes) -> Address:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw)
    return ipaddress.IPv6Address(raw)


def parse_address(data: bytes, offset: int, length: int) -> AddressMsg | None:
    """Decode the RTM_NEWADDR at data[offset:offset + length]; None if it has no address."""
    family, prefixlen, flags, scope, index = _UNPACK_IFADDR(data, offset + NLMSG_HDR)
    local = peer = None
    for attr, s, e in _nlas(data, offset + NLMSG_HDR + IFADDR_HDR, offset + length):
        if attr == IFA_LOCAL:
            local = data[s:e]
        elif attr == IFA_ADDRESS:
            peer = data[s:e]
        elif attr == IFA_FLAGS and e - s >= 4:
            flags = _UNPACK_U32(data, s)[0]
    # IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point.
    raw = local or peer
    if raw is None:
        return None
    address = _ip(family, raw)
    interface: Interface = (
        ipaddress.IPv4Interface((address, prefixlen))
        if isinstance(address, ipaddress.IPv4Address)
        else ipaddress.IPv6Interface((address, prefixlen))
    )
    return AddressMsg(index, scope, flags, interface)


@dataclass(frozen=True, slots=True)
class RouteMsg:
    """One RTM_NEWROUTE: family (AF_INET/AF_INET6), destination prefix length, route type,
    table (RTA_TABLE, exact, else rtm_table), output device (0: none) and gateway."""

    family: int
    dst_len: int
    type: int
    table: int
    oif: int
    gateway: Address | None


def parse_route(data: bytes, offset: int, length: int) -> RouteMsg:
    """Decode the RTM_NEWROUTE at data[offset:offset + length]."""
    family, dst_len, _src, _tos, table, _proto, _scope, kind, _flags = _UNPACK_RTMSG(
        data, offset + NLMSG_HDR
    )
    oif = 0
    gateway: Address | None = None
    for attr, s, e in _nlas(data, offset + NLMSG_HDR + RTMSG_HDR, offset + length):
        if attr == RTA_OIF and e - s >= 4:
            oif = _UNPACK_U32(data, s)[0]
        elif attr == RTA_GATEWAY:
            gateway = _ip(family, data[s:e])
        elif attr == RTA_TABLE and e - s >= 4:
            # rtm_table is a u8 (252 = "compat" for tables > 255); RTA_TABLE is exact.
            table = _UNPACK_U32(data, s)[0] or table
    return RouteMsg(family, dst_len, kind, table, oif, gateway)
