"""Kernel operations: the plan's vocabulary. Pure data; the backend executes them.

Each op knows how to describe itself (for ``dryRun`` and logs) and which backend method runs
it (``accept``), so the backend needs no isinstance chain and this module no pyroute2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, Protocol

from vdsm_net.state import Interface, Route

_ADDRESS_TYPES = (IPv4Address, IPv6Address, IPv4Interface, IPv6Interface)


def _plain(value: Any) -> Any:
    """JSON form of an op field (asdict cannot deep-copy a MappingProxyType); addresses as
    their text."""
    if isinstance(value, Mapping):
        return dict(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, _ADDRESS_TYPES):
        return str(value)
    return value


class OpVisitor(Protocol):
    def create_bridge(self, op: CreateBridge) -> None: ...
    def create_vlan(self, op: CreateVlan) -> None: ...
    def create_bond(self, op: CreateBond) -> None: ...
    def delete_devices(self, op: DeleteDevices) -> None: ...
    def set_master(self, op: SetMaster) -> None: ...
    def set_mtu(self, op: SetMtu) -> None: ...
    def set_up(self, op: SetUp) -> None: ...
    def set_bond_options(self, op: SetBondOptions) -> None: ...
    def set_stp(self, op: SetStp) -> None: ...
    def set_bridge_options(self, op: SetBridgeOptions) -> None: ...
    def set_mac(self, op: SetMac) -> None: ...
    def set_group(self, op: SetGroup) -> None: ...
    def add_address(self, op: AddAddress) -> None: ...
    def del_address(self, op: DelAddress) -> None: ...
    def add_route(self, op: AddRoute) -> None: ...
    def del_route(self, op: DelRoute) -> None: ...


@dataclass(frozen=True)
class Op:
    def accept(self, visitor: OpVisitor) -> None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"op": type(self).__name__, **{f.name: _plain(getattr(self, f.name))
                                               for f in fields(self)}}

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.to_json().items() if k != "op")
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class CreateBridge(Op):
    """Create an owned bridge, down, with an explicit MTU (docs/kernel.md: a bridge whose
    MTU was never set explicitly follows its smallest port, e.g. a VM tap)."""

    name: str
    mtu: int
    stp: bool = False
    mac: str | None = None

    def accept(self, visitor: OpVisitor) -> None:
        visitor.create_bridge(self)


@dataclass(frozen=True)
class CreateVlan(Op):
    """Create an owned VLAN device on ``base`` (which must already be up)."""

    name: str
    base: str
    vlan_id: int
    mtu: int

    def accept(self, visitor: OpVisitor) -> None:
        visitor.create_vlan(self)


@dataclass(frozen=True)
class CreateBond(Op):
    """Create an owned bond, down, with its mode and options set before any slave joins."""

    name: str
    options: Mapping[str, str]
    mtu: int
    mac: str | None = None

    def accept(self, visitor: OpVisitor) -> None:
        visitor.create_bond(self)


@dataclass(frozen=True)
class DeleteDevices(Op):
    """Delete owned devices in one request (kernel batches the unregister)."""

    names: tuple[str, ...]

    def accept(self, visitor: OpVisitor) -> None:
        visitor.delete_devices(self)


@dataclass(frozen=True)
class SetMaster(Op):
    device: str
    master: str | None  # None: release from its master

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_master(self)


@dataclass(frozen=True)
class SetMtu(Op):
    device: str
    mtu: int

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_mtu(self)


@dataclass(frozen=True)
class SetUp(Op):
    device: str
    up: bool

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_up(self)


@dataclass(frozen=True)
class SetBondOptions(Op):
    device: str
    options: Mapping[str, str]  # only the options that change

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_bond_options(self)


@dataclass(frozen=True)
class SetStp(Op):
    device: str
    stp: bool

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_stp(self)


@dataclass(frozen=True)
class SetBridgeOptions(Op):
    """Bridge options (sysfs names and spellings, ``kernel.bridge_options``) in one request."""

    device: str
    options: Mapping[str, str]  # only the options that change

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_bridge_options(self)


@dataclass(frozen=True)
class SetMac(Op):
    """A bond's MAC (``hwaddr``)."""

    device: str
    mac: str

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_mac(self)


@dataclass(frozen=True)
class SetGroup(Op):
    """Take a device into the agent's ownership (an adopted bond) or give it back (the
    revert of an adoption)."""

    device: str
    owned: bool

    def accept(self, visitor: OpVisitor) -> None:
        visitor.set_group(self)


@dataclass(frozen=True)
class AddAddress(Op):
    device: str
    cidr: Interface

    def accept(self, visitor: OpVisitor) -> None:
        visitor.add_address(self)


@dataclass(frozen=True)
class DelAddress(Op):
    device: str
    cidr: Interface

    def accept(self, visitor: OpVisitor) -> None:
        visitor.del_address(self)


@dataclass(frozen=True)
class AddRoute(Op):
    route: Route

    def accept(self, visitor: OpVisitor) -> None:
        visitor.add_route(self)


@dataclass(frozen=True)
class DelRoute(Op):
    route: Route

    def accept(self, visitor: OpVisitor) -> None:
        visitor.del_route(self)
