from __future__ import annotations

import re
from pathlib import Path

import pytest

from vdsm_net import config as config_module
from vdsm_net.config import AgentConfig, ConfigError, load_config


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The host's /etc must not leak into the tests.
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for path in files.values():
        path.write_text("placeholder")
    return files


def test_absent_default_file_gives_defaults() -> None:
    cfg = load_config(None)
    assert cfg == AgentConfig()
    assert cfg.state_dir == Path("/var/lib/vdsm-net")
    assert cfg.socket == Path("/run/vdsm-net/vdsm-net.sock")
    assert cfg.listen is None
    assert cfg.connectivity_timeout == 120.0


def test_default_file_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / "absent.toml").write_text('[state]\ndir = "/srv/state"\n')
    assert load_config(None).state_dir == Path("/srv/state")


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config: no such file .*nope\.toml"):
        load_config(tmp_path / "nope.toml")


def test_full_file(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    path = write(tmp_path, f"""
[state]
dir = "/srv/vdsm-net"
[rpc]
socket = "/run/x/agent.sock"
listen = "0.0.0.0:54321"
[tls]
cert = "{tls_files['cert']}"
key = "{tls_files['key']}"
ca = "{tls_files['ca']}"
[network]
connectivity_timeout = 30
""")
    cfg = load_config(path)
    assert cfg == AgentConfig(
        state_dir=Path("/srv/vdsm-net"),
        socket=Path("/run/x/agent.sock"),
        listen=("0.0.0.0", 54321),
        tls_cert=tls_files["cert"],
        tls_key=tls_files["key"],
        tls_ca=tls_files["ca"],
        insecure=False,
        connectivity_timeout=30.0,
    )


def test_ipv6_listen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[rpc]\nlisten = "[::1]:54321"\ninsecure = true\n'))
    assert cfg.listen == ("::1", 54321)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[rpcc]\nsocket = "/x"\n', r"unknown section \[rpcc\]"),
        ('[rpc]\nlisen = "1.2.3.4:1"\n', r"unknown key \[rpc\] lisen = '1\.2\.3\.4:1'"),
        ('[rpc]\nlisten = "nohost"\n', r"\[rpc\] listen: expected HOST:PORT, got 'nohost'"),
        ('[rpc]\nlisten = "h:70000"\n', r"\[rpc\] listen: port must be 0-65535, got '70000'"),
        ('[rpc]\nlisten = "::1:5"\n', r"\[rpc\] listen: an IPv6 address must be bracketed"),
        ("[rpc]\nlisten = 54321\n", r"\[rpc\] listen: expected .*got 54321"),
        ('[rpc]\ninsecure = "yes"\n', r"\[rpc\] insecure: expected true or false, got 'yes'"),
        ("[state]\ndir = 5\n", r"\[state\] dir: expected a non-empty path string, got 5"),
        ('[state]\ndir = ""\n', r"\[state\] dir: expected a non-empty path string, got ''"),
        ("[network]\nconnectivity_timeout = -1\n",
         r"\[network\] connectivity_timeout: expected a positive number of seconds, got -1"),
        ("[network]\nconnectivity_timeout = true\n",
         r"\[network\] connectivity_timeout: expected a number of seconds, got True"),
        ("[network]\nconnectivity_timeout = nan\n",
         r"\[network\] connectivity_timeout: expected a positive number of seconds, got nan"),
        ('rpc = "x"\n', r"\[rpc\] must be a table, got 'x'"),
        ("[rpc\n", r"agent\.toml: not valid TOML"),
    ],
)
def test_bad_file_names_the_key_and_value(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(write(tmp_path, text))
    assert "agent.toml" in str(info.value)


def test_listen_requires_tls(tmp_path: Path) -> None:
    path = write(tmp_path, '[rpc]\nlisten = "127.0.0.1:54321"\n')
    with pytest.raises(ConfigError, match=r"\[tls\] cert: required when \[rpc\] listen is set"):
        load_config(path)
    assert load_config(path, insecure=True).insecure is True


def test_tls_file_must_exist(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    tls_files["key"].unlink()
    path = write(tmp_path, f"""
[rpc]
listen = "127.0.0.1:54321"
[tls]
cert = "{tls_files['cert']}"
key = "{tls_files['key']}"
ca = "{tls_files['ca']}"
""")
    with pytest.raises(ConfigError, match=r"\[tls\] key: no such file .*key\.pem"):
        load_config(path)


def test_command_line_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[state]\ndir = "/from/file"\n[rpc]\nsocket = "/file.sock"\n')
    cfg = load_config(path, state_dir=Path("/from/cli"), socket=None, listen="127.0.0.1:0",
                      insecure=True)
    assert cfg.state_dir == Path("/from/cli")
    assert cfg.socket == Path("/file.sock")  # None: option not given
    assert cfg.listen == ("127.0.0.1", 0)


def test_bad_command_line_value_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"--listen: expected HOST:PORT, got 'x'"):
        load_config(None, listen="x", insecure=True)
    with pytest.raises(ConfigError, match=r"--connectivity-timeout: expected a positive"):
        load_config(None, connectivity_timeout=0)
    with pytest.raises(ConfigError, match=r"unknown configuration override 'colour'"):
        load_config(None, colour="red")


def test_operator_keys(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[tls]\nallowed_clients = ["engine", "10.0.0.5"]\n'
                                      '[log]\nlevel = "debug"\n[rpc]\nsocket_group = "vdsm-net"\n'))
    assert cfg.allowed_clients == ("engine", "10.0.0.5")
    assert cfg.log_level == "DEBUG"
    assert cfg.socket_group == "vdsm-net"
    assert load_config(None, log_level="warning").log_level == "WARNING"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[tls]\nallowed_clients = "engine"\n',
         "[tls] allowed_clients: expected a list of names (strings), got 'engine'"),
        ('[tls]\nallowed_clients = ["", 3]\n', "[tls] allowed_clients: expected a list"),
        ('[log]\nlevel = "loud"\n', "[log] level: expected one of DEBUG, INFO, WARNING, ERROR"),
        ('[rpc]\nsocket_group = "a b"\n', "[rpc] socket_group: expected a group name, got 'a b'"),
    ],
)
def test_bad_operator_keys_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(write(tmp_path, text))
def test_rpc_limits(tmp_path: Path) -> None:
    defaults = load_config(write(tmp_path, ""))
    assert (defaults.handshake_timeout, defaults.idle_timeout, defaults.body_timeout) == (
        10.0, 30.0, 30.0)
    assert (defaults.max_body, defaults.max_batch) == (1024 * 1024, 100)
    assert (defaults.max_tcp_connections, defaults.max_unix_connections) == (256, 64)
    cfg = load_config(write(tmp_path, "[rpc]\nhandshake_timeout = 2.5\nidle_timeout = 5\n"
                            "body_timeout = 7\nmax_body = 4096\nmax_batch = 3\n"
                            "max_tcp_connections = 10\nmax_unix_connections = 2\n"))
    assert (cfg.handshake_timeout, cfg.idle_timeout, cfg.body_timeout) == (2.5, 5.0, 7.0)
    assert (cfg.max_body, cfg.max_batch, cfg.max_tcp_connections, cfg.max_unix_connections) == (
        4096, 3, 10, 2)


@pytest.mark.parametrize(("text", "expected"), [
    ("max_batch = 0", r"\[rpc\] max_batch: expected a positive integer, got 0"),
    ("max_tcp_connections = true", r"max_tcp_connections: expected a positive integer, got True"),
    ("max_body = 1.5", r"max_body: expected a positive integer, got 1.5"),
    ("idle_timeout = -1", r"idle_timeout: expected a positive number of seconds, got -1"),
    ("handshake_timeout = \"10\"", r"handshake_timeout: expected a number of seconds, got '10'"),
])
def test_bad_rpc_limit_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, f"[rpc]\n{text}\n"))
