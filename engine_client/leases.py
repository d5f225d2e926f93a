"""One change of a network at a time (docs/engine-cli.md): a command holds a lease on every
network it
may push, from before it reads their definitions until it ends.

A lease is a row of the store with an expiry on the database's clock (``Store.acquire_leases``
keeps the rule in one transaction, so it holds between engine-clients on different machines
sharing one database). While the command runs, a heartbeat thread renews it every
``RENEW_EVERY`` seconds on a connection of its own (the command's may be inside a long
transaction, or its event loop busy); a holder killed with SIGKILL, or a machine lost,
stops renewing and its leases expire ``TTL`` seconds after the last renewal, well within the
contract's 30 s; on the machine of the holder the dead process is seen at once (the store
checks the holder's pid). A holder whose heartbeat could not renew in time (a process stopped for
longer than ``TTL``) may have lost its networks to another command: ``check`` raises before
it sends or writes anything more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Final

from engine_client.store import Conflict, LeaseHolder, Store

TTL: Final = 12.0
RENEW_EVERY: Final = 3.0


class LeaseLost(Conflict):
    def __init__(self, holder: str) -> None:
        super().__init__(
            f"the lease of correlation id {holder} expired while the command ran (was it "
            f"stopped?); another engine-client may be changing its networks: nothing more was "
            f"written or sent, check `engine-client status` and re-run"
        )


class NetworkLeases:
    """The leases of one command (``holder``: its correlation id)."""

    def __init__(
        self,
        store: Store,
        holder: str,
        *,
        open_store: Callable[[], Store],
        ttl: float = TTL,
        renew_every: float = RENEW_EVERY,
    ) -> None:
        self._store = store
        self.holder = holder
        self._open = open_store
        self._ttl = ttl
        self._renew_every = renew_every
        self._held: set[str] = set()
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_db(cls, store: Store, db: str, holder: str) -> NetworkLeases:
        return cls(store, holder, open_store=lambda: Store.open(db))

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    def acquire(self, networks: Sequence[str]) -> None:
        """Hold ``networks`` too (all or none); ``NetworkBusy`` if another holder has one."""
        wanted = set(networks) - self._held
        if not wanted:
            return
        self._store.acquire_leases(sorted(wanted | self._held), LeaseHolder(self.holder), self._ttl)
        self._held |= wanted
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._heartbeat, name="lease-heartbeat", daemon=True
            )
            self._thread.start()

    def check(self) -> None:
        if self._lost:
            raise LeaseLost(self.holder)

    def _heartbeat(self) -> None:
        store = self._open()
        try:
            while not self._stop.wait(self._renew_every):
                held = store.renew_leases(self.holder, self._ttl)
                if held < len(self._held):
                    self._lost = True
        except Exception:  # a broken store: the lease will expire, the command must stop
            self._lost = True
        finally:
            store.close()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._held:
            self._store.release_leases(self.holder)
            self._held.clear()
