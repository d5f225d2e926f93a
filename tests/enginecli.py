"""Run the engine-client CLI in-process with --json and a given store."""

from __future__ import annotations

import io
import json
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
