"""Parse ``Host.setupNetworks`` params (VDSM's shape) into the typed model.

Syntax and per-entry rules only (docs/api.md); rules that need the running config or the
kernel state live in ``vdsm_net.merge``. Whatever the input (wrong types, huge numbers, odd
unicode, nested junk), the only exception that leaves this module is ``NetError``, whose
message names the field path and the offending value.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any

from vdsm_net.capsdoc import LEGACY_SWITCH
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import bond_options, bridge_options
from vdsm_net.model import (
    DEFAULT_MTU,
    BondConfig,
    NetConfig,
    NetworkConfig,
    Removal,
    SetupOptions,
    SetupRequest,
    frozen_map,
)
from vdsm_net.names import (
    bond_name_problem,
    ifname_problem,
    json_type,
    network_name_problem,
    show,
)
from vdsm_net.probespec import parse_probes
from vdsm_net.qos.model import HostQos

E = ErrorKind

TOP_ATTRS = frozenset({"networks", "bondings", "options"})
NETWORK_ATTRS = frozenset(
    {
        "nic", "bonding", "vlan", "mtu", "bridged", "stp", "ipaddr", "netmask", "prefix",
        "gateway", "ipv6addr", "ipv6gateway", "bootproto", "defaultRoute", "remove",
        "blockingdhcp", "dhcpv6", "ipv6autoconf", "STP", "switch", "nameservers", "custom",
        "hostQos",
    }
)
IP_ATTRS = ("ipaddr", "netmask", "prefix", "gateway", "ipv6addr", "ipv6gateway")
BOND_ATTRS = frozenset({"nics", "options", "remove", "hwaddr", "switch"})
OPTION_ATTRS = frozenset(
    {"connectivityCheck", "connectivityTimeout", "commitOnSuccess", "dryRun", "probes"}
)

# Every option the kernel's bonding driver knows (its sysfs names, Linux 6.1). active_slave
# is the driver's choice at run time (VDSM refuses it in options too): use primary.
KERNEL_BOND_OPTIONS = bond_options.OPTION_NAMES | {"active_slave"}
DEFAULT_BOND_MODE = "balance-rr"

_DIGITS = re.compile(r"[0-9]{1,10}", re.ASCII)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_+\-]{1,40}", re.ASCII)
_OPTION_VALUE_MAX = 64
_LIST_VALUE_MAX = 16 * 40  # 16 IPv6 targets, comma-separated
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _fail(kind: ErrorKind, message: str) -> NetError:
    return NetError(kind, message)


def _key(key: object) -> str:
    """A key as it appears in a path: bare when plain, JSON-quoted otherwise."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return key
    return show(key)


def _object(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(E.BAD_PARAMS, f"{path}: expected an object, got {json_type(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _fail(E.BAD_PARAMS, f"{path}: keys must be strings, got {show(key)}")
    return value


def _reject_unknown(path: str, entry: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in sorted(entry):
        if key not in allowed:
            raise _fail(E.BAD_PARAMS,
                        f"{path}.{_key(key)}: unknown attribute (value {show(entry[key])})")


def _bool(path: str, value: object) -> bool:
    """JSON booleans, plus the spellings VDSM clients send: "true"/"false", 1/0, "1"/"0"."""
    if type(value) is bool:
        return value
    if type(value) is str and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if type(value) is int and value in (0, 1):
        return value == 1
    raise _fail(E.BAD_PARAMS, f"{path}: expected a boolean, got {show(value)}")


def _int_in(path: str, value: object, low: int, high: int, kind: ErrorKind) -> int:
    """An int (or a string of ASCII digits) within [low, high]."""
    number: int | None = None
    if type(value) is int:
        number = value
    elif type(value) is str and _DIGITS.fullmatch(value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise _fail(kind, f"{path}: expected {low}-{high}, got {show(value)}")
    return number


def _str(path: str, value: object, kind: ErrorKind = E.BAD_PARAMS) -> str:
    if type(value) is not str:
        raise _fail(kind, f"{path}: expected a string, got {show(value)}")
    return value


def _removal(
    path: str, name: str, entry: Mapping[str, Any], may_accompany: frozenset[str] = frozenset()
) -> Removal:
    if not _bool(f"{path}.remove", entry["remove"]):
        got = show(entry["remove"])
        raise _fail(E.BAD_PARAMS, f"{path}.remove: only true is allowed, got {got}")
    others = sorted(k for k in entry if k != "remove" and k not in may_accompany)
    if others:
        raise _fail(
            E.BAD_PARAMS,
            f"{path}: remove cannot be combined with other attributes ({', '.join(others)})",
        )
    return Removal(name)


# ---- IP settings -------------------------------------------------------------------------


def _ipv4_host(path: str, value: object, what: str) -> ipaddress.IPv4Address:
    text = _str(path, value, E.BAD_ADDR)
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        raise _fail(E.BAD_ADDR, f"{path}: bad {what} {show(value)}") from None
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr == _BROADCAST:
        raise _fail(E.BAD_ADDR, f"{path}: {addr} cannot be used as {what}")
    return addr


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _netmask_prefix(path: str, value: object) -> int:
    text = _str(path, value, E.BAD_ADDR)
    try:
        ipaddress.IPv4Address(text)
        net = ipaddress.IPv4Network(f"0.0.0.0/{text}")
    except ValueError:
        raise _fail(E.BAD_ADDR, f"{path}: bad netmask {show(value)}") from None
    # ipaddress also accepts host masks ("0.0.0.255"); a netmask must spell itself.
    if str(net.netmask) != text:
        raise _fail(E.BAD_ADDR, f"{path}: bad netmask {show(value)}")
    return net.prefixlen


def _ipv4(path: str, entry: Mapping[str, Any]) -> str | None:
    if "netmask" in entry and "prefix" in entry:
        raise _fail(E.BAD_PARAMS, f"{path}: netmask and prefix are exclusive")
    if "ipaddr" not in entry:
        for attr in ("netmask", "prefix"):
            if attr in entry:
                raise _fail(E.BAD_ADDR, f"{path}.{attr}: needs ipaddr")
        return None
    addr = _ipv4_host(f"{path}.ipaddr", entry["ipaddr"], "IPv4 address")
    if "netmask" in entry:
        prefix = _netmask_prefix(f"{path}.netmask", entry["netmask"])
    elif "prefix" in entry:
        prefix = _int_in(f"{path}.prefix", entry["prefix"], 0, 32, E.BAD_ADDR)
    else:
        raise _fail(E.BAD_ADDR, f"{path}.ipaddr: needs netmask or prefix")
    return f"{addr}/{prefix}"


def _ipv6(path: str, value: object) -> str:
    text = _str(path, value, E.BAD_ADDR)
    try:
        if "/" not in text or "%" in text:
            raise ValueError(text)
        iface = ipaddress.IPv6Interface(text)
    except ValueError:
        raise _fail(E.BAD_ADDR, f"{path}: expected addr/prefixlen, got {show(value)}") from None
    ip = iface.ip
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback or ip.is_link_local:
        raise _fail(E.BAD_ADDR, f"{path}: {ip} cannot be a static global address")
    return f"{ip.compressed}/{iface.network.prefixlen}"


def _ipv6_gateway(path: str, value: object) -> str:
    text = _str(path, value, E.BAD_ADDR)
    try:
        if "%" in text:
            raise ValueError(text)
        gateway = ipaddress.IPv6Address(text)
    except ValueError:
        raise _fail(E.BAD_ADDR, f"{path}: bad IPv6 gateway {show(value)}") from None
    if gateway.is_unspecified or gateway.is_multicast or gateway.is_loopback:
        raise _fail(E.BAD_ADDR, f"{path}: {gateway} cannot be a gateway")
    return gateway.compressed


# ---- networks ----------------------------------------------------------------------------


def _southbound(path: str, entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    nic = bonding = None
    if "nic" in entry:
        nic = _str(f"{path}.nic", entry["nic"])
        problem = ifname_problem(nic)
        if problem:
            raise _fail(E.BAD_NIC, f"{path}.nic: bad NIC name {show(nic)} ({problem})")
    if "bonding" in entry:
        bonding = _str(f"{path}.bonding", entry["bonding"])
        problem = bond_name_problem(bonding)
        if problem:
            raise _fail(E.BAD_BONDING, f"{path}.bonding: bad bond name {show(bonding)} ({problem})")
    if nic is not None and bonding is not None:
        raise _fail(E.BAD_PARAMS,
                    f"{path}: nic {show(nic)} and bonding {show(bonding)} are exclusive")
    return nic, bonding


def _check_isolated(path: str, entry: Mapping[str, Any], net: NetworkConfig) -> None:
    """An isolated network is a bare bridge: only mtu and stp make sense on it."""
    # VDSM checks the VLAN first (26, "vlan device requires southbound device").
    if net.vlan is not None:
        raise _fail(E.BAD_VLAN, f"{path}.vlan: a VLAN needs a nic or a bonding to ride on")
    if not net.bridged:
        raise _fail(E.BAD_PARAMS, f"{path}.bridged: a bridgeless network needs a nic or a bonding")
    ip_attrs = [a for a in IP_ATTRS if a in entry]
    if net.bootproto != "none":
        ip_attrs.append("bootproto")
    if net.default_route:
        ip_attrs.append("defaultRoute")
    if net.ipv6autoconf:
        ip_attrs.append("ipv6autoconf")
    if ip_attrs:
        raise _fail(E.BAD_PARAMS, f"{path}.{ip_attrs[0]}: an isolated network (no nic or "
                    "bonding) takes no IP settings")


_STP_TRUE = frozenset({"true", "on", "yes", "1"})
_STP_FALSE = frozenset({"false", "off", "no", "0"})


def _stp(path: str, value: object) -> bool:
    """A boolean, or VDSM's words for it ("on"/"off", "yes"/"no", any case)."""
    if type(value) is str and value.lower() in _STP_TRUE | _STP_FALSE:
        return value.lower() in _STP_TRUE
    return _bool(path, value)


def _switch(path: str, entry: Mapping[str, Any]) -> None:
    """VDSM's switch type: only the Linux bridge ("legacy") is built by this agent."""
    value = entry.get("switch", LEGACY_SWITCH)
    if value != LEGACY_SWITCH:
        raise _fail(E.BAD_PARAMS, f'{path}: only "legacy" is supported, got {show(value)}')


def _nameservers(path: str, value: object, default_route: bool) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(E.BAD_PARAMS, f"{path}: expected a list of addresses, got {show(value)}")
    out: list[str] = []
    for item in value:
        text = _str(path, item, E.BAD_ADDR)
        try:
            # VDSM strips an IPv6 zone ("fe80::1%eth0") before checking the address.
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise _fail(E.BAD_ADDR, f"{path}: bad name server address {show(item)}") from None
        if address.is_unspecified or address.is_multicast:
            raise _fail(E.BAD_ADDR, f"{path}: {show(item)} cannot be a name server")
        out.append(text if "%" in text else str(address))
    if out and not default_route:  # VDSM: "Name servers may only be defined on the default
        # host network"
        raise _fail(E.BAD_PARAMS, f"{path}: name servers ({', '.join(out)}) are allowed "
                    "only on the defaultRoute network")
    return tuple(out)


def _custom(path: str, value: object) -> dict[str, str]:
    """VDSM's custom properties: an object of strings."""
    entry = _object(path, value)
    for key in sorted(entry):
        if type(entry[key]) is not str:
            raise _fail(E.BAD_PARAMS, f"{path}.{_key(key)}: expected a string, got "
                        f"{show(entry[key])}")
    return dict(entry)


def _bridge_opts(path: str, custom: Mapping[str, str], bridged: bool) -> dict[str, str]:
    if "bridge_opts" not in custom:
        return {}
    text = custom["bridge_opts"]
    if not bridged:
        raise _fail(E.BAD_PARAMS, f"{path}: a bridgeless network has no bridge (got "
                    f"{show(text)})")
    try:
        return bridge_options.parse(text)
    except ValueError as exc:
        raise _fail(E.BAD_PARAMS, f"{path}: {exc}") from None


def _hwaddr(path: str, value: object) -> str:
    text = _str(path, value, E.BAD_BONDING)
    try:
        mac = bond_options.canonical(bond_options.AD_ACTOR_SYSTEM, text)
    except ValueError:
        raise _fail(E.BAD_BONDING, f"{path}: expected a MAC address xx:xx:xx:xx:xx:xx, got "
                    f"{show(value)}") from None
    if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
        raise _fail(E.BAD_BONDING, f"{path}: {mac} is not a unicast MAC address")
    return mac


def _host_qos(path: str, entry: Mapping[str, Any], southbound: str | None) -> HostQos | None:
    """``hostQos`` (docs/qos.md): shaping needs a NIC or bond to shape on."""
    if "hostQos" not in entry:
        return None
    qos = HostQos.from_json(entry["hostQos"], f"{path}.hostQos")
    if qos is not None and southbound is None:
        raise _fail(E.BAD_PARAMS, f"{path}.hostQos: an isolated network (no nic or bonding) "
                    f"has no device to shape, got {show(entry['hostQos'])}")
    return qos


def parse_network(name: str, raw: object) -> NetworkConfig | Removal:
    path = f"networks.{_key(name)}"
    problem = network_name_problem(name)
    if problem:
        raise _fail(E.BAD_BRIDGE, f"networks: bad network name {show(name)} ({problem})")
    entry = _object(path, raw)
    _reject_unknown(path, entry, NETWORK_ATTRS)
    if "remove" in entry:
        if "custom" in entry:  # VDSM allows it beside remove; it has no effect there
            _custom(f"{path}.custom", entry["custom"])
        return _removal(path, name, entry, frozenset({"custom"}))
    nic, bonding = _southbound(path, entry)
    vlan = _int_in(f"{path}.vlan", entry["vlan"], 0, 4094, E.BAD_VLAN) if "vlan" in entry else None
    mtu = _int_in(f"{path}.mtu", entry.get("mtu", DEFAULT_MTU), 68, 65535, E.BAD_PARAMS)
    bridged = _bool(f"{path}.bridged", entry.get("bridged", True))
    # VDSM's engine spells it STP; stp wins when both are given, as in VDSM.
    stp_attr = "stp" if "stp" in entry or "STP" not in entry else "STP"
    stp = _stp(f"{path}.{stp_attr}", entry.get(stp_attr, False))
    _switch(f"{path}.switch", entry)
    custom = _custom(f"{path}.custom", entry.get("custom", {}))
    bridge_opts = _bridge_opts(f"{path}.custom.bridge_opts", custom, bridged)
    if "stp_state" in bridge_opts:  # VDSM applies bridge_opts last: it wins over stp
        stp = bridge_opts.pop("stp_state") != "0"
    default_route = _bool(f"{path}.defaultRoute", entry.get("defaultRoute", False))
    nameservers = _nameservers(f"{path}.nameservers", entry.get("nameservers", []),
                               default_route)
    bootproto = entry.get("bootproto", "none")
    if bootproto not in ("none", "dhcp"):
        raise _fail(
            E.BAD_PARAMS, f'{path}.bootproto: expected "none" or "dhcp", got {show(bootproto)}'
        )
    blocking_dhcp = _bool(f"{path}.blockingdhcp", entry.get("blockingdhcp", False))
    ipv6autoconf = _bool(f"{path}.ipv6autoconf", entry.get("ipv6autoconf", False))
    if _bool(f"{path}.dhcpv6", entry.get("dhcpv6", False)):
        raise _fail(E.BAD_PARAMS, f"{path}.dhcpv6: DHCPv6 is not supported by this agent; "
                    "use ipv6autoconf (SLAAC) or a static ipv6addr")
    ipv4 = _ipv4(path, entry)
    if ipv4 is not None and bootproto == "dhcp":
        raise _fail(E.BAD_PARAMS, f"{path}.ipaddr: a static address conflicts with bootproto dhcp")
    gateway = None
    if "gateway" in entry:
        if ipv4 is None:
            raise _fail(E.BAD_ADDR, f"{path}.gateway: needs ipaddr")
        gateway_addr = _ipv4_host(f"{path}.gateway", entry["gateway"], "IPv4 gateway")
        subnet = ipaddress.IPv4Interface(ipv4).network
        # The kernel refuses a gateway that no on-link route reaches ("Nexthop has invalid
        # gateway"): the network's own subnet is the only route on its device.
        if gateway_addr not in subnet:
            raise _fail(E.BAD_ADDR, f"{path}.gateway: {gateway_addr} is not in {subnet}, "
                        f"the subnet of ipaddr {ipv4}")
        gateway = str(gateway_addr)
    ipv6 = _ipv6(f"{path}.ipv6addr", entry["ipv6addr"]) if "ipv6addr" in entry else None
    ipv6gateway = None
    if "ipv6gateway" in entry:
        ipv6gateway = _ipv6_gateway(f"{path}.ipv6gateway", entry["ipv6gateway"])
    net = NetworkConfig(
        name=name, nic=nic, bonding=bonding, vlan=vlan, mtu=mtu, bridged=bridged, stp=stp,
        ipv4=ipv4, gateway=gateway, ipv6=ipv6, ipv6gateway=ipv6gateway,
        bootproto=str(bootproto), default_route=default_route, blocking_dhcp=blocking_dhcp,
        ipv6autoconf=ipv6autoconf, nameservers=nameservers, custom=frozen_map(custom),
        bridge_opts=frozen_map(bridge_opts),
        host_qos=_host_qos(path, entry, nic or bonding),
    )
    if net.isolated:
        _check_isolated(path, entry, net)
    if not bridged and stp_attr in entry and stp:
        raise _fail(E.BAD_PARAMS, f"{path}.{stp_attr}: a bridgeless network has no bridge")
    return net


# ---- bondings ----------------------------------------------------------------------------


def _bond_nics(path: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(E.BAD_BONDING, f"{path}: expected a non-empty list of NIC names, got "
                    f"{show(value)}")
    if not value:  # VDSM: 21 "Must specify nics for bonding"
        raise _fail(E.BAD_PARAMS, f"{path}: a bond needs at least one NIC, got []")
    nics: list[str] = []
    for item in value:
        nic = _str(path, item, E.BAD_BONDING)
        problem = ifname_problem(nic)
        if problem:
            raise _fail(E.BAD_NIC, f"{path}: bad NIC name {show(nic)} ({problem})")
        if nic in nics:
            raise _fail(E.BAD_BONDING, f"{path}: {nic} is listed twice")
        nics.append(nic)
    return tuple(nics)


def parse_bond_options(path: str, value: object) -> dict[str, str]:
    """``"mode=4 miimon=100"`` -> ``{"mode": "802.3ad", "miimon": "100"}``, mode first."""
    text = _str(path, value, E.BAD_BONDING)
    options: dict[str, str] = {}
    for token in text.split():
        key, sep, raw = token.partition("=")
        if not sep or not key or not raw:
            raise _fail(E.BAD_BONDING, f"{path}: expected key=value, got {show(token)}")
        if key not in KERNEL_BOND_OPTIONS:
            raise _fail(E.BAD_BONDING, f"{path}: unknown bonding option {show(key)}")
        if key not in bond_options.OPTION_NAMES:
            raise _fail(E.BAD_BONDING, f"{path}: bonding option {key} cannot be set (value "
                        f"{show(raw)}): the driver picks it at run time; use primary")
        key = bond_options.ALIASES.get(key, key)  # num_unsol_na is num_grat_arp
        if key in options:
            raise _fail(E.BAD_BONDING, f"{path}: option {key} is given twice")
        # str.isdigit() accepts "²", which int() refuses; keep canonical() to plain ASCII.
        longest = _LIST_VALUE_MAX if key in bond_options.ADDRESS_LISTS else _OPTION_VALUE_MAX
        if len(raw) > longest or not raw.isascii():
            raise _fail(E.BAD_BONDING, f"{path}: {key}: bad value {show(raw)}")
        if key == bond_options.PRIMARY and ifname_problem(raw):
            raise _fail(E.BAD_BONDING, f"{path}: primary: bad NIC name {show(raw)}")
        try:
            options[key] = bond_options.canonical(key, raw)
        except ValueError as exc:
            raise _fail(E.BAD_BONDING, f"{path}: {exc}") from None
    mode = options.pop("mode", DEFAULT_BOND_MODE)
    return {"mode": mode, **dict(sorted(options.items()))}


def parse_bond(name: str, raw: object) -> BondConfig | Removal:
    path = f"bondings.{_key(name)}"
    problem = bond_name_problem(name)
    if problem:
        raise _fail(E.BAD_BONDING, f"bondings: bad bond name {show(name)} ({problem})")
    entry = _object(path, raw)
    _reject_unknown(path, entry, BOND_ATTRS)
    if "remove" in entry:
        return _removal(path, name, entry)
    if "nics" not in entry:
        raise _fail(E.BAD_PARAMS, f"{path}.nics: missing (a bond needs at least one NIC)")
    nics = _bond_nics(f"{path}.nics", entry["nics"])
    options = parse_bond_options(f"{path}.options", entry.get("options", ""))
    _switch(f"{path}.switch", entry)
    hwaddr = _hwaddr(f"{path}.hwaddr", entry["hwaddr"]) if "hwaddr" in entry else None
    return BondConfig(name=name, nics=nics, options=frozen_map(options), hwaddr=hwaddr)


# ---- options and the whole request -------------------------------------------------------


def _timeout(path: str, given: object) -> float:
    # VDSM takes int(connectivityTimeout), so a string of digits is seconds too.
    value = int(given) if type(given) is str and _DIGITS.fullmatch(given) else given
    if type(value) in (int, float):
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    raise _fail(E.BAD_PARAMS, f"{path}: expected a number of seconds > 0, got {show(given)}")


def parse_options(raw: object, default_timeout: float) -> SetupOptions:
    entry = _object("options", raw)
    _reject_unknown("options", entry, OPTION_ATTRS)
    timeout = default_timeout
    if "connectivityTimeout" in entry:
        timeout = _timeout("options.connectivityTimeout", entry["connectivityTimeout"])
    return SetupOptions(
        connectivity_check=_bool("options.connectivityCheck", entry.get("connectivityCheck", True)),
        connectivity_timeout=timeout,
        commit_on_success=_bool("options.commitOnSuccess", entry.get("commitOnSuccess", False)),
        dry_run=_bool("options.dryRun", entry.get("dryRun", False)),
        probes=parse_probes("options.probes", entry.get("probes", [])),
    )


def _networks(raw: object) -> dict[str, NetworkConfig | Removal]:
    entries = _object("networks", raw)
    networks = {name: parse_network(name, attrs) for name, attrs in entries.items()}
    defaults = sorted(
        n for n, c in networks.items() if isinstance(c, NetworkConfig) and c.default_route
    )
    if len(defaults) > 1:
        raise _fail(E.BAD_PARAMS, f"networks: defaultRoute is set on more than one network "
                    f"({', '.join(defaults)})")
    return networks


def _bondings(raw: object) -> dict[str, BondConfig | Removal]:
    return {name: parse_bond(name, attrs) for name, attrs in _object("bondings", raw).items()}


def parse_setup_request(params: Mapping[str, Any], *, default_timeout: float = 120) -> SetupRequest:
    """The JSON-RPC params of ``Host.setupNetworks``; raises NetError on any bad input."""
    top = _object("params", params)
    _reject_unknown("params", top, TOP_ATTRS)
    return SetupRequest(
        networks=frozen_map(_networks(top.get("networks", {}))),
        bondings=frozen_map(_bondings(top.get("bondings", {}))),
        options=parse_options(top.get("options", {}), default_timeout),
    )


def parse_config(data: Mapping[str, Any]) -> NetConfig:
    """A ``NetConfig.to_json()`` document back into a NetConfig (persisted configs, tests)."""
    top = _object("config", data)
    _reject_unknown("config", top, frozenset({"networks", "bondings"}))
    networks: dict[str, NetworkConfig] = {}
    for name, entry in _networks(top.get("networks", {})).items():
        if isinstance(entry, Removal):
            raise _fail(E.BAD_PARAMS, f"networks.{_key(name)}.remove: not allowed in a config")
        networks[name] = entry
    bondings: dict[str, BondConfig] = {}
    for name, bond in _bondings(top.get("bondings", {})).items():
        if isinstance(bond, Removal):
            raise _fail(E.BAD_PARAMS, f"bondings.{_key(name)}.remove: not allowed in a config")
        bondings[name] = bond
    return NetConfig(networks=frozen_map(networks), bondings=frozen_map(bondings))
