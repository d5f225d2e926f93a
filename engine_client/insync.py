"""Is a network attachment on a host what its logical definition says? And what must the host
be sent to make it so? (SPEC §2.2 ``network show``, ``sync``; §2.3 step 2.)

Pure functions over the agent's capabilities document (SPEC §1.4); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class AttachmentLike(Protocol):
    @property
    def nic(self) -> str | None: ...
    @property
    def bond(self) -> str | None: ...
    @property
    def isolated(self) -> bool: ...


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
    """The NIC or bond under the network, seen through its VLAN device if it has one."""
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


def attachment_diff(
    network: NetworkLike, attachment: AttachmentLike, caps: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """``{}`` when the host carries the network as defined; else ``{key: (expected, actual)}``
    for keys among ``vlan``, ``mtu``, ``bridged``, ``nic``; or ``{"missing": ("present",
    "absent")}`` when the host does not report the network at all; or ``{"pending": ...}``
    while the host has an unconfirmed change in flight."""
    if caps.get("netConfigPending") is True:
        # The host shows a change that its agent may still roll back (no confirmation yet).
        return {"pending": ("confirmed state", "unconfirmed change in progress")}
    networks = caps.get("networks") or {}
    entry = networks.get(network.name)
    if not isinstance(entry, Mapping):
        return {"missing": ("present", "absent")}
    expected: dict[str, Any] = {
        "vlan": _expected_vlan(network, attachment),
        "mtu": network.mtu,
        "bridged": network.vm,
        "nic": _uplink(attachment),
    }
    actual: dict[str, Any] = {
        "vlan": entry.get("vlanid"),
        "mtu": entry.get("mtu"),
        "bridged": entry.get("bridged"),
        "nic": _actual_uplink(entry, caps),
    }
    return {k: (expected[k], actual[k]) for k in expected if expected[k] != actual[k]}


def in_sync(network: NetworkLike, attachment: AttachmentLike, caps: Mapping[str, Any]) -> bool:
    return not attachment_diff(network, attachment, caps)


def describe_diff(diff: Mapping[str, tuple[Any, Any]]) -> str:
    """``"vlan: expected 100, host has 200; mtu: expected 9000, host has 1500"``."""
    return "; ".join(f"{k}: expected {e}, host has {a}" for k, (e, a) in diff.items())
