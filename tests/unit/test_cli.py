"""vdsm-net-agent's exit statuses and messages for what fails before the kernel is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def agent(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vdsm_net.cli", *argv], capture_output=True,
                          text=True, cwd=REPO, timeout=60)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--listen", "127.0.0.1"], "configuration error: --listen: expected HOST:PORT"),
        (["--listen", "127.0.0.1:54321"], "configuration error: [tls] cert: required"),
        (["--config", "/nonexistent/agent.toml"], "--config: no such file"),
        (["restore", "--config", "{bad}"], "--config: no such file '{bad}'"),
    ],
)
def test_configuration_errors_exit_2(tmp_path: Path, argv: list[str], expected: str) -> None:
    proc = agent(*argv, "--state-dir", str(tmp_path), "--socket", str(tmp_path / "s"))
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert not (tmp_path / "s").exists()


def test_bad_key_in_file_is_named(tmp_path: Path) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text('[network]\nconnectivity_timeout = "soon"\n')
    proc = agent("--config", str(conf), "--state-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "[network] connectivity_timeout: expected a number of seconds, got 'soon'" in (
        proc.stderr)


@pytest.mark.parametrize("command", [[], ["restore"]])
def test_corrupt_state_file_exits_1_naming_the_file(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "running.json").write_text('{"version": 1, "networks": {"red": ')
    proc = agent(*command, "--state-dir", str(tmp_path), "--socket", str(tmp_path / "s"))
    assert proc.returncode == 1
    assert f"{tmp_path / 'running.json'}: invalid state file" in proc.stderr
    assert not (tmp_path / "s").exists()
