"""The database under the store (docs/files.md): SQLite, the embedded default, or PostgreSQL when
the location is a ``postgresql://`` URL.

The store (the ``engine_client/store/`` package) writes one SQL for both: portable statements
(``INSERT ... ON CONFLICT``, ``RETURNING``), ``?`` placeholders, and SQLite's type names in its
migrations. What differs is here and in ``store_pg.py``, in one place each: the DDL's type names
(``Backend.ddl``), the placeholders, the database's clock, how a write transaction is
serialized, how a network is held by a live session, and how a new event is announced to
followers.

The PostgreSQL module (and psycopg) is imported only when a URL asks for it: an SQLite user's
``engine-client`` starts as fast as before.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

Row = Mapping[str, Any]

POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


class StoreError(Exception):
    """A missing or duplicate record, or a store that cannot be opened; the message names it."""


class IntegrityError(StoreError):
    """A constraint of the schema refused a write."""


class Held(enum.Enum):
    """What the database itself knows of who holds a network (``Backend.hold_network``)."""

    UNKNOWN = "unknown"  # nothing (SQLite): the lease rows alone decide
    TAKEN = "taken"  # it was free: any earlier holder's session is gone, its lease is void
    OURS = "ours"  # this session held it already (maybe for another command): the rows decide
    BUSY = "busy"  # another live session holds it


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Backend(Protocol):
    """One connection to the store's database, in autocommit mode outside ``begin``."""

    name: str
    now: str  # SQL: the database's clock, epoch seconds

    def ddl(self, sql: str) -> str: ...

    def execute(self, sql: str, args: Sequence[object] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    def begin(self) -> None:
        """Start a write transaction, serialized against every other writer's."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def hold_network(self, name: str) -> Held: ...

    def unhold_network(self, name: str) -> None: ...

    def announce_events(self) -> None:
        """Inside the transaction that stored events: wake the followers at its commit."""

    def listen_events(self) -> None:
        """From now on, ``wait_events`` returns early when another process stores events."""

    def wait_events(self, timeout: float) -> None: ...


def is_url(location: str | os.PathLike[str]) -> bool:
    return str(location).startswith(POSTGRESQL_SCHEMES)


def open_backend(location: str | os.PathLike[str]) -> Backend:
    if is_url(location):
        from engine_client import store_pg  # psycopg: loaded only for a URL

        return store_pg.connect(str(location))
    return SqliteBackend.connect(Path(location))


def split_script(sql: str) -> list[str]:
    """A migration's statements (none of them has a ``;`` inside)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


class SqliteBackend:
    name = "sqlite"
    # The database's clock, in epoch seconds: leases are judged by one clock for every
    # engine-client sharing the store.
    now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def connect(cls, target: Path) -> SqliteBackend:
        if str(target) != ":memory:":
            target.parent.mkdir(parents=True, exist_ok=True)
        # timeout: several engine-client processes may share one file; wait for the writer.
        return cls._set_up(sqlite3.connect(str(target), timeout=30, isolation_level=None))

    @classmethod
    def copy_of(cls, target: Path) -> SqliteBackend:
        """An in-memory copy of the file as it is now (nothing if it does not exist): what a
        dry run writes lands in the copy. The file is only read (``mode=ro``: not even a
        journal), so it stays byte for byte as it was."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        if target.exists():
            source = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                source.backup(conn)
            finally:
                source.close()
        return cls._set_up(conn)

    @classmethod
    def _set_up(cls, conn: sqlite3.Connection) -> SqliteBackend:
        """The backend on ``conn`` (opened in autocommit mode), its rows by column name."""
        conn.row_factory = sqlite3.Row
        # Foreign keys are per connection in SQLite, off by default.
        conn.execute("PRAGMA foreign_keys = ON")
        return cls(conn)

    def ddl(self, sql: str) -> str:
        return sql

    def execute(self, sql: str, args: Sequence[object] = ()) -> Cursor:
        try:
            return self._conn.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def begin(self) -> None:
        # IMMEDIATE: take the write lock now, so that a read-then-write block never fails
        # half-way with SQLITE_BUSY when another process writes meanwhile.
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()

    def hold_network(self, name: str) -> Held:
        return Held.UNKNOWN

    def unhold_network(self, name: str) -> None:
        pass

    def announce_events(self) -> None:
        pass

    def listen_events(self) -> None:
        pass

    def wait_events(self, timeout: float) -> None:
        # SQLite has no notifications between processes: followers poll.
        time.sleep(timeout)
