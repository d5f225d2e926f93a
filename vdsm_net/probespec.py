"""Connectivity probes as a request names them (``options.probes``, docs/api.md): what a host
must still reach after a change, an ICMP echo answered (``{"ping": "ADDR"}``) or a TCP
connection accepted (``{"tcp": "ADDR:PORT"}``, ``[V6ADDR]:PORT`` for IPv6).

Pure: parsing and naming only. ``vdsm_net.probes`` runs them; the engine client parses its
``--probe`` values with the same rules, so a bad value is refused before any host is asked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.names import json_type, show

ProbeKind = Literal["ping", "tcp"]
KINDS: Final = ("ping", "tcp")
# A request names what matters to its host, not a scan: a few addresses.
MAX_PROBES: Final = 32

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Probe:
    kind: ProbeKind
    address: IPAddress
    port: int | None = None  # tcp only

    @property
    def target(self) -> str:
        """The value as a request spells it: ``ADDR`` or ``ADDR:PORT`` (``[V6]:PORT``)."""
        if self.port is None:
            return str(self.address)
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    def to_json(self) -> dict[str, str]:
        return {self.kind: self.target}


def _bad(path: str, message: str) -> NetError:
    return NetError(ErrorKind.BAD_PARAMS, f"{path}: {message}")


def _address(path: str, text: str) -> IPAddress:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _bad(path, f"expected an IPv4 or IPv6 address, got {show(text)}") from None
    if address.is_unspecified or address.is_multicast:
        raise _bad(path, f"expected a unicast address, got {show(text)}")
    if address.version == 6 and address.scope_id is not None:
        raise _bad(path, f"expected an address without a zone, got {show(text)}")
    return address


def _port(path: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise _bad(path, f"port: expected 1-65535, got {show(text)}")
    return int(text)


def _tcp(path: str, text: str) -> Probe:
    """``ADDR:PORT``; an IPv6 address in brackets, as in a URL: ``[2001:db8::1]:22``."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise _bad(path, f"expected [IPV6]:PORT, got {show(text)}")
        address = _address(path, host)
        if address.version != 6:
            raise _bad(path, f"brackets are for an IPv6 address, got {show(text)}")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise _bad(path, f"expected ADDR:PORT, got {show(text)}")
        if ":" in host:
            raise _bad(path, f"an IPv6 address takes brackets: [ADDR]:PORT, got {show(text)}")
        address = _address(path, host)
    return Probe("tcp", address, _port(path, port))


def parse_probe(path: str, raw: object) -> Probe:
    """One entry of ``options.probes``: ``{"ping": "ADDR"}`` or ``{"tcp": "ADDR:PORT"}``."""
    if not isinstance(raw, Mapping):
        raise _bad(path, f'expected {{"ping": "ADDR"}} or {{"tcp": "ADDR:PORT"}}, '
                         f"got {json_type(raw)}")
    keys = sorted(str(k) for k in raw)
    unknown = [k for k in keys if k not in KINDS]
    if unknown:
        raise _bad(path, f"unknown probe {show(unknown[0])} (expected ping or tcp)")
    if len(keys) != 1:
        raise _bad(path, f"expected one of ping or tcp, got {', '.join(keys) or 'none'}")
    kind = keys[0]
    value = raw[kind]
    if not isinstance(value, str):
        raise _bad(f"{path}.{kind}", f"expected a string, got {json_type(value)}")
    if kind == "tcp":
        return _tcp(f"{path}.tcp", value)
    return Probe("ping", _address(f"{path}.ping", value))


def parse_probes(path: str, raw: object) -> tuple[Probe, ...]:
    """The whole ``options.probes`` list."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise _bad(path, f"expected a list, got {json_type(raw)}")
    if len(raw) > MAX_PROBES:
        raise _bad(path, f"expected at most {MAX_PROBES} probes, got {len(raw)}")
    return tuple(parse_probe(f"{path}[{i}]", entry) for i, entry in enumerate(raw))
