"""Golden cases: kernel state + running config + request -> the exact plan.

Each ``golden/*.json`` holds ``description``, ``current`` (a KernelState), and either
``running`` (a NetConfig.to_json document) + ``request`` (setupNetworks params), planned as
the pipeline does (parse, merge, render, plan), or ``desired`` (a KernelState) for a pure
revert, planned as ``plan(current, desired)``. ``expected_plan`` lists ``op.to_json()``.

KernelState JSON: the form of ``vdsm_net.state_json`` (the undo journal's), whose omitted
fields take their defaults. A bond's ``bond_options`` are completed with the kernel
defaults, as the backend reports every option.

``UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py`` rewrites every ``expected_plan`` with
what the planner produces now: review the diff by hand before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vdsm_net import state_json
from vdsm_net.kernel import bond_options
from vdsm_net.merge import merge
from vdsm_net.model import frozen_map
from vdsm_net.ops import Op
from vdsm_net.planner import plan
from vdsm_net.render import render
from vdsm_net.request import parse_config, parse_setup_request
from vdsm_net.state import BOND, KernelState, make_state

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))


def state_from_json(raw: dict[str, Any]) -> KernelState:
    """The case's state in vdsm_net.state_json's form; bonds with every option, as the
    backend reports them."""
    state = state_json.state_from_json(raw)
    return make_state(
        [d.evolve(bond_options=frozen_map(bond_options.normalize(d.bond_options)))
         if d.kind == BOND else d for d in state.devices.values()],
        state.routes,
    )


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
