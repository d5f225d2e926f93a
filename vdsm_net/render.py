"""Render a NetConfig into the desired KernelState of the devices the agent manages.

Pure. Only the devices in the result are managed: a VM tap on a bridge, the host's other
NICs, anything unnamed by the config stays as it is. The planner deletes owned devices that
are absent from the result.

Choices worth knowing:
- MTU (docs/api.md): every device of a network's chain gets the network's MTU; a NIC or bond
  shared by several networks gets the largest; bond slaves get their bond's MTU; a NIC the
  previous config used and the new one does not goes back to 1500 and is released.
- Addresses and routes: the agent removes only what a config of its own put there. A managed
  device keeps the addresses it has, minus those the previous config assigned to it, plus
  those the new config assigns. The same holds for routes, except that a new default route
  replaces any other route of its family in its table (the kernel refuses a second one).
- ``gateway`` on a network without ``defaultRoute`` goes into a routing table of its own,
  ``network_table(name)``, so that the gateway is recorded and reported without touching
  the host's default route (source routing rules are not managed).
- A new bridge gets the MAC of the NIC or bond under it, as VDSM does: a bridge without an
  explicit MAC takes the lowest MAC of its ports, so a VM tap joining could change it and
  break the host's DHCP lease or ARP caches. Existing bridges: MAC not managed.
- ``bootproto: dhcp`` is recorded but no DHCP client is run by this renderer.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TypeVar

from vdsm_net.kernel import bond_options, bridge_options
from vdsm_net.model import DEFAULT_MTU, NetConfig, NetworkConfig, frozen_map
from vdsm_net.state import BOND, BRIDGE, MAIN_TABLE, VLAN, Device, KernelState, Route

# Per-network tables live above 0x10000000, far from the tables that people number by hand
# (1-252) and from the reserved ones (253-255).
NETWORK_TABLE_BASE = 0x10000000
NETWORK_TABLE_SPAN = 0x1000000


def network_table(name: str) -> int:
    """The stable routing table of a network's own (non-default) gateway."""
    return NETWORK_TABLE_BASE + zlib.crc32(name.encode()) % NETWORK_TABLE_SPAN


def render(
    config: NetConfig,
    current: KernelState,
    previous: NetConfig,
    base_mtu_floor: Mapping[str, int] | None = None,
) -> KernelState:
    """The desired state of every device that ``config`` (or ``previous``) involves.

    ``base_mtu_floor``: NIC or bond -> the largest MTU of the networks on it that lie
    outside ``config`` (a scoped render, ``vdsm_net.scope``). Such a base stays in use (it
    is not released) and its MTU is at least that, as if those networks were rendered too:
    their own devices do not depend on the networks of ``config``."""
    devices = _devices(config, current, previous, base_mtu_floor or {})
    # Computed once: per device they made render quadratic in the number of networks.
    before = (_addresses(previous, 4, _ipv4_interface), _addresses(previous, 6, _ipv6_interface))
    after = (_addresses(config, 4, _ipv4_interface), _addresses(config, 6, _ipv6_interface))
    devices = {n: _with_addresses(d, current, before, after) for n, d in devices.items()}
    routes = _desired_routes(config, current, previous, set(devices))
    return KernelState(frozen_map(devices), frozenset(routes))


# ---- devices -----------------------------------------------------------------------------


def _sorted_networks(config: NetConfig) -> list[NetworkConfig]:
    return [config.networks[n] for n in sorted(config.networks)]


def _base_mtus(config: NetConfig, floor: Mapping[str, int]) -> dict[str, int]:
    mtus: dict[str, int] = dict(floor)
    for net in _sorted_networks(config):
        if net.southbound is not None:
            mtus[net.southbound] = max(mtus.get(net.southbound, 0), net.mtu)
    return mtus


def _bridge_ports(config: NetConfig) -> dict[str, str]:
    """device -> the bridge it is a port of."""
    return {
        net.vlan_device or net.southbound: net.name
        for net in config.networks.values()
        if net.bridged and net.southbound is not None
    }


def _nic(current: KernelState, name: str, mtu: int, master: str | None) -> Device | None:
    """A NIC is never created: it is desired only as an evolution of what the kernel has."""
    device = current.get(name)
    if device is None:
        return None
    return device.evolve(mtu=mtu, up=True, master=master)


def _used_nics(config: NetConfig) -> set[str]:
    nics = {nic for bond in config.bondings.values() for nic in bond.nics}
    return nics | {n.nic for n in config.networks.values() if n.nic is not None}


def _devices(
    config: NetConfig, current: KernelState, previous: NetConfig, floor: Mapping[str, int]
) -> dict[str, Device]:
    base_mtu = _base_mtus(config, floor)
    port_of = _bridge_ports(config)
    out: dict[str, Device] = {}
    for name in sorted(config.bondings):
        bond = config.bondings[name]
        mtu = base_mtu.get(name, DEFAULT_MTU)
        out[name] = Device(
            name=name, kind=BOND, mtu=mtu, up=True, master=port_of.get(name), owned=True,
            bond_options=frozen_map(bond_options.normalize(bond.options)), mac=bond.hwaddr,
        )
        for nic in bond.nics:
            slave = _nic(current, nic, mtu, name)
            if slave is not None:
                out[nic] = slave
    for net in _sorted_networks(config):
        out.update(_chain(net, current, base_mtu, port_of, previous.networks.get(net.name)))
    # A NIC that only networks outside the config still use: what their chains would give.
    for nic in sorted(set(floor) - set(out) - set(config.bondings)):
        device = _nic(current, nic, base_mtu[nic], port_of.get(nic))
        if device is not None:
            out[nic] = device
    released = _used_nics(previous) | _stray_slaves(config, current)
    for nic in sorted(released - _used_nics(config) - set(floor)):
        device = current.get(nic)
        if device is not None and device.is_nic:
            out[nic] = device.evolve(mtu=DEFAULT_MTU, master=None)
    return out


def _stray_slaves(config: NetConfig, current: KernelState) -> set[str]:
    """Slaves of an owned bond that neither config knows (left by a change whose rollback
    failed, or that died mid-apply): released like a previous config's NICs. Deleting the
    bond closes them (the bonding driver downs a released slave), so they must be managed
    for the converge pass to bring them back up."""
    return {
        d.name
        for d in current.devices.values()
        if d.master is not None
        and d.master not in config.bondings
        and (bond := current.get(d.master)) is not None
        and bond.owned
        and bond.kind == BOND
    }


def _chain(
    net: NetworkConfig,
    current: KernelState,
    base_mtu: dict[str, int],
    port_of: dict[str, str],
    before: NetworkConfig | None,
) -> dict[str, Device]:
    """The devices of one network above its bond (bonds are rendered with their slaves)."""
    out: dict[str, Device] = {}
    if net.nic is not None:
        nic = _nic(current, net.nic, base_mtu[net.nic], port_of.get(net.nic))
        if nic is not None:
            out[net.nic] = nic
    if net.vlan_device is not None and net.southbound is not None:
        out[net.vlan_device] = Device(
            name=net.vlan_device, kind=VLAN, mtu=net.mtu, up=True,
            master=port_of.get(net.vlan_device), owned=True,
            vlan_base=net.southbound, vlan_id=net.vlan,
        )
    if net.bridged:
        out[net.name] = Device(
            name=net.name, kind=BRIDGE, mtu=net.mtu, up=True, owned=True, stp=net.stp,
            mac=_new_bridge_mac(net, current), bridge_opts=_bridge_opts(net, before),
        )
    return out


def _bridge_opts(net: NetworkConfig, before: NetworkConfig | None) -> Mapping[str, str]:
    """The network's bridge options; those its previous definition set and this one does
    not go back to the kernel's defaults (a network entry replaces the whole definition)."""
    dropped = set(before.bridge_opts) - set(net.bridge_opts) if before is not None else set()
    defaults = bridge_options.DEFAULTS
    resets = {k: defaults[k] for k in sorted(dropped) if k in defaults}
    return frozen_map({**resets, **net.bridge_opts})


def _new_bridge_mac(net: NetworkConfig, current: KernelState) -> str | None:
    if net.name in current.devices or net.southbound is None:
        return None
    base = current.get(net.southbound)
    return base.mac if base is not None else None


# ---- addresses and routes ----------------------------------------------------------------


_A = TypeVar("_A", IPv4Interface, IPv6Interface)

# NetworkConfig keeps its addresses as the request's text; every render parses the previous
# and the new config's, which for a thousand networks cost more than the rest of a no-op
# render and plan. The values are immutable, so parses are shared (bounded: a daemon lives
# long and sees addresses come and go).
_PARSE_CACHE = 8192
_ipv4_interface = functools.lru_cache(maxsize=_PARSE_CACHE)(IPv4Interface)
_ipv6_interface = functools.lru_cache(maxsize=_PARSE_CACHE)(IPv6Interface)
_ipv4_address = functools.lru_cache(maxsize=_PARSE_CACHE)(IPv4Address)
_ipv6_address = functools.lru_cache(maxsize=_PARSE_CACHE)(IPv6Address)


def _addresses(config: NetConfig, family: int, parse: Callable[[str], _A]) -> dict[str, set[_A]]:
    """top device -> the addresses the config puts on it (its "addr/prefix" of ``family``)."""
    out: dict[str, set[_A]] = {}
    for net in config.networks.values():
        cidr = net.ipv4 if family == 4 else net.ipv6
        if cidr is not None and net.southbound is not None:
            out.setdefault(net.top, set()).add(parse(cidr))
    return out


# (IPv4, IPv6) top -> addresses
_ByFamily = tuple[dict[str, set[IPv4Interface]], dict[str, set[IPv6Interface]]]


def _with_addresses(
    device: Device, current: KernelState, before: _ByFamily, after: _ByFamily
) -> Device:
    now = current.get(device.name)
    have4 = now.ipv4 if now is not None else frozenset()
    have6 = now.ipv6 if now is not None else frozenset()
    ipv4 = _keep_and_add(have4, before[0], after[0], device.name)
    ipv6 = _keep_and_add(have6, before[1], after[1], device.name)
    if ipv4 == device.ipv4 and ipv6 == device.ipv6:
        return device
    return device.evolve(ipv4=ipv4, ipv6=ipv6)


def _keep_and_add(
    have: Iterable[_A], before: dict[str, set[_A]], after: dict[str, set[_A]], name: str
) -> frozenset[_A]:
    return frozenset((set(have) - before.get(name, set())) | after.get(name, set()))


def config_routes(config: NetConfig) -> set[Route]:
    """The routes that a config asks for."""
    routes: set[Route] = set()
    for net in config.networks.values():
        if net.southbound is None:
            continue
        table = MAIN_TABLE if net.default_route else network_table(net.name)
        if net.gateway is not None:
            routes.add(Route(4, _ipv4_address(net.gateway), net.top, table))
        if net.ipv6gateway is not None:
            routes.add(Route(6, _ipv6_address(net.ipv6gateway), net.top, table))
    return routes


def _desired_routes(
    config: NetConfig, current: KernelState, previous: NetConfig, managed: set[str]
) -> set[Route]:
    wanted = config_routes(config)
    before = config_routes(previous)
    taken = {(r.family, r.table) for r in wanted}
    kept = {
        r
        for r in current.routes
        if r.device in managed and r not in before and (r.family, r.table) not in taken
    }
    return wanted | kept
