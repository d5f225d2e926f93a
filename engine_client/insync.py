"""Is a network attachment on a host what its logical definition says? And what must the host
be sent to make it so? (docs/engine-cli.md "In sync".)

``judge`` is the one meaning of "in sync" (``network show``, ``host list``, ``status``,
``sync``, the outcome of a rollout): the host's latest capabilities (docs/api.md) report the
network with the definition's values: present, bridged as a VM network is, the VLAN id, the
MTU and the southbound device (the attachment's NIC or bond; none for an isolated network).
A network absent from the capabilities is out of sync, "missing on host"; one being removed
is out of sync until its host has removed it. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


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


MISSING = "missing on host"


@dataclass(frozen=True)
class Difference:
    """One value the host has other than the definition says: ``key`` is one of
    ``capabilities``, ``pending``, ``removal``, ``network``, ``bridged``, ``vlan``, ``mtu``,
    ``southbound``."""

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
    return attrs


def _actual_uplink(entry: Mapping[str, Any], caps: Mapping[str, Any]) -> str | None:
    """The NIC or bond under the network, seen through its VLAN device if it has one (VDSM
    reports the VLAN device as ``southbound``, this agent the NIC or bond)."""
    south = entry.get("southbound")
    if not isinstance(south, str) or not south:
        return None
    vlans = caps.get("vlans") or {}
    vlan_dev = vlans.get(south)
    if isinstance(vlan_dev, Mapping) and isinstance(vlan_dev.get("iface"), str):
        return str(vlan_dev["iface"])
    vlanid = entry.get("vlanid")
    suffix = f".{vlanid}"
    if vlanid is not None and south.endswith(suffix):
        return south[: -len(suffix)]
    return south


def judge(
    network: NetworkLike, attachment: AttachmentLike, caps: Mapping[str, Any] | None
) -> Verdict:
    """The attachment against ``caps``, the host's latest capabilities (None or empty: never
    read). Every value that differs is named, expected and found."""
    if not caps:
        return Verdict((Difference("capabilities", "read", "never read"),))
    networks = caps.get("networks") or {}
    entry = networks.get(network.name)
    if network.removing:
        # Absent from the capabilities is not proof of removal (a deleted bridge is absent
        # too, and still configured): only the host's successful removal ends it.
        left = "still on host" if isinstance(entry, Mapping) else "removal not yet confirmed"
        return Verdict((Difference("removal", "removed", left),))
    if caps.get("netConfigPending") is True:
        # The host shows a change that its agent may still roll back (no confirmation yet).
        return Verdict((Difference("pending", "confirmed state", "unconfirmed change"),))
    if not isinstance(entry, Mapping):
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
        "southbound": _actual_uplink(entry, caps),
    }
    return Verdict(
        tuple(Difference(k, expected[k], found[k]) for k in expected if expected[k] != found[k])
    )
