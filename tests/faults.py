"""Shared helpers of the reliability tests: a backend that fails at a chosen operation, the
agent's resident memory, and checks of JSON-RPC response documents.

The failing backend is the real pyroute2 backend: it runs the plan one operation at a time on
the kernel and, at operation ``k``, either makes the kernel itself refuse (it creates a foreign
device with the name that the operation is about to create) or raises the kernel error the
backend would raise. Everything before ``k`` really happened, so a rollback has real work to do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.netns import NetNS
from vdsm_net.caps import LinkStats
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import Op
from vdsm_net.qos import QosTree, TcOp
from vdsm_net.qos.kernel import QosKernel
from vdsm_net.scope import ReadScope
from vdsm_net.state import KernelState

INJECTED = "injected failure"

# Ops that create a device: a foreign device of that name makes the kernel refuse with EEXIST.
_CREATES = frozenset({"CreateBridge", "CreateVlan", "CreateBond"})


@dataclass
class FaultPlan:
    """Which global operation indexes fail (0-based, counted over every ``apply`` since the
    plan was armed), and what each failure did."""

    fail_at: frozenset[int] = frozenset()
    collide: bool = True  # a create op fails by a real name collision in the kernel
    seen: int = 0
    failed: list[str] = field(default_factory=list)
    collisions: list[str] = field(default_factory=list)  # foreign devices left to remove


class Faults:
    """The switch shared by the backends of one agent (its transaction and query workers)."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self.lock = threading.Lock()

    def arm(self, *fail_at: int, collide: bool = True) -> FaultPlan:
        self.plan = FaultPlan(frozenset(fail_at), collide)
        return self.plan

    def disarm(self) -> FaultPlan:
        return self.arm()


class FailingBackend:
    """The real backend, executing ops one by one and failing where ``faults.plan`` says."""

    def __init__(self, real: Backend, ns: NetNS, faults: Faults) -> None:
        self.real = real
        self.ns = ns
        self.faults = faults

    def read_state(self, scope: ReadScope | None = None) -> KernelState:
        return self.real.read_state(scope)

    def read_stats(self) -> Mapping[str, LinkStats]:
        return self.real.read_stats()

    def apply(self, ops: Sequence[Op]) -> None:
        plan = self.faults.plan
        for op in ops:
            with self.faults.lock:
                index = plan.seen
                plan.seen += 1
            if index in plan.fail_at:
                self._fail(plan, index, op)
            self.real.apply([op])

    def _fail(self, plan: FaultPlan, index: int, op: Op) -> None:
        doc = op.to_json()
        plan.failed.append(f"{index}: {op}")
        if plan.collide and doc["op"] in _CREATES:
            # The kernel refuses for real: someone else took the name between plan and apply.
            name = str(doc["name"])
            self.ns.ip("link", "add", name, "type", "dummy")
            plan.collisions.append(name)
            return  # the real apply of ``op`` now fails with EEXIST
        raise NetError(ErrorKind.KERNEL, f"{op}: {INJECTED} at operation {index}")

    def close(self) -> None:
        self.real.close()


class FailingQos:
    """The real tc applier in namespace ``netns``, executing the operations one by one; the
    one at index ``fail_at`` (counted over every ``apply`` since armed) raises the kernel
    error the applier would, after the earlier ones really happened. The real applier is
    made on first use, on the agent's worker thread: pyroute2's IPRoute cannot be made
    inside a running event loop."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._real: QosKernel | None = None
        self.fail_at: int | None = None
        self.seen = 0

    @property
    def real(self) -> QosKernel:
        if self._real is None:
            self._real = QosKernel(netns=self.netns)
        return self._real

    def arm(self, fail_at: int | None) -> None:
        self.fail_at, self.seen = fail_at, 0

    def read_tree(self, dev: str) -> QosTree | None:
        return self.real.read_tree(dev)

    def read_trees(self, devices: Mapping[str, int]) -> dict[str, QosTree]:
        return self.real.read_trees(devices)

    def apply(self, ops: Iterable[TcOp]) -> None:
        for op in ops:
            index, self.seen = self.seen, self.seen + 1
            if index == self.fail_at:
                raise NetError(ErrorKind.KERNEL, f"host QoS on {op.dev}: {op} refused: "
                               f"{INJECTED} at tc operation {index}")
            self.real.apply([op])

    def close(self) -> None:
        if self._real is not None:
            self._real.close()
            self._real = None


def remove_collisions(ns: NetNS, plan: FaultPlan) -> None:
    for name in plan.collisions:
        ns.ip("link", "del", name, check=False)


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB (from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


# JSON-RPC error codes the agent may answer (docs/errors.md and the JSON-RPC standard ones).
# -32603 (internal error) is not among them: it means an exception escaped a method.
AGENT_CODES = frozenset({10, 16, 21, 22, 23, 24, 25, 26, 27, 31, 40, 41})
PROTOCOL_CODES = frozenset({-32700, -32600, -32601, -32602})


def response_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a well-formed JSON-RPC 2.0 response of the agent, or None."""
    if not isinstance(doc, dict):
        return f"not an object: {json.dumps(doc)[:200]}"
    if doc.get("jsonrpc") != "2.0":
        return f"jsonrpc is not '2.0': {doc!r:.200}"
    if ("result" in doc) == ("error" in doc):
        return f"needs exactly one of result and error: {doc!r:.200}"
    if "error" in doc:
        error = doc["error"]
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return f"malformed error: {doc!r:.200}"
        if error.get("code") not in AGENT_CODES | PROTOCOL_CODES:
            return f"unexpected error code: {doc!r:.400}"
    return None
