"""Apply a parsed request to the running config and check the result (docs/api.md rules).

Pure: the kernel state is only read, to check NICs and name collisions. Rules run in a fixed
order over sorted names so that the first violation, and so the message, is stable.

Entries that the request does not name were checked when they were added; the per-entry
kernel checks (NIC exists, name not taken) therefore run only for the entries the request
names, so a NIC that vanished under an old network does not block unrelated changes.
Config-wide rules (one network per device+vlan, one default route, bond slaves) always run
over the whole resulting config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import bond_options
from vdsm_net.model import BondConfig, NetConfig, NetworkConfig, Removal, SetupRequest, frozen_map
from vdsm_net.names import IFNAME_MAX
from vdsm_net.state import BOND, NIC_KINDS, KernelState

E = ErrorKind
_T = TypeVar("_T")


def merge(running: NetConfig, request: SetupRequest, current: KernelState) -> NetConfig:
    """The new running config; raises NetError for a semantic rule violation."""
    networks = _apply(running.networks, request.networks, "networks", E.BAD_BRIDGE)
    bondings = _apply(running.bondings, request.bondings, "bondings", E.BAD_BONDING)
    touched_nets = sorted(n for n, e in request.networks.items() if not isinstance(e, Removal))
    _move_default_route(networks, touched_nets)
    adopted = _adopt_bonds(networks, bondings, current, touched_nets)
    config = NetConfig(networks=frozen_map(networks), bondings=frozen_map(bondings))
    touched_bonds = sorted(n for n, e in request.bondings.items() if not isinstance(e, Removal))
    touched_bonds = sorted(set(touched_bonds) | set(adopted))
    removed_bonds = sorted(n for n, e in request.bondings.items() if isinstance(e, Removal))

    _check_removed_bonds_unused(config, removed_bonds)
    _check_bonds(config, current, touched_bonds, set(adopted))
    _check_networks(config, current, touched_nets)
    _check_pairs(config)
    _check_names(config)
    _check_default_route(config)
    return config


def _apply(
    running: Mapping[str, _T],
    changes: Mapping[str, _T | Removal],
    section: str,
    unknown_kind: ErrorKind,
) -> dict[str, _T]:
    result = dict(running)
    for name in sorted(changes):
        entry = changes[name]
        if isinstance(entry, Removal):
            if name not in result:
                raise NetError(unknown_kind, f"{section}.{name}: cannot remove {name}: "
                               "it is not configured")
            del result[name]
        else:
            result[name] = entry
    return result


def _move_default_route(networks: dict[str, NetworkConfig], touched: list[str]) -> None:
    """VDSM moves the default route: a network given defaultRoute takes it from the running
    network that had it, which keeps its gateway in a table of its own (render) and loses
    its name servers (only the defaultRoute network has them)."""
    takers = [n for n in touched if networks[n].default_route]
    if len(takers) != 1:
        return  # none, or two (refused by the request parser and _check_default_route)
    for name in sorted(networks):
        net = networks[name]
        if name != takers[0] and net.default_route:
            networks[name] = replace(net, default_route=False, nameservers=())


def _adopt_bonds(
    networks: Mapping[str, NetworkConfig],
    bondings: dict[str, BondConfig],
    current: KernelState,
    touched: list[str],
) -> list[str]:
    """A network naming a bond that the config does not define, which exists in the kernel
    and is not the agent's (an installer's), adopts it as it is: its slaves, its options,
    its MAC. Returns the adopted bonds."""
    adopted = []
    for name in touched:
        bond = networks[name].bonding
        if bond is None or bond in bondings:
            continue
        device = current.get(bond)
        if device is None or device.kind != BOND or device.owned or not current.ports_of(bond):
            continue  # not a foreign bond: _check_networks says why
        have = device.bond_options
        defaults = bond_options.normalize({"mode": have.get("mode", bond_options.DEFAULTS["mode"])})
        options = {k: v for k, v in have.items()
                   if k not in bond_options.ALIASES and (k == "mode" or v != defaults.get(k))}
        bondings[bond] = BondConfig(
            name=bond, nics=tuple(current.ports_of(bond)),
            options=frozen_map(dict(sorted(options.items(), key=lambda kv: _mode_first(kv[0])))),
            hwaddr=device.mac,
        )
        adopted.append(bond)
    return adopted


def _mode_first(key: str) -> tuple[bool, str]:
    return key != "mode", key


def _users(config: NetConfig, bond: str) -> list[str]:
    return sorted(n for n, c in config.networks.items() if c.bonding == bond)


def _check_removed_bonds_unused(config: NetConfig, removed: list[str]) -> None:
    for bond in removed:
        users = _users(config, bond)
        if users:
            raise NetError(E.USED_BOND, f"bondings.{bond}: cannot remove bond {bond}: "
                           f"used by network {', '.join(users)}")


def _nic_problem(
    name: str, current: KernelState, adopted: frozenset[str] | set[str] = frozenset()
) -> tuple[ErrorKind, str] | None:
    device = current.get(name)
    if device is None:
        return E.BAD_NIC, f"no such NIC {name}"
    if device.loopback:
        return E.BAD_NIC, f"{name} is not a NIC (it is the loopback device)"
    if not device.is_nic or device.kind not in NIC_KINDS:
        what = f"an owned {device.kind}" if device.owned else f"a {device.kind}"
        return E.BAD_NIC, f"{name} is not a NIC (it is {what})"
    master = current.get(device.master) if device.master else None
    if master is not None and not master.owned and master.name not in adopted:
        return E.USED_NIC, f"{name} is already used by {master.name}, which the agent does not own"
    return None


def _check_bonds(
    config: NetConfig, current: KernelState, touched: list[str], adopted: set[str]
) -> None:
    owner: dict[str, str] = {}
    for name in sorted(config.bondings):
        for nic in config.bondings[name].nics:
            if nic in owner:
                raise NetError(E.USED_NIC, f"bondings.{name}.nics: {nic} is already a slave "
                               f"of {owner[nic]}")
            owner[nic] = name
    for name in touched:
        bond: BondConfig = config.bondings[name]
        if name not in adopted:
            _check_name_free(f"bondings.{name}", name, current)
        for nic in bond.nics:
            problem = _nic_problem(nic, current, adopted)
            if problem is not None:
                raise NetError(problem[0], f"bondings.{name}.nics: {problem[1]}")


def _check_networks(config: NetConfig, current: KernelState, touched: list[str]) -> None:
    slave_of = {nic: b.name for b in config.bondings.values() for nic in b.nics}
    for name in sorted(config.networks):
        net = config.networks[name]
        path = f"networks.{name}"
        if net.bonding is not None and net.bonding not in config.bondings:
            device = current.get(net.bonding)
            what = ""
            if device is not None and device.kind == BOND:
                what = " (a bond of that name has no slaves: nothing to adopt)"
            elif device is not None:
                what = f" ({net.bonding} is a {device.kind or 'NIC'})"
            raise NetError(E.BAD_BONDING, f"{path}.bonding: no such bond {net.bonding}{what}")
        if net.nic is not None and net.nic in slave_of:
            raise NetError(E.USED_NIC, f"{path}.nic: {net.nic} is a slave of bond "
                           f"{slave_of[net.nic]} and cannot carry a network")
        vlan_device = net.vlan_device
        if vlan_device is not None and len(vlan_device) > IFNAME_MAX:
            raise NetError(E.BAD_VLAN, f"{path}.vlan: VLAN device name {vlan_device} is longer "
                           f"than {IFNAME_MAX} characters")
    for name in touched:
        net = config.networks[name]
        path = f"networks.{name}"
        if net.nic is not None:
            problem = _nic_problem(net.nic, current)
            if problem is not None:
                raise NetError(problem[0], f"{path}.nic: {problem[1]}")
        if net.bridged:
            _check_name_free(path, name, current)
        if net.vlan_device is not None:
            _check_name_free(f"{path}.vlan", net.vlan_device, current)


def _check_name_free(path: str, name: str, current: KernelState) -> None:
    """The agent builds only on names it owns (or that are free): never takes over a device."""
    device = current.get(name)
    if device is not None and not device.owned:
        raise NetError(E.BAD_BRIDGE, f"{path}: the name {name} is taken by a device that the "
                       f"agent does not own ({device.kind or 'physical'})")


def _check_pairs(config: NetConfig) -> None:
    seen: dict[tuple[str, int | None], str] = {}
    for name in sorted(config.networks):
        net = config.networks[name]
        if net.southbound is None:
            continue
        pair = (net.southbound, net.vlan)
        if pair in seen:
            where = net.southbound if net.vlan is None else f"{net.southbound} vlan {net.vlan}"
            raise NetError(E.BAD_PARAMS, f"networks.{name}: {where} already carries network "
                           f"{seen[pair]}")
        seen[pair] = name


def _check_names(config: NetConfig) -> None:
    """A network's bridge would clash with a bond or NIC the config also uses."""
    devices: dict[str, str] = {b: "bond" for b in config.bondings}
    for bond in config.bondings.values():
        devices.update({nic: "NIC" for nic in bond.nics})
    for net in config.networks.values():
        if net.nic is not None:
            devices[net.nic] = "NIC"
    for name in sorted(config.networks):
        if name in devices:
            raise NetError(E.BAD_BRIDGE, f"networks.{name}: the name {name} is already used "
                           f"as a {devices[name]} in the configuration")


def _check_default_route(config: NetConfig) -> None:
    defaults = sorted(n for n, c in config.networks.items() if c.default_route)
    if len(defaults) > 1:
        raise NetError(E.BAD_PARAMS, f"networks: defaultRoute is set on more than one network "
                       f"({', '.join(defaults)})")

