"""A real PostgreSQL server for the tests (Debian's postgresql 15), started once per session.

The server refuses to run as root: ``initdb`` and ``pg_ctl`` run as the ``postgres`` account,
in a directory of their own under /tmp (data and socket; /run inside User-Mode Linux), listening
on that Unix socket only.
The tests connect as the role ``engine`` with a password (scram-sha-256), as an operator's
engine-client would; every test gets a database of its own. Stopped and removed at the end.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROLE, PASSWORD = "engine", "engine-secret"
BACKENDS = ("sqlite", "postgresql")


def _as_postgres(*argv: str) -> None:
    proc = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} (as postgres): exit {proc.returncode}\n{proc.stdout}"
        )


@dataclass
class PgServer:
    base: Path
    port: int = 5432

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    def url(self, db: str, *, user: str = ROLE, password: str | None = PASSWORD) -> str:
        cred = user if password is None else f"{user}:{password}"
        return f"postgresql://{cred}@/{db}?host={self.socket_dir}&port={self.port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )

    def create_db(self, name: str) -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    # In User-Mode Linux /tmp is the host's, through hostfs: a directory the postgres account
    # makes there is the host's root's, and initdb then cannot write in it ("could not create
    # directory .../pg_wal: Permission denied"). The guest's /run is a tmpfs of its own.
    in_uml = os.environ.get("VDSM_NET_IN_UML") == "1"
    base = Path(tempfile.mkdtemp(prefix="vdsm-net-pg-", dir="/run" if in_uml else None))
    server = PgServer(base)
    data = base / "data"
    server.socket_dir.mkdir()
    shutil.chown(base, "postgres", "postgres")
    shutil.chown(server.socket_dir, "postgres", "postgres")
    started = False
    try:
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=reject",
            "--no-sync",
        )
        # The engine role logs in with its password; the suite's own admin connection
        # (user postgres) is trusted on the socket.
        hba = data / "pg_hba.conf"
        hba.write_text(f"local all {ROLE} scram-sha-256\nlocal all postgres trust\n")
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={server.socket_dir} "
            f"-p {server.port} -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            str(base / "server.log"),
            "start",
        )
        started = True
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        yield server
    finally:
        if started:
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


_names = itertools.count(1)


def fresh_location(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A new, empty store of ``backend``: an SQLite file path, or a new database's URL."""
    if backend == "sqlite":
        return str(tmp_path / "deep" / "dir" / "engine.db")
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_db(f"t{next(_names)}")


@pytest.fixture(params=BACKENDS)
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs against both backends."""
    return fresh_location(request, request.param, tmp_path)


def run_sql(location: str, script: str) -> None:
    """Statements run on the database directly, behind the store's back."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(script.encode())
        return
    lite = sqlite3.connect(location)
    try:
        lite.executescript(script)
    finally:
        lite.close()
