"""The event log (the ``event`` table): events stored one by one or in batches, listed with
filters, and followed as any engine-client stores them (``events --follow``).

Buffering events before they are stored, and their JSON form, is ``engine_client/events.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from engine_client.events import PendingEvent
from engine_client.models import Event
from engine_client.store import rows
from engine_client.store.session import Session


class EventLog:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_event(
        self,
        message: str,
        *,
        correlation_id: str | None,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
        when: float | None = None,
    ) -> Event:
        stamp = time.time() if when is None else when
        # In a write transaction: ids are committed in their order (a follower reading the
        # ids above the last it saw misses none), and followers are woken at the commit.
        with self._s.transaction():
            row = self._s.one(
                "INSERT INTO event (time, correlation_id, host, network, severity, message)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (stamp, correlation_id, host, network, severity, message),
            )
            self._s.db.announce_events()
        assert row is not None
        return Event(
            id=int(row["id"]),
            time=stamp,
            correlation_id=correlation_id,
            host=host,
            severity=severity,
            message=message,
            network=network,
        )

    def add_events(self, events: Sequence[PendingEvent]) -> None:
        """Store a batch of events, in order, in one transaction (one fsync)."""
        with self._s.transaction():
            self._s.executemany(
                "INSERT INTO event (time, correlation_id, host, network, severity, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (e.time, e.correlation_id, e.host, e.network, e.severity, e.message)
                    for e in events
                ],
            )
            self._s.db.announce_events()

    def last_event_id(self) -> int:
        row = self._s.one("SELECT MAX(id) AS last FROM event")
        return int(row["last"] or 0) if row is not None else 0

    def list_events(
        self,
        *,
        correlation_id: str | None = None,
        host: str | None = None,
        network: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """Oldest first: the last ``limit`` events (all by default) with an id above
        ``after`` that match every filter given."""
        where = (
            "id > ? AND (? IS NULL OR correlation_id = ?) AND (? IS NULL OR host = ?)"
            " AND (? IS NULL OR network = ?)"
        )
        args: tuple[object, ...] = (after, correlation_id, correlation_id, host, host, network,
                                    network)
        if limit is None:
            found = self._s.all(f"SELECT * FROM event WHERE {where} ORDER BY id", args)
        else:
            found = self._s.all(
                f"SELECT * FROM (SELECT * FROM event WHERE {where} ORDER BY id DESC LIMIT ?)"
                " AS recent ORDER BY id",
                (*args, limit),
            )
        return [rows.event(r) for r in found]

    def follow_events(
        self,
        *,
        correlation_id: str | None = None,
        host: str | None = None,
        network: str | None = None,
        limit: int | None = None,
        poll: float = 0.5,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterable[Event]:
        """The last ``limit`` events (all: None), then every event stored after, by any
        process, as it comes (``events --follow``), until ``stop()``. PostgreSQL wakes the
        follower at each commit of events (LISTEN/NOTIFY); SQLite is polled every ``poll``
        seconds."""
        self._s.db.listen_events()  # before the first read: nothing stored in between is missed
        last = self.last_event_id()  # nothing older is followed
        for event in self.list_events(
            correlation_id=correlation_id, host=host, network=network, limit=limit
        ):
            last = max(last, event.id)
            yield event
        while not stop():
            self._s.db.wait_events(poll)
            for event in self.list_events(
                correlation_id=correlation_id, host=host, network=network, after=last
            ):
                last = event.id
                yield event
