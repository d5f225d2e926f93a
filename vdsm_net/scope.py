"""Which part of the host a setupNetworks touches: the scope of a transaction. Pure.

A request names some networks. The kernel devices its plan can touch are the devices of
those networks (old and new), the NICs and bonds under them (with the bonds' slaves), and
the devices of the untagged networks on those NICs and bonds (their bridge is the base's
master, or the base itself is their top device, carrying their addresses and routes).
The VLAN networks sharing a base stay out of the scope: their VLAN devices and bridges do
not depend on the other networks of the base; only the base's MTU depends on them (the
largest of its networks', docs/api.md), and that is pure data from the running config,
given to render as ``base_floor``. The base then never drops below one of their MTUs, so
the kernel never clamps one of their VLANs, and it is never released while they use it.
Rendering and planning just those
networks gives the same operations as rendering the whole config, provided that the kernel
around the scope does not reach into it (the pipeline checks that on what it read: see
``is_closed``); reading just those devices makes a change of one network cost the same on a
host carrying 10 networks or 1000.

``scope_of`` answers None (the whole kernel state, as before scoping) when scoping would not
be exact or would not pay:
- the request names a bond: a created, changed or removed bond enslaves or releases NICs,
  and a released slave of an owned bond that no config knows is found only by looking at
  every device (``render._stray_slaves``);
- the scope holds more devices than ``MAX_DEVICES``: one dump costs less than that many
  per-device requests (a re-send of the whole config).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vdsm_net.model import NetConfig, NetworkConfig, Removal, SetupRequest, frozen_map
from vdsm_net.render import config_routes
from vdsm_net.state import KernelState

# Per-device reads cost about 4 netlink requests each (link, addresses, routes, re-read
# after apply); past this, one dump of every link, address and route is cheaper.
MAX_DEVICES = 48


@dataclass(frozen=True)
class ReadScope:
    """What the backend reads for a scoped transaction: these devices (those that exist),
    their addresses, the default routes through them in any table, and the default routes
    in ``tables`` ((family, table) pairs that a config of the scope routes through)."""

    devices: frozenset[str]
    tables: frozenset[tuple[int, int]] = frozenset()
    networks: frozenset[str] = frozenset()  # the networks the devices belong to
    bonds: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, object]:
        return {
            "devices": sorted(self.devices),
            "tables": [list(t) for t in sorted(self.tables)],
            "networks": sorted(self.networks),
            "bonds": sorted(self.bonds),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ReadScope:
        """Raises KeyError, TypeError or ValueError on a malformed document."""
        tables = {(int(family), int(table)) for family, table in doc.get("tables", [])}
        return cls(
            devices=frozenset(str(d) for d in doc["devices"]),
            tables=frozenset(tables),
            networks=frozenset(str(n) for n in doc.get("networks", [])),
            bonds=frozenset(str(b) for b in doc.get("bonds", [])),
        )


def _reaches_out(running: NetConfig, name: str, net: NetworkConfig) -> bool:
    """A change of other networks or bonds than those named: a bond to adopt (merge), or
    the default route taken from another network."""
    if net.bonding is not None and net.bonding not in running.bondings:
        return True
    return net.default_route and any(
        other.default_route for n, other in running.networks.items() if n != name
    )


def scope_of(running: NetConfig, request: SetupRequest) -> ReadScope | None:
    """The scope of ``request`` applied to ``running``; None: the whole state is needed."""
    if request.bondings:
        return None
    named = set(request.networks)
    new_nets = {n: e for n, e in request.networks.items() if isinstance(e, NetworkConfig)}
    if any(_reaches_out(running, name, net) for name, net in new_nets.items()):
        return None
    southbounds = {
        net.southbound
        for net in [*(running.networks[n] for n in named if n in running.networks),
                    *new_nets.values()]
        if net.southbound is not None
    }
    # Unnamed networks keep their southbound, so one step closes the set: sharing is
    # decided by the southbounds of the named networks, before and after. Unnamed VLAN
    # networks on them stay out (``base_floor``).
    networks = named | {
        n for n, net in running.networks.items()
        if net.southbound is not None and net.southbound in southbounds and net.vlan is None
    }
    bonds = {b for b in southbounds if b in running.bondings}
    before = restrict(running, networks, bonds)
    after_nets = {n: running.networks[n] for n in networks if n in running.networks}
    for name in named:
        entry = request.networks[name]
        if isinstance(entry, Removal):
            after_nets.pop(name, None)
        else:
            after_nets[name] = entry
    after = NetConfig(frozen_map(after_nets), before.bondings)
    devices = set(networks) | set(bonds)
    for cfg in (before, after):
        devices |= _devices(cfg.networks.values())
    for bond in bonds:
        devices |= set(running.bondings[bond].nics)
    if len(devices) > MAX_DEVICES:
        return None
    tables = {(r.family, r.table) for cfg in (before, after) for r in config_routes(cfg)}
    return ReadScope(frozenset(devices), frozenset(tables), frozenset(networks),
                     frozenset(bonds))


def _devices(networks: Iterable[NetworkConfig]) -> set[str]:
    out: set[str] = set()
    for net in networks:
        out |= {d for d in (net.nic, net.bonding, net.vlan_device) if d is not None}
        out.add(net.name)
    return out


def restrict(
    config: NetConfig, networks: Iterable[str], bonds: Iterable[str]
) -> NetConfig:
    """The part of ``config`` made of these networks and bonds (those it has)."""
    return NetConfig(
        frozen_map({n: config.networks[n] for n in networks if n in config.networks}),
        frozen_map({b: config.bondings[b] for b in bonds if b in config.bondings}),
    )


def in_scope(config: NetConfig, scope: ReadScope) -> NetConfig:
    return restrict(config, scope.networks, scope.bonds)


def base_floor(config: NetConfig, scope: ReadScope) -> dict[str, int]:
    """NIC or bond of the scope -> the largest MTU of ``config``'s networks on it that the
    scope leaves out (unnamed VLAN networks: the same in the running and the new config)."""
    floor: dict[str, int] = {}
    for name, net in config.networks.items():
        base = net.southbound
        if name in scope.networks or base is None or base not in scope.devices:
            continue
        floor[base] = max(floor.get(base, 0), net.mtu)
    return floor


def is_closed(state: KernelState, scope: ReadScope) -> bool:
    """Whether the scoped state is self-contained: every device it holds is one the scope
    names, and every master and VLAN base it refers to is in it. A NIC of the scope
    enslaved to a device outside it (a foreign bridge, a bond left by a failed change), or a
    VLAN of the scope on another base, is a case for the whole state: the merge rules look
    at the master (who owns it) and the planner must see everything it may release."""
    for device in state.devices.values():
        if device.name not in scope.devices:
            return False
        for ref in (device.master, device.vlan_base):
            if ref is not None and ref not in state.devices:
                return False
    return True


def covers(state: KernelState, scope: ReadScope) -> bool:
    """Whether every device of ``state`` (a rendered desired state) lies in the scope."""
    return all(name in scope.devices for name in state.devices)
