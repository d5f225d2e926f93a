"""The store's schema: its ordered migrations (docs/store.md "Schema versions") and the code
that applies them, the same text on SQLite and PostgreSQL (``Backend.ddl`` translates the type
names)."""

from __future__ import annotations

from engine_client.store.session import Session
from engine_client.store_backend import StoreError, split_script

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


def schema_version(session: Session) -> int:
    row = session.one("SELECT version FROM schema_version")
    assert row is not None
    return int(row["version"])


def migrate(session: Session, upto: int | None = None) -> None:
    """Bring the schema to ``upto`` (default: the newest), all in one write transaction,
    so that engine-clients opening a new database at once do not both migrate it and a
    failing migration leaves the previous schema intact."""
    target = len(MIGRATIONS) if upto is None else upto
    with session.transaction():
        session.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if session.one("SELECT COUNT(*) AS n FROM schema_version")["n"] == 0:  # type: ignore[index]
            session.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = schema_version(session)
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database schema version {current} is newer than this engine-client "
                f"({len(MIGRATIONS)})"
            )
        for version in range(current, target):
            for statement in split_script(session.db.ddl(MIGRATIONS[version])):
                session.execute(statement)
            session.execute("UPDATE schema_version SET version = ?", (version + 1,))
