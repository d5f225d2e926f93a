"""The differ: the ordered kernel operations that turn one KernelState into another.

Pure. It plans an apply (``plan(current, render(...))``), its verification (``plan(after,
desired) == []``) and its revert (``plan(after_failure, snapshot)``).

Managed devices are those in ``desired`` plus the owned devices in ``current``; nothing else
is looked at (a VM tap on a managed bridge is neither desired nor owned: left alone). Owned
devices absent from ``desired`` are deleted; desired devices absent from ``current`` are
created when their kind can be created (a vanished NIC cannot: it is skipped).

Order (ARCHITECTURE.md "Plan order"; by name within a phase):
 1. DelRoute, DelAddress                       (before their devices move or go)
 2. SetMaster(None) for ports that move        (release)
 3. DeleteDevices, one op for all              (the kernel batches the unregister)
 4. CreateBond, then SetMaster(slave, bond)    (a bond is created down, options set)
 5. SetMtu decreases top-down, then increases bottom-up (a VLAN's MTU <= its base's)
 6. SetUp(True) for bases of new VLANs         (a VLAN cannot go up on a down base)
 7. CreateVlan, CreateBridge, SetMaster(port, bridge)
 0. SetGroup(owned) of adopted devices       (so that the rest of the plan may touch them)
 8. SetStp, SetBridgeOptions, SetBondOptions, SetMac, SetUp (down top-down, then up
    bottom-up); SetGroup(not owned) last when an adoption is reverted
 9. AddAddress, AddRoute
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vdsm_net.kernel import bridge_options
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
from vdsm_net.state import (
    BOND,
    BRIDGE,
    CREATABLE_KINDS,
    VLAN,
    Device,
    Interface,
    KernelState,
    Route,
)

# Stacking depth by kind: NIC (and any other kind) 0 < bond < VLAN < bridge.
_DEPTH = {BOND: 1, VLAN: 2, BRIDGE: 3}


def _depth(device: Device) -> int:
    return _DEPTH.get(device.kind, 0)


def _adoption(now: Device, want: Device) -> bool:
    """A bond changing hands: adopted (someone else's bond becomes the agent's) or the
    adoption reverted. Ownership is the device's group: it changes in place."""
    return now.kind == BOND == want.kind and now.owned != want.owned


def _same_identity(now: Device, want: Device) -> bool:
    """What cannot change in place: kind, VLAN base and id, a bond's mode (the kernel
    accepts a mode change only on a bond with no slaves and down), and ownership (but for an
    adopted bond)."""
    mode = want.bond_options.get("mode")
    return (
        now.kind == want.kind
        and (now.owned == want.owned or _adoption(now, want))
        and now.vlan_base == want.vlan_base
        and now.vlan_id == want.vlan_id
        and (mode is None or now.bond_options.get("mode") == mode)
    )


@dataclass
class _Diff:
    """Which managed devices go, come and stay; computed once, read by every phase."""

    current: KernelState
    desired: KernelState
    deleted: set[str] = field(default_factory=set)
    created: dict[str, Device] = field(default_factory=dict)
    kept: dict[str, tuple[Device, Device]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in sorted(self.current.devices):
            now = self.current.devices[name]
            want = self.desired.get(name)
            if want is None:
                if now.owned:
                    self.deleted.add(name)
            elif _same_identity(now, want):
                self.kept[name] = (now, want)
            elif now.owned and want.kind in CREATABLE_KINDS:
                self.deleted.add(name)
                self.created[name] = want
            # else: a foreign device holds the name; it is not ours to change or delete.
        for name in sorted(self.desired.devices):
            want = self.desired.devices[name]
            if name not in self.current.devices and want.kind in CREATABLE_KINDS:
                self.created[name] = want
        self._recreate_vlans_of_deleted_bases()

    def _recreate_vlans_of_deleted_bases(self) -> None:
        # The kernel unregisters a VLAN together with its base: a kept VLAN on a base that
        # is deleted (e.g. a bond recreated for a mode change) must be recreated too.
        for name in sorted(self.kept):
            now, want = self.kept[name]
            if now.kind == VLAN and now.vlan_base in self.deleted:
                del self.kept[name]
                self.deleted.add(name)
                self.created[name] = want

    def kind_of(self, name: str) -> str:
        device = self.desired.get(name) or self.current.get(name)
        return device.kind if device is not None else ""

    def master_moves(self, now: Device, want: Device) -> bool:
        return now.master != want.master or want.master in self.created

    def will_exist(self, name: str) -> bool:
        return name in self.created or (name in self.current.devices and name not in self.deleted)

    def managed(self) -> set[str]:
        return set(self.desired.devices) | {d.name for d in self.current.owned()}


def plan(current: KernelState, desired: KernelState) -> list[Op]:
    """Ordered operations turning ``current`` into ``desired``; [] when nothing differs."""
    diff = _Diff(current, desired)
    lower_up = _lower_up(diff)
    return [
        *_groups(diff, owned=True),
        *_del_routes(diff),
        *_del_addresses(diff),
        *_releases(diff),
        *_deletes(diff),
        *_create_bonds(diff),
        *_attach(diff, to_bond=True),
        *_mtus(diff),
        *(SetUp(name, True) for name in lower_up),
        *_create_vlans(diff),
        *_create_bridges(diff),
        *_attach(diff, to_bond=False),
        *_stp(diff),
        *_bridge_options(diff),
        *_bond_options(diff),
        *_macs(diff),
        *_states(diff, set(lower_up)),
        *_add_addresses(diff),
        *_add_routes(diff),
        *_groups(diff, owned=False),
    ]


# ---- phases ------------------------------------------------------------------------------


def _gone_routes(diff: _Diff) -> set[Route]:
    return {r for r in diff.current.routes if r.device in diff.deleted}


def _del_routes(diff: _Diff) -> Sequence[Op]:
    managed = diff.managed()
    # A desired default route replaces any other of its family in its table: the kernel
    # refuses a second default route with the same metric.
    claimed = {(r.family, r.table) for r in diff.desired.routes}
    doomed = [
        r
        for r in diff.current.routes - diff.desired.routes - _gone_routes(diff)
        if r.device in managed or (r.family, r.table) in claimed
    ]
    return [DelRoute(r) for r in sorted(doomed, key=Route.sort_key)]


def _add_routes(diff: _Diff) -> Sequence[Op]:
    have = diff.current.routes - _gone_routes(diff)
    wanted = sorted(diff.desired.routes - have, key=Route.sort_key)
    return [AddRoute(r) for r in wanted if diff.will_exist(r.device)]


_Pair = tuple[str, frozenset[Interface], frozenset[Interface]]


def _address_pairs(diff: _Diff) -> list[_Pair]:
    """(device, addresses now, addresses wanted) for every device that will exist; their
    addresses are added and deleted in the order of their text."""
    pairs: list[_Pair] = [
        (n, now.ipv4 | now.ipv6, w.ipv4 | w.ipv6) for n, (now, w) in diff.kept.items()
    ]
    pairs += [(n, frozenset(), want.ipv4 | want.ipv6) for n, want in diff.created.items()]
    return sorted(pairs, key=lambda pair: pair[0])


def _del_addresses(diff: _Diff) -> Sequence[Op]:
    return [
        DelAddress(name, cidr)
        for name, now, want in _address_pairs(diff)
        for cidr in sorted(now - want, key=str)
    ]


def _add_addresses(diff: _Diff) -> Sequence[Op]:
    return [
        AddAddress(name, cidr)
        for name, now, want in _address_pairs(diff)
        for cidr in sorted(want - now, key=str)
    ]


def _releases(diff: _Diff) -> Sequence[Op]:
    return [
        SetMaster(name, None)
        for name, (now, want) in sorted(diff.kept.items())
        if now.master is not None and diff.master_moves(now, want)
    ]


def _deletes(diff: _Diff) -> Sequence[Op]:
    return [DeleteDevices(tuple(sorted(diff.deleted)))] if diff.deleted else []


def _create_bonds(diff: _Diff) -> Sequence[Op]:
    # A plain dict: Op.to_json (dataclasses.asdict) cannot deepcopy a mappingproxy.
    return [
        CreateBond(name, dict(want.bond_options), want.mtu, want.mac)
        for name, want in sorted(diff.created.items())
        if want.kind == BOND
    ]


def _attach(diff: _Diff, *, to_bond: bool) -> Sequence[Op]:
    """Enslave to bonds (right after they exist) or attach ports to bridges (last)."""
    moves = [
        (name, want.master)
        for name, (now, want) in diff.kept.items()
        if want.master is not None and diff.master_moves(now, want)
    ]
    moves += [(n, w.master) for n, w in diff.created.items() if w.master is not None]
    return [
        SetMaster(name, master)
        for name, master in sorted(moves)
        if (diff.kind_of(master) == BOND) == to_bond
    ]


def _mtus(diff: _Diff) -> Sequence[Op]:
    changes = [(_depth(want), name, want.mtu, now.mtu) for name, (now, want) in diff.kept.items()]
    down = sorted((-d, n, new) for d, n, new, old in changes if new < old)
    up = sorted((d, n, new) for d, n, new, old in changes if new > old)
    return [SetMtu(n, mtu) for _, n, mtu in down] + [SetMtu(n, mtu) for _, n, mtu in up]


def _lower_up(diff: _Diff) -> list[str]:
    """Bases of new VLANs that must be up, and are not yet, before the VLAN is created."""
    bases: set[str] = set()
    for want in diff.created.values():
        base = want.vlan_base
        if want.kind != VLAN or base is None:
            continue
        wanted = diff.desired.get(base)
        if wanted is None or not wanted.up:
            continue
        if base in diff.created or (base in diff.kept and not diff.kept[base][0].up):
            bases.add(base)
    return [n for _, n in sorted((_depth(diff.desired.devices[b]), b) for b in bases)]


def _create_vlans(diff: _Diff) -> Sequence[Op]:
    return [
        CreateVlan(name, want.vlan_base, want.vlan_id, want.mtu)
        for name, want in sorted(diff.created.items())
        if want.kind == VLAN and want.vlan_base is not None and want.vlan_id is not None
    ]


def _create_bridges(diff: _Diff) -> Sequence[Op]:
    return [
        CreateBridge(name, want.mtu, want.stp, want.mac)
        for name, want in sorted(diff.created.items())
        if want.kind == BRIDGE
    ]


def _stp(diff: _Diff) -> Sequence[Op]:
    return [
        SetStp(name, want.stp)
        for name, (now, want) in sorted(diff.kept.items())
        if want.kind == BRIDGE and now.stp != want.stp
    ]


def _groups(diff: _Diff, *, owned: bool) -> Sequence[Op]:
    return [
        SetGroup(name, owned)
        for name, (now, want) in sorted(diff.kept.items())
        if _adoption(now, want) and want.owned == owned
    ]


def _bridge_options(diff: _Diff) -> Sequence[Op]:
    """The settable options that ``desired`` names and the kernel has otherwise (a read
    state names them all: a revert restores every one that changed)."""
    ops: list[SetBridgeOptions] = []
    pairs = [(n, now.bridge_opts, w) for n, (now, w) in diff.kept.items()]
    pairs += [(n, bridge_options.DEFAULTS, w) for n, w in diff.created.items()]
    for name, now_opts, want in sorted(pairs, key=lambda p: p[0]):
        if want.kind != BRIDGE:
            continue
        changed = {
            k: v
            for k, v in want.bridge_opts.items()
            if k in bridge_options.SETTABLE_NAMES
            and not bridge_options.same(k, now_opts.get(k), v)
        }
        if changed:
            ops.append(SetBridgeOptions(name, changed))
    return ops


def _macs(diff: _Diff) -> Sequence[Op]:
    return [
        SetMac(name, want.mac)
        for name, (now, want) in sorted(diff.kept.items())
        if want.kind == BOND and want.mac is not None and now.mac != want.mac
    ]


def _bond_options(diff: _Diff) -> Sequence[Op]:
    ops: list[SetBondOptions] = []
    for name, (now, want) in sorted(diff.kept.items()):
        if want.kind != BOND:
            continue
        changed = {
            k: v
            for k, v in want.bond_options.items()
            if k != "mode" and now.bond_options.get(k) != v
        }
        if changed:
            ops.append(SetBondOptions(name, changed))
    return ops


def _states(diff: _Diff, done: set[str]) -> Sequence[Op]:
    """Down top-down, then up bottom-up; new devices were created down."""
    changes = [(_depth(w), n, w.up) for n, (now, w) in diff.kept.items() if now.up != w.up]
    changes += [(_depth(w), n, True) for n, w in diff.created.items() if w.up]
    downs = sorted((-d, n) for d, n, up in changes if not up)
    ups = sorted((d, n) for d, n, up in changes if up and n not in done)
    return [SetUp(n, False) for _, n in downs] + [SetUp(n, True) for _, n in ups]
