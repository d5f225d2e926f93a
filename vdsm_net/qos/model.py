"""Host QoS as VDSM's API carries it: ``{"out": {"ls"|"ul"|"rt": {"m1", "d", "m2"}}}``.

``ls`` is HFSC's link-share curve, ``ul`` its upper limit, ``rt`` its real-time curve; ``m1``
and ``m2`` are slopes in bit/s, ``d`` the length of the first slope in microseconds (VDSM
hands them to ``tc`` as ``<m1>bit``, ``<d>us``, ``<m2>bit``). Zero values mean "not given",
as VDSM strips them before configuring (``kernelconfig._remove_zero_values_in_net_qos``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vdsm_net.errors import ErrorKind, NetError

CURVES = ("ls", "ul", "rt")
U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class Curve:
    """One HFSC service curve in the API's units: bit/s, microseconds, bit/s."""

    m1: int = 0
    d: int = 0
    m2: int = 0

    def to_json(self, *, with_zeros: bool) -> dict[str, int]:
        values = {"m1": self.m1, "d": self.d, "m2": self.m2}
        return values if with_zeros else {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class HostQos:
    """The outbound QoS of one network. ``ls`` is always there: HFSC needs a link-share
    curve under an upper limit, and VDSM's default class copies it."""

    ls: Curve
    ul: Curve | None = None
    rt: Curve | None = None

    def curves(self) -> dict[str, Curve]:
        found = {"ls": self.ls, "ul": self.ul, "rt": self.rt}
        return {name: curve for name, curve in found.items() if curve is not None}

    def to_json(self, *, with_zeros: bool = False) -> dict[str, Any]:
        """The API form. ``with_zeros``: every curve with m1, d and m2, as VDSM reports the
        kernel's classes in the capabilities; without: zeros stripped, as VDSM stores it."""
        return {"out": {name: curve.to_json(with_zeros=with_zeros)
                        for name, curve in self.curves().items()}}

    @classmethod
    def from_json(cls, value: object, field: str) -> HostQos | None:
        """Parse ``hostQos`` as given by the engine; None for an empty one (no QoS).

        ``field`` names the attribute in errors, e.g. ``networks.red.hostQos``.
        """
        if value is None or value == {}:
            return None
        outbound = _mapping(value, field)
        unknown = sorted(set(outbound) - {"out"})
        if unknown:
            raise NetError(ErrorKind.BAD_PARAMS,
                           f"{field}: unknown key {unknown[0]!r} (only 'out' is supported)")
        out = _mapping(outbound.get("out", {}), f"{field}.out")
        unknown = sorted(set(out) - set(CURVES))
        if unknown:
            raise NetError(ErrorKind.BAD_PARAMS,
                           f"{field}.out: unknown curve {unknown[0]!r} (expected ls, ul, rt)")
        curves = {name: _curve(out[name], f"{field}.out.{name}") for name in CURVES
                  if name in out}
        given = {name: c for name, c in curves.items() if c is not None}
        if not given:
            return None
        ls = given.get("ls")
        if ls is None:
            raise NetError(ErrorKind.BAD_PARAMS,
                           f"{field}.out.ls: a link-share curve (ls m2) is required with "
                           f"{' and '.join(sorted(given))}")
        if ls.d > U32_MAX // 8:
            # VDSM scales the whole ls curve by 8 (see tree.py); the kernel's d is 32 bits.
            raise NetError(ErrorKind.BAD_PARAMS,
                           f"{field}.out.ls.d: expected at most {U32_MAX // 8}, got {ls.d}")
        return cls(ls=ls, ul=given.get("ul"), rt=given.get("rt"))


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise NetError(ErrorKind.BAD_PARAMS,
                       f"{field}: expected an object, got {type(value).__name__} {value!r}")
    return value


def _curve(value: object, field: str) -> Curve | None:
    raw = _mapping(value, field)
    unknown = sorted(set(raw) - {"m1", "d", "m2"})
    if unknown:
        raise NetError(ErrorKind.BAD_PARAMS,
                       f"{field}: unknown key {unknown[0]!r} (expected m1, d, m2)")
    numbers: dict[str, int] = {}
    for key in ("m1", "d", "m2"):
        item = raw.get(key, 0)
        # bool is an int subclass; True is no rate.
        if type(item) is not int or not 0 <= item <= U32_MAX:
            raise NetError(ErrorKind.BAD_PARAMS,
                           f"{field}.{key}: expected an integer 0-{U32_MAX}, got {item!r}")
        numbers[key] = item
    if not any(numbers.values()):
        return None
    if numbers["m1"] == 0:
        numbers["d"] = 0  # VDSM passes d only with m1: a first slope of nothing lasts no time
    if numbers["m2"] == 0:
        raise NetError(ErrorKind.BAD_PARAMS, f"{field}.m2: must be > 0 when the curve is given")
    return Curve(**numbers)
