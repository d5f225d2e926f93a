"""Atomic state files: the running config and the safe config (docs/files.md).

Each file is JSON ``{"version": 1, "networks": {...}, "bondings": {...}}`` in VDSM's attribute
shape (``NetConfig.to_json``). Writes go to a temporary file in the same directory, which is
fsynced, renamed over the target, and then the directory is fsynced: a crash at any instant
leaves the old file or the new one. A file that exists but does not parse is an error naming
the file, never an empty config: silently forgetting networks would make ``restore`` delete them.

A commit stages first and installs after (``stage``, ``install``): everything that takes space
(writing and fsyncing the temporary files) happens before any state file changes, so a full
state directory fails a commit before it is visible, and the pipeline can still roll back.
Every failure is a ``StateFileError`` (a ``NetError``, error 16) naming the file and the cause.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.model import NetConfig
from vdsm_net.request import parse_config

FORMAT_VERSION = 1
RUNNING = "running.json"
SAFE = "safe.json"
_TMP_SUFFIX = ".tmp"


class StateFileError(NetError):
    """A state file cannot be read or written, or does not hold a valid config (error 16)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.STATE, message)


def _failure(path: Path, doing: str, exc: OSError) -> StateFileError:
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f" (free space in {path.parent})"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = f" (make {path.parent} writable by the agent)"
    return StateFileError(f"{path}: cannot {doing}: {reason}{hint}")


@dataclass(frozen=True)
class StagedFile:
    """A new content for ``target``, written and fsynced to ``tmp``, not yet visible."""

    tmp: Path
    target: Path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def stage(path: Path, data: bytes, mode: int = 0o644) -> StagedFile:
    """Write ``data`` to a temporary file beside ``path`` and fsync it; ``path`` is untouched.
    The file has ``mode`` from its creation on, whatever the umask (a private key is never
    readable by others, not even for a moment). Raises StateFileError (and leaves no
    temporary file) when that fails."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = directory / f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode & 0o600)
    except OSError as exc:
        raise _failure(path, "write", exc) from None
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _failure(path, "write", exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StagedFile(tmp, path)


def install(staged: Iterable[StagedFile]) -> None:
    """Rename staged files over their targets, in order, then fsync their directories."""
    directories: dict[Path, Path] = {}
    for item in staged:
        try:
            os.replace(item.tmp, item.target)
        except OSError as exc:
            raise _failure(item.target, "replace", exc) from None
        directories.setdefault(item.target.parent, item.target)
    for directory, target in directories.items():
        # Without this the rename itself may be lost on power failure (ext4 data=ordered
        # keeps the data, not necessarily the directory entry).
        try:
            _fsync_dir(directory)
        except OSError as exc:
            raise _failure(target, "sync the directory of", exc) from None


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    staged = stage(path, data, mode)
    try:
        install([staged])
    except BaseException:
        staged.discard()
        raise


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_durably(path: Path) -> None:
    """Unlink ``path`` (if present) so that the removal survives a power failure."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _failure(path, "remove", exc) from None
    try:
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _failure(path, "sync the directory of", exc) from None


# ---- the stored form -------------------------------------------------------------------


def config_to_json(cfg: NetConfig) -> dict[str, Any]:
    return {"version": FORMAT_VERSION, **cfg.to_json()}


def config_from_json(doc: object) -> NetConfig:
    """Raises ValueError naming the offending JSON path and value.

    The body is read by the one parser of VDSM's attribute shape, ``request.parse_config``:
    a state file holds what a request would, so a file accepted here is a config the agent
    would have accepted on the wire, and a new attribute is parsed in one place.
    """
    if not isinstance(doc, dict):
        raise ValueError(f"(top level): expected an object, got {doc!r}")
    for key in sorted(set(doc) - {"version", "networks", "bondings"}):
        raise ValueError(f"(top level).{key}: unknown attribute (value {doc[key]!r})")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"version: expected {FORMAT_VERSION}, got {doc.get('version')!r}")
    try:
        return parse_config({k: v for k, v in doc.items() if k != "version"})
    except NetError as exc:
        raise ValueError(exc.message) from None


def _encode(cfg: NetConfig) -> bytes:
    return (json.dumps(config_to_json(cfg), indent=2, sort_keys=True) + "\n").encode()


# ---- the store -------------------------------------------------------------------------


class StateStore:
    """The three state files of one agent, in ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    @property
    def running_path(self) -> Path:
        return self.state_dir / RUNNING

    @property
    def safe_path(self) -> Path:
        return self.state_dir / SAFE

    def _load(self, path: Path) -> NetConfig | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            return config_from_json(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            # json.JSONDecodeError is a ValueError too.
            raise StateFileError(f"{path}: invalid state file: {exc}") from None

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files left by a writer killed between create and rename."""
        if not self.state_dir.is_dir():
            return []
        stale = sorted(self.state_dir.glob(f".*{_TMP_SUFFIX}"))
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def load_running(self) -> NetConfig:
        return self._load(self.running_path) or NetConfig()

    def save_running(self, cfg: NetConfig) -> None:
        atomic_write(self.running_path, _encode(cfg))

    def stage_running(self, cfg: NetConfig) -> StagedFile:
        return stage(self.running_path, _encode(cfg))

    def stage_safe(self, cfg: NetConfig) -> StagedFile:
        return stage(self.safe_path, _encode(cfg))

    def load_safe(self) -> NetConfig | None:
        return self._load(self.safe_path)

    def read_safe_bytes(self) -> bytes | None:
        """safe.json as it is on disk (None if absent), to be put back after a failed commit."""
        try:
            return self.safe_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failure(self.safe_path, "read", exc) from None

    def save_safe(self, cfg: NetConfig) -> None:
        atomic_write(self.safe_path, _encode(cfg))
