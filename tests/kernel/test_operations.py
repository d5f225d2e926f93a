"""The agent as an administrator runs it (docs/config.md, §1.7, §1.9): one owner of a state
directory, restore's guard and log, SIGTERM during a pending change, SIGHUP, the journal's
priorities, and vdsm-net-client against the real daemon."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import BIN, AgentError, AgentProcess
from tests.dump import assert_same_state, dump_state
from tests.netns import NetNS
from vdsm_net.state import OWNED_GROUP

NO_CHECK = {"connectivityCheck": False}


@pytest.fixture
def nics(netns: NetNS) -> NetNS:
    for nic in ("eth1", "eth2"):
        netns.add_nic(nic, dummy=False)
    return netns


@pytest.fixture
def agent(nics: NetNS, tmp_path: Path) -> AgentProcess:
    return AgentProcess(nics, tmp_path / "state").start()


def _files(directory: Path, *skip: str) -> dict[str, str]:
    """The state files' digests (not the test's own agent.log)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())
            if p.is_file() and p.name not in ("agent.log", *skip)}


def _wait_for_log(agent: AgentProcess, text: str, since: int = 0, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = agent.log.read_text()[since:]
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never logged; log:\n{agent.log.read_text()[since:]}")


# ---- one owner of the state directory ----------------------------------------------------


def test_second_daemon_on_the_same_state_dir_exits_3_naming_the_first(
    agent: AgentProcess, nics: NetNS, tmp_path: Path
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1"}}, "options": NO_CHECK})
    before, files = dump_state(nics.name), _files(agent.state_dir)
    assert agent.proc is not None
    second = subprocess.run(
        [*agent.argv(), "--socket", str(tmp_path / "second.sock")],
        capture_output=True, text=True, timeout=60)
    assert second.returncode == 3, second.stderr
    assert f"in use by process {agent.proc.pid}" in second.stderr, second.stderr
    assert str(agent.state_dir) in second.stderr
    assert not (tmp_path / "second.sock").exists()
    assert_same_state(before, dump_state(nics.name))
    assert _files(agent.state_dir) == files
    assert sorted(agent.call("Host.getNetworkCapabilities")["networks"]) == ["A"]


def test_restore_beside_the_daemon_exits_3_and_changes_nothing(
    agent: AgentProcess, nics: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1"}}, "options": NO_CHECK})
    agent.call("Host.setSafeNetworkConfig")
    agent.call("Host.setupNetworks", {"networks": {"B": {"nic": "eth2"}}, "options": NO_CHECK})
    before, files = dump_state(nics.name), _files(agent.state_dir)
    assert agent.proc is not None
    proc = agent.restore()
    assert proc.returncode == 3, proc.stderr
    assert f"process {agent.proc.pid}" in proc.stderr, proc.stderr
    assert_same_state(before, dump_state(nics.name))  # B, not safe, is still there
    assert _files(agent.state_dir) == files
    assert sorted(agent.call("Host.getNetworkCapabilities")["networks"]) == ["A", "B"]
    # Once the daemon is gone, the same restore runs.
    assert agent.stop() == 0
    proc = agent.restore()
    assert proc.returncode == 0, proc.stderr
    assert "B" not in nics.links()
    assert "restore: removed device B" in proc.stderr, proc.stderr


# ---- restore's guard and log -------------------------------------------------------------


def test_restore_refuses_a_missing_state_directory_unless_forced(
    agent: AgentProcess, nics: NetNS, tmp_path: Path
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1"}, "iso": {}},
                                      "options": NO_CHECK})
    agent.call("Host.setSafeNetworkConfig")
    assert agent.stop() == 0
    before = dump_state(nics.name)
    typo = tmp_path / "stat"  # the operator meant "state"
    argv = nics.exec_argv(str(BIN / "vdsm-net-agent"), "restore", "--state-dir", str(typo))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"state directory {str(typo)!r} does not exist" in proc.stderr, proc.stderr
    assert "A, iso" in proc.stderr  # the owned devices it would have removed
    assert_same_state(before, dump_state(nics.name))
    assert not typo.exists()

    proc = subprocess.run([*argv, "--force"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    links = nics.links()
    assert "A" not in links and "iso" not in links
    for name in ("A", "iso"):
        assert f"restore: removed device {name}" in proc.stderr, proc.stderr
    assert "removed nothing" not in proc.stderr


def test_restore_skips_a_network_whose_nic_is_gone_and_keeps_it_safe(
    agent: AgentProcess, nics: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1"}, "B": {"nic": "eth2"}},
                                      "options": NO_CHECK})
    agent.call("Host.setSafeNetworkConfig")
    assert agent.stop() == 0
    safe = (agent.state_dir / "safe.json").read_bytes()
    nics.ip("link", "del", "B")
    nics.ip("link", "del", "eth2")  # the NIC did not come back after the reboot
    proc = agent.restore()
    assert proc.returncode == 0, proc.stderr
    links = nics.links()
    assert links["eth1"].get("master") == "A" and "B" not in links
    assert "network B: NIC eth2 missing" in proc.stderr, proc.stderr
    assert "networks removed: none" in proc.stderr, proc.stderr
    assert (agent.state_dir / "safe.json").read_bytes() == safe


def test_restore_refuses_when_no_safe_config_and_owned_devices_exist(
    agent: AgentProcess, nics: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1", "mtu": 2000}},
                                      "options": NO_CHECK})
    assert agent.stop() == 0
    # The lock file holds its last owner's pid: restore, refusing, owned it for a moment.
    before, files = dump_state(nics.name), _files(agent.state_dir, "agent.lock")
    proc = agent.restore()
    assert proc.returncode == 2, proc.stderr
    assert "holds no safe config" in proc.stderr and "A" in proc.stderr, proc.stderr
    assert_same_state(before, dump_state(nics.name))
    assert _files(agent.state_dir, "agent.lock") == files

    proc = subprocess.run([*agent.argv("restore"), "--force"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "A" not in nics.links()
    assert nics.link("eth1")["mtu"] == 1500  # the NIC is put back as well
    assert "restore: removed device A" in proc.stderr, proc.stderr
    assert "restore: changed device eth1: mtu 2000 -> 1500" in proc.stderr, proc.stderr


def test_restore_logs_each_device_it_creates_and_changes(
    agent: AgentProcess, nics: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1", "mtu": 2000}},
                                      "options": NO_CHECK})
    agent.call("Host.setSafeNetworkConfig")
    agent.kill9()
    nics.ip("link", "del", "A")  # lost: restore must make it again
    proc = agent.restore()
    assert proc.returncode == 0, proc.stderr
    assert nics.link("A")["mtu"] == 2000
    assert "restore: created device A (bridge)" in proc.stderr, proc.stderr
    assert "restore: changed device eth1:" in proc.stderr, proc.stderr  # enslaved again


# ---- signals -----------------------------------------------------------------------------


def test_sigterm_rolls_a_pending_change_back_at_once(agent: AgentProcess, nics: NetNS) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1"}}, "options": NO_CHECK})
    before = dump_state(nics.name)
    outcome: dict[str, Any] = {}

    def pending() -> None:
        try:
            outcome["result"] = agent.call("Host.setupNetworks", {
                "networks": {"B": {"nic": "eth2", "mtu": 3000}},
                "options": {"connectivityCheck": True, "connectivityTimeout": 300}})
        except AgentError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=pending)
    caller.start()
    deadline = time.monotonic() + 60
    while "B" not in nics.links():
        assert time.monotonic() < deadline, "the change was never applied"
        time.sleep(0.05)
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGTERM)
    # The promise (docs/config.md): the stop never waits out the 300 s connectivity timeout.
    assert agent.proc.wait(timeout=10) == 0
    caller.join(timeout=10)
    error = outcome.get("error")
    assert isinstance(error, AgentError), outcome
    assert error.code == 10 and "stopping" in error.message, error.message
    assert_same_state(before, dump_state(nics.name))
    assert not agent.socket.exists()
    log = agent.log.read_text()
    assert "rolled back" in log and "stopping on SIGTERM" in log, log


def _config(path: Path, *, level: str = "INFO", timeout: str = "120",
            allowed: str | None = None) -> None:
    text = f'[log]\nlevel = "{level}"\n[network]\nconnectivity_timeout = {timeout}\n'
    path.write_text(text)


def test_sighup_applies_a_good_config_and_keeps_the_old_one_for_a_bad(
    nics: NetNS, tmp_path: Path
) -> None:
    config = tmp_path / "agent.toml"
    _config(config)
    agent = AgentProcess(nics, tmp_path / "state", "--config", str(config)).start()
    assert agent.proc is not None
    _config(config, level="debug", timeout="1")
    mark = len(agent.log.read_text())
    agent.proc.send_signal(signal.SIGHUP)
    log = _wait_for_log(agent, "SIGHUP: reloaded", mark)
    assert "log_level 'INFO' -> 'DEBUG'" in log and "connectivity_timeout 120.0 -> 1.0" in log
    # The new default timeout is the one used: no confirmation, rolled back after 1 s.
    mark = len(agent.log.read_text())
    with pytest.raises(AgentError) as err:
        agent.call("Host.setupNetworks", {"networks": {"B": {"nic": "eth2"}},
                                          "options": {"connectivityCheck": True}})
    assert err.value.code == 10 and "within 1 s" in err.value.message
    assert "operation 1/" in agent.log.read_text()[mark:]  # debug lines now

    for bad, reason in (("[network]\nconnectivity_timeout = -1\n", "connectivity_timeout"),
                        ("this is not toml", "not valid TOML")):
        config.write_text(bad)
        mark = len(agent.log.read_text())
        agent.proc.send_signal(signal.SIGHUP)
        log = _wait_for_log(agent, "keeping the running configuration", mark)
        assert reason in log, log
        assert agent.proc.poll() is None
        assert agent.call("Host.ping2") == {}
        assert agent.socket.exists()
    with pytest.raises(AgentError) as err:  # still the reloaded 1 s
        agent.call("Host.setupNetworks", {"networks": {"B": {"nic": "eth2"}},
                                          "options": {"connectivityCheck": True}})
    assert "within 1 s" in err.value.message
    assert agent.stop() == 0


# ---- the journal -------------------------------------------------------------------------


def test_journal_mode_lines_carry_priorities_and_no_timestamp(
    nics: NetNS, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    out = tmp_path / "journal-stream"
    argv = nics.exec_argv(str(BIN / "vdsm-net-agent"), "--state-dir", str(state), "--socket",
                          str(state / "agent.sock"), "--listen", "127.0.0.1:0", "--insecure",
                          "--log-level", "DEBUG")
    with open(out, "wb") as stream:
        st = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen(argv, stdout=stream, stderr=stream, env=env)
        try:
            deadline = time.monotonic() + 60
            while "ready" not in out.read_text():
                assert proc.poll() is None, out.read_text()
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
            # A second daemon on the same directory: an error line, from the same stream.
            second = subprocess.run(argv, stdout=stream, stderr=stream, env=env, timeout=60)
            assert second.returncode == 3
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    lines = out.read_text().splitlines()
    assert lines and all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines
    by_text = {line[3:]: line[:3] for line in lines}
    assert any(p == "<4>" and "TLS disabled" in t for t, p in by_text.items()), lines
    assert any(p == "<3>" and "in use by process" in t for t, p in by_text.items()), lines
    assert any(p == "<6>" and t == "vdsm_net.server: ready" for t, p in by_text.items()), lines
    assert any(p == "<7>" for p in by_text.values()), lines
    assert not any(line[3:5].isdigit() for line in lines)  # no "2026-..." of its own


def test_plain_stderr_lines_are_timestamped(agent: AgentProcess) -> None:
    first = agent.log.read_text().splitlines()[0]
    assert first[:4].isdigit() and first[4] == "-", first  # "2026-05-09 07:35:25,123 INFO ..."


# ---- devices are marked for udev ---------------------------------------------------------


def test_agent_devices_carry_the_group_the_udev_rule_matches(
    agent: AgentProcess, nics: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": {"nic": "eth1"}}, "options": NO_CHECK})
    group = nics.sh("cat", "/sys/class/net/A/netdev_group").stdout.strip()
    assert group == str(OWNED_GROUP)
    rule = (Path(__file__).parents[2] / "contrib" / "networkmanager"
            / "80-vdsm-net-unmanaged.rules").read_text()
    assert f'ATTR{{netdev_group}}=="{group}"' in rule
    assert nics.sh("cat", "/sys/class/net/eth1/netdev_group").stdout.strip() == "0"


# ---- vdsm-net-client against the daemon --------------------------------------------------


def test_client_prints_the_error_data(agent: AgentProcess, nics: NetNS) -> None:
    client = [str(BIN / "vdsm-net-client"), "--socket", str(agent.socket)]
    proc = nics.sh(*client, "Host.getCapabilities", "wat=1", check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error -32602: "), proc.stderr
    assert "got an unexpected keyword argument 'wat'" in proc.stderr, proc.stderr


def test_client_whose_reader_went_away_ends_quietly(agent: AgentProcess, nics: NetNS) -> None:
    # `| head` that has read enough: a pipe whose read end is closed before the client
    # writes (a real `head` may or may not close in time for a small answer).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            nics.exec_argv(str(BIN / "vdsm-net-client"), "--socket", str(agent.socket),
                           "Host.getCapabilities"),
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == "", proc.stderr  # no BrokenPipeError traceback


@pytest.mark.parametrize("program", ["vdsm-net-agent", "vdsm-net-client", "engine-client"])
def test_every_program_has_version(program: str) -> None:
    from vdsm_net import __version__

    proc = subprocess.run([str(BIN / program), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{program} {__version__}"


def test_client_json_output_is_the_agents_answer(agent: AgentProcess, nics: NetNS) -> None:
    client = [str(BIN / "vdsm-net-client"), "--socket", str(agent.socket)]
    proc = nics.sh(*client, "Host.ping2")
    assert json.loads(proc.stdout) == {}
