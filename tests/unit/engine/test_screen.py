"""The terminal as the operator sees it (docs/engine-cli.md): rich's Console forced to a terminal
of 80
columns, its output replayed on a small screen model (text, newline, carriage return, cursor
up, erase line: all rich's live display uses), so that the tests assert what is on the screen
after each step, not the escape codes that drew it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from engine_client.cli import main
from engine_client.operations import EXIT_HOST_FAILED
from engine_client.screen import Screen
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport

WIDTH = 80
_CSI = re.compile(r"\x1b\[(\??)(\d*)([A-Za-z])")


def screen_lines(raw: str) -> list[str]:
    """The lines a terminal shows after ``raw`` (no line is wider than WIDTH)."""
    lines = [""]
    row = col = 0
    pos = 0
    while pos < len(raw):
        m = _CSI.match(raw, pos)
        if m:
            private, num, cmd = m.groups()
            n = int(num or 1)
            if not private and cmd == "A":
                row = max(0, row - n)
            elif not private and cmd == "K":
                lines[row] = ""
                col = 0
            elif not private and cmd == "m":
                pass  # colours
            elif private:
                pass  # cursor shown or hidden
            else:
                raise AssertionError(f"escape {m.group()!r} not modelled")
            pos = m.end()
            continue
        ch = raw[pos]
        pos += 1
        if ch == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        elif ch == "\r":
            col = 0
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + ch + line[col + 1 :]
            col += 1
            assert col <= WIDTH, f"line wider than {WIDTH}: {lines[row]!r}"
    return [line.rstrip() for line in lines if line.strip()]


class Terminal:
    def __init__(self) -> None:
        self.buf = io.StringIO()
        self.console = Console(
            file=self.buf, force_terminal=True, width=WIDTH, color_system=None, height=24
        )

    def lines(self) -> list[str]:
        return screen_lines(self.buf.getvalue())


@pytest.fixture
def term() -> Iterator[Terminal]:
    yield Terminal()


def test_bar_shows_at_once_and_counts_hosts(term: Terminal) -> None:
    screen = Screen(term.buf, console=term.console, auto_refresh=False)
    screen.begin("starting")
    screen.refresh()
    # Before any host: the bar is there.
    (only,) = term.lines()
    assert "starting" in only
    bar = screen.hosts("network red", 3)
    assert "network red" in term.lines()[-1]
    assert "3 waiting, 0 running, 0 done, 0 failed" in term.lines()[-1]
    bar.running()
    bar.running()
    assert "1 waiting, 2 running, 0 done, 0 failed" in term.lines()[-1]
    bar.finished(True)
    bar.finished(False)
    bar.running()
    assert "0 waiting, 1 running, 1 done, 1 failed" in term.lines()[-1]
    screen.end()
    assert term.lines() == []  # the bar goes; the summary follows on stdout


def test_event_lines_go_above_the_bar_never_through_it(term: Terminal) -> None:
    screen = Screen(term.buf, console=term.console, auto_refresh=False)
    screen.begin("starting")
    bar = screen.hosts("network a-network-with-a-long-name-x", 500)
    events = [
        "1/500 applying network red on host h1",
        "1/500 failed to update red changes on host h1 due to: cannot connect to "
        "https://10.0.0.1:54321: Connection refused (code -1) [and more text]",
        "2/500 applying network red on host h2",
    ]
    bar.running()
    screen.line(events[0])
    bar.finished(False)
    screen.line(events[1], style="red")
    bar.running()
    screen.line(events[2])
    lines = term.lines()
    # The events in order, whole (the long one wrapped at 80 columns, markup-like text kept),
    # then the bar alone on the last line.
    text = " ".join(lines[:-1])
    assert text == " ".join(events)
    assert "waiting" not in text
    assert re.search(r"498 waiting, 1 running, 0 done, 1 failed \d:\d\d:\d\d$", lines[-1])
    assert lines[-1].count("network a-network") == 1 and "…" in lines[-1]
    screen.end()
    assert " ".join(term.lines()) == " ".join(events)


def test_without_a_terminal_lines_are_written_as_they_come() -> None:
    out = io.StringIO()
    screen = Screen(out)
    screen.begin("starting")
    bar = screen.hosts("network red", 1)
    bar.running()
    screen.line("1/1 applying network red on host h1")
    bar.finished(True)
    screen.end()
    assert not screen.live
    assert out.getvalue() == "1/1 applying network red on host h1\n"


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rollout_on_a_terminal(tmp_path: Path) -> None:
    """A real command (update, two hosts, one unreachable) on a terminal: the correlation id on
    stdout, then on stderr the events above the bar, the partial-update one included."""
    t = FakeTransport()
    t.add("https://10.9.0.1:54321", FakeAgent("h1"))
    t.add("https://10.9.0.2:54321", FakeAgent("h2"))
    db = str(tmp_path / "e.db")
    quiet = io.StringIO()
    for argv in (
        ["dc", "add", "dc1", "--version", "4.7"],
        ["host", "add", "h1", "https://10.9.0.1:54321", "--dc", "dc1"],
        ["host", "add", "h2", "https://10.9.0.2:54321", "--dc", "dc1"],
        ["network", "add", "red", "--dc", "dc1"],
        ["network", "attach", "red", "h1", "--nic", "eth1"],
        ["network", "attach", "red", "h2", "--nic", "eth1"],
    ):
        assert main(["--db", db, *argv], transport=t, stdout=quiet, stderr=quiet) == 0
    t.agents.pop("https://10.9.0.2:54321")
    out, err = io.StringIO(), TtyBuffer()
    code = main(["--db", db, "network", "update", "red", "--mtu", "9000"], transport=t,
                stdout=out, stderr=err)  # fmt: skip
    assert code == EXIT_HOST_FAILED
    assert out.getvalue().startswith("correlation id: ")
    # The first frame of the bar was drawn before the hosts were counted (read).
    first_frame = err.getvalue().split("\r")[0]
    assert "starting" in first_frame and "0:00:00" in first_frame, first_frame
    shown = screen_lines(err.getvalue())
    # The bar drew (rich's own escapes are in the stream) and went; the events stay, in order.
    assert "\x1b[2K" in err.getvalue()
    assert shown[-1] == "2 are planned to be updated, however only 1 could be updated."
    assert sum("applying network red" in line for line in shown) == 2
    assert not any("waiting" in line for line in shown)
