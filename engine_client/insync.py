"""Is a network attachment on a host what its logical definition says? And what must the host
be sent to make it so? (docs/engine-cli.md "In sync".)

``judge`` is the one meaning of "in sync" (``network show``, ``host list``, ``status``,
``sync``, the outcome of a rollout, the REST API's ``in_sync``): the host's latest capabilities
(docs/api.md) report the network with the definition's values: present, bridged as a VM
network is, the VLAN id, the MTU, the southbound device (the attachment's NIC or bond; none for
an isolated network) and the attachment's own IP settings. A network absent from the
capabilities is out of sync, "missing on host"; one being removed is out of sync until its
host has removed it. Pure functions; no I/O.

The capabilities are read through their one typed definition, ``vdsm_net.capsdoc`` (the
agent builds them with it): an older agent may leave a field out, so optional reads take
VDSM's value for "nothing" (``""`` gateway, ``"::"`` IPv6 gateway, no addresses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from engine_client.ipsettings import setup_attrs
from engine_client.models import IpSettings
from vdsm_net import capsdoc


class NetworkLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def vlan(self) -> int | None: ...
    @property
    def mtu(self) -> int: ...
    @property
    def vm(self) -> bool: ...
    @property
    def removing(self) -> bool: ...


class AttachmentLike(Protocol):
    @property
    def nic(self) -> str | None: ...
    @property
    def bond(self) -> str | None: ...
    @property
    def isolated(self) -> bool: ...
    @property
    def ip(self) -> IpSettings: ...


MISSING = "missing on host"


@dataclass(frozen=True)
class Difference:
    """One value the host has other than the definition says: ``key`` is one of
    ``capabilities``, ``pending``, ``removal``, ``network``, ``bridged``, ``vlan``, ``mtu``,
    ``southbound``, and for the attachment's IP settings (oVirt's names of its reported
    configurations) ``ipv4_boot_protocol``, ``ipv4_address``, ``ipv4_gateway``,
    ``ipv6_boot_protocol``, ``ipv6_address``, ``ipv6_gateway``."""

    key: str
    expected: Any
    found: Any

    def describe(self) -> str:
        if self.key == "network":
            return MISSING
        if self.key == "removal":
            return f"being removed: {self.found}"
        return f"{self.key}: expected {_show(self.expected)}, found {_show(self.found)}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "expected": self.expected, "found": self.found}


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass(frozen=True)
class Verdict:
    differences: tuple[Difference, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.differences

    @property
    def missing(self) -> bool:
        return any(d.key == "network" for d in self.differences)

    def describe(self) -> str:
        """``"mtu: expected 9000, found 1500; southbound: expected eth1, found none"``, or
        ``""`` when in sync."""
        return "; ".join(d.describe() for d in self.differences)

    def to_json(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.differences]


IN_SYNC = Verdict()


def _uplink(attachment: AttachmentLike) -> str | None:
    return attachment.nic or attachment.bond


def _expected_vlan(network: NetworkLike, attachment: AttachmentLike) -> int | None:
    # An isolated network is a bridge with no uplink: a tag would have nothing to ride on, and
    # the agent refuses one (error 21), so it is neither sent nor expected.
    return None if _uplink(attachment) is None else network.vlan


def desired_attrs(network: NetworkLike, attachment: AttachmentLike) -> dict[str, Any]:
    """The ``networks[name]`` entry of setupNetworks for this attachment."""
    attrs: dict[str, Any] = {}
    if attachment.nic is not None:
        attrs["nic"] = attachment.nic
    elif attachment.bond is not None:
        attrs["bonding"] = attachment.bond
    vlan = _expected_vlan(network, attachment)
    if vlan is not None:
        attrs["vlan"] = vlan
    attrs["mtu"] = network.mtu
    attrs["bridged"] = network.vm
    attrs.update(setup_attrs(attachment.ip))
    return attrs


def _actual_uplink(
    entry: capsdoc.NetInfoNetwork, doc: capsdoc.NetworkCapabilities
) -> str | None:
    """The NIC or bond under the network, seen through its VLAN device if it has one (VDSM
    reports the VLAN device as ``southbound``, this agent the NIC or bond)."""
    south = entry.get("southbound")
    if not south:
        return None
    vlan_dev = doc.get("vlans", {}).get(south)
    if vlan_dev is not None and "iface" in vlan_dev:
        return vlan_dev["iface"]
    vlanid = entry.get("vlanid")
    suffix = f".{vlanid}"
    if vlanid is not None and south.endswith(suffix):
        return south[: -len(suffix)]
    return south


def _addresses(found: list[str]) -> str | None:
    return ", ".join(sorted(found)) or None


def _ipv4_protocol(entry: capsdoc.NetInfoNetwork) -> str:
    # oVirt's reading of VDSM's report: DHCP if a DHCPv4 client runs, else static if the
    # device has an address, else none.
    if entry.get("dhcpv4", False):
        return "dhcp"
    return "static" if entry.get("ipv4addrs") else "none"


def _ipv6_protocol(entry: capsdoc.NetInfoNetwork) -> str:
    if entry.get("dhcpv6", False):
        return "dhcp"
    if entry.get("ipv6autoconf", False):
        return "autoconf"
    return "static" if entry.get("ipv6addrs") else "none"


def _ip_values(
    ip: IpSettings, entry: capsdoc.NetInfoNetwork
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(expected, found) for the attachment's IP settings. A DHCP lease's address and gateway
    are the server's to choose: only the protocol is compared then."""
    v4, v6 = ip.family == 4, ip.family == 6
    protocol4, protocol6 = ip.boot_protocols
    expected: dict[str, Any] = {"ipv4_boot_protocol": protocol4}
    found: dict[str, Any] = {"ipv4_boot_protocol": _ipv4_protocol(entry)}
    if ip.method != "dhcp":
        expected["ipv4_address"] = ip.address if v4 else None
        found["ipv4_address"] = _addresses(entry.get("ipv4addrs", []))
        expected["ipv4_gateway"] = ip.gateway if v4 else None
        found["ipv4_gateway"] = entry.get("gateway", capsdoc.NO_IPV4_GATEWAY) or None
    expected["ipv6_boot_protocol"] = protocol6
    found["ipv6_boot_protocol"] = _ipv6_protocol(entry)
    expected["ipv6_address"] = ip.address if v6 else None
    found["ipv6_address"] = _addresses(entry.get("ipv6addrs", []))
    expected["ipv6_gateway"] = ip.gateway if v6 else None
    gateway6 = entry.get("ipv6gateway", capsdoc.NO_IPV6_GATEWAY)
    found["ipv6_gateway"] = None if gateway6 in (capsdoc.NO_IPV6_GATEWAY, "") else gateway6
    return expected, found


def judge(
    network: NetworkLike, attachment: AttachmentLike, caps: Mapping[str, Any] | None
) -> Verdict:
    """The attachment against ``caps``, the host's latest capabilities (None or empty: never
    read). Every value that differs is named, expected and found."""
    if not caps:
        return Verdict((Difference("capabilities", "read", "never read"),))
    # The stored document is the agent's, built with these types (``vdsm_net.caps``).
    doc = cast(capsdoc.NetworkCapabilities, caps)
    entry = doc.get("networks", {}).get(network.name)
    if network.removing:
        # Absent from the capabilities is not proof of removal (a deleted bridge is absent
        # too, and still configured): only the host's successful removal ends it.
        left = "still on host" if entry is not None else "removal not yet confirmed"
        return Verdict((Difference("removal", "removed", left),))
    if doc.get("netConfigPending", False) is True:
        # The host shows a change that its agent may still roll back (no confirmation yet).
        return Verdict((Difference("pending", "confirmed state", "unconfirmed change"),))
    if entry is None:
        return Verdict((Difference("network", "present", "absent"),))
    expected: dict[str, Any] = {
        "bridged": network.vm,
        "vlan": _expected_vlan(network, attachment),
        "mtu": network.mtu,
        "southbound": _uplink(attachment),
    }
    found: dict[str, Any] = {
        "bridged": entry.get("bridged"),
        "vlan": entry.get("vlanid"),
        "mtu": entry.get("mtu"),
        "southbound": _actual_uplink(entry, doc),
    }
    ip_expected, ip_found = _ip_values(attachment.ip, entry)
    expected |= ip_expected
    found |= ip_found
    return Verdict(
        tuple(Difference(k, expected[k], found[k]) for k in expected if expected[k] != found[k])
    )
