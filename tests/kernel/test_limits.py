"""The agent daemon's limits against hostile or broken clients (docs/limits.md).

- 2000 TCP connections that never start a TLS handshake (no certificate needed) do not lock
  out the Unix socket: every ``Host.ping2`` there is answered, the agent holds at most
  ``[rpc] max_tcp_connections`` of them (its descriptors stay bounded), closes the others at
  once, and its memory comes back down once the flood is gone; a client with a certificate is
  served afterwards.
- A connection that never finishes its TLS handshake, or never sends (or trickles) its first
  request's headers, is closed after ``[rpc] handshake_timeout``; an idle keep-alive connection,
  or one trickling its next request's headers, after ``[rpc] idle_timeout``; a body announced and
  not sent gets 408 after ``[rpc] body_timeout``; a Content-Length over ``[rpc] max_body`` (1 GiB
  never sent) gets 413 at once; a batch longer than ``[rpc] max_batch`` is one -32600 error.
- Every answer is JSON: ids and numbers such as ``1e309``, ``NaN``, ``Infinity`` are a parse
  error with id null, never ``"id": Infinity``.

Timeouts here are a second or two, and each check waits at most 20 s for what it expects:
nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import AgentProcess, http_post
from tests.faults import rss_kib
from tests.netns import NetNS
from tests.pki_helpers import issue, make_ca

ROOT = Path(__file__).resolve().parents[2]
PORT = 54321
FLOOD = 2000
MAX_TCP = 256  # the default of [rpc] max_tcp_connections
WAIT = 20.0  # the longest any check waits for the agent to act


def _config(tmp_path: Path, **rpc: Any) -> Path:
    ca = make_ca(tmp_path)
    server = issue(ca, "agent", server=True)
    client = issue(ca, "engine")
    lines = [f'listen = "127.0.0.1:{PORT}"'] + [f"{k} = {json.dumps(v)}" for k, v in rpc.items()]
    config = tmp_path / "agent.toml"
    config.write_text("[rpc]\n" + "\n".join(lines) + "\n"
                      f'[tls]\ncert = "{server.cert}"\nkey = "{server.key}"\nca = "{ca.cert}"\n')
    (tmp_path / "client.json").write_text(json.dumps(
        {"cert": str(client.cert), "key": str(client.key), "ca": str(ca.cert)}))
    return config


def _tls_ping(ns: NetNS, tmp_path: Path) -> str:
    """A ``Host.ping2`` over TCP with the engine's certificate, from inside the namespace."""
    files = json.loads((tmp_path / "client.json").read_text())
    script = (
        "import json, socket, ssl, sys\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        f"ctx.load_verify_locations({files['ca']!r})\n"
        f"ctx.load_cert_chain({files['cert']!r}, {files['key']!r})\n"
        f"s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {PORT}), timeout=20),"
        " server_hostname='localhost')\n"
        "body = b'{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": \"Host.ping2\", \"params\": {}}'\n"
        "s.sendall(b'POST /jsonrpc HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n'"
        " b'Content-Length: %d\\r\\n\\r\\n' % len(body) + body)\n"
        "data = b''\n"
        "while chunk := s.recv(65536):\n"
        "    data += chunk\n"
        "print(data.decode().split('\\r\\n\\r\\n', 1)[1])\n"
    )
    return ns.sh(sys.executable, "-c", script).stdout.strip()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _settle(pid: int, fds: int, rss: int) -> None:
    """Wait (at most WAIT) until the agent holds no more descriptors than ``fds`` and no more
    than ``rss`` KiB of memory."""
    deadline = time.monotonic() + WAIT
    while (_fds(pid) > fds or rss_kib(pid) > rss) and time.monotonic() < deadline:
        time.sleep(0.2)


def test_tcp_flood_leaves_the_unix_socket_to_the_operator(netns: NetNS, tmp_path: Path) -> None:
    agent = AgentProcess(netns, tmp_path / "state", "--config", str(_config(tmp_path))).start()
    assert agent.proc is not None
    pid = agent.proc.pid
    assert json.loads(_tls_ping(netns, tmp_path))["result"] == {}
    for _ in range(20):
        agent.call("Host.getNetworkCapabilities")
    fds_before, rss_before = _fds(pid), rss_kib(pid)

    flood = subprocess.Popen(
        netns.exec_argv(sys.executable, "-m", "tests.flood", "--port", str(PORT),
                       "--socket", str(agent.socket), "--connections", str(FLOOD),
                       "--pings", "100"),
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert flood.stdin is not None and flood.stdout is not None
    try:
        held = json.loads(flood.stdout.readline())
        fds_during, rss_during = _fds(pid), rss_kib(pid)
        flood.stdin.write("\n")
        flood.stdin.flush()
        pinged = json.loads(flood.stdout.readline())
        flood.stdin.write("\n")
        flood.stdin.flush()
        assert flood.wait(timeout=60) == 0
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    # Memory comes back: at most 16 MiB above where it started (the flood's own peak is
    # 256 pending TLS connections with asyncio's 256 KiB buffer each, 64 MiB).
    _settle(pid, fds_before, rss_before + 16 * 1024)
    rss_after = rss_kib(pid)
    print(f"\nflood: {held}; agent fds {fds_before} -> {fds_during} -> {_fds(pid)}; "
          f"RSS {rss_before} -> {rss_during} -> {rss_after} KiB; "
          f"closed by the agent {pinged['closed_by_agent']}")

    assert held["opened"] + held["failed"] == FLOOD
    assert held["opened"] > MAX_TCP, held  # the flood did reach past the cap
    assert pinged["failures"] == [], pinged["failures"][:5]
    assert len(pinged["latencies_ms"]) == 100
    # The agent held at most its cap of the flood (plus its own listeners, netlink sockets,
    # the pings' connections) and closed the rest as they came.
    assert fds_during <= fds_before + MAX_TCP + 16, (fds_before, fds_during)
    assert pinged["closed_by_agent"] >= held["opened"] - MAX_TCP, pinged["closed_by_agent"]
    assert _fds(pid) <= fds_before, "connections left over after the flood"
    assert rss_after <= rss_before + 16 * 1024, (rss_before, rss_during, rss_after)
    # And a client with a certificate is served again.
    assert json.loads(_tls_ping(netns, tmp_path))["result"] == {}
    agent.call("Host.ping2")


@pytest.fixture
def short(netns: NetNS, tmp_path: Path) -> AgentProcess:
    config = _config(tmp_path, handshake_timeout=1, idle_timeout=1, body_timeout=1, max_batch=5)
    return AgentProcess(netns, tmp_path / "state", "--config", str(config)).start()


def _unix(agent: AgentProcess) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(WAIT)
    sock.connect(str(agent.socket))
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the agent sends until it closes the connection (a reset counts as closed);
    a socket timeout (WAIT) fails the test: the agent never closed it."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


def _trickle(sock: socket.socket, data: bytes) -> bool:
    """Send ``data`` a byte at a time, 0.1 s apart; False once the agent closed the socket."""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return False
        time.sleep(0.1)
    return True


HEADERS = b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
PING = b'{"jsonrpc": "2.0", "id": 1, "method": "Host.ping2", "params": {}}'


def test_a_connection_without_a_request_is_closed(short: AgentProcess, netns: NetNS) -> None:
    # Unix socket: nothing sent at all.
    assert _read_until_closed(_unix(short)) == b""
    # Headers trickled a byte every 0.1 s: cut off (the 30 bytes would take 3 s).
    sock = _unix(short)
    assert not _trickle(sock, HEADERS[:30]) or _read_until_closed(sock) == b""
    # TCP: a TLS handshake never started.
    script = ("import socket\n"
              f"s = socket.create_connection(('127.0.0.1', {PORT}), timeout={WAIT})\n"
              "print(repr(s.recv(1)))\n")
    assert netns.sh(sys.executable, "-c", script).stdout.strip() == "b''"
    short.call("Host.ping2")


def test_an_idle_keep_alive_connection_is_closed(short: AgentProcess) -> None:
    sock = _unix(short)
    sock.sendall(HEADERS + b"Content-Length: %d\r\n\r\n" % len(PING) + PING)
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"result": {}' in answer
    # Nothing more: the agent closes the kept-alive connection.
    assert _read_until_closed(sock) == b""
    # The next request's headers trickled on a kept-alive connection: cut off too.
    sock = _unix(short)
    sock.sendall(HEADERS + b"Content-Length: %d\r\n\r\n" % len(PING) + PING)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert not _trickle(sock, HEADERS) or _read_until_closed(sock) == b""


def test_a_body_that_does_not_come_is_cut_off(short: AgentProcess) -> None:
    sock = _unix(short)
    sock.sendall(HEADERS + b"Content-Length: 1073741824\r\n\r\n" + PING)
    answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"request body exceeds 1048576 bytes ([rpc] max_body)" in answer
    sock = _unix(short)
    sock.sendall(HEADERS + b"Content-Length: 1000\r\n\r\n" + PING)
    answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    doc = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert doc["error"] == {"code": -32600, "message": "request body not received within 1 s"}
    short.call("Host.ping2")


def _post(agent: AgentProcess, body: bytes) -> Any:
    status, raw = http_post(agent.socket, body)
    assert status == 200, (status, raw)
    # Strict JSON: NaN and Infinity in an answer are an error here.
    return json.loads(raw, parse_constant=lambda name: pytest.fail(f"{name} in {raw!r}"))


def test_a_batch_longer_than_the_limit_is_refused(short: AgentProcess) -> None:
    ping = {"jsonrpc": "2.0", "method": "Host.ping2", "params": {}}
    answers = _post(short, json.dumps([{**ping, "id": i} for i in range(5)]).encode())
    assert sorted(a["id"] for a in answers) == list(range(5))
    refused = _post(short, json.dumps([{**ping, "id": i} for i in range(6)]).encode())
    assert refused == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "Invalid request: a batch of 6 requests exceeds the limit "
        "of 5 ([rpc] max_batch); send it in parts"}}


@pytest.mark.parametrize("literal", ["1e309", "-1e309", "NaN", "Infinity", "-Infinity"])
def test_every_answer_is_json(short: AgentProcess, literal: str) -> None:
    for body in (f'{{"jsonrpc": "2.0", "id": {literal}, "method": "Host.ping2", "params": {{}}}}',
                 f'[{{"jsonrpc": "2.0", "id": {literal}, "method": "Host.ping2"}}]',
                 f'{{"jsonrpc": "2.0", "id": 1, "method": "Host.setupNetworks", "params": '
                 f'{{"networks": {{"red": {{"mtu": {literal}}}}}}}}}'):
        doc = _post(short, body.encode())
        assert doc["id"] is None and doc["error"]["code"] == -32700, doc
        assert doc["error"]["message"].startswith("Parse error: "), doc
    assert short.call("Host.getNetworkCapabilities")["networks"] == {}
