"""What the operator sees at the end of a rollout: a per-host summary, as a table or as JSON
(``--json``). The bar while it runs is ``screen.py``'s.

rich is imported only when a table is drawn: ~55 ms of the command's start that a ``--json``
run never needs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from rich.table import Table


class OutcomeLike(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...
    @property
    def skipped(self) -> bool: ...


def summary_table(outcomes: Sequence[OutcomeLike], *, title: str | None = None) -> Table:
    """One row per host: result, time taken, and the failure if any (a host not sent:
    skipped)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("host")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("failure", overflow="fold")
    for o in outcomes:
        result = (
            "[green]updated[/green]"
            if o.ok
            else "[yellow]skipped[/yellow]"
            if o.skipped
            else "[red]failed[/red]"
        )
        table.add_row(o.host, result, f"{o.seconds:.2f}", o.failure or "")
    return table


@dataclass(frozen=True)
class SummaryCounts:
    planned: int
    updated: int
    skipped: int = 0  # not sent (failure budget spent, canary failed)

    @property
    def failed(self) -> int:
        """Sent and failed."""
        return self.planned - self.updated - self.skipped


def counts(outcomes: Sequence[OutcomeLike]) -> SummaryCounts:
    return SummaryCounts(
        planned=len(outcomes),
        updated=sum(1 for o in outcomes if o.ok),
        skipped=sum(1 for o in outcomes if o.skipped),
    )


def summary_json(
    network: str, outcomes: Sequence[OutcomeLike], *, correlation_id: str
) -> dict[str, Any]:
    """The machine form of the summary (``--json``)."""
    c = counts(outcomes)
    return {
        "network": network,
        "correlation_id": correlation_id,
        "planned": c.planned,
        "updated": c.updated,
        "failed": c.failed,
        "skipped": c.skipped,
        "hosts": [
            {
                "host": o.host,
                "ok": o.ok,
                "failure": o.failure,
                "seconds": round(o.seconds, 3),
                "skipped": o.skipped,
            }
            for o in outcomes
        ],
    }


def print_summary(
    outcomes: Sequence[OutcomeLike], *, title: str | None = None, stream: TextIO | None = None
) -> None:
    from rich.console import Console

    console = Console(file=stream if stream is not None else sys.stdout)
    console.print(summary_table(outcomes, title=title))
    c = counts(outcomes)
    if c.skipped:
        console.print(
            f"{c.planned} hosts: {c.updated} updated, {c.failed} failed, {c.skipped} skipped "
            f"(failure budget spent)",
            highlight=False,
        )
