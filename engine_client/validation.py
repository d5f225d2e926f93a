"""Checks made before anything is written to the store or sent to a host (docs/engine-cli.md).

Every refusal is a ``NetError`` whose message names the field and the value; values are
checked as the agent checks them, with the agent's messages (``networks.red.vlan: expected
0-4094, got 5000``; names by ``vdsm_net.names``), so an operator reads the same text
whichever side refused.

"Running VMs" on a network are (a) VMs marked running in the store whose vNICs use it, and
(b) the ports of the network's bridge, as a host last reported them, that are not the
network's own uplink (its NIC, bond, or their VLAN device). Every such extra port is taken to
be a VM's tap, whatever its name (vnetN, tapN, or anything else plugged into the bridge): a
property change would disturb whatever it is, so being conservative is the operator's
interest. The CLI refreshes the capabilities of the hosts concerned before it validates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from engine_client.models import Attachment, LogicalNetwork, Vm
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.names import network_name_problem, show

RENAME_REFUSED: Final = "Renaming a network which is configured on hosts is not supported."
VM_TO_NON_VM_REFUSED: Final = (
    "Changing a VM network to a non-VM network is not permitted while VMs or templates are "
    "using it."
)
RUNNING_VMS_REFUSED: Final = (
    "Changing a VM network's properties while running VMs are using it is not permitted."
)

VLAN_MIN, VLAN_MAX = 0, 4094
MTU_MIN, MTU_MAX = 68, 65535


def check_name(name: str) -> None:
    """A network name is a valid Linux interface name (docs/api.md): the agent's own rule."""
    problem = network_name_problem(name)
    if problem is not None:
        raise NetError(ErrorKind.BAD_BRIDGE, f"networks: bad network name {show(name)} ({problem})")


def check_vlan(network: str, vlan: int | None) -> None:
    if vlan is not None and not VLAN_MIN <= vlan <= VLAN_MAX:
        raise NetError(
            ErrorKind.BAD_VLAN,
            f"networks.{network}.vlan: expected {VLAN_MIN}-{VLAN_MAX}, got {vlan}",
        )


def check_mtu(network: str, mtu: int) -> None:
    if not MTU_MIN <= mtu <= MTU_MAX:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"networks.{network}.mtu: expected {MTU_MIN}-{MTU_MAX}, got {mtu}",
        )


def check_network(net: LogicalNetwork) -> None:
    check_name(net.name)
    check_vlan(net.name, net.vlan)
    check_mtu(net.name, net.mtu)


def check_dc_version(version: str) -> None:
    """oVirt's compatibility version is MAJOR.MINOR exactly (the REST API writes it as
    ``<version><major/><minor/></version>``): "4", "4.7.1" or " 4.7" are refused."""
    parts = version.split(".")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise NetError(
            ErrorKind.BAD_PARAMS, f"version: expected MAJOR.MINOR (e.g. 4.7), got {version!r}"
        )


@dataclass(frozen=True)
class NetworkUsage:
    """What uses one logical network: where it is attached, which VMs/templates use it, and the
    capabilities each attached host last reported."""

    attachments: Sequence[Attachment] = ()
    vms: Sequence[Vm] = ()
    host_caps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Per attached host, the other networks attached there (for the one-network-per-slot rule).
    neighbours: Mapping[str, Sequence[tuple[LogicalNetwork, Attachment]]] = field(
        default_factory=dict
    )

    @property
    def running_vms(self) -> list[str]:
        return [vm.name for vm in self.vms if vm.running and not vm.template]


def _own_ports(net: LogicalNetwork, att: Attachment, entry: Mapping[str, Any]) -> set[str]:
    own: set[str] = set()
    south = att.southbound
    if south is not None:
        own.add(south)
        if net.vlan is not None:
            own.add(f"{south}.{net.vlan}")
    # The host's own report counts too: stale stored capabilities (a host that missed the
    # last refresh) may show the uplink of an older VLAN id.
    reported = entry.get("southbound")
    if isinstance(reported, str):
        own.add(reported)
        vlanid = entry.get("vlanid")
        if isinstance(vlanid, int):
            own.add(f"{reported}.{vlanid}")
    return own


def vm_ports(net: LogicalNetwork, usage: NetworkUsage) -> dict[str, list[str]]:
    """Per host, the ports of the network's bridge other than its own uplink (VM taps)."""
    found: dict[str, list[str]] = {}
    for att in usage.attachments:
        caps = usage.host_caps.get(att.host) or {}
        entry = (caps.get("networks") or {}).get(net.name)
        if not isinstance(entry, Mapping):
            continue
        bridge = (caps.get("bridges") or {}).get(net.name) or {}
        ports = {
            str(p)
            for source in (entry.get("ports"), entry.get("vmPorts"), bridge.get("ports"))
            if isinstance(source, list)
            for p in source
        }
        extra = sorted(ports - _own_ports(net, att, entry))
        if extra:
            found[att.host] = extra
    return found


def _properties_changed(old: LogicalNetwork, new: LogicalNetwork) -> bool:
    return (old.vlan, old.mtu, old.vm) != (new.vlan, new.mtu, new.vm)


def check_update(old: LogicalNetwork, new: LogicalNetwork, usage: NetworkUsage) -> None:
    """The §2.4 refusals for ``network update``, in order: values, rename, VM to non-VM,
    properties under running VMs; then what the agent would refuse on an attached host."""
    check_network(new)
    if new.name != old.name and (usage.attachments or usage.vms):
        raise NetError(ErrorKind.BAD_PARAMS, RENAME_REFUSED)
    taps = vm_ports(old, usage) if old.vm else {}
    if old.vm and not new.vm and (usage.vms or taps):
        raise NetError(ErrorKind.BAD_PARAMS, VM_TO_NON_VM_REFUSED)
    if old.vm and _properties_changed(old, new) and (usage.running_vms or taps):
        raise NetError(ErrorKind.BAD_PARAMS, RUNNING_VMS_REFUSED)
    for att in usage.attachments:
        check_attachment(new, att, usage.neighbours.get(att.host, ()))


def check_remove(net: LogicalNetwork, usage: NetworkUsage) -> None:
    if usage.vms:
        names = ", ".join(vm.name for vm in usage.vms)
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"networks.{net.name}: removing a network used by VMs or templates is not "
            f"permitted (used by {names})",
        )


def check_isolated(net: LogicalNetwork, att: Attachment) -> None:
    """An isolated network is a bridge with no uplink: it must stay a VM network, and it
    takes no IP settings (the agent refuses both, error 21)."""
    if att.isolated and not net.vm:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"networks.{net.name}.bridged: an isolated network (host {att.host}) must be a VM "
            f"network, got non-VM",
        )
    if att.isolated and att.ip.method != "none":
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"networks.{net.name}: an isolated network (host {att.host}) takes no IP "
            f"settings, got {att.ip.describe()}; attach it to a NIC or bond for an address",
        )


def _slot(net: LogicalNetwork, att: Attachment) -> tuple[str, int | None] | None:
    south = att.southbound
    return None if south is None else (south, net.vlan)


def check_attachment(
    net: LogicalNetwork,
    att: Attachment,
    others: Sequence[tuple[LogicalNetwork, Attachment]],
) -> None:
    """Before attaching ``net`` as ``att``: the agent's rule that a (NIC or bond, VLAN) pair
    carries at most one network, checked against the host's ``others`` attachments."""
    check_isolated(net, att)
    slot = _slot(net, att)
    if slot is None:
        return
    for other_net, other_att in others:
        if other_net.name != net.name and _slot(other_net, other_att) == slot:
            tag = "untagged" if slot[1] is None else f"vlan {slot[1]}"
            raise NetError(
                ErrorKind.BAD_PARAMS,
                f"networks.{net.name}: {slot[0]} ({tag}) on host {att.host} already carries "
                f"network {other_net.name}",
            )


def check_own_address(net: LogicalNetwork, att: Attachment, peers: Sequence[Attachment]) -> None:
    """A static address is one host's: the other hosts' attachments of the same network
    (``peers``) must not have it (two hosts answering one address on one network)."""
    if att.ip.address is None:
        return
    mine = att.ip.address.split("/")[0]
    for peer in peers:
        theirs = None if peer.ip.address is None else peer.ip.address.split("/")[0]
        if peer.host != att.host and theirs == mine:
            raise NetError(
                ErrorKind.BAD_ADDR,
                f"--ip: {mine} is already the address of host {peer.host} on network "
                f"{net.name}; give each host its own",
            )
