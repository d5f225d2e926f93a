"""From the kernel's netlink answers to the typed view of ``vdsm_net.state``.

Pure: no socket, no I/O. The backend reads links (decoded by ``linkmsg``), addresses and
routes, and hands them here: which answers are wanted, and what ``Device`` and ``Route`` they
make. The decoders take ``(data, offset, length)`` of one answer message, as
``netlink.RouteSocket.request`` hands them over, and skip what the agent never manages
without decoding it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from vdsm_net import bond_options
from vdsm_net.linkmsg import LinkMsg
from vdsm_net.state import BOND, BRIDGE, OWNED_GROUP, VLAN, Device, Route

# Owned devices about to be deleted are moved to this group, then deleted with one
# RTM_DELLINK by group: the kernel unregisters them in one batch (one RCU grace period
# instead of one per device). A crash in between leaves them here, so this group counts as
# owned too, and the next delete moves such strays back to OWNED_GROUP first.
DOOMED_GROUP = OWNED_GROUP + 1
OWNED_GROUPS = (OWNED_GROUP, DOOMED_GROUP)

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFA_F_PERMANENT = 0x80
# The address key of a device's dynamic IPv4 addresses (with a lifetime: DHCP leases), kept
# apart from the permanent ones that configs own and the planner diffs.
DYNAMIC_V4 = 44
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1
RTA_DST = 1
RTA_OIF = 4
RTA_TABLE = 15
_IFADDRMSG_SCOPE = 16 + 3  # nlmsghdr, then ifa_family, ifa_prefixlen, ifa_flags, ifa_scope
_RTMSG_NLA_OFFSET = 16 + 12  # nlmsghdr + struct rtmsg


def device(
    link: LinkMsg,
    names: Mapping[int, str],
    addrs: Mapping[tuple[int, int], set[str]],
    speed: int,
) -> Device:
    """The Device of one link; ``names``: ifindex -> name of the devices it may refer to,
    ``addrs``: (ifindex, 4|6) -> addresses (``addresses``), ``speed``: Mbps, 0 unknown."""
    kind = link.kind
    vlan_base = vlan_id = None
    if kind == VLAN:
        vlan_base = names.get(link.attrs.get("IFLA_LINK") or 0)
        vlan_id = link.data.get("IFLA_VLAN_ID")
    options: Mapping[str, str] = MappingProxyType({})
    active_slave = None
    if kind == BOND:
        options = MappingProxyType(_bond_options(link, names))
        active_slave = names.get(link.data.get("IFLA_BOND_ACTIVE_SLAVE") or 0)
    return Device(
        name=link.name,
        kind=kind,
        mtu=int(link.attrs.get("IFLA_MTU") or 0),
        up=bool(link.flags & IFF_UP),
        master=names.get(link.attrs.get("IFLA_MASTER") or 0),
        owned=link.attrs.get("IFLA_GROUP") in OWNED_GROUPS,
        vlan_base=vlan_base,
        vlan_id=vlan_id,
        bond_options=options,
        stp=kind == BRIDGE and bool(link.data.get("IFLA_BR_STP_STATE")),
        mac=link.attrs.get("IFLA_ADDRESS"),
        ipv4=frozenset(addrs.get((link.index, 4), ())),
        ipv6=frozenset(addrs.get((link.index, 6), ())),
        dynamic_ipv4=frozenset(addrs.get((link.index, DYNAMIC_V4), ())),
        index=link.index,
        operstate=str(link.attrs.get("IFLA_OPERSTATE") or "unknown").lower(),
        speed=speed,
        active_slave=active_slave,
        loopback=bool(link.flags & IFF_LOOPBACK),
    )


def _bond_options(link: LinkMsg, names: Mapping[int, str]) -> dict[str, str]:
    # An option this kernel does not report (e.g. use_carrier, gone from newer kernels)
    # reads as its default, so that a bond normalised by the renderer compares equal.
    out = dict(bond_options.DEFAULTS)
    for name, (nla, _, _) in bond_options.NETLINK_ATTRS.items():
        value = link.data.get(nla)
        if name == bond_options.PRIMARY:
            out[name] = names.get(value or 0, "")
        elif value is not None:
            out[name] = bond_options.from_number(name, value)
    return out


def references(link: LinkMsg) -> list[int]:
    """Indexes of other devices a link names: its master, a VLAN's base, a bond's primary
    and active slave."""
    refs = [link.attrs.get("IFLA_MASTER") or 0]
    if link.kind == VLAN:
        refs.append(link.attrs.get("IFLA_LINK") or 0)
    if link.kind == BOND:
        refs.append(link.data.get("IFLA_BOND_PRIMARY") or 0)
        refs.append(link.data.get("IFLA_BOND_ACTIVE_SLAVE") or 0)
    return [r for r in refs if r]


def decode_address(data: bytes, offset: int, length: int) -> ifaddrmsg | None:
    """An RTM_NEWADDR of global scope, decoded; link-local ones (one per IPv6 device) are
    skipped undecoded."""
    if data[offset + _IFADDRMSG_SCOPE] != RT_SCOPE_UNIVERSE:
        return None
    msg = ifaddrmsg(data, offset=offset)
    msg.decode()
    return msg


def addresses(msgs: Sequence[ifaddrmsg]) -> dict[tuple[int, int], set[str]]:
    """(ifindex, 4|6) -> {"addr/prefix"}: global scope, permanent (not SLAAC/DHCP)."""
    out: dict[tuple[int, int], set[str]] = {}
    for msg in msgs:
        flags = msg.get_attr("IFA_FLAGS")
        flags = msg["flags"] if flags is None else flags
        if msg["scope"] != RT_SCOPE_UNIVERSE:
            continue
        family = 4 if msg["family"] == socket.AF_INET else 6
        if not flags & IFA_F_PERMANENT:
            if family != 4:
                continue
            family = DYNAMIC_V4
        # IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point.
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        out.setdefault((msg["index"], family), set()).add(f"{addr}/{msg['prefixlen']}")
    return out


def decode_route(data: bytes, offset: int, length: int) -> rtmsg | None:
    """An RTM_NEWROUTE without a destination (a default route), decoded; the others (the
    link-local prefix of each device...) are skipped undecoded."""
    if _has_nla(data, offset + _RTMSG_NLA_OFFSET, offset + length, RTA_DST):
        return None
    msg = rtmsg(data, offset=offset)
    msg.decode()
    return msg


def routes(msgs: Sequence[rtmsg], names: Mapping[int, str]) -> list[Route]:
    """The unicast default routes via a gateway, through a device ``names`` knows."""
    out = []
    for msg in msgs:
        if msg["family"] not in (socket.AF_INET, socket.AF_INET6):
            continue
        gateway = msg.get_attr("RTA_GATEWAY")
        if msg["dst_len"] != 0 or msg["type"] != RTN_UNICAST or gateway is None:
            continue
        device_name = names.get(msg.get_attr("RTA_OIF") or 0)
        if device_name is None:
            continue
        # msg["table"] is a u8 (252 = "compat" for tables > 255); RTA_TABLE is exact.
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        version = 4 if msg["family"] == socket.AF_INET else 6
        out.append(Route(version, gateway, device_name, table))
    return out


def _has_nla(data: bytes, start: int, end: int, wanted: int) -> bool:
    while start + 4 <= end:
        length, kind = struct.unpack_from("HH", data, start)
        if kind & 0x3FFF == wanted:
            return True
        if length < 4:
            return False
        start += (length + 3) & ~3
    return False
