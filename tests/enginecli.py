"""Run the engine-client CLI in-process with --json and a given store."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

from engine_client.cli import main
from engine_client.insync import judge
from engine_client.store import Store


def cli(db: Path, *argv: str) -> tuple[int, Any]:
    """(exit code, parsed JSON output — or the raw text and stderr when it is not JSON)."""
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--db", str(db), "--json"], stdout=out, stderr=err)
    text = out.getvalue().strip()
    try:
        return code, json.loads(text) if text else err.getvalue()
    except ValueError:
        return code, text + err.getvalue()


def assert_store_sound(db: Path) -> None:
    """SQLite's own integrity and foreign-key checks pass (e.g. after a kill -9)."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def in_sync(store: Store, host: str, network: str) -> bool:
    """What every command judges (``insync.judge``) from the store: the attachment against
    its host's latest capabilities."""
    att = store.get_attachment(host, network)
    return judge(store.get_network(network), att, store.get_host(host).caps).in_sync
