"""The shipped systemd units load cleanly (``systemd-analyze verify``) and keep the promises
the agent makes about stopping (docs/config.md)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vdsm_net.config import DEFAULT_RESOLV_CONF, DEFAULT_SOCKET, DEFAULT_STATE_DIR
from vdsm_net.server import SHUTDOWN_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
INSTALLED_BIN = "/opt/vdsm-net/bin/"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "systemd" / name)
    return parser


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    # The units name the installed programs; point them at this checkout's, which exist.
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_BIN, str(Path(sys.executable).parent)
                                                 + "/"))
        copies.append(str(copy))
    proc = subprocess.run([analyze, "verify", "--man=no", *copies], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if "vdsm-net" in line]
    assert ours == [], ours


def test_stop_timeout_is_above_the_agents_own() -> None:
    stop = _unit("vdsm-net-agent.service")["Service"]["TimeoutStopSec"]
    assert stop.endswith("s")
    # The agent exits within 10 s (it gives in-flight requests SHUTDOWN_TIMEOUT).
    assert SHUTDOWN_TIMEOUT < 10 < float(stop[:-1])


def test_the_agent_may_write_where_its_defaults_point() -> None:
    """ProtectSystem=strict makes everything else read-only: the state directory, the
    socket's directory and the resolver file's directory (written by rename, SPEC 1.3
    nameservers) must be in ReadWritePaths."""
    service = _unit("vdsm-net-agent.service")["Service"]
    assert service["ProtectSystem"] == "strict"
    writable = [Path(p) for p in service["ReadWritePaths"].split()]
    for needed in (DEFAULT_STATE_DIR, DEFAULT_SOCKET.parent, DEFAULT_RESOLV_CONF.parent):
        assert any(needed == w or w in needed.parents for w in writable), (needed, writable)


def test_restore_runs_after_udev_named_the_nics_and_before_the_agent() -> None:
    unit = _unit("vdsm-net-restore.service")["Unit"]
    assert "systemd-udev-settle.service" in unit["After"].split()
    assert "vdsm-net-agent.service" in unit["Before"].split()


def test_documentation_is_installed_by_the_package() -> None:
    # pyproject's data-files put docs/*.md under PREFIX/share/doc/vdsm-net.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"share/doc/vdsm-net"' in pyproject
    for unit in UNITS:
        doc = _unit(unit.name)["Unit"]["Documentation"]
        assert doc.startswith("file:///opt/vdsm-net/share/doc/vdsm-net/"), doc
        assert (ROOT / "docs" / Path(doc).name).is_file(), doc
