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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.model import BondConfig, NetConfig, NetworkConfig, frozen_map

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


class _Reader:
    """Strict reader of ``NetConfig.to_json()``; errors name the JSON path and the value."""

    _NETWORK_KEYS = frozenset(
        {"mtu", "bridged", "nic", "bonding", "vlan", "stp", "ipaddr", "prefix", "gateway",
         "ipv6addr", "ipv6gateway", "bootproto", "defaultRoute", "blockingdhcp", "ipv6autoconf"}
    )
    _BOND_KEYS = frozenset({"nics", "options"})

    @staticmethod
    def _fail(where: str, expected: str, value: object) -> ValueError:
        return ValueError(f"{where}: expected {expected}, got {value!r}")

    def _obj(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self._fail(where, "an object", value)
        return value

    def _str(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self._fail(where, "a non-empty string", value)
        return value

    def _int(self, value: object, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(where, f"an integer {low}-{high}", value)
        return value

    def _bool(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            raise self._fail(where, "true or false", value)
        return value

    def _opt_str(self, attrs: Mapping[str, Any], key: str, where: str) -> str | None:
        return None if key not in attrs else self._str(attrs[key], f"{where}.{key}")

    def _unknown(self, attrs: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        for key in sorted(set(attrs) - allowed):
            raise ValueError(f"{where}.{key}: unknown attribute (value {attrs[key]!r})")

    def network(self, name: str, value: object) -> NetworkConfig:
        where = f"networks.{name}"
        attrs = self._obj(value, where)
        self._unknown(attrs, self._NETWORK_KEYS, where)
        nic = self._opt_str(attrs, "nic", where)
        bonding = self._opt_str(attrs, "bonding", where)
        if nic is not None and bonding is not None:
            raise ValueError(f"{where}: both nic {nic!r} and bonding {bonding!r}")
        vlan = None if "vlan" not in attrs else self._int(attrs["vlan"], f"{where}.vlan", 0, 4094)
        ipv4 = None
        if "ipaddr" in attrs or "prefix" in attrs:
            addr = self._str(attrs.get("ipaddr"), f"{where}.ipaddr")
            prefix = self._int(attrs.get("prefix"), f"{where}.prefix", 0, 32)
            ipv4 = f"{addr}/{prefix}"
        return NetworkConfig(
            name=name,
            nic=nic,
            bonding=bonding,
            vlan=vlan,
            mtu=self._int(attrs.get("mtu"), f"{where}.mtu", 68, 65535),
            bridged=self._bool(attrs.get("bridged"), f"{where}.bridged"),
            stp=self._bool(attrs.get("stp", False), f"{where}.stp"),
            ipv4=ipv4,
            gateway=self._opt_str(attrs, "gateway", where),
            ipv6=self._opt_str(attrs, "ipv6addr", where),
            ipv6gateway=self._opt_str(attrs, "ipv6gateway", where),
            bootproto=self._opt_str(attrs, "bootproto", where) or "none",
            default_route=self._bool(attrs.get("defaultRoute", False), f"{where}.defaultRoute"),
            blocking_dhcp=self._bool(attrs.get("blockingdhcp", False), f"{where}.blockingdhcp"),
            ipv6autoconf=self._bool(attrs.get("ipv6autoconf", False), f"{where}.ipv6autoconf"),
        )

    def bond(self, name: str, value: object) -> BondConfig:
        where = f"bondings.{name}"
        attrs = self._obj(value, where)
        self._unknown(attrs, self._BOND_KEYS, where)
        nics = attrs.get("nics")
        if not isinstance(nics, list):
            raise self._fail(f"{where}.nics", "a list of NIC names", nics)
        options_text = attrs.get("options", "")
        if not isinstance(options_text, str):
            raise self._fail(f"{where}.options", "a string", options_text)
        options: dict[str, str] = {}
        for pair in options_text.split():
            key, sep, val = pair.partition("=")
            if not sep or not key or not val:
                raise self._fail(f"{where}.options", "key=value pairs", options_text)
            options[key] = val
        if "mode" not in options:
            options = {"mode": "balance-rr", **options}
        return BondConfig(
            name=name,
            nics=tuple(self._str(n, f"{where}.nics[{i}]") for i, n in enumerate(nics)),
            options=frozen_map(options),
        )

    def config(self, value: object) -> NetConfig:
        doc = self._obj(value, "(top level)")
        self._unknown(doc, frozenset({"version", "networks", "bondings"}), "(top level)")
        version = doc.get("version")
        if version != FORMAT_VERSION:
            raise self._fail("version", str(FORMAT_VERSION), version)
        networks = self._obj(doc.get("networks", {}), "networks")
        bondings = self._obj(doc.get("bondings", {}), "bondings")
        return NetConfig(
            networks=frozen_map({n: self.network(n, a) for n, a in networks.items()}),
            bondings=frozen_map({n: self.bond(n, a) for n, a in bondings.items()}),
        )


def config_to_json(cfg: NetConfig) -> dict[str, Any]:
    return {"version": FORMAT_VERSION, **cfg.to_json()}


def config_from_json(doc: object) -> NetConfig:
    """Raises ValueError naming the offending JSON path and value."""
    return _Reader().config(doc)


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
