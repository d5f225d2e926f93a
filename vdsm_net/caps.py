"""The capabilities (SPEC §1.4) and statistics (SPEC §1.8) documents. Pure: no I/O.

Every value comes from the kernel's state as the backend read it; the running config only
says which devices make up which network (and is the fallback for a network whose top
device is missing, so that the engine sees the network as out of sync rather than gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.state import BOND, BRIDGE, MAIN_TABLE, VLAN, Device, KernelState, Route

# Kinds reported as host NICs: physical devices ("" kind) and what tests simulate NICs with.
NIC_KINDS = frozenset({"", "veth", "dummy"})
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


def _gateway(routes: list[Route], family: int) -> str:
    """The device's default gateway; the main table's wins over a per-network table's."""
    found = sorted(
        (r.table != MAIN_TABLE, r.table, r.gateway) for r in routes if r.family == family
    )
    return found[0][2] if found else ""


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


def _network(
    net: NetworkConfig,
    state: KernelState,
    ports: dict[str, list[str]],
    routes: dict[str, list[Route]],
) -> dict[str, Any]:
    top = state.get(net.top)
    own = routes.get(net.top, [])
    entry: dict[str, Any] = {
        "iface": net.top,
        "bridged": net.bridged,
        "southbound": net.southbound,
        "mtu": top.mtu if top else net.mtu,
        "isolated": net.isolated,
        "ipv4addrs": sorted(top.ipv4 | top.dynamic_ipv4) if top else [],
        "ipv6addrs": sorted(top.ipv6) if top else [],
        "gateway": _gateway(own, 4),
        "ipv6gateway": _gateway(own, 6),
        "defaultRoute": any(r.table == MAIN_TABLE for r in own),
        "dhcpv4": net.dhcpv4,
        "dhcpv6": False,  # DHCPv6 is refused (request.py)
        "ipv6autoconf": net.ipv6autoconf,
    }
    if net.vlan is not None:
        entry["vlanid"] = net.vlan
    if net.bridged:
        entry["ports"] = list(ports.get(net.top, []))
        entry["stp"] = top.stp if top else net.stp
    return entry


def _of_kind(state: KernelState, kind: str) -> list[Device]:
    return sorted((d for d in state.devices.values() if d.kind == kind), key=lambda d: d.name)


def is_host_nic(device: Device) -> bool:
    return device.is_nic and device.kind in NIC_KINDS and device.name != LOOPBACK


def capabilities(state: KernelState, running: NetConfig, *, dirty: bool) -> dict[str, Any]:
    nics = sorted((d for d in state.devices.values() if is_host_nic(d)), key=lambda d: d.name)
    ports, routes = _ports(state), _routes(state)
    return {
        "networks": {
            name: _network(net, state, ports, routes)
            for name, net in sorted(running.networks.items())
        },
        "bridges": {
            d.name: {"ports": list(ports.get(d.name, [])), "mtu": d.mtu, "stp": d.stp}
            for d in _of_kind(state, BRIDGE)
        },
        "nics": {
            d.name: {
                "hwaddr": d.mac or "",
                "mtu": d.mtu,
                "speed": d.speed,
                "operstate": d.operstate,
            }
            for d in nics
        },
        "vlans": {
            d.name: {"iface": d.vlan_base, "vlanid": d.vlan_id, "mtu": d.mtu}
            for d in _of_kind(state, VLAN)
        },
        "bondings": {
            d.name: {
                "slaves": list(ports.get(d.name, [])),
                "opts": dict(d.bond_options),
                "mtu": d.mtu,
                "active_slave": d.active_slave or "",
            }
            for d in _of_kind(state, BOND)
        },
        "netConfigDirty": dirty,
    }


def _link_stats(stats: LinkStats, device: Device | None) -> dict[str, Any]:
    running = device is not None and device.up and device.operstate != "down"
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
