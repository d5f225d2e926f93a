"""``engine-client events [--correlation-id ID] [--host H] [--network N] [--follow]``: filters,
times in the local zone with their offset, and --follow printing new events as they are
stored by another engine-client (docs/engine-cli.md)."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine_client.cli import main
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport

H1, H2 = "https://10.9.0.1:54321", "https://10.9.0.2:54321"
BIN = Path(sys.executable).parent


class Engine:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.transport = FakeTransport()
        self.transport.add(H1, FakeAgent("h1"))
        self.transport.add(H2, FakeAgent("h2"))

    def __call__(self, *argv: str) -> tuple[int, Any]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--db", str(self.db), "--json", *argv], transport=self.transport,
                    stdout=out, stderr=err)  # fmt: skip
        return code, json.loads(out.getvalue()) if out.getvalue().strip() else err.getvalue()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "engine.db")
    for argv in (
        ["dc", "add", "dc1", "--version", "4.7"],
        ["host", "add", "h1", H1, "--dc", "dc1"],
        ["host", "add", "h2", H2, "--dc", "dc1"],
        ["network", "add", "red", "--dc", "dc1"],
        ["network", "add", "blue", "--dc", "dc1"],
        ["network", "attach", "red", "h1", "--nic", "eth1"],
        ["network", "attach", "red", "h2", "--nic", "eth1"],
        ["network", "attach", "blue", "h1", "--nic", "eth2"],
    ):
        assert e(*argv)[0] == 0, argv
    return e


def test_filters_by_host_network_and_correlation_id(engine: Engine) -> None:
    code, everything = engine("events")
    assert code == 0 and len(everything) == 6  # three attaches, two events each
    _, red = engine("events", "--network", "red")
    assert {e["network"] for e in red} == {"red"} and len(red) == 4
    _, h1 = engine("events", "--host", "h1")
    assert {e["host"] for e in h1} == {"h1"} and len(h1) == 4
    _, both = engine("events", "--host", "h1", "--network", "blue")
    assert [e["message"] for e in both] == [
        "1/1 applying network blue on host h1",
        "1/1 network blue were updated on host h1",
    ]
    cid = both[0]["correlation_id"]
    _, by_cid = engine("events", "--correlation-id", cid)
    assert by_cid == both
    _, last = engine("events", "--limit", "1")
    assert last == everything[-1:]
    assert engine("events", "--host", "nope") == (2, "error: no host 'nope'\n")


def test_times_carry_the_zone(engine: Engine, tmp_path: Path) -> None:
    env = {**os.environ, "TZ": "Asia/Kolkata"}  # +05:30, no summer time
    proc = subprocess.run(
        [str(BIN / "engine-client"), "events", "--db", str(engine.db)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert len(lines) == 6
    for line in lines:
        stamp = line.split(" ", 1)[0]
        assert stamp.endswith("+05:30"), line
    proc = subprocess.run(
        [str(BIN / "engine-client"), "events", "--json", "--db", str(engine.db)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert all(e["time"].endswith("+05:30") for e in json.loads(proc.stdout))


class Lines:
    """The lines a child prints, read by a thread of their own (a pipe read never blocks the
    test past its deadline)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self._queue.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def take(self, count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while len(lines) < count:
            try:
                lines.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return lines


def test_follow_prints_new_events_as_they_are_stored(engine: Engine) -> None:
    argv = [str(BIN / "engine-client"), "events", "--follow", "--json", "--network", "red",
            "--db", str(engine.db)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        old = [json.loads(line) for line in lines.take(4, timeout=60)]
        assert [e["network"] for e in old] == ["red"] * 4
        # Another command stores more events: red's are printed, blue's are not.
        assert engine("network", "update", "blue", "--mtu", "9000")[0] == 0
        code, doc = engine("network", "update", "red", "--mtu", "9000")
        assert code == 0
        new = [json.loads(line) for line in lines.take(4, timeout=60)]
        assert [e["message"] for e in new] == [e["message"] for e in doc["events"]]
        assert all(e["id"] > old[-1]["id"] for e in new)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
