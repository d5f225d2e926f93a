"""Run the engine-client CLI in-process with --json and a given store."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

from engine_client.cli import main


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
