"""One change of a network at a time, in the database (docs/engine-cli.md): the conflict errors
(``Conflict``, ``NetworkBusy``, ``StaleDefinition``), who holds a lease (``LeaseHolder``,
``pid_alive``) and the rule of the ``network_lease`` table (``NetworkLeaseTable``: acquire,
renew, release, who holds a network).

A command's leases and their heartbeat thread are ``engine_client/leases.py``; a network's
generation check is ``NetworkTable.update`` (``store/networks.py``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine_client.events import local_time
from engine_client.store.session import Session
from engine_client.store_backend import Held, StoreError


class Conflict(StoreError):
    """Another engine-client is changing, or has changed, what this command was about to
    change (docs/engine-cli.md "One change of a network at a time"); nothing was written."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease: a command (its correlation id), on a machine, in a process."""

    correlation_id: str
    machine: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _stamp(epoch: float) -> str:
    return local_time(epoch, "seconds")


class NetworkBusy(Conflict):
    def __init__(self, network: str, holder: str, since: float) -> None:
        super().__init__(
            f"network {network} is being changed by another engine-client "
            f"(correlation id {holder}, since {_stamp(since)})"
        )
        self.network = network
        self.holder = holder


class StaleDefinition(Conflict):
    def __init__(self, network: str, read: int, now: int) -> None:
        super().__init__(
            f"network {network} was changed by another engine-client since this command read "
            f"it (generation {read}, now {now}); nothing was written, run the command again"
        )


class NetworkLeaseTable:
    """The ``network_lease`` rows, and where the database can tell (PostgreSQL), the session
    locks next to them."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def acquire_leases(
        self,
        networks: Sequence[str],
        holder: LeaseHolder,
        ttl: float,
        *,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        """Hold every network of ``networks`` for ``ttl`` seconds, all or none: a network held
        by another live holder raises ``NetworkBusy``. A lease is live until it expires (on
        the database's clock, one clock for every engine-client sharing the database, on any
        machine); a holder on this machine whose process is gone (``alive``) holds nothing
        even before that. The rule lives in one transaction.

        Where the database can tell (PostgreSQL: a session lock per network, next to its row),
        a holder whose session is gone holds nothing at once, on any machine, and a holder
        whose session is alive holds its networks."""
        s = self._s
        with s.transaction():
            taken: list[str] = []
            try:
                for name in sorted(set(networks)):
                    held = s.db.hold_network(name)
                    if held is Held.TAKEN:
                        taken.append(name)
                        continue  # its previous holder's session has ended
                    row = s.one(
                        "SELECT holder, machine, pid, since FROM network_lease"
                        f" WHERE network = ? AND holder != ? AND expires > {s.now}",
                        (name, holder.correlation_id),
                    )
                    if row is None:
                        continue
                    if held is Held.BUSY or row["machine"] != holder.machine or alive(row["pid"]):
                        raise NetworkBusy(name, row["holder"], row["since"])
            except BaseException:
                for name in taken:
                    s.db.unhold_network(name)
                raise
            for name in sorted(set(networks)):
                s.execute(
                    "INSERT INTO network_lease (network, holder, machine, pid, since, expires)"
                    f" VALUES (?, ?, ?, ?, {s.now}, {s.now} + ?)"
                    " ON CONFLICT (network) DO UPDATE SET holder = excluded.holder,"
                    " machine = excluded.machine, pid = excluded.pid,"
                    " since = CASE WHEN network_lease.holder = excluded.holder"
                    " THEN network_lease.since ELSE excluded.since END,"
                    " expires = excluded.expires",
                    (name, holder.correlation_id, holder.machine, holder.pid, ttl),
                )

    def renew_leases(self, holder: str, ttl: float) -> int:
        """Extend the holder's unexpired leases; returns how many it still holds."""
        s = self._s
        with s.transaction():
            cur = s.execute(
                f"UPDATE network_lease SET expires = {s.now} + ? WHERE holder = ?"
                f" AND expires > {s.now}",
                (ttl, holder),
            )
            return int(cur.rowcount)

    def release_leases(self, holder: str) -> None:
        s = self._s
        with s.transaction():
            for row in s.all(
                "DELETE FROM network_lease WHERE holder = ? RETURNING network", (holder,)
            ):
                s.db.unhold_network(row["network"])

    def lease_holder(self, network: str) -> str | None:
        """Who holds ``network`` now (None: nobody, or an expired lease)."""
        row = self._s.one(
            f"SELECT holder FROM network_lease WHERE network = ? AND expires > {self._s.now}",
            (network,),
        )
        return None if row is None else str(row["holder"])
