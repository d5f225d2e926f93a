"""The kernel backend: applies plan ops (an ``ops.OpVisitor``) and reads the kernel's state.

Synchronous: the daemon calls it from a worker thread, never on the event loop. Reads and
link changes go through ``vdsm_net.kernel.route_socket`` (a raw NETLINK_ROUTE socket: lean
dumps) and ``vdsm_net.kernel.batch`` (link changes pipelined in batches, in plan order);
address and route changes, built with pyroute2's encoders, through pyroute2's ``IPRoute``.
Requests address devices by ifindex, from a name->index map refreshed by every
``read_state`` and kept up to date as devices are created and deleted; a name missing from
the map is resolved with one ``RTM_GETLINK`` by name.

What the answers mean (which are wanted, the ``Device`` and ``Route`` they make) is
``vdsm_net.kernel.view``, pure. ``read_state(scope)`` reads only the devices a scoped
transaction names (``vdsm_net.scope``): one ``RTM_GETLINK`` per name, and address and route
dumps that the kernel filters by ifindex, output device or table (``NETLINK_GET_STRICT_CHK``,
see ``vdsm_net.kernel.route_socket``).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from vdsm_net.caps import LinkStats
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import bond_options, bridge_options, view
from vdsm_net.kernel import route_socket as rs
from vdsm_net.kernel.batch import LinkBatch, Refused
from vdsm_net.kernel.constants import (
    ETH_MIN_MTU,
    IFA_F_NODAD,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_BR_STP_STATE,
    IFLA_GROUP,
    IFLA_LINK,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_VLAN_ID,
    NLA_F_NESTED,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTN_UNICAST,
)
from vdsm_net.kernel.decode import AddressMsg, Link, LinkCounters, RouteMsg, parse_link
from vdsm_net.kernel.view import DOOMED_GROUP, OWNED_GROUPS
from vdsm_net.ops import (
    AddAddress,
    AddRoute,
    CreateBond,
    CreateBridge,
    CreateVlan,
    DelAddress,
    DeleteDevices,
    DelRoute,
    Op,
    SetBondOptions,
    SetBridgeOptions,
    SetGroup,
    SetMac,
    SetMaster,
    SetMtu,
    SetStp,
    SetUp,
)
from vdsm_net.scope import ReadScope
from vdsm_net.state import (
    BOND,
    BRIDGE,
    OWNED_GROUP,
    VLAN,
    Device,
    Interface,
    KernelState,
    Route,
)


class Backend:
    """Reads the kernel's state and applies plan ops (implements ``ops.OpVisitor``)."""

    def __init__(self, netns: str | None = None) -> None:
        """``netns``: for tests only, work in that named namespace instead of the current."""
        self._netns = netns
        # pyroute2 for the few requests built with its encoders (addresses, routes, deletes);
        # groups=0: no multicast subscription, nothing would read the notifications.
        self._ipr = IPRoute(netns=netns, groups=0, ext_ack=True)
        self._lock = threading.Lock()
        self._kinds: dict[str, str] = {}  # IFLA_INFO_KIND by name, as of the last read
        self._stray_doomed: tuple[int, ...] = ()
        self._sock = rs.RouteSocket.open(netns)
        self._batch = LinkBatch(self._sock)
        self._op: Op | None = None  # the op being applied: named if its requests fail
        # Whether the last read saw every device: only then are the devices stranded in
        # DOOMED_GROUP by a crash known, and a delete by group safe (see delete_devices).
        self._saw_all = False

    def close(self) -> None:
        self._ipr.close()
        self._sock.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    def _request(
        self, msg: Any, msg_type: int, flags: int, decode: rs.Decoder[rs.T]
    ) -> list[rs.T]:
        """Send one read request (a pyroute2 message, encoded here) on the raw socket, after
        the batch; ``decode(data, offset, length)`` turns each answer message into a value
        (None: not wanted). A refusal raises NetlinkError, as pyroute2 would."""
        msg.encode()
        payload = bytes(msg.data[16 : msg["header"]["length"]])  # without its nlmsghdr
        try:
            return self._batch.request(rs.Request(msg_type, flags, payload), msg_type - 2,
                                       decode)  # RTM_GETxxx - 2 == RTM_NEWxxx (the answer)
        except rs.KernelRefused as e:
            raise NetlinkError(e.ack.code, e.ack.message or None) from e

    def _dump_links(self) -> list[Link]:
        # decode.parse_link, not pyroute2's decoder: that costs ~0.5 ms per link.
        links = self._request(ifinfmsg(), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, parse_link)
        self._batch.index = {link.name: link.index for link in links}
        self._kinds = {link.name: link.kind for link in links}
        return links

    def _get_link(self, *, index: int = 0, ifname: str | None = None) -> Link:
        try:
            return self._batch.get_link(index=index, name=ifname)
        except rs.KernelRefused as e:
            raise NetlinkError(e.ack.code, e.ack.message or None) from e

    def _links_now(self, names: Sequence[str], by_index: bool) -> list[Link | None]:
        """One RTM_GETLINK per name, pipelined (by the ifindex of the last read if
        ``by_index`` and known, else by name); None where there is no such device."""
        self._batch.flush()  # first: the creates it holds add to the index
        index = self._batch.index
        requests = [
            rs.get_request(index=index[n]) if by_index and n in index
            else rs.get_request(name=n)
            for n in names
        ]
        out: list[Link | None] = []
        for answer in self._batch.request_each(requests):
            if isinstance(answer, rs.Ack):  # the kernel's refusal instead of a link
                if answer.code != errno.ENODEV:
                    raise NetlinkError(answer.code, answer.message or None)
                out.append(None)
            else:
                out.append(answer)
        return out

    def read_state(self, scope: ReadScope | None = None) -> KernelState:
        """The kernel's state: every device, or only the devices ``scope`` names."""
        with self._lock:
            self._batch.restart_indexes()  # devices may have come since the last read
            if scope is not None:
                return self._read_scoped(scope)
            links = self._dump_links()
            names = {link.index: link.name for link in links}
            addrs = self._read_addresses()
            devices = [self._device(link, names, addrs) for link in links]
            self._stray_doomed = tuple(
                link.index for link in links if link.group == DOOMED_GROUP
            )
            self._saw_all = True
            routes = self._read_routes(names)
        return KernelState(MappingProxyType({d.name: d for d in devices}), frozenset(routes))

    def _read_scoped(self, scope: ReadScope) -> KernelState:
        links: list[Link] = []
        wanted = sorted(scope.devices)
        for name, link in zip(wanted, self._links_now(wanted, False), strict=True):
            self._batch.index.pop(name, None)
            self._kinds.pop(name, None)
            if link is not None:
                links.append(link)
                self._batch.index[name] = link.index
                self._kinds[name] = link.kind
        self._saw_all = False
        names = {link.index: link.name for link in links}
        for link in links:
            for ref in view.references(link):
                self._resolve(ref, names)
        addrs: dict[tuple[int, int], set[Interface]] = {}
        for link in links:
            addrs.update(self._read_addresses(link.index))
        devices = [self._device(link, names, addrs) for link in links]
        msgs: list[RouteMsg] = []
        for link in links:
            msgs += self._scoped_routes(socket.AF_UNSPEC, "RTA_OIF", link.index)
        for family, table in sorted(scope.tables):
            af = socket.AF_INET if family == 4 else socket.AF_INET6
            msgs += self._scoped_routes(af, "RTA_TABLE", table)
        for msg in msgs:
            self._resolve(msg.oif, names)
        routes = view.routes(msgs, names)
        return KernelState(MappingProxyType({d.name: d for d in devices}), frozenset(routes))

    def _resolve(self, index: int, names: dict[int, str]) -> None:
        """Learn the name of a device outside the scope (a master, a VLAN's base, a route's
        device) from one RTM_GETLINK by index; the device itself is not part of the state."""
        if not index or index in names:
            return
        try:
            link = self._get_link(index=index)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return
            raise
        names[index] = link.name
        self._batch.index[link.name] = link.index
        self._kinds[link.name] = link.kind

    def _read_addresses(self, index: int = 0) -> dict[tuple[int, int], set[Interface]]:
        """Of one device if ``index`` is given (a dump the kernel filters), else of all."""
        req = ifaddrmsg()
        req["index"] = index
        dump = NLM_F_REQUEST | NLM_F_DUMP
        msgs: list[AddressMsg] = self._request(req, RTM_GETADDR, dump, view.decode_address)
        return view.addresses(msgs)

    def _read_routes(self, names: Mapping[int, str]) -> list[Route]:
        msgs = [m for family in (socket.AF_INET, socket.AF_INET6) for m in self._routes(family)]
        return view.routes(msgs, names)

    def _scoped_routes(self, family: int, nla: str, value: int) -> list[RouteMsg]:
        """The default routes through one device (``RTA_OIF``), or of one table
        (``RTA_TABLE``): a dump the kernel filters. A table that does not exist is empty."""
        try:
            return self._routes(family, (nla, value))
        except NetlinkError as e:
            if e.code in (errno.ENOENT, errno.ENODEV):  # no such table; device just gone
                return []
            raise

    def _routes(self, family: int, where: tuple[str, int] | None = None) -> list[RouteMsg]:
        """Only unicast default routes are managed. The kernel filters on the route type
        (``rtm_type``, with strict checking): every IPv6 device that is up brings local and
        multicast routes of its own, which never reach us."""
        req = rtmsg()
        req["family"] = family
        req["type"] = RTN_UNICAST
        if where is not None:
            req["attrs"] = [where]
        dump = NLM_F_REQUEST | NLM_F_DUMP
        return self._request(req, RTM_GETROUTE, dump, view.decode_route)

    def _device(self, link: Link, names: Mapping[int, str], addrs: view.Addresses) -> Device:
        return view.device(link, names, addrs, self._speed(link))

    def _sysfs(self, link: Link, leaf: str) -> str | None:
        """A /sys/class/net/<dev>/<leaf> value, only if sysfs shows *this* netns's device.

        sysfs shows the namespace of whoever mounted it (``ip netns exec`` remounts it, a
        Backend(netns=...) in a test does not), so the device's ifindex and MAC must match.
        """
        if self._netns is not None:
            return None
        base = f"/sys/class/net/{link.name}"
        try:
            with open(f"{base}/ifindex") as f:
                if int(f.read()) != link.index:
                    return None
            with open(f"{base}/address") as f:
                if f.read().strip() != (link.address or ""):
                    return None
            with open(f"{base}/{leaf}") as f:
                return f.read().strip()
        except (OSError, ValueError):  # e.g. EINVAL reading speed of a link that is down
            return None

    def _speed(self, link: Link) -> int:
        if link.kind not in ("", "veth", "dummy", BOND):
            return 0
        value = self._sysfs(link, "speed")
        try:
            return max(int(value or 0), 0)  # -1 = unknown
        except ValueError:
            return 0

    def read_stats(self) -> dict[str, LinkStats]:
        with self._lock:
            links = self._dump_links()
        out = {}
        for link in links:
            s = link.counters or LinkCounters()
            out[link.name] = LinkStats(
                rx=s.rx_bytes,
                tx=s.tx_bytes,
                rx_dropped=s.rx_dropped,
                tx_dropped=s.tx_dropped,
                rx_errors=s.rx_errors,
                tx_errors=s.tx_errors,
                duplex=self._sysfs(link, "duplex") or "unknown",
            )
        return out

    # -- applying ------------------------------------------------------------------------
    #
    # Link changes go into the batch (``vdsm_net.kernel.batch``), sent when the plan ends or
    # when an op must first know their outcome; a request still sent through pyroute2
    # (``_sync``: addresses, routes) flushes it first.

    def apply(self, ops: Sequence[Op]) -> None:
        with self._lock:
            try:
                for op in ops:
                    self._op = op
                    try:
                        op.accept(self)
                    except NetlinkError as e:
                        self._fail(op, _reason(e), e)
                    except Refused as e:
                        self._fail(op, str(e), e)
                    except OSError as e:
                        self._fail(op, e.strerror or str(e), e)
                self._batch.flush()
            finally:
                self._batch.discard()

    def _fail(self, op: Op, reason: str, cause: Exception) -> None:
        self._batch.flush()  # the requests of the ops before this one: their refusal first
        raise NetError(ErrorKind.KERNEL, f"{op}: {reason}") from cause

    def _sync(self) -> IPRoute:
        """pyroute2, for a request that is not batched: the batch goes first."""
        self._batch.flush()
        return self._ipr

    def _get(self, name: str) -> Link:
        """A fresh RTM_GETLINK for one device (its current flags, group, master)."""
        return self._get_link(index=self._batch.ifindex(name))

    def _set(self, name: str, *, up: bool | None = None, attrs: bytes = b"") -> None:
        self._batch.change(self._op, name, up=up, attrs=attrs)

    def _create(self, name: str, kind: str, data: bytes, attrs: bytes = b"") -> None:
        self._kinds[name] = kind
        self._batch.create(self._op, name, kind, data, attrs)

    def create_bridge(self, op: CreateBridge) -> None:
        extra = rs.nla(IFLA_ADDRESS, _mac(op.mac)) if op.mac else b""
        # An MTU given at creation, or set to the value the bridge already has, does not
        # count as "set by user": the bridge would then follow its smallest port (a VM tap
        # joining with 1400 would pull a 1500 bridge down). Only a real change makes it stick:
        # create the bridge one below (IFLA_MTU at creation is assigned, not "changed"), then
        # set the wanted value while it has no ports. Two requests, no RTM_GETLINK.
        mtu = rs.nla_u32(IFLA_MTU, _step_mtu(op.mtu))
        self._create(op.name, BRIDGE, _stp_data(op.stp), mtu + extra)
        self._set(op.name, attrs=rs.nla_u32(IFLA_MTU, op.mtu))

    def create_vlan(self, op: CreateVlan) -> None:
        attrs = rs.nla_u32(IFLA_LINK, self._batch.ifindex(op.base)) + rs.nla_u32(
            IFLA_MTU, op.mtu
        )
        self._create(op.name, VLAN, rs.nla_u16(IFLA_VLAN_ID, op.vlan_id), attrs)

    def create_bond(self, op: CreateBond) -> None:
        # Send only what differs from the kernel's defaults: options foreign to the mode
        # (lacp_rate outside 802.3ad, updelay without miimon...) are refused even when they
        # carry the default value.
        wanted = {
            k: v
            for k, v in bond_options.normalize(op.options).items()
            if v != bond_options.DEFAULTS[k]
        }
        attrs = rs.nla_u32(IFLA_MTU, op.mtu)
        if op.mac:
            attrs += rs.nla(IFLA_ADDRESS, _mac(op.mac))
        self._create(op.name, BOND, self._bond_attrs(wanted), attrs)

    def _bond_attrs(self, options: Mapping[str, str]) -> bytes:
        out = b""
        for name, value in options.items():
            if name in bond_options.ALIASES:
                continue  # the same kernel value as the name it aliases
            if name in bond_options.TEXT_ATTRS:
                out += _bond_text_attr(name, value)
                continue
            wire = bond_options.NETLINK_ATTRS.get(name)
            if wire is None:
                raise Refused(f"unsupported bonding option {name}={value}")
            number, fmt = wire
            if name == bond_options.PRIMARY:
                number_value = self._batch.ifindex(value) if value else 0
            else:
                try:
                    number_value = bond_options.to_number(name, value)
                except ValueError as e:
                    raise Refused(str(e)) from e
            out += rs.nla(number, struct.pack(fmt, number_value))
        return out

    def set_bond_options(self, op: SetBondOptions) -> None:
        was_up = bool(self._get(op.device).flags & IFF_UP)
        needs_down = was_up and not bond_options.CHANGED_WHILE_DOWN.isdisjoint(op.options)
        if needs_down:
            self._set(op.device, up=False)
        # Resets first, under the old mode (lacp_rate back to "slow" is refused once the mode
        # is no longer 802.3ad), then the mode and the new values, monitors off last.
        monitors = bond_options.MONITORS
        resets = {
            k: v
            for k, v in op.options.items()
            if k != "mode" and k not in monitors and v == bond_options.DEFAULTS.get(k)
        }
        monitors_off = {k: v for k, v in op.options.items() if k in monitors and v == "0"}
        rest = {k: v for k, v in op.options.items() if k not in resets and k not in monitors_off}
        for part in (resets, rest, monitors_off):
            if part:
                self._set(op.device, attrs=rs.linkinfo(BOND, self._bond_attrs(part)))
        if needs_down:
            self._set(op.device, up=True)

    def delete_devices(self, op: DeleteDevices) -> None:
        # Re-check ownership now, not at planning time: the agent never deletes a device it
        # did not create (a NIC, a libvirt bridge), even if a stale plan says so.
        doomed = []
        for name, link in zip(op.names, self._links_now(op.names, True), strict=True):
            if link is None:
                continue  # already gone (e.g. a VLAN unregistered with its base)
            group = link.group
            if group not in OWNED_GROUPS:
                raise Refused(f"{name} is not owned by vdsm-net (group {group}), not deleting")
            doomed.append(link.index)
        if not doomed:
            return
        gone = (errno.ENODEV,)  # a VLAN goes with its base
        if not self._saw_all:
            # A scoped read does not know which devices a crash left in DOOMED_GROUP: a
            # delete by group could take one of them along. One request per device instead.
            for index in doomed:
                self._batch.delete(op, index=index, ignore=gone)
            self._batch.flush()
            self._forget(set(doomed))
            return
        for index in self._stray_doomed:
            if index not in doomed:
                self._batch.change_index(op, index, attrs=_group(OWNED_GROUP), ignore=gone)
        self._stray_doomed = ()
        for index in doomed:
            self._batch.change_index(op, index, attrs=_group(DOOMED_GROUP))
        self._batch.flush()  # all of them in the group before the group goes
        self._batch.delete(op, attrs=_group(DOOMED_GROUP))
        try:
            self._batch.flush()
        except NetError:
            for index in doomed:
                self._batch.change_index(op, index, attrs=_group(OWNED_GROUP), ignore=gone)
            self._batch.flush()
            raise
        self._forget(set(doomed))

    def _forget(self, gone: set[int]) -> None:
        self._batch.forget(gone)
        self._kinds = {n: k for n, k in self._kinds.items() if n in self._batch.index}

    def set_master(self, op: SetMaster) -> None:
        if op.master is None:
            link = self._get(op.device)
            self._set(op.device, attrs=rs.nla_u32(IFLA_MASTER, 0))
            if link.slave_kind == BOND:
                # The bonding driver closes a slave it releases (bond_release -> dev_close) and
                # gives it back the MTU it had before it was enslaved. The rest of the plan was
                # made from the slave's current state: a NIC that moves from a removed bond to a
                # VLAN network would be down (the VLAN's SetUp fails with ENETDOWN) or have a
                # smaller MTU than the new VLAN (EINVAL). Keep both as they were.
                mtu = rs.nla_u32(IFLA_MTU, link.mtu)
                self._set(op.device, up=True if link.flags & IFF_UP else None, attrs=mtu)
            return
        kind = self._kinds.get(op.master)
        if kind is not None and kind != BOND:  # known from the last read or our own create
            self._set(op.device, attrs=rs.nla_u32(IFLA_MASTER, self._batch.ifindex(op.master)))
            return
        master = self._get(op.master)
        if master.kind != BOND:
            self._set(op.device, attrs=rs.nla_u32(IFLA_MASTER, master.index))
            return
        # The bonding driver refuses to enslave a device that is up (on older kernels) and
        # brings the slave up itself; restore the slave's own administrative state after.
        was_up = bool(self._get(op.device).flags & IFF_UP)
        if was_up:
            self._set(op.device, up=False)
        self._set(op.device, attrs=rs.nla_u32(IFLA_MASTER, master.index))
        self._set(op.device, up=was_up)

    def set_mtu(self, op: SetMtu) -> None:
        self._set(op.device, attrs=rs.nla_u32(IFLA_MTU, op.mtu))

    def set_up(self, op: SetUp) -> None:
        self._set(op.device, up=op.up)

    def set_stp(self, op: SetStp) -> None:
        self._set(op.device, attrs=rs.linkinfo(BRIDGE, _stp_data(op.stp)))

    def set_bridge_options(self, op: SetBridgeOptions) -> None:
        self._set(op.device, attrs=rs.linkinfo(BRIDGE, bridge_options.encode(op.options)))

    def set_mac(self, op: SetMac) -> None:
        # The bonding driver passes a new MAC on to its slaves (unless fail_over_mac says
        # otherwise), up or down.
        self._set(op.device, attrs=rs.nla(IFLA_ADDRESS, _mac(op.mac)))

    def set_group(self, op: SetGroup) -> None:
        # Given back: the default group (0); the group it had before is not recorded.
        self._set(op.device, attrs=_group(OWNED_GROUP if op.owned else 0))

    def _addr(self, command: str, device: str, cidr: Interface) -> None:
        six = cidr.version == 6
        index = self._batch.ifindex(device)
        # IPv6: no duplicate address detection, so the address is usable (not "tentative")
        # when the call returns, as a static address on a bridge should be.
        self._sync().addr(
            command,
            index=index,
            address=str(cidr.ip),
            prefixlen=cidr.network.prefixlen,
            **({"flags": IFA_F_NODAD} if six and command == "add" else {}),
        )

    def add_address(self, op: AddAddress) -> None:
        self._addr("add", op.device, op.cidr)

    def del_address(self, op: DelAddress) -> None:
        self._addr("del", op.device, op.cidr)

    def _route(self, command: str, route: Route) -> None:
        oif = self._batch.ifindex(route.device)
        self._sync().route(
            command,
            dst="0.0.0.0/0" if route.family == 4 else "::/0",
            gateway=str(route.gateway),
            oif=oif,
            table=route.table,
        )

    def add_route(self, op: AddRoute) -> None:
        self._route("add", op.route)

    def del_route(self, op: DelRoute) -> None:
        self._route("del", op.route)


def _bond_text_attr(name: str, value: str) -> bytes:
    """An address list as a nest (the kernel clears the list, then adds each: an empty nest
    clears it), or the 6-byte ad_actor_system."""
    number = bond_options.TEXT_ATTRS[name]
    if name == bond_options.AD_ACTOR_SYSTEM:
        return rs.nla(number, _mac(value))
    packed = b"".join(
        rs.nla(position, address.packed)
        for position, address in enumerate(bond_options.addresses(name, value))
    )
    return rs.nla(number | NLA_F_NESTED, packed)


def _group(group: int) -> bytes:
    return rs.nla_u32(IFLA_GROUP, group)


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _stp_data(stp: bool) -> bytes:
    return rs.nla_u32(IFLA_BR_STP_STATE, 1 if stp else 0)


def _step_mtu(mtu: int) -> int:
    """Another MTU than ``mtu``, within the kernel's range for a port-less bridge."""
    return mtu - 1 if mtu > ETH_MIN_MTU else mtu + 1


def _reason(e: NetlinkError) -> str:
    """The kernel's extended-ack message if it sent one, else strerror of the code."""
    text = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], str) else ""
    strerror = os.strerror(e.code) if e.code else "unknown error"
    return f"{text} ({strerror})" if text and text != strerror else strerror
