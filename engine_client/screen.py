"""What the operator sees while a command runs, on stderr: event lines and, on a terminal, one
progress bar below them (docs/engine-cli.md).

One rich ``Console`` draws both: an event line is printed through the console of the live
display, so it lands above the bar and the bar is drawn again below it, instead of tearing the
bar as two writers on one terminal do. The bar appears as soon as the command has its
correlation id, before any host answers, and counts the hosts waiting, running, done and
failed, with the time elapsed ticking: a host that hangs shows as "1 running" on a clock that
goes on, not as a blank screen.

Without a terminal (a script, a log, ``--json``) there is no bar: the event lines are written
to the stream as they come, one each. rich is imported only for a terminal: ~55 ms of start
that scripts never need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class HostsBar(Protocol):
    """What a multi-host step reports as its hosts move on (``rollout``, capability reads)."""

    def running(self) -> None: ...
    def finished(self, ok: bool) -> None: ...


@dataclass
class HostCounts:
    total: int
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def waiting(self) -> int:
        return self.total - self.running - self.done - self.failed

    def text(self) -> str:
        return (
            f"{self.waiting} waiting, {self.running} running, "
            f"{self.done} done, {self.failed} failed"
        )


class _Bar:
    """One task of the screen's progress display."""

    def __init__(self, screen: Screen, task: TaskID | None, total: int) -> None:
        self._screen = screen
        self._task = task
        self.counts = HostCounts(total)

    def running(self) -> None:
        self.counts.running += 1
        self._show()

    def finished(self, ok: bool) -> None:
        self.counts.running -= 1
        if ok:
            self.counts.done += 1
        else:
            self.counts.failed += 1
        self._show()

    def _show(self) -> None:
        self._screen.update(self._task, self.counts)


class Screen:
    """stderr of a command. ``live``: draw a bar (only when ``stream`` is a terminal, unless a
    ``console`` is given, as tests do). ``begin`` shows the bar; ``hosts`` gives it a step
    and its hosts to count; ``line`` prints one event line; ``end`` takes the bar away
    (before the summary goes to stdout)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool = True,
        console: Console | None = None,
        auto_refresh: bool = True,
    ) -> None:
        self._stream = stream
        self._want_live = console is not None or (live and stream.isatty())
        self._console = console
        self._auto_refresh = auto_refresh
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    @property
    def live(self) -> bool:
        return self._progress is not None

    def begin(self, description: str) -> None:
        """Show the bar now, for a step whose hosts are not counted yet."""
        if not self._want_live or self._progress is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Column

        console = self._console or Console(file=self._stream)
        # One line at 80 columns: a long network name is cut, never the counts.
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn(
                "[bold]{task.description}",
                table_column=Column(max_width=22, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=10),
            TextColumn("{task.fields[counts]}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=self._auto_refresh,
            transient=True,
        )
        self._task = self._progress.add_task(description, total=None, counts="")
        self._progress.start()

    def hosts(self, description: str, total: int) -> HostsBar:
        """The bar now counts ``total`` hosts of this step (all waiting)."""
        bar = _Bar(self, self._task, total)
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                description=description,
                total=max(total, 1),
                completed=0,
                counts=bar.counts.text(),
            )
            self.refresh()
        return bar

    def update(self, task: TaskID | None, counts: HostCounts) -> None:
        if self._progress is not None and task is not None and task == self._task:
            self._progress.update(
                task, completed=counts.done + counts.failed, counts=counts.text()
            )
            self.refresh()

    def refresh(self) -> None:
        """Redraw now (a display without auto-refresh, in tests, draws only on this)."""
        if self._progress is not None and not self._auto_refresh:
            self._progress.refresh()

    def line(self, text: str, **style: Any) -> None:
        """One event line: above the bar on a terminal, else written as it is."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, **style)
            self.refresh()
        else:
            print(text, file=self._stream, flush=True)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None


class NoBar:
    """A bar that shows nothing (no screen, tests of the rollout alone)."""

    def running(self) -> None:
        pass

    def finished(self, ok: bool) -> None:
        pass
