"""``--dry-run`` (docs/engine-cli.md): every host concerned is asked for its plan
(``Host.setupNetworks`` with ``options.dryRun``: the agent validates the request against its
kernel and answers the operations it would run, touching nothing), concurrently as a rollout
goes; the operator sees per host the operations, or the error the host foresees.

Nothing else is sent (no confirmation, no save), no event is emitted and nothing is stored:
the command runs on a scratch copy of the store (``Store.open_scratch``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from engine_client.agent_client import AgentClient, AgentError, Transport
from engine_client.rollout import DEFAULT_CALL_TIMEOUT, HostChange, HostOutcome
from engine_client.screen import HostsBar, NoBar


@dataclass(frozen=True)
class HostPlan:
    host: str
    ok: bool
    operations: tuple[Mapping[str, Any], ...] = ()  # the agent's plan, as it sent it
    failure: str | None = None
    code: int | None = None
    seconds: float = 0.0

    def outcome(self) -> HostOutcome:
        """As a rollout's outcome: what exit codes and the store bookkeeping read."""
        return HostOutcome(self.host, self.ok, self.failure, self.seconds, code=self.code)

    def lines(self) -> list[str]:
        return [describe(op) for op in self.operations]

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "failure": self.failure,
            "code": self.code,
            "operations": self.lines(),
            "plan": [dict(op) for op in self.operations],
        }


def describe(op: Mapping[str, Any]) -> str:
    """One operation of a plan as a line: ``SetMtu device=eth1 mtu=9000``."""
    args = " ".join(f"{k}={_value(v)}" for k, v in op.items() if k != "op")
    return f"{op.get('op', '?')} {args}".rstrip()


def _value(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(_value(v) for v in value) or "[]"
    return "-" if value is None else str(value)


def _plan_of(answer: object) -> tuple[Mapping[str, Any], ...] | None:
    if not isinstance(answer, Mapping):
        return None
    plan = answer.get("plan")
    if not isinstance(plan, list) or not all(isinstance(op, Mapping) for op in plan):
        return None
    return tuple(plan)


async def plan_all(
    changes: Sequence[HostChange],
    *,
    transport: Transport,
    correlation_id: str,
    parallel: int,
    connectivity_timeout: float,
    call_timeout: float | None = None,
    probes: Sequence[Mapping[str, str]] = (),
    bar: HostsBar | None = None,
) -> list[HostPlan]:
    """Each host's plan (at most ``parallel`` asked at once, in the order of ``changes``),
    in that order. Never raises for a host's failure."""
    gate = asyncio.Semaphore(parallel)
    shown = bar if bar is not None else NoBar()
    timeout = DEFAULT_CALL_TIMEOUT if call_timeout is None else call_timeout
    options: dict[str, Any] = {
        "dryRun": True,
        # What the real run sends, so that the agent checks the same options.
        "connectivityCheck": True,
        "connectivityTimeout": connectivity_timeout,
        "commitOnSuccess": True,
    }
    if probes:
        options["probes"] = [dict(p) for p in probes]

    async def one(change: HostChange) -> HostPlan:
        async with gate:
            shown.running()
            started = time.monotonic()
            client = AgentClient(change.endpoint, transport, timeout=timeout)
            params = {"networks": change.networks, "bondings": change.bondings,
                      "options": options}
            try:
                answer = await client.call(
                    "Host.setupNetworks", params, correlation_id=correlation_id
                )
            except AgentError as exc:
                shown.finished(False)
                return HostPlan(change.host, False, failure=str(exc), code=exc.code,
                                seconds=time.monotonic() - started)
            seconds = time.monotonic() - started
        plan = _plan_of(answer)
        shown.finished(plan is not None)
        if plan is None:
            return HostPlan(change.host, False, failure="bad response: no plan in the answer "
                            "(an agent without dryRun support?)", seconds=seconds)
        return HostPlan(change.host, True, plan, seconds=seconds)

    return list(await asyncio.gather(*(one(c) for c in changes)))


def plans_json(
    network: str, plans: Sequence[HostPlan], *, correlation_id: str
) -> dict[str, Any]:
    able = sum(1 for p in plans if p.ok)
    return {
        "network": network,
        "correlation_id": correlation_id,
        "dry_run": True,
        "planned": len(plans),
        "can_apply": able,
        "failed": len(plans) - able,
        "hosts": [p.to_json() for p in plans],
    }


def print_plans(plans: Sequence[HostPlan], *, title: str, stream: TextIO) -> None:
    """A table: per host whether it could apply, and its operations (one a line) or the
    error it foresees."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("host")
    table.add_column("would")
    table.add_column("operations, or the error", overflow="fold")
    for p in plans:
        if not p.ok:
            table.add_row(p.host, "[red]fail[/red]", p.failure or "")
        else:
            table.add_row(p.host, "[green]apply[/green]",
                          "\n".join(p.lines()) or "nothing to change")
    console = Console(file=stream)
    console.print(table)
    able = sum(1 for p in plans if p.ok)
    console.print(f"dry run: {able} of {len(plans)} hosts could apply; nothing was stored or "
                  f"changed", highlight=False)
