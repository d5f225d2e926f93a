"""The batched event sink: events stored in order, one transaction per batch, flushed when the
batch is full, old enough, or asked to; nothing lost when a write fails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from engine_client.events import EventBuffer, PendingEvent
from engine_client.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_flushes_in_order_when_full_and_on_flush(tmp_path: Path) -> None:
    with Store.open(tmp_path / "e.db") as store:
        batches: list[int] = []

        def write(batch: Sequence[PendingEvent]) -> None:
            batches.append(len(batch))
            store.add_events(batch)

        buf = EventBuffer(write, max_events=3, max_age=60, clock=Clock())
        for i in range(7):
            buf.emit(f"e{i}", correlation_id="c", host=f"h{i}", severity="info")
        assert batches == [3, 3] and len(buf) == 1
        assert [e.message for e in store.list_events()] == ["e0", "e1", "e2", "e3", "e4", "e5"]
        buf.flush()
        buf.flush()  # nothing left: no empty transaction
        assert batches == [3, 3, 1]
        events = store.list_events(correlation_id="c")
        assert [e.message for e in events] == [f"e{i}" for i in range(7)]
        assert [e.host for e in events] == [f"h{i}" for i in range(7)]
        assert [e.id for e in events] == sorted(e.id for e in events)


def test_flushes_when_the_oldest_is_old_enough() -> None:
    clock = Clock()
    written: list[str] = []
    buf = EventBuffer(lambda b: written.extend(e.message for e in b), max_age=0.1, clock=clock)
    buf.emit("a", correlation_id="c")
    clock.now = 0.05
    buf.emit("b", correlation_id="c")
    buf.tick()
    assert written == []
    clock.now = 0.1
    buf.tick()
    assert written == ["a", "b"]
    buf.emit("c", correlation_id="c")  # a new batch: its age starts now
    assert written == ["a", "b"]
    clock.now = 0.2
    buf.emit("d", correlation_id="c", severity="error")
    assert written == ["a", "b", "c", "d"]


def test_a_failed_write_keeps_the_events() -> None:
    written: list[str] = []
    fail = [True]

    def write(batch: Sequence[PendingEvent]) -> None:
        if fail[0]:
            raise OSError("disk full")
        written.extend(e.message for e in batch)

    buf = EventBuffer(write, max_events=100, clock=Clock())
    buf.emit("a", correlation_id="c")
    with pytest.raises(OSError):
        buf.flush()
    buf.emit("b", correlation_id="c")
    fail[0] = False
    buf.flush()
    assert written == ["a", "b"]
