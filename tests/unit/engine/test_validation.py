"""docs/engine-cli.md, validation: each refusal with its text, and the agent's value checks."""

from __future__ import annotations

from typing import Any

import pytest

from engine_client import validation as v
from engine_client.models import Attachment, LogicalNetwork, Vm
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.names import show

RED = LogicalNetwork("dc1", "red", vlan=100, mtu=1500, vm=True)
ATT = Attachment("h1", "red", nic="eth1")


def caps_with_ports(*ports: str, southbound: str = "eth1.100") -> dict[str, Any]:
    return {
        "networks": {
            "red": {
                "iface": "red",
                "bridged": True,
                "southbound": southbound,
                "vlanid": 100,
                "mtu": 1500,
                "ports": [southbound, *ports],
            },
        },
        "bridges": {"red": {"ports": [southbound, *ports], "mtu": 1500, "stp": False}},
    }


def refused(exc: pytest.ExceptionInfo[NetError]) -> tuple[ErrorKind, str]:
    return exc.value.kind, exc.value.message


@pytest.mark.parametrize(
    ("vlan", "message"),
    [
        (5000, "networks.red.vlan: expected 0-4094, got 5000"),
        (-1, "networks.red.vlan: expected 0-4094, got -1"),
    ],
)
def test_vlan_range(vlan: int, message: str) -> None:
    with pytest.raises(NetError) as exc:
        v.check_network(LogicalNetwork("dc1", "red", vlan=vlan))
    assert refused(exc) == (ErrorKind.BAD_VLAN, message)


@pytest.mark.parametrize("mtu", [67, 65536, 0])
def test_mtu_range(mtu: int) -> None:
    with pytest.raises(NetError) as exc:
        v.check_network(LogicalNetwork("dc1", "red", mtu=mtu))
    assert refused(exc) == (ErrorKind.BAD_PARAMS, f"networks.red.mtu: expected 68-65535, got {mtu}")


def test_edges_accepted() -> None:
    for vlan, mtu in [(0, 68), (4094, 65535), (None, 1500)]:
        v.check_network(LogicalNetwork("dc1", "red", vlan=vlan, mtu=mtu))


@pytest.mark.parametrize("name", ["", "a.b", "a:b", "a/b", "a b", "-a", "x" * 16, "tab\tx"])
def test_bad_names(name: str) -> None:
    with pytest.raises(NetError) as exc:
        v.check_network(LogicalNetwork("dc1", name))
    assert exc.value.kind == ErrorKind.BAD_BRIDGE
    assert exc.value.message.startswith(f"networks: bad network name {show(name)} (")


@pytest.mark.parametrize("name", ["red", "x" * 15, "ovirtmgmt", "a-b_c"])
def test_good_names(name: str) -> None:
    v.check_name(name)


def test_dc_version() -> None:
    v.check_dc_version("4.7")
    v.check_dc_version("3.0")
    for bad in ("x4", "4", "4.7.1", " 4.7", "4.", ".7", "4.x", "\uff14.\uff17"):
        with pytest.raises(NetError, match=rf"version: expected MAJOR.MINOR .*got {bad!r}"):
            v.check_dc_version(bad)


# -- rename -----------------------------------------------------------------------------


def test_rename_refused_when_attached() -> None:
    with pytest.raises(NetError) as exc:
        v.check_update(RED, LogicalNetwork("dc1", "blue", vlan=100), v.NetworkUsage([ATT]))
    assert refused(exc) == (ErrorKind.BAD_PARAMS, v.RENAME_REFUSED)
    assert v.RENAME_REFUSED == "Renaming a network which is configured on hosts is not supported."


@pytest.mark.parametrize("vm", [Vm("a"), Vm("t", template=True)])
def test_rename_refused_when_used_by_vm_or_template(vm: Vm) -> None:
    with pytest.raises(NetError, match=r"^Renaming a network which is configured"):
        v.check_update(RED, LogicalNetwork("dc1", "blue", vlan=100), v.NetworkUsage(vms=[vm]))


def test_rename_allowed_when_unused() -> None:
    v.check_update(RED, LogicalNetwork("dc1", "blue", vlan=100), v.NetworkUsage())


def test_rename_new_name_checked() -> None:
    with pytest.raises(NetError, match=r'bad network name "a\.b"'):
        v.check_update(RED, LogicalNetwork("dc1", "a.b", vlan=100), v.NetworkUsage())


# -- VM to non-VM -----------------------------------------------------------------------


@pytest.mark.parametrize("vm", [Vm("a"), Vm("a", running=True), Vm("t", template=True)])
def test_vm_to_non_vm_refused_when_used(vm: Vm) -> None:
    with pytest.raises(NetError) as exc:
        v.check_update(
            RED, LogicalNetwork("dc1", "red", vlan=100, vm=False), v.NetworkUsage([ATT], vms=[vm])
        )
    assert refused(exc) == (ErrorKind.BAD_PARAMS, v.VM_TO_NON_VM_REFUSED)
    assert v.VM_TO_NON_VM_REFUSED == (
        "Changing a VM network to a non-VM network is not permitted while VMs or templates are "
        "using it."
    )


def test_vm_to_non_vm_refused_with_tap_on_host() -> None:
    usage = v.NetworkUsage([ATT], host_caps={"h1": caps_with_ports("vnet0")})
    with pytest.raises(NetError, match=r"^Changing a VM network to a non-VM"):
        v.check_update(RED, LogicalNetwork("dc1", "red", vlan=100, vm=False), usage)


def test_vm_to_non_vm_allowed_when_unused() -> None:
    usage = v.NetworkUsage([ATT], host_caps={"h1": caps_with_ports()})
    v.check_update(RED, LogicalNetwork("dc1", "red", vlan=100, vm=False), usage)


def test_isolated_cannot_become_non_vm() -> None:
    usage = v.NetworkUsage([Attachment("h1", "red", isolated=True)])
    with pytest.raises(NetError, match=r"networks.red.bridged: an isolated network \(host h1\)"):
        v.check_update(RED, LogicalNetwork("dc1", "red", vlan=100, vm=False), usage)


# -- properties under running VMs --------------------------------------------------------


@pytest.mark.parametrize(
    "new",
    [
        LogicalNetwork("dc1", "red", vlan=200),
        LogicalNetwork("dc1", "red", vlan=100, mtu=9000),
        LogicalNetwork("dc1", "red", vlan=None),
    ],
)
def test_properties_refused_with_running_vm_in_store(new: LogicalNetwork) -> None:
    with pytest.raises(NetError) as exc:
        v.check_update(RED, new, v.NetworkUsage([ATT], vms=[Vm("a", running=True)]))
    assert refused(exc) == (ErrorKind.BAD_PARAMS, v.RUNNING_VMS_REFUSED)
    assert v.RUNNING_VMS_REFUSED == (
        "Changing a VM network's properties while running VMs are using it is not permitted."
    )


@pytest.mark.parametrize("tap", ["vnet3", "tap0", "whatever"])
def test_properties_refused_with_tap_reported_by_host(tap: str) -> None:
    usage = v.NetworkUsage([ATT], host_caps={"h1": caps_with_ports(tap)})
    with pytest.raises(NetError, match=r"^Changing a VM network's properties"):
        v.check_update(RED, LogicalNetwork("dc1", "red", vlan=100, mtu=9000), usage)


def test_properties_allowed_with_stopped_vm_and_only_uplink_port() -> None:
    usage = v.NetworkUsage([ATT], vms=[Vm("a")], host_caps={"h1": caps_with_ports()})
    v.check_update(RED, LogicalNetwork("dc1", "red", vlan=200, mtu=9000), usage)


def test_label_change_allowed_with_running_vm() -> None:
    usage = v.NetworkUsage([ATT], vms=[Vm("a", running=True)])
    v.check_update(RED, LogicalNetwork("dc1", "red", vlan=100, label="L"), usage)


def test_vm_ports_excludes_uplink_and_vlan_device() -> None:
    usage = v.NetworkUsage(
        [ATT, Attachment("h2", "red", bond="bond0")],
        host_caps={
            "h1": caps_with_ports("vnet0", "vnet1"),
            "h2": caps_with_ports(southbound="bond0.100"),
        },
    )
    assert v.vm_ports(RED, usage) == {"h1": ["vnet0", "vnet1"]}


# -- attach / remove -----------------------------------------------------------------------


def test_slot_conflict_refused() -> None:
    blue = LogicalNetwork("dc1", "blue", vlan=100)
    with pytest.raises(
        NetError,
        match=r"networks.red: eth1 \(vlan 100\) on host h1 already "
        "carries network blue",
    ):
        v.check_attachment(RED, ATT, [(blue, Attachment("h1", "blue", nic="eth1"))])


def test_slot_distinct_vlans_and_isolated_allowed() -> None:
    others = [
        (LogicalNetwork("dc1", "blue", vlan=200), Attachment("h1", "blue", nic="eth1")),
        (LogicalNetwork("dc1", "iso"), Attachment("h1", "iso", isolated=True)),
    ]
    v.check_attachment(RED, ATT, others)
    v.check_attachment(LogicalNetwork("dc1", "red"), Attachment("h1", "red", isolated=True), others)


def test_update_vlan_into_conflict_refused() -> None:
    blue = LogicalNetwork("dc1", "blue", vlan=200)
    usage = v.NetworkUsage([ATT], neighbours={"h1": [(blue, Attachment("h1", "blue", nic="eth1"))]})
    with pytest.raises(NetError, match=r"already carries network blue"):
        v.check_update(RED, LogicalNetwork("dc1", "red", vlan=200), usage)


def test_remove_refused_when_used_by_vm() -> None:
    with pytest.raises(NetError, match=r"used by VMs or templates .*\(used by a, t\)"):
        v.check_remove(RED, v.NetworkUsage(vms=[Vm("a"), Vm("t", template=True)]))
    v.check_remove(RED, v.NetworkUsage([ATT]))
