"""Typed network configuration: what the agent was asked to build (the "running config").

These types are the schema. The request parser (``vdsm_net.request``) turns VDSM-shaped JSON
into them, rejecting unknown keys; ``to_attrs`` turns them back into VDSM's shape for
persistence and for the engine. Instances are immutable: a change is a new value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vdsm_net.probespec import Probe
from vdsm_net.qos.model import HostQos

DEFAULT_MTU = 1500


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class NetworkConfig:
    """One logical network on this host, with every attribute resolved to its value."""

    name: str
    nic: str | None = None
    bonding: str | None = None
    vlan: int | None = None
    mtu: int = DEFAULT_MTU
    bridged: bool = True
    stp: bool = False
    ipv4: str | None = None  # "addr/prefix"
    gateway: str | None = None
    ipv6: str | None = None  # "addr/prefix"
    ipv6gateway: str | None = None
    bootproto: str = "none"
    default_route: bool = False
    blocking_dhcp: bool = False  # setupNetworks waits for the lease (bootproto dhcp)
    ipv6autoconf: bool = False  # SLAAC on the top device; off: RAs and autoconf off
    nameservers: tuple[str, ...] = ()  # defaultRoute network only: the resolver file's
    custom: Mapping[str, str] = field(default_factory=frozen_map)  # VDSM's custom properties
    # custom["bridge_opts"] parsed: sysfs option name -> value as sysfs spells it (stp_state
    # excluded: it is ``stp``).
    bridge_opts: Mapping[str, str] = field(default_factory=frozen_map)
    host_qos: HostQos | None = None  # outbound shaping on the southbound NIC or bond

    @property
    def southbound(self) -> str | None:
        """The NIC or bond the network sits on; None for an isolated network."""
        return self.nic or self.bonding

    @property
    def isolated(self) -> bool:
        return self.southbound is None

    @property
    def vlan_device(self) -> str | None:
        if self.vlan is None or self.southbound is None:
            return None
        return f"{self.southbound}.{self.vlan}"

    @property
    def top(self) -> str:
        """The device that carries the network's addresses and that VMs attach to."""
        if self.bridged:
            return self.name
        return self.vlan_device or self.southbound or self.name

    def to_attrs(self) -> dict[str, Any]:
        """VDSM's attribute shape (only non-default values besides mtu/bridged)."""
        out: dict[str, Any] = {"mtu": self.mtu, "bridged": self.bridged}
        if self.nic is not None:
            out["nic"] = self.nic
        if self.bonding is not None:
            out["bonding"] = self.bonding
        if self.vlan is not None:
            out["vlan"] = self.vlan
        if self.bridged:
            out["stp"] = self.stp
        if self.ipv4 is not None:
            addr, prefix = self.ipv4.split("/")
            out["ipaddr"] = addr
            out["prefix"] = int(prefix)
        if self.gateway is not None:
            out["gateway"] = self.gateway
        if self.ipv6 is not None:
            out["ipv6addr"] = self.ipv6
        if self.ipv6gateway is not None:
            out["ipv6gateway"] = self.ipv6gateway
        if self.bootproto != "none":
            out["bootproto"] = self.bootproto
        if self.default_route:
            out["defaultRoute"] = True
        if self.blocking_dhcp:
            out["blockingdhcp"] = True
        if self.ipv6autoconf:
            out["ipv6autoconf"] = True
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.custom:
            out["custom"] = dict(self.custom)
        if self.host_qos is not None:
            out["hostQos"] = self.host_qos.to_json()
        return out

    @property
    def dhcpv4(self) -> bool:
        return self.bootproto == "dhcp"


@dataclass(frozen=True)
class BondConfig:
    name: str
    nics: tuple[str, ...]
    options: Mapping[str, str] = field(default_factory=frozen_map)  # always includes "mode"
    hwaddr: str | None = None  # the bond's MAC; None: the kernel's choice

    def options_string(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.options.items())

    def to_attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nics": list(self.nics), "options": self.options_string()}
        if self.hwaddr is not None:
            out["hwaddr"] = self.hwaddr
        return out


@dataclass(frozen=True)
class NetConfig:
    """The whole configuration the agent manages: the running config or the safe config."""

    networks: Mapping[str, NetworkConfig] = field(default_factory=frozen_map)
    bondings: Mapping[str, BondConfig] = field(default_factory=frozen_map)

    def to_json(self) -> dict[str, Any]:
        return {
            "networks": {n: c.to_attrs() for n, c in sorted(self.networks.items())},
            "bondings": {n: c.to_attrs() for n, c in sorted(self.bondings.items())},
        }


@dataclass(frozen=True)
class Removal:
    """A request entry ``{"remove": true}``."""

    name: str


@dataclass(frozen=True)
class SetupOptions:
    connectivity_check: bool = True
    connectivity_timeout: float | None = None  # None: the agent's configured default
    commit_on_success: bool = False
    dry_run: bool = False
    # What the host must still reach once the change is applied (docs/api.md).
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True)
class SetupRequest:
    """A parsed, syntactically valid ``Host.setupNetworks`` call."""

    networks: Mapping[str, NetworkConfig | Removal] = field(default_factory=frozen_map)
    bondings: Mapping[str, BondConfig | Removal] = field(default_factory=frozen_map)
    options: SetupOptions = field(default_factory=SetupOptions)
