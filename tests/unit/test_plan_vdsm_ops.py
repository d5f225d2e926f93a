"""The planner's operations for bridge options, a bond's MAC and an adopted bond's group."""

from __future__ import annotations

from vdsm_net.kernel import bond_options, bridge_options
from vdsm_net.ops import SetBridgeOptions, SetGroup, SetMac
from vdsm_net.planner import plan
from vdsm_net.state import Device, make_state

KERNEL_OPTS = {**bridge_options.DEFAULTS, "stp_state": "0", "gc_timer": "123",
               "bridge_id": "8000.020000000001", "multicast_startup_query_interval": "3124"}


def bridge(opts: dict[str, str], **kw: object) -> Device:
    return Device("red", "bridge", 1500, True, owned=True, bridge_opts=opts, **kw)  # type: ignore[arg-type]


def test_only_the_options_that_differ_are_set() -> None:
    now = make_state([bridge(KERNEL_OPTS)])
    want = make_state([bridge({"priority": "100", "forward_delay": "1500"})])
    assert plan(now, want) == [SetBridgeOptions("red", {"priority": "100"})]


def test_a_time_that_reads_back_a_jiffy_less_counts_as_set() -> None:
    now = make_state([bridge(KERNEL_OPTS)])
    want = make_state([bridge({"multicast_startup_query_interval": "3125"})])
    assert plan(now, want) == []


def test_a_revert_restores_settable_options_only() -> None:
    # The snapshot holds every option the kernel showed; timers and ids never plan.
    snapshot = make_state([bridge(KERNEL_OPTS)])
    after = make_state([bridge({**KERNEL_OPTS, "priority": "7", "gc_timer": "99",
                                "bridge_id": "0007.020000000001"})])
    assert plan(after, snapshot) == [SetBridgeOptions("red", {"priority": "32768"})]


def test_a_bonds_mac_changes_in_place() -> None:
    opts = bond_options.normalize({"mode": "active-backup"})
    now = make_state([Device("bond0", "bond", 1500, True, owned=True, bond_options=opts,
                             mac="02:00:00:00:00:01")])
    want = make_state([Device("bond0", "bond", 1500, True, owned=True, bond_options=opts,
                              mac="02:00:00:00:00:02")])
    assert plan(now, want) == [SetMac("bond0", "02:00:00:00:00:02")]
    unmanaged = make_state([Device("bond0", "bond", 1500, True, owned=True, bond_options=opts)])
    assert plan(now, unmanaged) == []  # no hwaddr: the kernel's MAC stays


def test_adoption_takes_the_group_first_and_its_revert_gives_it_back_last() -> None:
    opts = bond_options.normalize({"mode": "802.3ad"})
    foreign = Device("bond9", "bond", 1500, True, bond_options=opts)
    adopted = foreign.evolve(owned=True)
    port = Device("green", "bridge", 1500, True, owned=True)
    ops = plan(make_state([foreign]), make_state([adopted.evolve(master="green"), port]))
    assert ops[0] == SetGroup("bond9", True)
    back = plan(make_state([adopted.evolve(master="green"), port]), make_state([foreign]))
    assert back[-1] == SetGroup("bond9", False)
    assert not any(op.to_json()["op"] == "DeleteDevices" and "bond9" in op.to_json()["names"]
                   for op in back)
