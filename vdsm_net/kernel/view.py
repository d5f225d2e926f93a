"""From the kernel's netlink answers to the typed view of ``vdsm_net.state``.

Pure: no socket, no I/O. The backend reads links, addresses and routes (decoded by
``vdsm_net.kernel.decode``) and hands them here: which answers are wanted, and what
``Device`` and ``Route`` they make. The ``decode_*`` functions take ``(data, offset, length)``
of one answer message, as ``RouteSocket.request`` hands them over, and skip what the agent
never manages without decoding it. Addresses and gateways stay ``ipaddress`` values in the
``Device`` and ``Route`` too.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Interface, IPv6Interface
from types import MappingProxyType

from vdsm_net.kernel import bond_options, bridge_options
from vdsm_net.kernel.constants import (
    IFA_F_PERMANENT,
    IFF_LOOPBACK,
    IFF_UP,
    NLA_TYPE_MASK,
    RT_SCOPE_UNIVERSE,
    RTA_DST,
    RTN_UNICAST,
)
from vdsm_net.kernel.decode import (
    NLMSG_HDR,
    RTMSG_HDR,
    AddressMsg,
    Link,
    RouteMsg,
    parse_address,
    parse_route,
)
from vdsm_net.state import BOND, BRIDGE, OWNED_GROUP, VLAN, Device, Interface, Route

# Owned devices about to be deleted are moved to this group, then deleted with one
# RTM_DELLINK by group: the kernel unregisters them in one batch (one RCU grace period
# instead of one per device). A crash in between leaves them here, so this group counts as
# owned too, and the next delete moves such strays back to OWNED_GROUP first.
DOOMED_GROUP = OWNED_GROUP + 1
OWNED_GROUPS = (OWNED_GROUP, DOOMED_GROUP)

_IFADDRMSG_SCOPE = NLMSG_HDR + 3  # ifa_family, ifa_prefixlen, ifa_flags, then ifa_scope
_RTMSG_NLA_OFFSET = NLMSG_HDR + RTMSG_HDR

Addresses = Mapping[tuple[int, int], set[Interface]]


def device(link: Link, names: Mapping[int, str], addrs: Addresses, speed: int) -> Device:
    """The Device of one link; ``names``: ifindex -> name of the devices it may refer to,
    ``addrs``: (ifindex, 4|6) -> addresses (``addresses``), ``speed``: Mbps, 0 unknown."""
    kind = link.kind
    vlan_base = vlan_id = None
    if kind == VLAN:
        vlan_base = names.get(link.link)
        vlan_id = link.vlan_id
    options: Mapping[str, str] = MappingProxyType({})
    active_slave = None
    if kind == BOND:
        options = MappingProxyType(_bond_options(link, names))
        active_slave = names.get(link.active_slave)
    return Device(
        name=link.name,
        kind=kind,
        mtu=link.mtu,
        up=bool(link.flags & IFF_UP),
        master=names.get(link.master),
        owned=link.group in OWNED_GROUPS,
        vlan_base=vlan_base,
        vlan_id=vlan_id,
        bond_options=options,
        stp=kind == BRIDGE and bool(link.stp_state),
        mac=link.address,
        ipv4=_v4(addrs.get((link.index, 4), ())),
        ipv6=_v6(addrs.get((link.index, 6), ())),
        dynamic_ipv4=_v4(addrs.get((link.index, DYNAMIC_V4), ())),
        index=link.index,
        operstate=link.operstate,
        speed=speed,
        active_slave=active_slave,
        loopback=bool(link.flags & IFF_LOOPBACK),
        bridge_opts=MappingProxyType(bridge_options.as_sysfs(link.bridge_opts)),
        ipv6_autoconf=bool(link.ipv6_autoconf),
        perm_mac=link.slave_perm_mac,
        ad_aggregator_id=link.ad_aggregator_id or link.slave_ad_aggregator_id,
        ad_partner_mac=link.ad_partner_mac,
    )


def _v4(addrs: Iterable[Interface]) -> frozenset[IPv4Interface]:
    return frozenset(a for a in addrs if isinstance(a, IPv4Interface))  # all, by their key


def _v6(addrs: Iterable[Interface]) -> frozenset[IPv6Interface]:
    return frozenset(a for a in addrs if isinstance(a, IPv6Interface))


def _bond_options(link: Link, names: Mapping[int, str]) -> dict[str, str]:
    # An option this kernel does not report (e.g. use_carrier, gone from newer kernels)
    # reads as its default, so that a bond normalised by the renderer compares equal.
    out = dict(bond_options.DEFAULTS)
    for name, value in link.bond.items():
        if name == bond_options.PRIMARY:
            out[name] = names.get(value, "")
        else:
            out[name] = bond_options.from_number(name, value)
    out.update(link.bond_text)
    for alias, name in bond_options.ALIASES.items():
        out[alias] = out[name]
    return out


def references(link: Link) -> list[int]:
    """Indexes of other devices a link names: its master, a VLAN's base, a bond's primary
    and active slave."""
    refs = [link.master]
    if link.kind == VLAN:
        refs.append(link.link)
    if link.kind == BOND:
        refs.append(link.bond.get(bond_options.PRIMARY, 0))
        refs.append(link.active_slave)
    return [r for r in refs if r]


def decode_address(data: bytes, offset: int, length: int) -> AddressMsg | None:
    """An RTM_NEWADDR of global scope, decoded; link-local ones (one per IPv6 device) are
    skipped undecoded."""
    if data[offset + _IFADDRMSG_SCOPE] != RT_SCOPE_UNIVERSE:
        return None
    return parse_address(data, offset, length)


# The address key of a device's dynamic IPv4 addresses (with a lifetime: DHCP leases), kept
# apart from the permanent ones that configs own and the planner diffs.
DYNAMIC_V4 = 44


def addresses(msgs: Sequence[AddressMsg]) -> dict[tuple[int, int], set[Interface]]:
    """(ifindex, 4|6) -> {address/prefix}: global scope, permanent (not SLAAC/DHCP); and
    (ifindex, DYNAMIC_V4) -> the IPv4 addresses with a lifetime (DHCP leases)."""
    out: dict[tuple[int, int], set[Interface]] = {}
    for msg in msgs:
        if msg.scope != RT_SCOPE_UNIVERSE:
            continue
        key: int = msg.interface.version
        if not msg.flags & IFA_F_PERMANENT:
            if key != 4:
                continue  # SLAAC's addresses are the kernel's own
            key = DYNAMIC_V4
        out.setdefault((msg.index, key), set()).add(msg.interface)
    return out


def decode_route(data: bytes, offset: int, length: int) -> RouteMsg | None:
    """An RTM_NEWROUTE without a destination (a default route), decoded; the others (the
    link-local prefix of each device...) are skipped undecoded."""
    if _has_nla(data, offset + _RTMSG_NLA_OFFSET, offset + length, RTA_DST):
        return None
    return parse_route(data, offset, length)


def routes(msgs: Sequence[RouteMsg], names: Mapping[int, str]) -> list[Route]:
    """The unicast default routes via a gateway, through a device ``names`` knows."""
    out = []
    for msg in msgs:
        if msg.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if msg.dst_len != 0 or msg.type != RTN_UNICAST or msg.gateway is None:
            continue
        device_name = names.get(msg.oif)
        if device_name is None:
            continue
        out.append(Route(msg.gateway.version, msg.gateway, device_name, msg.table))
    return out


def _has_nla(data: bytes, start: int, end: int, wanted: int) -> bool:
    while start + 4 <= end:
        length, kind = struct.unpack_from("HH", data, start)
        if kind & NLA_TYPE_MASK == wanted:
            return True
        if length < 4:
            return False
        start += (length + 3) & ~3
    return False
