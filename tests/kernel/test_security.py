"""Nobody gets in: the agent daemon's listeners and inputs (docs/api.md).

- The TCP listener requires mutual TLS: a client without a certificate, with one from another
  CA, or with an expired one is refused in the TLS layer (at the handshake with TLS 1.2; with
  TLS 1.3 the server checks the client certificate after the client's side of the handshake,
  so the refusal arrives on the first read) and never gets an HTTP answer; plain HTTP neither.
  Each refusal is logged with the peer's address and the reason.
- Authorization: a host's certificate (``pki issue``'s default role) cannot call another host;
  an engine one can; ``[tls] allowed_clients`` admits only the names listed (CN or SAN).
- The Unix socket is mode 0660.
- Interface names that try path or option injection are refused (error 27 for network names)
  and change nothing; names full of shell metacharacters that the kernel accepts are used
  literally.
- No process is ever spawned: strace of the daemon (and of ``vdsm-net-agent restore``)
  through setupNetworks, queries and a restore shows threads only, no fork or exec (the
  source is checked by ruff's banned-api rule).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine_client import pki
from tests.daemon import BIN, AgentError, AgentProcess
from tests.dump import assert_same_state, dump_state
from tests.netns import NetNS
from tests.pki_helpers import issue, make_ca

ROOT = Path(__file__).resolve().parents[2]
PORT = 54321
NO_CHECK = {"connectivityCheck": False}

# Runs in the agent's namespace (one interpreter for all cases): tries each client and prints
# where it was stopped: "handshake", "request" (TLS 1.3: the refusal comes on the first read as
# an alert or a reset), "closed" (the connection was closed without a byte) or "answered".
PROBE = r"""
import json, socket, ssl, sys
host, port, ca, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
body = b'{"jsonrpc": "2.0", "id": 1, "method": "Host.ping2", "params": {}}'
request = (b"POST /jsonrpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
out = {}
for name, case in cases.items():
    sock = socket.create_connection((host, port), timeout=20)
    if case["tls"]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        if case["max"] == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if case["cert"]:
            ctx.load_cert_chain(case["cert"], case["key"])
        try:
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        except (ssl.SSLError, OSError) as exc:
            out[name] = {"stage": "handshake", "error": str(exc)}
            continue
    data = b""
    try:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            data += chunk
    except (ssl.SSLError, OSError) as exc:
        out[name] = {"stage": "request", "error": str(exc), "data": data.decode("latin-1")}
        continue
    finally:
        sock.close()
    out[name] = {"stage": "answered" if data else "closed", "data": data.decode("latin-1")}
print(json.dumps(out))
"""


@pytest.fixture
def nics(netns: NetNS) -> NetNS:
    for nic in ("eth1", "eth2"):
        netns.add_nic(nic, dummy=False)
    return netns


@pytest.fixture
def agent(nics: NetNS, tmp_path: Path) -> AgentProcess:
    return AgentProcess(nics, tmp_path / "state").start()


def test_tcp_listener_requires_a_client_certificate_from_its_ca(
    nics: NetNS, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path)
    server = issue(ca, "agent", server=True)
    client = issue(ca, "engine")
    expired = issue(ca, "expired", expired=True)
    intruder = issue(make_ca(tmp_path, "other-ca"), "intruder")
    config = tmp_path / "agent.toml"
    config.write_text(f'[rpc]\nlisten = "127.0.0.1:{PORT}"\n'
                      f'[tls]\ncert = "{server.cert}"\nkey = "{server.key}"\nca = "{ca.cert}"\n')
    agent = AgentProcess(nics, tmp_path / "state", "--config", str(config)).start()

    def case(cert: Any, max_version: str = "1.3", tls: bool = True) -> dict[str, Any]:
        return {"tls": tls, "max": max_version, "cert": str(cert.cert) if cert else None,
                "key": str(cert.key) if cert else None}

    cases = {
        "valid": case(client),
        "valid-tls12": case(client, "1.2"),
        "no-cert": case(None), "no-cert-tls12": case(None, "1.2"),
        "other-ca": case(intruder), "other-ca-tls12": case(intruder, "1.2"),
        "expired": case(expired), "expired-tls12": case(expired, "1.2"),
        "plain-http": case(None, tls=False),
    }
    proc = nics.sh(sys.executable, "-c", PROBE, "127.0.0.1", str(PORT), str(ca.cert),
                   json.dumps(cases))
    seen = json.loads(proc.stdout)
    for name in ("valid", "valid-tls12"):
        assert seen[name]["stage"] == "answered", seen[name]
        assert seen[name]["data"].startswith("HTTP/1.1 200"), seen[name]
        assert '"result": {}' in seen[name]["data"]
    for name in ("no-cert", "other-ca", "expired"):
        # TLS 1.2: the server verifies the client certificate inside the handshake.
        assert seen[f"{name}-tls12"]["stage"] == "handshake", seen[f"{name}-tls12"]
        # TLS 1.3: refused before any HTTP byte comes back.
        assert seen[name]["stage"] in ("handshake", "request", "closed"), seen[name]
        assert seen[name].get("data", "") == "", seen[name]
    assert "HTTP/1.1 200" not in seen["plain-http"].get("data", ""), seen["plain-http"]
    print("tls: " + "; ".join(f"{k}: {v['stage']} {v.get('error', '')[:60]}"
                              for k, v in seen.items()))
    assert agent.call("Host.ping2") == {}  # refused clients did not hurt the agent
    refusals = [line for line in agent.log.read_text().splitlines()
                if "TLS handshake with 127.0.0.1:" in line and " refused: " in line]
    # One line per refused case (4 certificates x 2 TLS versions, plain HTTP), with the reason.
    assert len(refusals) == 7, refusals
    assert any("HTTP_REQUEST" in line for line in refusals), refusals
    assert any("certificate has expired" in line for line in refusals), refusals
    assert any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in line for line in refusals), refusals


def _tls_agent(nics: NetNS, tmp_path: Path, server: Any, ca: Any, extra: str = "") -> AgentProcess:
    config = tmp_path / "agent.toml"
    config.write_text(f'[rpc]\nlisten = "127.0.0.1:{PORT}"\n'
                      f'[tls]\ncert = "{server.cert}"\nkey = "{server.key}"\nca = "{ca.cert}"\n'
                      + extra)
    return AgentProcess(nics, tmp_path / "state", "--config", str(config)).start()


def _probe(nics: NetNS, ca: Any, clients: dict[str, Any]) -> dict[str, Any]:
    cases = {name: {"tls": True, "max": "1.3", "cert": str(c.cert), "key": str(c.key)}
             for name, c in clients.items()}
    proc = nics.sh(sys.executable, "-c", PROBE, "127.0.0.1", str(PORT), str(ca.cert),
                   json.dumps(cases))
    seen: dict[str, Any] = json.loads(proc.stdout)
    return seen


def _answered(result: dict[str, Any]) -> bool:
    return bool(result["stage"] == "answered" and result["data"].startswith("HTTP/1.1 200"))


def test_a_host_certificate_cannot_call_another_host(nics: NetNS, tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server = issue(ca, "agent", server=True)
    other_host = pki.issue(ca.directory, "host2", ips=["10.0.0.12"])  # `pki issue` default
    engine = pki.issue(ca.directory, "engine", role="engine")
    agent = _tls_agent(nics, tmp_path, server, ca)
    seen = _probe(nics, ca, {"host2": other_host, "engine": engine})
    assert _answered(seen["engine"]), seen["engine"]
    assert not seen["host2"].get("data"), seen["host2"]  # not a byte of HTTP
    log = agent.log.read_text()
    assert "TLS handshake with 127.0.0.1:" in log
    # OpenSSL, verifying a client, checks the purpose: the EKU lacks clientAuth.
    assert "refused: client certificate refused: unsuitable certificate purpose" in log, log


def test_allowed_clients_admits_only_the_names_listed(nics: NetNS, tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    server = issue(ca, "agent", server=True)
    engine = pki.issue(ca.directory, "engine", role="engine")
    by_san = pki.issue(ca.directory, "engine-b", dns=["engine-b.lab"], role="engine")
    stranger = pki.issue(ca.directory, "tool", role="engine")
    agent = _tls_agent(nics, tmp_path, server, ca, 'allowed_clients = ["engine", "engine-b.lab"]\n')
    seen = _probe(nics, ca, {"engine": engine, "by-san": by_san, "stranger": stranger})
    assert _answered(seen["engine"]), seen["engine"]
    assert _answered(seen["by-san"]), seen["by-san"]  # a subject alternative name counts
    assert not seen["stranger"].get("data"), seen["stranger"]
    log = agent.log.read_text()
    assert "certificate 'tool' (names tool, tool) is not in [tls] allowed_clients" in log, log


def test_unix_socket_mode_is_0660(agent: AgentProcess) -> None:
    mode = agent.socket.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660, oct(stat.S_IMODE(mode))


BAD_NETWORK_NAMES = ["../x", "..", ".", "-x", "--help", "a b", "a\tb", "a\nb", "x" * 16,
                     "rés", "", "a/b", "a:b", "a\x00b", "eth1.5", "\u202ered", "a\x7f"]


def test_injected_names_are_refused_and_change_nothing(agent: AgentProcess, nics: NetNS) -> None:
    agent.call("Host.setupNetworks", {"networks": {"base": {"nic": "eth2"}},
                                      "options": NO_CHECK})
    before = dump_state(nics.name)
    refusals: dict[str, int] = {}

    def refused(networks: dict[str, Any], bondings: dict[str, Any], codes: set[int]) -> None:
        with pytest.raises(AgentError) as err:
            agent.call("Host.setupNetworks", {"networks": networks, "bondings": bondings,
                                              "options": NO_CHECK})
        assert err.value.code in codes, (networks, bondings, err.value.message)
        refusals[str(err.value.code)] = refusals.get(str(err.value.code), 0) + 1
        assert_same_state(before, dump_state(nics.name), f"after {networks} {bondings}")

    for name in BAD_NETWORK_NAMES:
        refused({name: {"nic": "eth1"}}, {}, {27})
        refused({name: {"remove": True}}, {}, {27})
        # The same strings where a NIC or a bond is named: bad NIC (23), bad bonding (25).
        refused({"red": {"nic": name}}, {}, {21, 23})
        refused({"red": {"bonding": name}}, {}, {21, 25})
        refused({}, {name: {"nics": ["eth1"]}}, {25})
        refused({}, {"bond0": {"nics": [name]}}, {21, 23, 25})
    print(f"names: {len(BAD_NETWORK_NAMES)} names in 6 positions refused {refusals}")


def test_shell_metacharacters_in_a_valid_name_are_used_literally(
    agent: AgentProcess, nics: NetNS, tmp_path: Path
) -> None:
    # The kernel accepts any printable name without '/', ':' or white space: a shell would
    # run these; the agent must create a bridge of exactly that name and nothing else.
    names = ["$(touch${IFS}x)", "`touch`x;y|z&", "'\"*?[]<>!"]
    for name in names:
        agent.call("Host.setupNetworks", {"networks": {name: {}}, "options": NO_CHECK})
        link = nics.link(name)
        assert link["ifname"] == name and link["linkinfo"]["info_kind"] == "bridge"
        agent.call("Host.setupNetworks", {"networks": {name: {"remove": True}},
                                          "options": NO_CHECK})
        assert name not in nics.links()
    assert not (agent.state_dir / "x").exists() and not Path("x").exists()


# ---- no process is ever spawned ------------------------------------------------------------
# The source is checked by ruff (TID251, banned-api in pyproject.toml; tests/unit/test_lint.py
# shows the rule fires); here the running daemon is traced.


def _process_events(trace: Path) -> list[str]:
    """Lines of an strace log that start a process: exec, fork, or a clone without
    CLONE_THREAD (a new thread is fine)."""
    bad = []
    for line in trace.read_text().splitlines():
        if "resumed>" in line or "+++" in line or "---" in line:
            continue
        starts = any(f" {call}(" in line for call in ("execve", "execveat", "fork", "vfork"))
        clones = (" clone(" in line or " clone3(" in line) and "CLONE_THREAD" not in line
        if starts or clones:
            bad.append(line)
    return bad


def _traced_by(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)


def test_daemon_and_restore_spawn_no_process(
    agent: AgentProcess, nics: NetNS, tmp_path: Path
) -> None:
    assert agent.proc is not None
    pid = agent.proc.pid
    trace = tmp_path / "daemon.strace"
    tids = sorted(os.listdir(f"/proc/{pid}/task"))
    strace = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(trace), "-e",
         "trace=execve,execveat,fork,vfork,clone,clone3",
         *[arg for tid in tids for arg in ("-p", tid)]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not all(_traced_by(int(t)) for t in tids):
            assert strace.poll() is None, strace.stderr.read() if strace.stderr else ""
            assert time.monotonic() < deadline, "strace did not attach"
            time.sleep(0.05)
        agent.call("Host.setupNetworks", {"networks": {
            "red": {"nic": "eth1", "mtu": 9000, "ipaddr": "192.0.2.2", "prefix": 24,
                    "gateway": "192.0.2.1", "defaultRoute": True},
            "iso": {"stp": True}}, "options": NO_CHECK})
        agent.call("Host.getCapabilities")
        agent.call("Host.getNetworkStatistics")
        agent.call("Host.setSafeNetworkConfig")
        agent.call("Host.setupNetworks", {"networks": {"red": {"remove": True}},
                                          "options": NO_CHECK})
        with pytest.raises(AgentError):
            agent.call("Host.setupNetworks", {"networks": {"$(reboot)": {"nic": "../x"}}})
    finally:
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=30)
    assert "iso" in nics.links()
    assert _process_events(trace) == []
    assert "clone" in trace.read_text(), "strace saw no thread either: is it tracing at all?"

    # The restore one-shot, traced from its own exec: that first execve is the only one.
    agent.stop()
    restore_trace = tmp_path / "restore.strace"
    proc = nics.sh("strace", "-f", "-qq", "-o", str(restore_trace), "-e",
                   "trace=execve,execveat,fork,vfork,clone,clone3", *agent.argv("restore")[4:])
    assert proc.returncode == 0, proc.stderr
    assert "red" in nics.links()  # the safe config had it
    events = _process_events(restore_trace)
    assert len(events) == 1 and str(BIN / "vdsm-net-agent") in events[0], events
