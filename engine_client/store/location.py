"""Where the store is (docs/files.md): ``--db``, else ``$ENGINE_CLIENT_DB``, else the default
SQLite file under ``~/.local/share/engine-client/``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_DB = "ENGINE_CLIENT_DB"


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
