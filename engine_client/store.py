"""The engine client's store: SQLite behind one class (SPEC §2.1).

All SQL of the engine client lives in this module, so that another database could be put
behind the same methods. Methods take and return the typed records of ``models.py``.

The connection runs in autocommit mode (``isolation_level=None``): a single statement is atomic
by itself, and every multi-row change goes through ``with store.transaction():``, which nests
(an inner block joins the outer transaction).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine_client.events import PendingEvent
from engine_client.models import (
    ApiUser,
    Attachment,
    DataCenter,
    Event,
    Host,
    HostLabel,
    LogicalNetwork,
    NicLabel,
    Vm,
)

ENV_DB = "ENGINE_CLIENT_DB"

# Ordered migrations: index i brings the schema from version i to i + 1. Never edit a shipped
# entry; append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE data_center (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL
    );
    CREATE TABLE host (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        dc TEXT NOT NULL REFERENCES data_center(name) ON UPDATE CASCADE,
        cert TEXT,
        key TEXT,
        ca TEXT,
        caps TEXT,
        caps_time REAL,
        agent_version TEXT
    );
    CREATE TABLE network (
        name TEXT PRIMARY KEY,
        dc TEXT NOT NULL REFERENCES data_center(name) ON UPDATE CASCADE,
        vlan INTEGER,
        mtu INTEGER NOT NULL,
        vm INTEGER NOT NULL,
        label TEXT
    );
    CREATE TABLE attachment (
        host TEXT NOT NULL REFERENCES host(name) ON DELETE CASCADE ON UPDATE CASCADE,
        network TEXT NOT NULL REFERENCES network(name) ON UPDATE CASCADE,
        nic TEXT,
        bond TEXT,
        isolated INTEGER NOT NULL DEFAULT 0,
        via_label TEXT,
        in_sync INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (host, network),
        CHECK ((nic IS NOT NULL) + (bond IS NOT NULL) + (isolated != 0) = 1)
    );
    CREATE TABLE host_label (
        host TEXT NOT NULL REFERENCES host(name) ON DELETE CASCADE ON UPDATE CASCADE,
        label TEXT NOT NULL,
        PRIMARY KEY (host, label)
    );
    CREATE TABLE nic_label (
        host TEXT NOT NULL REFERENCES host(name) ON DELETE CASCADE ON UPDATE CASCADE,
        nic TEXT NOT NULL,
        label TEXT NOT NULL,
        PRIMARY KEY (host, nic, label)
    );
    CREATE TABLE vm (
        name TEXT PRIMARY KEY,
        running INTEGER NOT NULL DEFAULT 0,
        template INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE vm_nic (
        vm TEXT NOT NULL REFERENCES vm(name) ON DELETE CASCADE ON UPDATE CASCADE,
        network TEXT NOT NULL REFERENCES network(name) ON UPDATE CASCADE,
        PRIMARY KEY (vm, network)
    );
    CREATE TABLE event (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        correlation_id TEXT,
        host TEXT,
        severity TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX event_correlation ON event(correlation_id);
    CREATE INDEX attachment_network ON attachment(network);
    CREATE INDEX network_label ON network(label);
    """,
    # The REST API's accounts (SPEC §2.6): a password hash only ("scrypt$N$r$p$salt$key").
    """
    CREATE TABLE api_user (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created REAL NOT NULL
    );
    """,
    # The network an event is about, for ``events --network``.
    """
    ALTER TABLE event ADD COLUMN network TEXT;
    CREATE INDEX event_network ON event(network);
    """,
)


class StoreError(Exception):
    """A missing or duplicate record; the message names it."""


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(ENV_DB):
        return Path(env[ENV_DB])
    return Path.home() / ".local" / "share" / "engine-client" / "engine.db"


def _caps(text: str | None) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text) if text else {})


def _dc(row: sqlite3.Row) -> DataCenter:
    return DataCenter(name=row["name"], version=row["version"])


def _host(row: sqlite3.Row) -> Host:
    return Host(
        name=row["name"],
        url=row["url"],
        dc=row["dc"],
        cert=row["cert"],
        key=row["key"],
        ca=row["ca"],
        caps=_caps(row["caps"]),
        caps_time=row["caps_time"],
        agent_version=row["agent_version"],
    )


def _network(row: sqlite3.Row) -> LogicalNetwork:
    return LogicalNetwork(
        dc=row["dc"],
        name=row["name"],
        vlan=row["vlan"],
        mtu=row["mtu"],
        vm=bool(row["vm"]),
        label=row["label"],
    )


def _attachment(row: sqlite3.Row) -> Attachment:
    return Attachment(
        host=row["host"],
        network=row["network"],
        nic=row["nic"],
        bond=row["bond"],
        isolated=bool(row["isolated"]),
        via_label=row["via_label"],
        in_sync=bool(row["in_sync"]),
        last_error=row["last_error"],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        time=row["time"],
        correlation_id=row["correlation_id"],
        host=row["host"],
        severity=row["severity"],
        message=row["message"],
        network=row["network"],
    )


class Store:
    """The engine client's records. Also an ``EventSink`` (``emit`` stores one event)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._depth = 0

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        """Open (creating parent directories, the file and the schema) and migrate."""
        target = Path(path)
        if str(target) != ":memory:":
            target.parent.mkdir(parents=True, exist_ok=True)
        # timeout: several engine-client processes may share one file; wait for the writer.
        conn = sqlite3.connect(str(target), timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # Foreign keys are per connection in SQLite, off by default.
        conn.execute("PRAGMA foreign_keys = ON")
        store = cls(conn)
        store._migrate()
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row["version"])

    def _migrate(self) -> None:
        self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        with self.transaction():
            if self._conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                self._conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database schema version {current} is newer than this engine-client "
                f"({len(MIGRATIONS)})"
            )
        for version in range(current, len(MIGRATIONS)):
            # executescript runs its own statements; the transaction is in the script so that a
            # failing migration leaves the previous schema intact.
            script = (
                "BEGIN IMMEDIATE;\n"
                f"{MIGRATIONS[version]}\n"
                f"UPDATE schema_version SET version = {version + 1};\n"
                "COMMIT;"
            )
            try:
                self._conn.executescript(script)
            except sqlite3.Error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block; nested blocks join the outermost one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        # IMMEDIATE: take the write lock now, so that a read-then-write block never fails
        # half-way with SQLITE_BUSY when another process writes meanwhile.
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def _one(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        return list(self._conn.execute(sql, args).fetchall())

    # -- data centers -------------------------------------------------------------------

    def add_dc(self, dc: DataCenter) -> DataCenter:
        with self.transaction():
            if self.find_dc(dc.name) is not None:
                raise StoreError(f"data center {dc.name!r} already exists")
            self._conn.execute(
                "INSERT INTO data_center (name, version) VALUES (?, ?)", (dc.name, dc.version)
            )
        return dc

    def find_dc(self, name: str) -> DataCenter | None:
        row = self._one("SELECT * FROM data_center WHERE name = ?", (name,))
        return None if row is None else _dc(row)

    def get_dc(self, name: str) -> DataCenter:
        dc = self.find_dc(name)
        if dc is None:
            raise StoreError(f"no data center {name!r}")
        return dc

    def list_dcs(self) -> list[DataCenter]:
        return [_dc(r) for r in self._all("SELECT * FROM data_center ORDER BY name")]

    def remove_dc(self, name: str) -> None:
        with self.transaction():
            self.get_dc(name)
            if self._one(
                "SELECT 1 FROM host WHERE dc = ? UNION SELECT 1 FROM network WHERE dc = ?",
                (name, name),
            ):
                raise StoreError(f"data center {name!r} still has hosts or networks")
            self._conn.execute("DELETE FROM data_center WHERE name = ?", (name,))

    # -- hosts --------------------------------------------------------------------------

    def add_host(self, host: Host) -> Host:
        with self.transaction():
            self.get_dc(host.dc)
            if self.find_host(host.name) is not None:
                raise StoreError(f"host {host.name!r} already exists")
            self._conn.execute(
                "INSERT INTO host (name, url, dc, cert, key, ca, caps, caps_time, agent_version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    host.name,
                    host.url,
                    host.dc,
                    host.cert,
                    host.key,
                    host.ca,
                    json.dumps(dict(host.caps)) if host.caps else None,
                    host.caps_time,
                    host.agent_version,
                ),
            )
        return host

    def find_host(self, name: str) -> Host | None:
        row = self._one("SELECT * FROM host WHERE name = ?", (name,))
        return None if row is None else _host(row)

    def get_host(self, name: str) -> Host:
        host = self.find_host(name)
        if host is None:
            raise StoreError(f"no host {name!r}")
        return host

    def list_hosts(self, dc: str | None = None) -> list[Host]:
        if dc is None:
            rows = self._all("SELECT * FROM host ORDER BY name")
        else:
            rows = self._all("SELECT * FROM host WHERE dc = ? ORDER BY name", (dc,))
        return [_host(r) for r in rows]

    def remove_host(self, name: str) -> None:
        """Removes the host with its attachments and labels (the hosts' kernels are untouched)."""
        with self.transaction():
            self.get_host(name)
            self._conn.execute("DELETE FROM host WHERE name = ?", (name,))

    def set_host_caps(
        self,
        name: str,
        caps: Mapping[str, Any],
        *,
        agent_version: str | None,
        when: float | None = None,
    ) -> None:
        with self.transaction():
            self.get_host(name)
            self._conn.execute(
                "UPDATE host SET caps = ?, caps_time = ?, agent_version = ? WHERE name = ?",
                (
                    json.dumps(dict(caps)),
                    time.time() if when is None else when,
                    agent_version,
                    name,
                ),
            )

    # -- logical networks ---------------------------------------------------------------

    def add_network(self, net: LogicalNetwork) -> LogicalNetwork:
        with self.transaction():
            self.get_dc(net.dc)
            if self.find_network(net.name) is not None:
                raise StoreError(f"network {net.name!r} already exists")
            self._conn.execute(
                "INSERT INTO network (name, dc, vlan, mtu, vm, label) VALUES (?, ?, ?, ?, ?, ?)",
                (net.name, net.dc, net.vlan, net.mtu, int(net.vm), net.label),
            )
        return net

    def find_network(self, name: str) -> LogicalNetwork | None:
        row = self._one("SELECT * FROM network WHERE name = ?", (name,))
        return None if row is None else _network(row)

    def get_network(self, name: str) -> LogicalNetwork:
        net = self.find_network(name)
        if net is None:
            raise StoreError(f"no network {name!r}")
        return net

    def list_networks(
        self, *, dc: str | None = None, label: str | None = None
    ) -> list[LogicalNetwork]:
        rows = self._all(
            "SELECT * FROM network WHERE (? IS NULL OR dc = ?) AND (? IS NULL OR label = ?)"
            " ORDER BY name",
            (dc, dc, label, label),
        )
        return [_network(r) for r in rows]

    def update_network(self, old_name: str, net: LogicalNetwork) -> LogicalNetwork:
        """Replace a network's definition; ``net.name != old_name`` renames it (cascading)."""
        with self.transaction():
            old = self.get_network(old_name)
            if net.dc != old.dc:
                raise StoreError(f"network {old_name!r}: cannot move to another data center")
            if net.name != old_name and self.find_network(net.name) is not None:
                raise StoreError(f"network {net.name!r} already exists")
            self._conn.execute(
                "UPDATE network SET name = ?, vlan = ?, mtu = ?, vm = ?, label = ? WHERE name = ?",
                (net.name, net.vlan, net.mtu, int(net.vm), net.label, old_name),
            )
        return net

    def remove_network(self, name: str) -> None:
        with self.transaction():
            self.get_network(name)
            if self._one("SELECT 1 FROM attachment WHERE network = ?", (name,)):
                raise StoreError(f"network {name!r} is still attached to hosts")
            if self._one("SELECT 1 FROM vm_nic WHERE network = ?", (name,)):
                raise StoreError(f"network {name!r} is still used by VMs or templates")
            self._conn.execute("DELETE FROM network WHERE name = ?", (name,))

    # -- attachments --------------------------------------------------------------------

    def set_attachment(self, att: Attachment) -> Attachment:
        """Insert or replace the attachment of ``att.network`` on ``att.host``."""
        with self.transaction():
            host = self.get_host(att.host)
            net = self.get_network(att.network)
            if host.dc != net.dc:
                raise StoreError(
                    f"network {net.name!r} (data center {net.dc!r}) cannot be attached to host "
                    f"{host.name!r} (data center {host.dc!r})"
                )
            self._conn.execute(
                "INSERT OR REPLACE INTO attachment"
                " (host, network, nic, bond, isolated, via_label, in_sync, last_error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    att.host,
                    att.network,
                    att.nic,
                    att.bond,
                    int(att.isolated),
                    att.via_label,
                    int(att.in_sync),
                    att.last_error,
                ),
            )
        return att

    def find_attachment(self, host: str, network: str) -> Attachment | None:
        row = self._one("SELECT * FROM attachment WHERE host = ? AND network = ?", (host, network))
        return None if row is None else _attachment(row)

    def get_attachment(self, host: str, network: str) -> Attachment:
        att = self.find_attachment(host, network)
        if att is None:
            raise StoreError(f"network {network!r} is not attached to host {host!r}")
        return att

    def list_attachments(
        self, *, host: str | None = None, network: str | None = None
    ) -> list[Attachment]:
        rows = self._all(
            "SELECT * FROM attachment WHERE (? IS NULL OR host = ?) AND (? IS NULL OR network = ?)"
            " ORDER BY network, host",
            (host, host, network, network),
        )
        return [_attachment(r) for r in rows]

    def mark_attachment(
        self, host: str, network: str, *, in_sync: bool, last_error: str | None = None
    ) -> None:
        with self.transaction():
            self.get_attachment(host, network)
            self._conn.execute(
                "UPDATE attachment SET in_sync = ?, last_error = ? WHERE host = ? AND network = ?",
                (int(in_sync), last_error, host, network),
            )

    def remove_attachment(self, host: str, network: str) -> None:
        with self.transaction():
            self.get_attachment(host, network)
            self._conn.execute(
                "DELETE FROM attachment WHERE host = ? AND network = ?", (host, network)
            )

    # -- labels -------------------------------------------------------------------------

    def add_host_label(self, host: str, label: str) -> HostLabel:
        with self.transaction():
            self.get_host(host)
            self._conn.execute(
                "INSERT OR IGNORE INTO host_label (host, label) VALUES (?, ?)", (host, label)
            )
        return HostLabel(host=host, label=label)

    def remove_host_label(self, host: str, label: str) -> None:
        with self.transaction():
            cur = self._conn.execute(
                "DELETE FROM host_label WHERE host = ? AND label = ?", (host, label)
            )
            if cur.rowcount == 0:
                raise StoreError(f"host {host!r} has no label {label!r}")

    def list_host_labels(
        self, *, host: str | None = None, label: str | None = None
    ) -> list[HostLabel]:
        rows = self._all(
            "SELECT * FROM host_label WHERE (? IS NULL OR host = ?) AND (? IS NULL OR label = ?)"
            " ORDER BY host, label",
            (host, host, label, label),
        )
        return [HostLabel(host=r["host"], label=r["label"]) for r in rows]

    def add_nic_label(self, host: str, nic: str, label: str) -> NicLabel:
        with self.transaction():
            self.get_host(host)
            self._conn.execute(
                "INSERT OR IGNORE INTO nic_label (host, nic, label) VALUES (?, ?, ?)",
                (host, nic, label),
            )
        return NicLabel(host=host, nic=nic, label=label)

    def remove_nic_label(self, host: str, nic: str, label: str) -> None:
        with self.transaction():
            cur = self._conn.execute(
                "DELETE FROM nic_label WHERE host = ? AND nic = ? AND label = ?",
                (host, nic, label),
            )
            if cur.rowcount == 0:
                raise StoreError(f"nic {nic!r} of host {host!r} has no label {label!r}")

    def list_nic_labels(
        self, *, host: str | None = None, label: str | None = None
    ) -> list[NicLabel]:
        rows = self._all(
            "SELECT * FROM nic_label WHERE (? IS NULL OR host = ?) AND (? IS NULL OR label = ?)"
            " ORDER BY host, nic, label",
            (host, host, label, label),
        )
        return [NicLabel(host=r["host"], nic=r["nic"], label=r["label"]) for r in rows]

    # -- VMs and templates --------------------------------------------------------------

    def add_vm(self, vm: Vm) -> Vm:
        with self.transaction():
            if self.find_vm(vm.name) is not None:
                raise StoreError(f"vm {vm.name!r} already exists")
            for net in vm.networks:
                self.get_network(net)
            self._conn.execute(
                "INSERT INTO vm (name, running, template) VALUES (?, ?, ?)",
                (vm.name, int(vm.running), int(vm.template)),
            )
            self._conn.executemany(
                "INSERT OR IGNORE INTO vm_nic (vm, network) VALUES (?, ?)",
                [(vm.name, net) for net in vm.networks],
            )
        return vm

    def find_vm(self, name: str) -> Vm | None:
        row = self._one("SELECT * FROM vm WHERE name = ?", (name,))
        if row is None:
            return None
        nets = self._all("SELECT network FROM vm_nic WHERE vm = ? ORDER BY network", (name,))
        return Vm(
            name=row["name"],
            running=bool(row["running"]),
            template=bool(row["template"]),
            networks=tuple(r["network"] for r in nets),
        )

    def list_vms(self, *, network: str | None = None) -> list[Vm]:
        rows = self._all(
            "SELECT DISTINCT vm.name FROM vm LEFT JOIN vm_nic ON vm_nic.vm = vm.name"
            " WHERE (? IS NULL OR vm_nic.network = ?) ORDER BY vm.name",
            (network, network),
        )
        return [vm for r in rows if (vm := self.find_vm(r["name"])) is not None]

    def remove_vm(self, name: str) -> None:
        with self.transaction():
            if self.find_vm(name) is None:
                raise StoreError(f"no vm {name!r}")
            self._conn.execute("DELETE FROM vm WHERE name = ?", (name,))

    # -- events -------------------------------------------------------------------------

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
        cur = self._conn.execute(
            "INSERT INTO event (time, correlation_id, host, network, severity, message)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (stamp, correlation_id, host, network, severity, message),
        )
        return Event(
            id=int(cur.lastrowid or 0),
            time=stamp,
            correlation_id=correlation_id,
            host=host,
            severity=severity,
            message=message,
            network=network,
        )

    def add_events(self, events: Sequence[PendingEvent]) -> None:
        """Store a batch of events, in order, in one transaction (one fsync)."""
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO event (time, correlation_id, host, network, severity, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (e.time, e.correlation_id, e.host, e.network, e.severity, e.message)
                    for e in events
                ],
            )

    def emit(
        self,
        message: str,
        *,
        correlation_id: str,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
    ) -> None:
        self.add_event(
            message, correlation_id=correlation_id, host=host, network=network, severity=severity
        )

    def last_event_id(self) -> int:
        row = self._conn.execute("SELECT MAX(id) FROM event").fetchone()
        return int(row[0] or 0)

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
        rows = self._all(
            "SELECT * FROM (SELECT * FROM event WHERE id > ?"
            " AND (? IS NULL OR correlation_id = ?) AND (? IS NULL OR host = ?)"
            " AND (? IS NULL OR network = ?)"
            " ORDER BY id DESC LIMIT ?) ORDER BY id",
            (
                after,
                correlation_id,
                correlation_id,
                host,
                host,
                network,
                network,
                -1 if limit is None else limit,
            ),
        )
        return [_event(r) for r in rows]

    # -- REST API users -----------------------------------------------------------------

    def add_user(self, name: str, password_hash: str) -> ApiUser:
        user = ApiUser(name=name, password_hash=password_hash, created=time.time())
        with self.transaction():
            if self.find_user(name) is not None:
                raise StoreError(f"user {name!r} already exists")
            self._conn.execute(
                "INSERT INTO api_user (name, password_hash, created) VALUES (?, ?, ?)",
                (user.name, user.password_hash, user.created),
            )
        return user

    def find_user(self, name: str) -> ApiUser | None:
        row = self._one("SELECT * FROM api_user WHERE name = ?", (name,))
        if row is None:
            return None
        return ApiUser(name=row["name"], password_hash=row["password_hash"], created=row["created"])

    def list_users(self) -> list[ApiUser]:
        rows = self._all("SELECT * FROM api_user ORDER BY name")
        return [ApiUser(r["name"], r["password_hash"], r["created"]) for r in rows]

    def remove_user(self, name: str) -> None:
        with self.transaction():
            if self._conn.execute("DELETE FROM api_user WHERE name = ?", (name,)).rowcount == 0:
                raise StoreError(f"no user {name!r}")
