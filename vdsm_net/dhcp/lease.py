"""A DHCPv4 lease as the agent sees it, and its lease file.

The lease file holds two things: the agent's own summary (what the capabilities report and
what an operator reads) and the server's ACK as pyroute2's client keeps it, so a restarted
agent can hand the ACK back to that client and REQUEST the same address (INIT-REBOOT).
Writes are atomic (temporary file, fsync, rename); a file that does not parse is reported and
ignored: the client then starts from INIT, which costs a new DISCOVER, never a wrong address.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vdsm_net.persist import atomic_write, remove_durably

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFINITE = 0xFFFFFFFF  # RFC 2132 §9.2: a lease time of all ones is infinite


@dataclass(frozen=True)
class DhcpLease:
    """One granted lease. Times are seconds; ``obtained`` is wall-clock (``time.time()``)."""

    interface: str
    address: str
    prefixlen: int
    server: str | None  # the server identifier (option 54)
    server_mac: str
    router: str | None  # the first router of option 3
    nameservers: tuple[str, ...]
    obtained: float
    lease_time: int | None  # None: infinite
    renewal_time: int | None  # T1 (option 58) when the server sent it
    rebinding_time: int | None  # T2 (option 59) when the server sent it

    @property
    def expiry(self) -> float | None:
        """Wall-clock time at which the lease ends (None: never)."""
        return None if self.lease_time is None else self.obtained + self.lease_time

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left on the lease, never negative (None: infinite)."""
        if self.expiry is None:
            return None
        return max(0.0, self.expiry - (time.time() if now is None else now))

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nameservers"] = list(self.nameservers)
        data["expiry"] = self.expiry
        return data

    @classmethod
    def from_ack(cls, ack: dict[str, Any], interface: str, server_mac: str,
                 obtained: float) -> DhcpLease:
        """The lease an ACK grants. ``ack`` is the decoded DHCP message (pyroute2's dict)."""
        options: dict[str, Any] = ack.get("options", {})
        mask = options.get("subnet_mask")
        routers = options.get("router") or []
        lease_time = options.get("lease_time")
        return cls(
            interface=interface,
            address=str(ack["yiaddr"]),
            prefixlen=_prefixlen(mask) if mask else _classful_prefixlen(str(ack["yiaddr"])),
            server=options.get("server_id"),
            server_mac=server_mac,
            router=str(routers[0]) if routers else None,
            nameservers=tuple(str(n) for n in options.get("name_server") or ()),
            obtained=obtained,
            lease_time=_seconds(lease_time),
            renewal_time=_seconds(options.get("renewal_time")),
            rebinding_time=_seconds(options.get("rebinding_time")),
        )


def _seconds(value: object) -> int | None:
    if value is None or value in (INFINITE, -1):
        return None
    return int(str(value))


def _prefixlen(mask: str) -> int:
    bits = "".join(f"{int(octet):08b}" for octet in mask.split("."))
    if "01" in bits:
        raise ValueError(f"subnet_mask: not a contiguous mask: {mask}")
    return bits.count("1")


def _classful_prefixlen(address: str) -> int:
    # RFC 2131 §3.3 leaves a missing mask to the client; the classful default is what
    # dhclient and NetworkManager fall back to.
    first = int(address.split(".")[0])
    return 8 if first < 128 else 16 if first < 192 else 24


@dataclass(frozen=True)
class StoredLease:
    """What a lease file holds: the summary and pyroute2's own lease record (with the ACK)."""

    lease: DhcpLease
    client_record: dict[str, Any]


class LeaseFile:
    """The JSON lease file of one interface."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, interface: str) -> StoredLease | None:
        """The stored lease, or None if there is none or it is unusable (logged)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
            summary = data["lease"]
            summary["nameservers"] = tuple(summary.get("nameservers") or ())
            summary.pop("expiry", None)
            lease = DhcpLease(**summary)
            record = dict(data["client_record"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            LOG.warning("ignoring lease file %s: %s", self.path, err)
            return None
        if lease.interface != interface:
            LOG.warning("ignoring lease file %s: it is for %s, not %s", self.path,
                        lease.interface, interface)
            return None
        return StoredLease(lease, record)

    def write(self, stored: StoredLease) -> None:
        payload = {"version": FORMAT_VERSION, "lease": stored.lease.to_json(),
                   "client_record": stored.client_record}
        atomic_write(self.path, json.dumps(payload, indent=2, default=str).encode() + b"\n")

    def remove(self) -> None:
        remove_durably(self.path)
