"""Events written in batches: an ``EventSink`` that keeps events in memory and stores them in
one transaction per batch.

Each SQLite commit is an fsync (~1 ms on this machine's disk, more on a busy one), taken on
the event loop's thread: a rollout to 500 hosts emits 1000 events, and one commit each cost a
second of wall time and delayed every other host's pending answer. The buffer is flushed when
it holds ``max_events``, when its oldest event is ``max_age`` seconds old (checked on every
emit and by the rollout's periodic ``tick``), and by ``flush()`` before a command records its
outcome and exits, so the events are stored, in emission order (their ids), before the
command ends. An ``engine-client`` killed mid-rollout loses at most the last ``max_age``
seconds of events; the printed lines (stderr) are not delayed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

MAX_EVENTS: Final = 500
MAX_AGE: Final = 0.1


@dataclass(frozen=True)
class PendingEvent:
    time: float
    correlation_id: str | None
    host: str | None
    severity: str
    message: str
    network: str | None = None


class EventLike(Protocol):
    @property
    def time(self) -> float: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def host(self) -> str | None: ...
    @property
    def network(self) -> str | None: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...


def local_time(stamp: float, timespec: str = "milliseconds") -> str:
    """ISO 8601 in the local zone, with its offset: ``2026-05-01T10:00:00.123+02:00`` (every
    time the engine client prints; ``timespec="seconds"`` where milliseconds are noise)."""
    return dt.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec=timespec)


def event_json(event: EventLike) -> dict[str, Any]:
    """An event as JSON output carries it (the command's ``events``, ``events --json``)."""
    return {
        "time": local_time(event.time),
        "correlation_id": event.correlation_id,
        "host": event.host,
        "network": event.network,
        "severity": event.severity,
        "message": event.message,
    }


class EventBuffer:
    """``emit`` queues; ``write`` (one call per batch, one transaction) stores."""

    def __init__(
        self,
        write: Callable[[Sequence[PendingEvent]], None],
        *,
        max_events: int = MAX_EVENTS,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._max_events = max_events
        self._max_age = max_age
        self._clock = clock
        self._pending: list[PendingEvent] = []
        self._oldest = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def emit(
        self,
        message: str,
        *,
        correlation_id: str,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
    ) -> PendingEvent:
        if not self._pending:
            self._oldest = self._clock()
        event = PendingEvent(time.time(), correlation_id, host, severity, message, network)
        self._pending.append(event)
        self.tick()
        return event

    def tick(self) -> None:
        """Flush if the batch is full or old enough."""
        if self._pending and (
            len(self._pending) >= self._max_events or self._clock() - self._oldest >= self._max_age
        ):
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self._write(batch)
        except BaseException:
            # Not stored: keep them (in order) for the next flush rather than lose them.
            self._pending = batch + self._pending
            raise
