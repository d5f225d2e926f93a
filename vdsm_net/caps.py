"""The capabilities and statistics (docs/api.md) documents. Pure: no I/O.

Every value comes from the kernel's state as the backend read it; the running config only
says which devices make up which network. The document is VDSM's (``vdsm_net.capsdoc``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Any

from vdsm_net import capsdoc
from vdsm_net.kernel import bond_options
from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.qos import Curve, HostQos, QosTree
from vdsm_net.qos.tree import minor_of
from vdsm_net.state import (
    BOND,
    BRIDGE,
    MAIN_TABLE,
    NIC_KINDS,
    VLAN,
    Address,
    Device,
    KernelState,
    Route,
)

# Kinds reported as host NICs: physical devices ("" kind) and what tests simulate NICs with.
LOOPBACK = "lo"


@dataclass(frozen=True)
class LinkStats:
    """One device's counters (IFLA_STATS64), plus the duplex sysfs reports."""

    rx: int = 0  # bytes
    tx: int = 0  # bytes
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    duplex: str = "unknown"


def _gateway(routes: list[Route], family: int) -> Address | None:
    """The device's default gateway in any table (as VDSM's netinfo); the main table's wins
    over a per-network table's."""
    found = min(
        (r for r in routes if r.family == family),
        key=lambda r: (r.table != MAIN_TABLE, r.table, str(r.gateway)),
        default=None,
    )
    return found.gateway if found is not None else None


def _routes(state: KernelState) -> dict[str, list[Route]]:
    out: dict[str, list[Route]] = {}
    for r in state.routes:
        out.setdefault(r.device, []).append(r)
    return out


def _ports(state: KernelState) -> dict[str, list[str]]:
    """master -> its ports, sorted; one pass (KernelState.ports_of per device is quadratic)."""
    out: dict[str, list[str]] = {}
    for d in sorted(state.devices.values(), key=lambda d: d.name):
        if d.master is not None:
            out.setdefault(d.master, []).append(d.name)
    return out


def _primary_ipv4(ipv4: list[IPv4Interface], gateway: Address | None) -> IPv4Interface | None:
    """VDSM's ``addr``: the address in the gateway's subnet, else the first one."""
    if gateway is not None:
        for iface in ipv4:
            if gateway in iface.network:
                return iface
    return ipv4[0] if ipv4 else None


def ip_facts(device: Device, routes: list[Route]) -> capsdoc.IpFacts:
    """What VDSM reports about a device's IP configuration (netinfo ``_devinfo``)."""
    ipv4 = sorted(device.ipv4 | device.dynamic_ipv4, key=str)  # static, and leased (DHCP)
    gateway = _gateway(routes, 4)
    gateway6 = _gateway(routes, 6)
    primary = _primary_ipv4(ipv4, gateway)
    return {
        "addr": str(primary.ip) if primary is not None else "",
        "netmask": str(primary.netmask) if primary is not None else "",
        "gateway": str(gateway) if gateway is not None else capsdoc.NO_IPV4_GATEWAY,
        "ipv4addrs": [str(a) for a in ipv4],
        "ipv6addrs": sorted(str(a) for a in device.ipv6),
        "ipv6gateway": str(gateway6) if gateway6 is not None else capsdoc.NO_IPV6_GATEWAY,
        "ipv4defaultroute": gateway is not None
        and any(r.family == 4 and r.table == MAIN_TABLE and r.gateway == gateway for r in routes),
        # A device's addresses with a lifetime are DHCP leases (the agent's own client; a
        # network's entry says it from its config).
        "dhcpv4": bool(device.dynamic_ipv4),
        "dhcpv6": False,
        "ipv6autoconf": device.ipv6_autoconf,
    }


def _device_facts(device: Device, routes: dict[str, list[Route]]) -> capsdoc.DeviceFacts:
    facts = ip_facts(device, routes.get(device.name, []))
    return {**facts, "mtu": device.mtu}


_SOUTHBOUND_KINDS = NIC_KINDS | {BOND, VLAN}


def _southbound(
    net: NetworkConfig, top: Device, state: KernelState, ports: list[str]
) -> str | None:
    """VDSM's southbound: bridgeless, the top itself; bridged, the network's uplink (its NIC,
    bond or VLAN device) while the kernel has it as a port of the bridge, else None; an
    isolated network has none. The uplink is known by name, not guessed from the ports' kinds:
    a VM's tap may be of any kind (a veth in tests, a macvtap), and the only port of an
    isolated bridge is often one."""
    if not net.bridged:
        return top.name
    uplink = net.vlan_device or net.southbound
    if uplink is None or uplink not in ports:
        return None
    device = state.get(uplink)
    return uplink if device is not None and device.kind in _SOUTHBOUND_KINDS else None


def _curve(curve: Curve) -> capsdoc.BandwidthCurve:
    return {"m1": curve.m1, "d": curve.d, "m2": curve.m2}


def _qos_doc(qos: HostQos) -> capsdoc.HostQos:
    """As VDSM reports a class: every curve it has, each with m1, d and m2."""
    out: capsdoc.HostBandwidth = {"ls": _curve(qos.ls)}
    if qos.ul is not None:
        out["ul"] = _curve(qos.ul)
    if qos.rt is not None:
        out["rt"] = _curve(qos.rt)
    return {"out": out}


def _shaped_on(southbound: str, state: KernelState) -> tuple[str, int | None]:
    """The NIC or bond a network's shaping is on, and its VLAN tag there (VDSM's netinfo:
    a VLAN device's base and tag, else the device itself, untagged)."""
    device = state.get(southbound)
    if device is not None and device.kind == VLAN and device.vlan_base is not None:
        return device.vlan_base, device.vlan_id
    return southbound, None


def _host_qos(southbound: str | None, state: KernelState,
              trees: Mapping[str, QosTree]) -> capsdoc.HostQos | None:
    """The network's ``hostQos`` read back from the kernel: only when its class exists."""
    if southbound is None:
        return None
    base, vlan = _shaped_on(southbound, state)
    tree = trees.get(base)
    curves = tree.classes.get(minor_of(vlan)) if tree is not None else None
    qos = curves.to_host_qos() if curves is not None else None
    return _qos_doc(qos) if qos is not None else None


def _network(
    net: NetworkConfig,
    top: Device,
    state: KernelState,
    ports: dict[str, list[str]],
    routes: dict[str, list[Route]],
    trees: Mapping[str, QosTree],
) -> capsdoc.NetInfoNetwork:
    own = routes.get(net.top, [])
    facts = _device_facts(top, routes)
    top_ports = list(ports.get(net.top, []))
    southbound = _southbound(net, top, state, top_ports)
    south = state.get(southbound) if southbound is not None else None
    # mypy's extra checks want every NotRequired key of a TypedDict built with ** spelled
    # out; the optional keys are added below, where they apply (here and in _nic, _bond).
    common: capsdoc._NetworkFacts = {
        **facts,  # type: ignore[typeddict-item]
        "iface": net.top,
        "southbound": southbound,
        "switch": capsdoc.LEGACY_SWITCH,
        "isolated": net.isolated,
        "defaultRoute": any(r.table == MAIN_TABLE for r in own),
        "dhcpv4": net.dhcpv4,
        "dhcpv6": False,  # DHCPv6 is refused (request.py)
        "ipv6autoconf": net.ipv6autoconf,
    }
    if south is not None and south.kind == VLAN and south.vlan_id is not None:
        common["vlanid"] = south.vlan_id
    qos = _host_qos(southbound, state, trees)
    if qos is not None:
        common["hostQos"] = qos
    if net.bridged:
        return {
            **common,  # type: ignore[typeddict-item]
            "bridged": True,
            "ports": top_ports,
            "stp": capsdoc.stp_state(top.stp),
        }
    return {**common, "bridged": False, "interface": net.top}


def _of_kind(state: KernelState, kind: str) -> list[Device]:
    return sorted((d for d in state.devices.values() if d.kind == kind), key=lambda d: d.name)


def is_host_nic(device: Device) -> bool:
    return device.is_nic and device.kind in NIC_KINDS and device.name != LOOPBACK


def bond_opts(options: Mapping[str, str]) -> dict[str, str]:
    """A bond's options as VDSM reports them: ``mode`` always, the others only where they
    differ from the mode's defaults, enumerations as the kernel's numbers ("mode": "4"),
    empty values left out."""
    mode = options.get("mode", bond_options.DEFAULTS["mode"])
    defaults = bond_options.normalize({"mode": mode})
    out = {}
    for name, value in sorted(options.items()):
        if value == "" or (name != "mode" and value == defaults.get(name)):
            continue
        enum = name in bond_options.ENUMS
        out[name] = str(bond_options.to_number(name, value)) if enum else value
    return out


def _nic(d: Device, routes: dict[str, list[Route]]) -> capsdoc.NetInfoNic:
    entry: capsdoc.NetInfoNic = {
        **_device_facts(d, routes),  # type: ignore[typeddict-item]
        "hwaddr": d.mac or "",
        "speed": d.speed,
        "operstate": d.operstate,
    }
    if d.perm_mac is not None:
        entry["permhwaddr"] = d.perm_mac
    if d.ad_aggregator_id is not None:
        entry["ad_aggregator_id"] = str(d.ad_aggregator_id)
    return entry


def _bond(
    d: Device, ports: dict[str, list[str]], routes: dict[str, list[Route]]
) -> capsdoc.NetInfoBond:
    entry: capsdoc.NetInfoBond = {
        **_device_facts(d, routes),  # type: ignore[typeddict-item]
        "hwaddr": d.mac or "",
        "slaves": list(ports.get(d.name, [])),
        "active_slave": d.active_slave or "",
        "opts": bond_opts(d.bond_options),
        "switch": capsdoc.LEGACY_SWITCH,
        "speed": d.speed,
    }
    # The kernel sends the aggregator only while one is active (802.3ad), which is when
    # sysfs has ad_partner_mac: VDSM's condition for reporting both.
    if d.ad_aggregator_id is not None and d.ad_partner_mac is not None:
        entry["ad_aggregator_id"] = str(d.ad_aggregator_id)
        entry["ad_partner_mac"] = d.ad_partner_mac
    return entry


def capabilities(
    state: KernelState,
    running: NetConfig,
    *,
    dirty: bool,
    pending: bool = False,
    nameservers: Sequence[str] = (),
    supports_ipv6: bool = True,
    qos: Mapping[str, QosTree] | None = None,
) -> capsdoc.NetworkCapabilities:
    """``nameservers``: the host's resolvers (the resolver file); ``qos``: the agent's HFSC
    trees by NIC or bond, as read from the kernel; a network whose top device is gone is
    left out, as VDSM does."""
    trees = qos or {}
    nics = sorted((d for d in state.devices.values() if is_host_nic(d)), key=lambda d: d.name)
    ports, routes = _ports(state), _routes(state)
    networks: dict[str, capsdoc.NetInfoNetwork] = {}
    for name, net in sorted(running.networks.items()):
        top = state.get(net.top)
        if top is not None:
            networks[name] = _network(net, top, state, ports, routes, trees)
            if networks[name]["defaultRoute"]:  # the host's resolvers are this network's
                networks[name]["nameservers"] = list(nameservers)
    nic_entries = {d.name: _nic(d, routes) for d in nics}
    bond_entries = {d.name: _bond(d, ports, routes) for d in _of_kind(state, BOND)}
    _add_device_qos(networks, state, nic_entries, bond_entries)
    return {
        "networks": networks,
        "bridges": {
            d.name: {
                **_device_facts(d, routes),
                "ports": list(ports.get(d.name, [])),
                "stp": capsdoc.stp_state(d.stp),
                "opts": dict(d.bridge_opts),
            }
            for d in _of_kind(state, BRIDGE)
        },
        "nics": nic_entries,
        "vlans": {
            d.name: {
                **_device_facts(d, routes),
                "iface": d.vlan_base or "",
                "vlanid": d.vlan_id if d.vlan_id is not None else 0,
            }
            for d in _of_kind(state, VLAN)
        },
        "bondings": bond_entries,
        "nameservers": list(nameservers),
        "supportsIPv6": supports_ipv6,
        "netConfigDirty": dirty,
        "netConfigPending": pending,
    }


def _add_device_qos(
    networks: Mapping[str, capsdoc.NetInfoNetwork],
    state: KernelState,
    nics: dict[str, capsdoc.NetInfoNic],
    bonds: dict[str, capsdoc.NetInfoBond],
) -> None:
    """VDSM's ``qos`` list on a NIC or bond: each network's ``hostQos`` with its VLAN tag
    there (-1 untagged), by tag."""
    found: dict[str, list[capsdoc.DeviceQos]] = {}
    for entry in networks.values():
        qos, southbound = entry.get("hostQos"), entry["southbound"]
        if qos is None or southbound is None:
            continue
        base, vlan = _shaped_on(southbound, state)
        found.setdefault(base, []).append({"hostQos": qos, "vlan": -1 if vlan is None else vlan})
    for base, items in found.items():
        items.sort(key=lambda item: item["vlan"])
        if base in nics:
            nics[base]["qos"] = items
        elif base in bonds:
            bonds[base]["qos"] = items


def _link_stats(stats: LinkStats, device: Device | None) -> dict[str, Any]:
    # VDSM's "up" is IFF_UP and IFF_RUNNING; the kernel sets IFF_RUNNING exactly when the
    # operstate is "up" or "unknown" (netif_oper_up()), so a NIC without carrier
    # ("lowerlayerdown", "dormant", ...) is down, as `ip link` shows it (NO-CARRIER).
    running = device is not None and device.up and device.operstate in ("up", "unknown")
    return {
        "rx": stats.rx,
        "tx": stats.tx,
        "rxDropped": stats.rx_dropped,
        "txDropped": stats.tx_dropped,
        "rxErrors": stats.rx_errors,
        "txErrors": stats.tx_errors,
        "state": "up" if running else "down",
        "speed": device.speed if device else 0,
        "duplex": stats.duplex,
    }


def statistics(
    stats: Mapping[str, LinkStats],
    state: KernelState,
    running: NetConfig,
    sample_time: float,
) -> dict[str, Any]:
    return {
        "interfaces": {
            name: _link_stats(s, state.get(name))
            for name, s in sorted(stats.items())
            if name != LOOPBACK
        },
        "networks": {
            name: _link_stats(stats[net.top], state.get(net.top))
            for name, net in sorted(running.networks.items())
            if net.top in stats
        },
        "sampleTime": sample_time,
    }
