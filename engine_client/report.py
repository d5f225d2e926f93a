"""What the operator sees of a rollout: a progress bar while it runs (on a terminal only) and a
per-host summary at the end, as a table or as JSON (``--json``).

rich is imported only when a bar or a table is drawn: ~55 ms of the command's start that a
``--json`` run or a script (no terminal) never needs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress
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


class RolloutProgress:
    """A progress bar on stderr, shown only when stderr is a terminal (and ``enabled``); a
    no-op otherwise, so scripts and logs get the events and the summary, not bar redraws."""

    def __init__(
        self, description: str, total: int, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        out = stream if stream is not None else sys.stderr
        self._progress: Progress | None = None
        self._task: Any = None
        self._failed = 0
        if enabled and out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                console=Console(file=out),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total, failed=0)

    @property
    def active(self) -> bool:
        return self._progress is not None

    def finished(self, ok: bool) -> None:
        if self._progress is None:
            return
        if not ok:
            self._failed += 1
        self._progress.update(self._task, advance=1, failed=self._failed)

    def __enter__(self) -> RolloutProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary_table(outcomes: Sequence[OutcomeLike], *, title: str | None = None) -> Table:
    """One row per host: result, time taken, and the failure if any."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("host")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("failure", overflow="fold")
    for o in outcomes:
        result = "[green]updated[/green]" if o.ok else "[red]failed[/red]"
        table.add_row(o.host, result, f"{o.seconds:.2f}", o.failure or "")
    return table


@dataclass(frozen=True)
class SummaryCounts:
    planned: int
    updated: int

    @property
    def failed(self) -> int:
        return self.planned - self.updated


def counts(outcomes: Sequence[OutcomeLike]) -> SummaryCounts:
    return SummaryCounts(planned=len(outcomes), updated=sum(1 for o in outcomes if o.ok))


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
        "hosts": [
            {"host": o.host, "ok": o.ok, "failure": o.failure, "seconds": round(o.seconds, 3)}
            for o in outcomes
        ],
    }


def print_summary(
    outcomes: Sequence[OutcomeLike], *, title: str | None = None, stream: TextIO | None = None
) -> None:
    from rich.console import Console

    console = Console(file=stream if stream is not None else sys.stdout)
    console.print(summary_table(outcomes, title=title))
