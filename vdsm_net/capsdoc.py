"""The network capabilities document (docs/api.md): one typed definition for both sides.

The agent builds it (``vdsm_net.caps``) and the engine client reads it
(``engine_client.insync``). Its names, types and meanings are VDSM 4.50's
(``Host.getNetworkCapabilities``; schema types ``NetInfoBridgedNetwork``,
``NetInfoBridgelessNetwork``, ``NetInfoNic``, ``NetInfoBond``, ``NetInfoVlan``, the bridges
map and ``VdsmNetworkCapabilities``), as VDSM's netinfo fills them in, plus the fields this
project adds (marked "project"). Deliberate differences from VDSM, all from the SPEC:
``mtu`` is an int everywhere (VDSM's API sends it as a string), ``netConfigDirty`` is a JSON
boolean (VDSM sends ``"True"``/``"False"``), and the ``defaultRoute`` network carries the
``nameservers`` it was given (VDSM has them only at the top level).

``check_document`` compares a document field by field with these types. Standard library
only: the engine client imports this module too.

No ``from __future__ import annotations`` here: on Python 3.11 a TypedDict whose annotations
are strings counts its ``NotRequired`` fields as required.
"""

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, TypeGuard

LEGACY_SWITCH: Literal["legacy"] = "legacy"  # the only switch type (no OVS)
NO_IPV6_GATEWAY = "::"  # VDSM's ipv6gateway when a device has none
NO_IPV4_GATEWAY = ""  # VDSM's gateway when a device has none

StpState = Literal["on", "off"]


class BandwidthCurve(TypedDict):
    """One HFSC service curve (VDSM's BandwidthCurve), as ``tc`` reads it back."""

    m1: int  # burst rate, bit/s
    d: int  # how long the burst rate applies, microseconds
    m2: int  # steady rate, bit/s


class HostBandwidth(TypedDict):
    """The curves of a network's class (VDSM's HostBandwidthParams); absent = not set."""

    ls: NotRequired[BandwidthCurve]  # link share: proportion of the device's bandwidth
    ul: NotRequired[BandwidthCurve]  # upper limit: absolute cap
    rt: NotRequired[BandwidthCurve]  # real time: guaranteed minimum


class HostQos(TypedDict):
    """VDSM's HostQoSParams: outbound shaping only."""

    out: HostBandwidth  # outbound traffic of the network


class DeviceQos(TypedDict):
    """VDSM's DeviceQoSParams: one network's QoS as seen on its NIC or bond."""

    hostQos: HostQos  # the network's shaping
    vlan: int  # the network's VLAN id on this device, -1 for its untagged network


class IpFacts(TypedDict):
    """What VDSM reports about the IP configuration of a device (and of a network's top)."""

    addr: str  # primary IPv4 address (the one in the gateway's subnet, else the first), "" none
    netmask: str  # dotted netmask of ``addr``, "" when no IPv4 address
    gateway: str  # IPv4 default gateway via this device in any routing table, "" when none
    ipv4addrs: list[str]  # every IPv4 address of global scope, "addr/prefixlen"
    ipv6addrs: list[str]  # every IPv6 address but link-local ones, "addr/prefixlen"
    ipv6gateway: str  # IPv6 default gateway via this device, "::" when none
    ipv4defaultroute: bool  # ``gateway`` is the host's default route (main table)
    dhcpv4: bool  # the address comes from DHCPv4
    dhcpv6: bool  # the address comes from DHCPv6
    ipv6autoconf: bool  # IPv6 stateless autoconfiguration (SLAAC) is on


class DeviceFacts(IpFacts):
    mtu: int  # the device's MTU as the kernel reports it


class _NetworkFacts(DeviceFacts):
    """Fields common to bridged and bridgeless networks; IP facts are those of ``iface``."""

    iface: str  # the network's top device: its bridge, or its NIC, bond or VLAN device
    southbound: str | None  # the device under the bridge (or the top itself when bridgeless):
    #   NIC, bond or VLAN device such as "nic0.100"; null for an isolated network
    vlanid: NotRequired[int]  # the VLAN tag, only when ``southbound`` is a VLAN device
    switch: Literal["legacy"]  # VDSM's switch type
    hostQos: NotRequired[HostQos]  # the network's outbound QoS, only when it has one
    isolated: bool  # project: a bridge with no uplink (no nic, no bonding)
    defaultRoute: bool  # project: this network's gateway is the host's default route
    nameservers: NotRequired[list[str]]  # project: the resolvers, on the defaultRoute network


class NetInfoBridgedNetwork(_NetworkFacts):
    bridged: Literal[True]  # tells this type from NetInfoBridgelessNetwork
    ports: list[str]  # every port of the bridge, VM taps included
    stp: StpState  # the bridge's spanning tree protocol
    vmPorts: NotRequired[list[str]]  # project: the ports that are VM taps


class NetInfoBridgelessNetwork(_NetworkFacts):
    bridged: Literal[False]  # tells this type from NetInfoBridgedNetwork
    interface: str  # the network's device (the same as ``iface``; for engines of 3.1)


NetInfoNetwork = NetInfoBridgedNetwork | NetInfoBridgelessNetwork


class NetInfoBridge(DeviceFacts):
    """An entry of the bridges map: every Linux bridge of the host, the agent's or not."""

    ports: list[str]  # every port of the bridge, VM taps included
    stp: StpState  # spanning tree protocol
    opts: dict[str, str]  # every bridge option as sysfs names and spells it ("forward_delay")


class NetInfoNic(DeviceFacts):
    hwaddr: str  # the MAC address the NIC uses now
    speed: int  # link speed in Mbps, 0 when unknown or down
    operstate: str  # project: the kernel's operational state ("up", "down", ...)
    permhwaddr: NotRequired[str]  # the NIC's own MAC, only while it is a bond slave
    ad_aggregator_id: NotRequired[str]  # 802.3ad aggregator of this slave, only in such a bond
    qos: NotRequired[list[DeviceQos]]  # the QoS of the networks on this NIC, by VLAN id


class NetInfoBond(DeviceFacts):
    hwaddr: str  # the MAC address of the bond
    slaves: list[str]  # the bond's slaves
    active_slave: str  # the active slave, "" when the mode has none
    opts: dict[str, str]  # options that differ from the mode's defaults, and always "mode";
    #   sysfs names, numeric values for enumerations ("mode": "4"), "arp_ip_target" joined by ","
    switch: Literal["legacy"]  # VDSM's switch type
    speed: int  # the bond's speed in Mbps (VDSM: from its active slaves), 0 when unknown
    ad_aggregator_id: NotRequired[str]  # 802.3ad: the active aggregator's id
    ad_partner_mac: NotRequired[str]  # 802.3ad: the link partner's system MAC
    qos: NotRequired[list[DeviceQos]]  # the QoS of the networks on this bond, by VLAN id


class NetInfoVlan(DeviceFacts):
    iface: str  # the device the VLAN rides on (NIC or bond)
    vlanid: int  # the VLAN tag


class NetworkCapabilities(TypedDict):
    """``Host.getNetworkCapabilities`` (VDSM's VdsmNetworkCapabilities)."""

    networks: dict[str, NetInfoNetwork]  # the networks whose device exists, by name
    bridges: dict[str, NetInfoBridge]  # every Linux bridge, by name
    nics: dict[str, NetInfoNic]  # every host NIC, by name
    vlans: dict[str, NetInfoVlan]  # every VLAN device, by name ("nic0.100")
    bondings: dict[str, NetInfoBond]  # every bond, by name
    nameservers: list[str]  # the host's resolvers, from the resolver file
    supportsIPv6: bool  # the kernel has IPv6 enabled
    netConfigDirty: bool  # the running config differs from the safe config
    netConfigPending: bool  # project: a change waits for its connectivity confirmation


class HostCapabilities(NetworkCapabilities):
    """``Host.getCapabilities``: the network document plus the agent's version."""

    software_version: str  # the agent's version
    api_version: int  # the version of this JSON-RPC API


# ---- checking a document -----------------------------------------------------------------


def check_document(
    doc: object, kind: object = NetworkCapabilities, *, extra_keys: bool = False
) -> list[str]:
    """The problems of ``doc`` against the type ``kind``: one line each, naming the field path,
    e.g. ``networks.red.stp: expected 'on' | 'off', got true``. Empty when it conforms.

    ``extra_keys``: also report fields the type does not define (golden documents, where a
    typo must not pass for an extension)."""
    problems: list[str] = []
    _check(doc, kind, "", problems, extra_keys)
    return problems


def stp_state(enabled: bool) -> StpState:
    """VDSM's spelling of a bridge's STP state."""
    return "on" if enabled else "off"


def _describe(kind: object) -> str:
    if kind is type(None):
        return "null"
    if isinstance(kind, type):
        return kind.__name__
    if typing.get_origin(kind) is Literal:
        return " | ".join(repr(v) for v in typing.get_args(kind))
    if _is_union(kind):
        return " | ".join(_describe(k) for k in typing.get_args(kind))
    return repr(kind)


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_union(kind: object) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def _is_typeddict(kind: object) -> TypeGuard[type]:
    return isinstance(kind, type) and typing.is_typeddict(kind)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _check(value: object, kind: object, path: str, out: list[str], extra: bool) -> None:
    where = path or "document"
    origin = typing.get_origin(kind)
    if kind is Any:
        return
    if _is_typeddict(kind):
        _check_typeddict(value, kind, path, out, extra)
    elif _is_union(kind):
        _check_union(value, kind, path, out, extra)
    elif origin is Literal:
        if not any(type(value) is type(v) and value == v for v in typing.get_args(kind)):
            out.append(f"{where}: expected {_describe(kind)}, got {_show(value)}")
    elif origin is list:
        if not isinstance(value, list):
            out.append(f"{where}: expected a list, got {_show(value)}")
            return
        (item,) = typing.get_args(kind)
        for i, element in enumerate(value):
            _check(element, item, f"{where}[{i}]", out, extra)
    elif origin is dict:
        if not isinstance(value, Mapping):
            out.append(f"{where}: expected an object, got {_show(value)}")
            return
        _, item = typing.get_args(kind)
        for key, element in value.items():
            if not isinstance(key, str):
                out.append(f"{where}: keys must be strings, got {_show(key)}")
            else:
                _check(element, item, _join(path, key), out, extra)
    elif kind is type(None):
        if value is not None:
            out.append(f"{where}: expected null, got {_show(value)}")
    elif isinstance(kind, type):
        # bool is an int to Python, never to a JSON reader: an int field refuses true.
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if not ok:
            out.append(f"{where}: expected {_describe(kind)}, got {_show(value)}")
    else:
        raise TypeError(f"check_document: unsupported type {kind!r} at {where}")


def _check_typeddict(
    value: object, kind: type, path: str, out: list[str], extra: bool
) -> None:
    where = path or "document"
    if not isinstance(value, Mapping):
        out.append(f"{where}: expected an object ({kind.__name__}), got {_show(value)}")
        return
    hints = typing.get_type_hints(kind)
    required: frozenset[str] = getattr(kind, "__required_keys__", frozenset())
    for key in sorted(hints):
        if key in value:
            _check(value[key], hints[key], _join(path, key), out, extra)
        elif key in required:
            out.append(f"{_join(path, key)}: missing ({kind.__name__})")
    if extra:
        for key in sorted(k for k in value if k not in hints):
            out.append(f"{_join(path, key)}: not a field of {kind.__name__}")


def _tags(kind: type) -> dict[str, object]:
    """The fields of a TypedDict that admit a single value (``bridged: Literal[True]``)."""
    hints = typing.get_type_hints(kind)
    return {
        k: typing.get_args(t)[0]
        for k, t in hints.items()
        if typing.get_origin(t) is Literal and len(typing.get_args(t)) == 1
    }


def _discriminated(value: Mapping[str, Any], members: tuple[object, ...]) -> list[type]:
    """The TypedDict members whose distinguishing tags (``bridged``) ``value`` carries; a
    tag that every member shares with the same value (``switch``) distinguishes nothing."""
    typed = [m for m in members if _is_typeddict(m)]
    tags = {m: _tags(m) for m in typed}
    matching = []
    for member in typed:
        own = {
            k: v
            for k, v in tags[member].items()
            if any(tags[o].get(k, _ABSENT) != v for o in typed if o is not member)
        }
        if own and all(
            k in value and type(value[k]) is type(v) and value[k] == v for k, v in own.items()
        ):
            matching.append(member)
    return matching


_ABSENT = object()


def _check_union(value: object, kind: object, path: str, out: list[str], extra: bool) -> None:
    members = typing.get_args(kind)
    results: list[list[str]] = []
    for member in members:
        found: list[str] = []
        _check(value, member, path, found, extra)
        if not found:
            return
        results.append(found)
    if isinstance(value, Mapping):
        tagged = _discriminated(value, members)
        if len(tagged) == 1:
            _check(value, tagged[0], path, out, extra)
            return
    if all(_is_typeddict(m) for m in members) and isinstance(value, Mapping):
        fewest: list[str] = min(results, key=len)
        out.extend(fewest)
        return
    out.append(f"{path or 'document'}: expected {_describe(kind)}, got {_show(value)}")
