"""Typed records of the engine client's store (docs/files.md).

Every record is a frozen dataclass: the store returns new values, it never hands out rows to be
mutated. Capabilities are kept as the agent sent them (a JSON object), read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

DEFAULT_MTU = 1500
# Data centers below this compatibility version do not get network changes pushed to hosts
# (docs/engine-cli.md, oVirt's "unsupported data center version" event).
MIN_UPDATE_VERSION = (3, 1)


def parse_version(text: str) -> tuple[int, ...]:
    """``"4.7"`` -> ``(4, 7)``; raises ValueError for anything that is not dotted integers."""
    parts = text.strip().split(".")
    if not text.strip() or not all(p.isdigit() for p in parts):
        raise ValueError(text)
    return tuple(int(p) for p in parts)


def _no_caps() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class DataCenter:
    name: str
    version: str  # compatibility version, "4.7"

    @property
    def supports_network_updates(self) -> bool:
        return parse_version(self.version) >= MIN_UPDATE_VERSION


@dataclass(frozen=True)
class Host:
    name: str
    url: str  # "https://10.1.0.2:54321" or "unix:///run/vdsm-net/vdsm-net.sock"
    dc: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    caps: Mapping[str, Any] = field(default_factory=_no_caps)  # last Host.getCapabilities
    caps_time: float | None = None  # epoch seconds of the last successful refresh
    agent_version: str | None = None


@dataclass(frozen=True)
class LogicalNetwork:
    dc: str
    name: str
    vlan: int | None = None
    mtu: int = DEFAULT_MTU
    vm: bool = True  # a VM network is a bridge on every host ("bridged")
    label: str | None = None
    # Removed from the store, not yet from every host: its attachments are the hosts that
    # still carry it (docs/engine-cli.md "Re-running a command").
    removing: bool = False
    # Bumped by every write of the definition: a write names the generation it read, and is
    # refused if another command wrote in between.
    generation: int = 1


BootProtocol = Literal["none", "static", "dhcp"]  # oVirt's names (its BootProtocol type)


@dataclass(frozen=True)
class IpSettings:
    """An attachment's own IP configuration on its host (docs/engine-cli.md "Addresses"):
    nothing (``none``), one static address with an optional gateway of its family, or DHCPv4.
    ``address`` is an interface in its normal form (``10.0.0.5/24``, ``2001:db8::5/64``, as
    the kernel reports it back), ``gateway`` a bare address; both only for ``static``."""

    method: BootProtocol = "none"
    address: str | None = None
    gateway: str | None = None

    @property
    def family(self) -> int | None:
        """4 or 6 for a static address, None otherwise."""
        if self.address is None:
            return None
        return 6 if ":" in self.address else 4

    @property
    def boot_protocols(self) -> tuple[BootProtocol, BootProtocol]:
        """(IPv4, IPv6) boot protocol, as oVirt names an attachment's two IP assignments."""
        if self.family == 6:
            return "none", self.method
        return self.method, "none"

    def describe(self) -> str:
        if self.method == "dhcp":
            return "dhcp"
        if self.address is None:
            return ""
        return self.address + (f" gateway {self.gateway}" if self.gateway else "")


NO_IP = IpSettings()


@dataclass(frozen=True)
class Attachment:
    """A logical network on one host: on a NIC, on a bond, or isolated (a bridge, no uplink)."""

    host: str
    network: str
    nic: str | None = None
    bond: str | None = None
    isolated: bool = False
    via_label: str | None = None  # set when a label attached it (docs/engine-cli.md)
    ip: IpSettings = NO_IP  # sent to this host only, compared by in-sync
    # The last failure of a push to this host; whether it is in sync is judged from the host's
    # capabilities (``insync.judge``), never stored.
    last_error: str | None = None

    @property
    def southbound(self) -> str | None:
        return self.nic or self.bond

    def describe(self) -> str:
        ip = self.ip.describe()
        return self.place() + (f", {ip}" if ip else "")

    def place(self) -> str:
        if self.nic is not None:
            return f"nic {self.nic}"
        if self.bond is not None:
            return f"bond {self.bond}"
        return "isolated"


@dataclass(frozen=True)
class HostLabel:
    host: str
    label: str


@dataclass(frozen=True)
class NicLabel:
    host: str
    nic: str
    label: str


@dataclass(frozen=True)
class Vm:
    """A VM or a template, with the logical networks its vNICs use."""

    name: str
    running: bool = False
    template: bool = False
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    id: int
    time: float
    correlation_id: str | None
    host: str | None
    severity: str  # "info", "warning", "error"
    message: str
    network: str | None = None  # the logical network the event is about, if one


@dataclass(frozen=True)
class ApiUser:
    """An account of the REST API (docs/rest.md); only a hash of the password is kept."""

    name: str
    password_hash: str = field(repr=False)
    created: float = 0.0


@dataclass(frozen=True)
class Rollout:
    """One push of one network to its hosts by one command; ``ended`` is None while it runs,
    or forever when the command died before it ended."""

    id: int
    correlation_id: str
    network: str
    action: str
    started: float
    planned: int
    ended: float | None = None
    updated: int | None = None
    failed: int | None = None
