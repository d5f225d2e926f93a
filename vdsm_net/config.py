"""The agent's own configuration: a TOML file plus command-line overrides (docs/config.md).

Every error names the place it comes from (``[rpc] listen`` or ``--listen``) and the value,
so that the daemon can exit with status 2 and a message an operator can act on.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/vdsm-net/vdsm-net.toml")
DEFAULT_STATE_DIR = Path("/var/lib/vdsm-net")
DEFAULT_SOCKET = Path("/run/vdsm-net/vdsm-net.sock")
DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_CONNECTIVITY_TIMEOUT = 120.0
VDSM_PORT = 54321
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# What SIGHUP applies to the running daemon; any other change waits for a restart.
RELOADABLE = ("log_level", "connectivity_timeout", "allowed_clients")

# Limits of the JSON-RPC listeners (docs/limits.md explains how to choose them).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_BATCH = 100
DEFAULT_MAX_TCP_CONNECTIONS = 256
DEFAULT_MAX_UNIX_CONNECTIONS = 64


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid; the message names it."""


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path = DEFAULT_STATE_DIR
    socket: Path = DEFAULT_SOCKET
    listen: tuple[str, int] | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    insecure: bool = False
    connectivity_timeout: float = DEFAULT_CONNECTIVITY_TIMEOUT
    # Empty: any client certificate with extended key usage clientAuth.
    allowed_clients: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Group owning the Unix socket (mode 0660), for operators who are not root.
    socket_group: str | None = None
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT  # accept -> TLS done, headers read
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT  # keep-alive: no request in progress
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # headers read -> whole body read
    max_body: int = DEFAULT_MAX_BODY  # bytes
    max_batch: int = DEFAULT_MAX_BATCH  # requests in one JSON-RPC batch
    max_tcp_connections: int = DEFAULT_MAX_TCP_CONNECTIONS
    max_unix_connections: int = DEFAULT_MAX_UNIX_CONNECTIONS
    # The resolver file: read for the capabilities' nameservers, written for a network's.
    resolv_conf: Path = DEFAULT_RESOLV_CONF


def parse_listen(text: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6ADDR]:PORT``; port 0 asks the kernel for a free port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{where}: bad IPv6 address in {text!r}") from None
    elif ":" in host:
        raise ConfigError(f"{where}: an IPv6 address must be bracketed, got {text!r}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"{where}: port must be 0-65535, got {port_text!r} in {text!r}")
    return host, int(port_text)


def _path(value: object, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty path string, got {value!r}")
    return Path(value)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _timeout(value: object, where: str) -> float:
    # bool is an int subclass; `true` is not a number of seconds.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{where}: expected a positive number of seconds, got {value!r}")
    return seconds


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _listen(value: object, where: str) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a \"HOST:PORT\" string, got {value!r}")
    return parse_listen(value, where)


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of names (strings), got {value!r}")
    return tuple(value)


def _log_level(value: object, where: str) -> str:
    level = value.upper() if isinstance(value, str) else value
    if level not in LOG_LEVELS:
        raise ConfigError(f"{where}: expected one of {', '.join(LOG_LEVELS)} "
                          f"(any case), got {value!r}")
    return str(level)


def _group(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c == ":" for c in value):
        raise ConfigError(f"{where}: expected a group name, got {value!r}")
    return value


# (section, key) -> (AgentConfig field, converter)
_Converter = Callable[[object, str], Any]
_KEYS: Mapping[tuple[str, str], tuple[str, _Converter]] = {
    ("state", "dir"): ("state_dir", _path),
    ("rpc", "socket"): ("socket", _path),
    ("rpc", "listen"): ("listen", _listen),
    ("rpc", "insecure"): ("insecure", _bool),
    ("rpc", "socket_group"): ("socket_group", _group),
    ("rpc", "handshake_timeout"): ("handshake_timeout", _timeout),
    ("rpc", "idle_timeout"): ("idle_timeout", _timeout),
    ("rpc", "body_timeout"): ("body_timeout", _timeout),
    ("rpc", "max_body"): ("max_body", _count),
    ("rpc", "max_batch"): ("max_batch", _count),
    ("rpc", "max_tcp_connections"): ("max_tcp_connections", _count),
    ("rpc", "max_unix_connections"): ("max_unix_connections", _count),
    ("tls", "cert"): ("tls_cert", _path),
    ("tls", "key"): ("tls_key", _path),
    ("tls", "ca"): ("tls_ca", _path),
    ("tls", "allowed_clients"): ("allowed_clients", _names),
    ("log", "level"): ("log_level", _log_level),
    ("network", "connectivity_timeout"): ("connectivity_timeout", _timeout),
    ("network", "resolv_conf"): ("resolv_conf", _path),
}
_SECTIONS = frozenset(section for section, _ in _KEYS)
_FIELD_CONVERTERS: Mapping[str, _Converter] = {f: conv for f, conv in _KEYS.values()}
_FIELD_NAMES = frozenset(f.name for f in fields(AgentConfig))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _from_document(doc: Mapping[str, Any], origin: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{origin}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table, got {table!r}")
        for key, value in table.items():
            entry = _KEYS.get((section, key))
            if entry is None:
                raise ConfigError(f"{origin}: unknown key [{section}] {key} = {value!r}")
            name, convert = entry
            values[name] = convert(value, f"{origin}: [{section}] {key}")
    return values


def _from_overrides(overrides: Mapping[str, object]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in _FIELD_NAMES:
            raise ConfigError(f"unknown configuration override {name!r}")
        if value is None:
            continue  # option not given on the command line
        where = "--" + name.replace("_", "-")
        if name == "listen" and isinstance(value, tuple):
            values[name] = value
        elif name in ("state_dir", "socket", "tls_cert", "tls_key", "tls_ca", "resolv_conf"):
            values[name] = _path(str(value), where)
        else:
            values[name] = _FIELD_CONVERTERS[name](value, where)
    return values


def _check_tls(cfg: AgentConfig) -> None:
    if cfg.listen is None or cfg.insecure:
        return
    for key, value in (("cert", cfg.tls_cert), ("key", cfg.tls_key), ("ca", cfg.tls_ca)):
        if value is None:
            raise ConfigError(
                f"[tls] {key}: required when [rpc] listen is set "
                f"(listen = {cfg.listen[0]}:{cfg.listen[1]}); --insecure disables TLS for tests"
            )
        if not value.is_file():
            raise ConfigError(f"[tls] {key}: no such file {str(value)!r}")


def load_config(path: Path | None = None, **cli_overrides: object) -> AgentConfig:
    """Defaults, then the file, then the command line.

    ``path=None`` reads the default file if it exists; an explicitly given file must exist.
    Overrides whose value is None are ignored (the option was not given).
    """
    values: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"--config: no such file {str(path)!r}")
        values.update(_from_document(_read_toml(path), path))
    elif DEFAULT_CONFIG_PATH.is_file():
        values.update(_from_document(_read_toml(DEFAULT_CONFIG_PATH), DEFAULT_CONFIG_PATH))
    values.update(_from_overrides(cli_overrides))
    cfg = replace(AgentConfig(), **values)
    _check_tls(cfg)
    return cfg
