"""Golden cases: kernel state + running config + request -> the exact plan.

Each ``golden/*.json`` holds ``description``, ``current`` (a KernelState), and either
``running`` (a NetConfig.to_json document) + ``request`` (setupNetworks params), planned as
the pipeline does (parse, merge, render, plan), or ``desired`` (a KernelState) for a pure
revert, planned as ``plan(current, desired)``. ``expected_plan`` lists ``op.to_json()``.

KernelState JSON: ``{"devices": [{"name", "kind" ("" = NIC), "mtu" (1500), "up" (true),
"master", "owned", "vlan_base", "vlan_id", "bond_options", "stp", "mac", "ipv4", "ipv6"}],
"routes": [{"family", "gateway", "device", "table" (254)}]}``. A bond's ``bond_options`` are
completed with the kernel defaults, as the backend reports every option.

``UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py`` rewrites every ``expected_plan`` with
what the planner produces now: review the diff by hand before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vdsm_net.kernel import bond_options
from vdsm_net.merge import merge
from vdsm_net.model import frozen_map
from vdsm_net.ops import Op
from vdsm_net.planner import plan
from vdsm_net.render import render
from vdsm_net.request import parse_config, parse_setup_request
from vdsm_net.state import BOND, Device, KernelState, Route

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))


def device_from_json(raw: dict[str, Any]) -> Device:
    kind = raw.get("kind", "")
    options = raw.get("bond_options", {})
    if kind == BOND:
        options = bond_options.normalize(options)
    return Device(
        name=raw["name"],
        kind=kind,
        mtu=raw.get("mtu", 1500),
        up=raw.get("up", True),
        master=raw.get("master"),
        owned=raw.get("owned", False),
        vlan_base=raw.get("vlan_base"),
        vlan_id=raw.get("vlan_id"),
        bond_options=frozen_map(options),
        stp=raw.get("stp", False),
        mac=raw.get("mac"),
        ipv4=frozenset(raw.get("ipv4", ())),
        ipv6=frozenset(raw.get("ipv6", ())),
    )


def state_from_json(raw: dict[str, Any]) -> KernelState:
    devices = [device_from_json(d) for d in raw.get("devices", ())]
    routes = {
        Route(r["family"], r["gateway"], r["device"], r.get("table", 254))
        for r in raw.get("routes", ())
    }
    return KernelState(frozen_map({d.name: d for d in devices}), frozenset(routes))


def plan_case(case: dict[str, Any]) -> list[Op]:
    current = state_from_json(case["current"])
    if "desired" in case:
        return plan(current, state_from_json(case["desired"]))
    running = parse_config(case.get("running", {}))
    request = parse_setup_request(case["request"])
    config = merge(running, request, current)
    return plan(current, render(config, current, running))


def as_json(ops: list[Op]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(json.dumps([op.to_json() for op in ops]))
    return result


def test_enough_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    got = as_json(plan_case(case))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        case["expected_plan"] = got
        path.write_text(json.dumps(case, indent=1) + "\n")
    assert got == case["expected_plan"], case["description"]


def reached(current: KernelState, desired: KernelState) -> KernelState:
    """What the kernel looks like once ``desired`` is applied: unmanaged devices and routes
    as they were, owned devices not desired gone, desired devices as desired."""
    devices = {n: d for n, d in current.devices.items() if not d.owned}
    devices.update(desired.devices)
    managed = set(desired.devices) | {d.name for d in current.owned()}
    claimed = {(r.family, r.table) for r in desired.routes}
    routes = set(desired.routes) | {
        r
        for r in current.routes
        if r.device not in managed and (r.family, r.table) not in claimed
    }
    return KernelState(frozen_map(devices), frozenset(routes))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_replanning_the_goal_is_empty(path: Path) -> None:
    """Once the desired state is reached, nothing is planned (verification relies on it)."""
    case = json.loads(path.read_text())
    current = state_from_json(case["current"])
    if "desired" in case:
        desired = state_from_json(case["desired"])
    else:
        running = parse_config(case.get("running", {}))
        config = merge(running, parse_setup_request(case["request"]), current)
        desired = render(config, current, running)
    assert plan(reached(current, desired), desired) == []
