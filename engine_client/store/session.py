"""One connection to the store's database (a ``store_backend.Backend``) and its transactions,
shared by every repository of the package.

The connection runs in autocommit mode: a single statement is atomic by itself, and every
multi-row change goes through ``with session.transaction():``, which nests (an inner block joins
the outer transaction).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from engine_client.store_backend import Backend, Cursor, Row


class Session:
    def __init__(self, db: Backend) -> None:
        self.db = db
        self._depth = 0

    @property
    def now(self) -> str:
        """SQL: the database's clock, epoch seconds."""
        return self.db.now

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block; nested blocks join the outermost one. The write lock is taken
        at its start (no other writer between its reads and its writes)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        else:
            self.db.commit()
        finally:
            self._depth = 0

    def begin_discarded(self) -> None:
        """Open a transaction that every later block joins and that is never committed: the
        server drops it when the connection closes (``Store.open_scratch`` on PostgreSQL). It
        takes no write lock."""
        self.db.execute("BEGIN")
        self._depth = 1

    def execute(self, sql: str, args: Sequence[object] = ()) -> Cursor:
        return self.db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self.db.executemany(sql, rows)

    def one(self, sql: str, args: Sequence[object] = ()) -> Row | None:
        row: Row | None = self.db.execute(sql, args).fetchone()
        return row

    def all(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        return list(self.db.execute(sql, args).fetchall())
