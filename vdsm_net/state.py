"""Typed view of the kernel's network state, as far as the agent manages it.

The same type serves as the *current* state (read by ``vdsm_net.kernel.backend``) and as the
*desired* state (rendered from a ``NetConfig`` by ``vdsm_net.render``), so that one pure
differ (``vdsm_net.planner``) plans both an apply and its revert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from types import MappingProxyType

# IFLA_GROUP value that marks a device as created by the agent. The agent deletes only
# devices in this group, and deletes them in one request (the kernel batches unregister).
OWNED_GROUP = 0x564E  # "VN"
MAIN_TABLE = 254

# Kernel link kinds (IFLA_INFO_KIND) the agent creates.
BRIDGE = "bridge"
VLAN = "vlan"
BOND = "bond"
CREATABLE_KINDS = frozenset({BRIDGE, VLAN, BOND})
# What VDSM calls NIC-like (physical, veth, dummy): the devices listed in the capabilities'
# ``nics`` and the only ones a network or bond may be built on. A VM's tap, a vxlan or a
# macvlan is not one, whoever owns it.
NIC_KINDS = frozenset({"", "veth", "dummy"})

# Addresses are ``ipaddress`` values from the parsers (request, netlink decoder, state files)
# on; they are spelled as text only at the edges (JSON documents, netlink attributes).
Interface = IPv4Interface | IPv6Interface  # an address with its prefix
Address = IPv4Address | IPv6Address


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Device:
    """One network device. Fields after ``ipv6`` are informational and never diffed."""

    name: str
    kind: str  # IFLA_INFO_KIND: "bridge", "vlan", "bond", "veth", "dummy", "tun", "" (physical)
    mtu: int
    up: bool  # administratively up (IFF_UP)
    master: str | None = None
    owned: bool = False
    vlan_base: str | None = None  # vlans only
    vlan_id: int | None = None  # vlans only
    bond_options: Mapping[str, str] = field(default_factory=_empty)  # bonds only; has "mode"
    stp: bool = False  # bridges only
    mac: str | None = None  # desired: None = don't care
    ipv4: frozenset[IPv4Interface] = frozenset()  # global scope, permanent
    ipv6: frozenset[IPv6Interface] = frozenset()  # global scope only (link-local: the kernel's)
    index: int = field(default=0, compare=False)
    operstate: str = field(default="unknown", compare=False)
    speed: int = field(default=0, compare=False)  # Mbps, 0 = unknown
    active_slave: str | None = field(default=None, compare=False)  # bonds only
    loopback: bool = field(default=False, compare=False)  # IFF_LOOPBACK: never a NIC
    # Reported in the capabilities only (VDSM's netinfo), never planned:
    bridge_opts: Mapping[str, str] = field(default_factory=_empty, compare=False)  # sysfs names
    ipv6_autoconf: bool = field(default=False, compare=False)  # devconf autoconf && accept_ra
    perm_mac: str | None = field(default=None, compare=False)  # bond slaves: their own MAC
    ad_aggregator_id: int | None = field(default=None, compare=False)  # 802.3ad bond or slave
    ad_partner_mac: str | None = field(default=None, compare=False)  # 802.3ad bonds
    # IPv4 addresses with a lifetime (DHCP leases): reported, never planned.
    dynamic_ipv4: frozenset[IPv4Interface] = field(default=frozenset(), compare=False)

    @property
    def is_nic(self) -> bool:
        """A device the agent may build on but never creates nor deletes."""
        return self.kind not in CREATABLE_KINDS and not self.owned and not self.loopback

    def evolve(self, **changes: object) -> Device:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Route:
    """A default route via a gateway (the only routes the agent manages)."""

    family: int  # 4 or 6, the gateway's version
    gateway: Address
    device: str
    table: int = MAIN_TABLE

    def sort_key(self) -> tuple[int, str, str, int]:
        """Plans and state files list routes in this order: by family, then the gateway's
        text (an IPv4 and an IPv6 address do not compare)."""
        return (self.family, str(self.gateway), self.device, self.table)


@dataclass(frozen=True)
class KernelState:
    devices: Mapping[str, Device] = field(default_factory=lambda: MappingProxyType({}))
    routes: frozenset[Route] = frozenset()

    def get(self, name: str) -> Device | None:
        return self.devices.get(name)

    def ports_of(self, master: str) -> list[str]:
        return sorted(d.name for d in self.devices.values() if d.master == master)

    def owned(self) -> list[Device]:
        return [d for d in self.devices.values() if d.owned]


def make_state(
    devices: list[Device], routes: frozenset[Route] | set[Route] = frozenset()
) -> KernelState:
    return KernelState(MappingProxyType({d.name: d for d in devices}), frozenset(routes))
