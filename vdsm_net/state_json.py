"""The JSON form of a ``KernelState``: its one writer and its one reader.

The undo journal (``vdsm_net.journal``) records the state before a change in it, and the
planner's golden cases (``tests/unit/golden/*.json``) spell their states in it:

    {"devices": [{"name", "kind" ("": a NIC), "mtu" (1500), "up" (true), "master" (null),
                  "owned" (false), "vlan_base" (null), "vlan_id" (null), "bond_options" ({}),
                  "stp" (false), "mac" (null), "ipv4" ([]), "ipv6" ([]),
                  "bridge_opts" ({}: the settable ones, docs/api.md)}],
     "routes": [{"family" (4|6), "gateway", "device", "table" (254)}]}

The writer writes every field, devices by name, addresses and routes in the order of their
text, so that equal states give equal files. The reader takes an omitted field as the default
in parentheses, and parses addresses ("addr/prefix") and gateways into ``ipaddress`` values;
a bad value is a ``ValueError`` naming where it is (``devices[2].ipv4[0]: ...``). Only the
planned fields are here: the informational ones (speed, operstate...) are re-read from the
kernel, never restored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from types import MappingProxyType
from typing import Any, TypeVar

from vdsm_net.kernel import bridge_options
from vdsm_net.model import DEFAULT_MTU
from vdsm_net.state import MAIN_TABLE, Address, Device, KernelState, Route, make_state

_T = TypeVar("_T")


def _device_to_json(d: Device) -> dict[str, Any]:
    return {
        "name": d.name, "kind": d.kind, "mtu": d.mtu, "up": d.up, "master": d.master,
        "owned": d.owned, "vlan_base": d.vlan_base, "vlan_id": d.vlan_id,
        "bond_options": dict(d.bond_options), "stp": d.stp, "mac": d.mac,
        "ipv4": sorted(str(a) for a in d.ipv4), "ipv6": sorted(str(a) for a in d.ipv6),
        "bridge_opts": {k: v for k, v in sorted(d.bridge_opts.items())
                        if k in bridge_options.SETTABLE_NAMES},
    }


def _route_to_json(r: Route) -> dict[str, Any]:
    return {"family": r.family, "gateway": str(r.gateway), "device": r.device, "table": r.table}


def state_to_json(state: KernelState) -> dict[str, Any]:
    return {
        "devices": [_device_to_json(d) for _, d in sorted(state.devices.items())],
        "routes": [_route_to_json(r) for r in sorted(state.routes, key=Route.sort_key)],
    }


class _Fields:
    """One JSON object's fields, each read as its type or its default; errors say where."""

    def __init__(self, where: str, doc: object) -> None:
        if not isinstance(doc, dict):
            raise ValueError(f"{where}: expected an object, got {type(doc).__name__}")
        self.where = where
        self._doc: dict[str, Any] = doc

    def get(self, name: str, kind: type[_T], default: _T | None = None) -> _T:
        value = self._doc.get(name, default)
        if value is None and name not in self._doc and default is None:
            raise ValueError(f"{self.where}.{name}: missing")
        # bool is an int in Python; a JSON true is no MTU.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{self.where}.{name}: expected {kind.__name__}, got {value!r}")
        return value

    def optional(self, name: str, kind: type[_T]) -> _T | None:
        value = self._doc.get(name)
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{self.where}.{name}: expected {kind.__name__}, got {value!r}")
        return value

    def items(self, name: str) -> list[tuple[str, object]]:
        """``name``'s list, each item with where it is."""
        return [(f"{self.where}.{name}[{i}]", v) for i, v in enumerate(self.get(name, list, []))]


def _parsed(where: str, text: object, parse: Callable[[str], _T]) -> _T:
    if not isinstance(text, str):
        raise ValueError(f"{where}: expected an address string, got {text!r}")
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _options(f: _Fields) -> Mapping[str, str]:
    options = f.get("bond_options", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        raise ValueError(f"{f.where}.bond_options: expected strings, got {options!r}")
    return MappingProxyType(dict(options))


def _bridge_opts(f: _Fields) -> Mapping[str, str]:
    options = f.get("bridge_opts", dict, {})  # absent in journals of older agents
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        raise ValueError(f"{f.where}.bridge_opts: expected strings, got {options!r}")
    return MappingProxyType(dict(options))


def _device_from_json(where: str, doc: object) -> Device:
    f = _Fields(where, doc)
    return Device(
        name=f.get("name", str), kind=f.get("kind", str, ""), mtu=f.get("mtu", int, DEFAULT_MTU),
        up=f.get("up", bool, True), master=f.optional("master", str),
        owned=f.get("owned", bool, False), vlan_base=f.optional("vlan_base", str),
        vlan_id=f.optional("vlan_id", int), bond_options=_options(f),
        stp=f.get("stp", bool, False), mac=f.optional("mac", str),
        ipv4=frozenset(_parsed(w, a, IPv4Interface) for w, a in f.items("ipv4")),
        ipv6=frozenset(_parsed(w, a, IPv6Interface) for w, a in f.items("ipv6")),
        bridge_opts=_bridge_opts(f),
    )


def _route_from_json(where: str, doc: object) -> Route:
    f = _Fields(where, doc)
    family = f.get("family", int)
    if family not in (4, 6):
        raise ValueError(f"{where}.family: expected 4 or 6, got {family}")
    parse: Callable[[str], Address] = IPv4Address if family == 4 else IPv6Address
    gateway = _parsed(f"{where}.gateway", f.get("gateway", str), parse)
    return Route(family, gateway, f.get("device", str), f.get("table", int, MAIN_TABLE))


def state_from_json(doc: object) -> KernelState:
    """``ValueError`` naming the field for anything but a state in this module's form."""
    f = _Fields("state", doc)
    devices = [_device_from_json(w, d) for w, d in f.items("devices")]
    return make_state(devices, {_route_from_json(w, r) for w, r in f.items("routes")})
