"""The engine client's store behind one class (docs/files.md): SQLite (a file, the default) or
PostgreSQL (a ``postgresql://`` URL), with the same schema, migrations and guarantees.

All SQL of the engine client lives in this module, written once for both databases; what
differs between them is in ``store_backend.py`` (SQLite) and ``store_pg.py`` (PostgreSQL).
Methods take and return the typed records of ``models.py``.

The connection runs in autocommit mode: a single statement is atomic by itself, and every
multi-row change goes through ``with store.transaction():``, which nests (an inner block joins
the outer transaction).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
    IpSettings,
    LogicalNetwork,
    NicLabel,
    Rollout,
    Vm,
)
from engine_client.store_backend import (
    Backend,
    Held,
    Row,
    SqliteBackend,
    is_url,
    open_backend,
    split_script,
)
from engine_client.store_backend import StoreError as StoreError

ENV_DB = "ENGINE_CLIENT_DB"

# Ordered migrations: index i brings the schema from version i to i + 1. Never edit a shipped
# entry; append a new one. Written in SQLite's dialect, with nothing but portable SQL beyond
# its type names, which ``Backend.ddl`` translates (``INTEGER PRIMARY KEY AUTOINCREMENT``,
# ``REAL``, ``BLOB``); statements are separated by ``;``.
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
        -- Sums of CASEs, not of booleans: PostgreSQL does not add booleans.
        CONSTRAINT attachment_one_of_nic_bond_isolated CHECK (
            (CASE WHEN nic IS NOT NULL THEN 1 ELSE 0 END)
            + (CASE WHEN bond IS NOT NULL THEN 1 ELSE 0 END)
            + (CASE WHEN isolated != 0 THEN 1 ELSE 0 END) = 1)
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
    # 2: networks being removed, definition generations, leases (one change of a network at
    # a time), rollouts; an attachment's in-sync state is judged from its host's capabilities.
    """
    ALTER TABLE network ADD COLUMN removing INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE network ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE attachment DROP COLUMN in_sync;
    CREATE TABLE network_lease (
        network TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        machine TEXT NOT NULL,
        pid INTEGER NOT NULL,
        since REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX network_lease_holder ON network_lease(holder);
    CREATE TABLE rollout (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        correlation_id TEXT NOT NULL,
        network TEXT NOT NULL,
        action TEXT NOT NULL,
        started REAL NOT NULL,
        planned INTEGER NOT NULL,
        ended REAL,
        updated INTEGER,
        failed INTEGER
    );
    """,
    # The REST API's accounts (docs/rest.md): a password hash only ("scrypt$N$r$p$salt$key").
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
    # 5: the attachment's own IP settings (docs/engine-cli.md "Addresses"): none, a static
    # address ("10.0.0.5/24" or "2001:db8::5/64") with an optional gateway, or DHCP.
    """
    ALTER TABLE attachment ADD COLUMN boot_protocol TEXT NOT NULL DEFAULT 'none'
        CHECK (boot_protocol IN ('none', 'static', 'dhcp'));
    ALTER TABLE attachment ADD COLUMN ip_address TEXT;
    ALTER TABLE attachment ADD COLUMN ip_gateway TEXT;
    """,
)


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
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


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


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(ENV_DB):
        return Path(env[ENV_DB])
    return Path.home() / ".local" / "share" / "engine-client" / "engine.db"


def default_location(given: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--db`` if given, else ``$ENGINE_CLIENT_DB``, else the default file: a path or a
    ``postgresql://`` URL (kept as text: a ``Path`` would fold its ``//``)."""
    env = os.environ if environ is None else environ
    if given:
        return given
    if env.get(ENV_DB):
        return env[ENV_DB]
    return str(default_db_path(env))


def _caps(text: str | None) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text) if text else {})


def _dc(row: Row) -> DataCenter:
    return DataCenter(name=row["name"], version=row["version"])


def _host(row: Row) -> Host:
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


def _network(row: Row) -> LogicalNetwork:
    return LogicalNetwork(
        dc=row["dc"],
        name=row["name"],
        vlan=row["vlan"],
        mtu=row["mtu"],
        vm=bool(row["vm"]),
        label=row["label"],
        removing=bool(row["removing"]),
        generation=row["generation"],
    )


def _attachment(row: Row) -> Attachment:
    return Attachment(
        host=row["host"],
        network=row["network"],
        nic=row["nic"],
        bond=row["bond"],
        isolated=bool(row["isolated"]),
        via_label=row["via_label"],
        ip=IpSettings(row["boot_protocol"], row["ip_address"], row["ip_gateway"]),
        last_error=row["last_error"],
    )


def _event(row: Row) -> Event:
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

    def __init__(self, db: Backend) -> None:
        self._db = db
        self._depth = 0

    @classmethod
    def open(cls, location: str | os.PathLike[str]) -> Store:
        """Open (creating parent directories, the file and the schema) and migrate; a
        ``postgresql://`` URL opens that database (which must exist)."""
        store = cls(open_backend(location))
        try:
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_scratch(cls, location: str | os.PathLike[str]) -> Store:
        """The store as it is now, for a command that must write nothing (``--dry-run``):
        whatever it writes is thrown away. SQLite: an in-memory copy of the file (the file is
        only read, and no lock is held while the command runs). PostgreSQL: one transaction
        that every block joins and ``close`` rolls back; it takes no write lock (nothing is
        committed), so other engine-clients, their lease heartbeats included, go on."""
        if is_url(location):
            store = cls.open(location)
            store._db.execute("BEGIN")
            store._depth = 1
            return store
        store = cls(SqliteBackend.copy_of(Path(location)))
        store._migrate()
        return store

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.name

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT version FROM schema_version")
        assert row is not None
        return int(row["version"])

    def _migrate(self, upto: int | None = None) -> None:
        """Bring the schema to ``upto`` (default: the newest), all in one write transaction,
        so that engine-clients opening a new database at once do not both migrate it and a
        failing migration leaves the previous schema intact."""
        target = len(MIGRATIONS) if upto is None else upto
        with self.transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if self._one("SELECT COUNT(*) AS n FROM schema_version")["n"] == 0:  # type: ignore[index]
                self._db.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = self.schema_version
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database schema version {current} is newer than this engine-client "
                    f"({len(MIGRATIONS)})"
                )
            for version in range(current, target):
                for statement in split_script(self._db.ddl(MIGRATIONS[version])):
                    self._db.execute(statement)
                self._db.execute("UPDATE schema_version SET version = ?", (version + 1,))

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
        self._db.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        else:
            self._db.commit()
        finally:
            self._depth = 0

    def _one(self, sql: str, args: Sequence[object] = ()) -> Row | None:
        row: Row | None = self._db.execute(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        return list(self._db.execute(sql, args).fetchall())

    # -- data centers -------------------------------------------------------------------

    def add_dc(self, dc: DataCenter) -> DataCenter:
        with self.transaction():
            if self.find_dc(dc.name) is not None:
                raise StoreError(f"data center {dc.name!r} already exists")
            self._db.execute(
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
            self._db.execute("DELETE FROM data_center WHERE name = ?", (name,))

    # -- hosts --------------------------------------------------------------------------

    def add_host(self, host: Host) -> Host:
        with self.transaction():
            self.get_dc(host.dc)
            if self.find_host(host.name) is not None:
                raise StoreError(f"host {host.name!r} already exists")
            self._db.execute(
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
            self._db.execute("DELETE FROM host WHERE name = ?", (name,))

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
            self._db.execute(
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
            self._db.execute(
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
        """Replace a network's definition; ``net.name != old_name`` renames it (cascading).
        ``net.generation`` is the generation the caller read: if another command wrote the
        definition since, ``StaleDefinition`` and nothing is written. Returns the definition
        as stored (its next generation)."""
        with self.transaction():
            old = self.get_network(old_name)
            if old.generation != net.generation:
                raise StaleDefinition(old_name, net.generation, old.generation)
            if net.dc != old.dc:
                raise StoreError(f"network {old_name!r}: cannot move to another data center")
            if net.name != old_name and self.find_network(net.name) is not None:
                raise StoreError(f"network {net.name!r} already exists")
            cur = self._db.execute(
                "UPDATE network SET name = ?, vlan = ?, mtu = ?, vm = ?, label = ?,"
                " removing = ?, generation = generation + 1 WHERE name = ? AND generation = ?",
                (
                    net.name,
                    net.vlan,
                    net.mtu,
                    int(net.vm),
                    net.label,
                    int(net.removing),
                    old_name,
                    net.generation,
                ),
            )
            if cur.rowcount != 1:  # written meanwhile (the write lock makes this a last guard)
                raise StaleDefinition(old_name, net.generation, net.generation + 1)
        return replace(net, generation=net.generation + 1)

    def remove_network(self, name: str) -> None:
        with self.transaction():
            self.get_network(name)
            if self._one("SELECT 1 FROM attachment WHERE network = ?", (name,)):
                raise StoreError(f"network {name!r} is still attached to hosts")
            if self._one("SELECT 1 FROM vm_nic WHERE network = ?", (name,)):
                raise StoreError(f"network {name!r} is still used by VMs or templates")
            self._db.execute("DELETE FROM network WHERE name = ?", (name,))

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
            self._db.execute(
                "INSERT INTO attachment"
                " (host, network, nic, bond, isolated, via_label, last_error,"
                " boot_protocol, ip_address, ip_gateway)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (host, network) DO UPDATE SET nic = excluded.nic,"
                " bond = excluded.bond, isolated = excluded.isolated,"
                " via_label = excluded.via_label, last_error = excluded.last_error,"
                " boot_protocol = excluded.boot_protocol, ip_address = excluded.ip_address,"
                " ip_gateway = excluded.ip_gateway",
                (
                    att.host,
                    att.network,
                    att.nic,
                    att.bond,
                    int(att.isolated),
                    att.via_label,
                    att.last_error,
                    att.ip.method,
                    att.ip.address,
                    att.ip.gateway,
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

    def mark_attachment(self, host: str, network: str, *, last_error: str | None) -> None:
        """Record the last push's failure (None: it succeeded)."""
        with self.transaction():
            self.get_attachment(host, network)
            self._db.execute(
                "UPDATE attachment SET last_error = ? WHERE host = ? AND network = ?",
                (last_error, host, network),
            )

    def remove_attachment(self, host: str, network: str) -> None:
        with self.transaction():
            self.get_attachment(host, network)
            self._db.execute(
                "DELETE FROM attachment WHERE host = ? AND network = ?", (host, network)
            )

    # -- labels -------------------------------------------------------------------------

    def add_host_label(self, host: str, label: str) -> HostLabel:
        with self.transaction():
            self.get_host(host)
            self._db.execute(
                "INSERT INTO host_label (host, label) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (host, label),
            )
        return HostLabel(host=host, label=label)

    def remove_host_label(self, host: str, label: str) -> None:
        with self.transaction():
            cur = self._db.execute(
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
            self._db.execute(
                "INSERT INTO nic_label (host, nic, label) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (host, nic, label),
            )
        return NicLabel(host=host, nic=nic, label=label)

    def remove_nic_label(self, host: str, nic: str, label: str) -> None:
        with self.transaction():
            cur = self._db.execute(
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
            self._db.execute(
                "INSERT INTO vm (name, running, template) VALUES (?, ?, ?)",
                (vm.name, int(vm.running), int(vm.template)),
            )
            self._db.executemany(
                "INSERT INTO vm_nic (vm, network) VALUES (?, ?) ON CONFLICT DO NOTHING",
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
            self._db.execute("DELETE FROM vm WHERE name = ?", (name,))

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
        # In a write transaction: ids are committed in their order (a follower reading the
        # ids above the last it saw misses none), and followers are woken at the commit.
        with self.transaction():
            row = self._one(
                "INSERT INTO event (time, correlation_id, host, network, severity, message)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (stamp, correlation_id, host, network, severity, message),
            )
            self._db.announce_events()
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
        with self.transaction():
            self._db.executemany(
                "INSERT INTO event (time, correlation_id, host, network, severity, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (e.time, e.correlation_id, e.host, e.network, e.severity, e.message)
                    for e in events
                ],
            )
            self._db.announce_events()

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
        row = self._one("SELECT MAX(id) AS last FROM event")
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
            rows = self._all(f"SELECT * FROM event WHERE {where} ORDER BY id", args)
        else:
            rows = self._all(
                f"SELECT * FROM (SELECT * FROM event WHERE {where} ORDER BY id DESC LIMIT ?)"
                " AS recent ORDER BY id",
                (*args, limit),
            )
        return [_event(r) for r in rows]

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
        self._db.listen_events()  # before the first read: nothing stored in between is missed
        row = self._one("SELECT MAX(id) AS last FROM event")
        last = int(row["last"] or 0) if row is not None else 0  # nothing older is followed
        for event in self.list_events(
            correlation_id=correlation_id, host=host, network=network, limit=limit
        ):
            last = max(last, event.id)
            yield event
        while not stop():
            self._db.wait_events(poll)
            for event in self.list_events(
                correlation_id=correlation_id, host=host, network=network, after=last
            ):
                last = event.id
                yield event

    # -- leases: one change of a network at a time (docs/engine-cli.md) ----------------------------

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
        with self.transaction():
            taken: list[str] = []
            try:
                for name in sorted(set(networks)):
                    held = self._db.hold_network(name)
                    if held is Held.TAKEN:
                        taken.append(name)
                        continue  # its previous holder's session has ended
                    row = self._one(
                        "SELECT holder, machine, pid, since FROM network_lease"
                        f" WHERE network = ? AND holder != ? AND expires > {self._db.now}",
                        (name, holder.correlation_id),
                    )
                    if row is None:
                        continue
                    if held is Held.BUSY or row["machine"] != holder.machine or alive(row["pid"]):
                        raise NetworkBusy(name, row["holder"], row["since"])
            except BaseException:
                for name in taken:
                    self._db.unhold_network(name)
                raise
            for name in sorted(set(networks)):
                self._db.execute(
                    "INSERT INTO network_lease (network, holder, machine, pid, since, expires)"
                    f" VALUES (?, ?, ?, ?, {self._db.now}, {self._db.now} + ?)"
                    " ON CONFLICT (network) DO UPDATE SET holder = excluded.holder,"
                    " machine = excluded.machine, pid = excluded.pid,"
                    " since = CASE WHEN network_lease.holder = excluded.holder"
                    " THEN network_lease.since ELSE excluded.since END,"
                    " expires = excluded.expires",
                    (name, holder.correlation_id, holder.machine, holder.pid, ttl),
                )

    def renew_leases(self, holder: str, ttl: float) -> int:
        """Extend the holder's unexpired leases; returns how many it still holds."""
        with self.transaction():
            cur = self._db.execute(
                f"UPDATE network_lease SET expires = {self._db.now} + ? WHERE holder = ?"
                f" AND expires > {self._db.now}",
                (ttl, holder),
            )
            return int(cur.rowcount)

    def release_leases(self, holder: str) -> None:
        with self.transaction():
            for row in self._all(
                "DELETE FROM network_lease WHERE holder = ? RETURNING network", (holder,)
            ):
                self._db.unhold_network(row["network"])

    def lease_holder(self, network: str) -> str | None:
        """Who holds ``network`` now (None: nobody, or an expired lease)."""
        row = self._one(
            f"SELECT holder FROM network_lease WHERE network = ? AND expires > {self._db.now}",
            (network,),
        )
        return None if row is None else str(row["holder"])

    # -- rollouts -----------------------------------------------------------------------

    def start_rollout(self, correlation_id: str, network: str, action: str, planned: int) -> int:
        row = self._one(
            "INSERT INTO rollout (correlation_id, network, action, started, planned)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (correlation_id, network, action, time.time(), planned),
        )
        assert row is not None
        return int(row["id"])

    def end_rollout(self, rollout_id: int, *, updated: int, failed: int) -> None:
        self._db.execute(
            "UPDATE rollout SET ended = ?, updated = ?, failed = ? WHERE id = ?",
            (time.time(), updated, failed, rollout_id),
        )

    def list_rollouts(self, *, limit: int = 10) -> list[Rollout]:
        rows = self._all(
            "SELECT * FROM (SELECT * FROM rollout ORDER BY id DESC LIMIT ?) AS recent ORDER BY id",
            (limit,),
        )
        return [
            Rollout(
                id=r["id"],
                correlation_id=r["correlation_id"],
                network=r["network"],
                action=r["action"],
                started=r["started"],
                planned=r["planned"],
                ended=r["ended"],
                updated=r["updated"],
                failed=r["failed"],
            )
            for r in rows
        ]

    # -- REST API users -----------------------------------------------------------------

    def add_user(self, name: str, password_hash: str) -> ApiUser:
        user = ApiUser(name=name, password_hash=password_hash, created=time.time())
        with self.transaction():
            if self.find_user(name) is not None:
                raise StoreError(f"user {name!r} already exists")
            self._db.execute(
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
            if self._db.execute("DELETE FROM api_user WHERE name = ?", (name,)).rowcount == 0:
                raise StoreError(f"no user {name!r}")
