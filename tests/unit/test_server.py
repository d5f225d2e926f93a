from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.serve_helpers import EchoAgent, datagram_listener, local_config, running
from vdsm_net.config import ConfigError
from vdsm_net.server import MAX_BODY, ServerError, serve


def unix_session(path: Path) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path)))


async def post(path: Path, body: bytes, headers: dict[str, str] | None = None
               ) -> tuple[int, str]:
    async with unix_session(path) as session, session.post(
        "http://agent/jsonrpc", data=body, headers=headers
    ) as resp:
        return resp.status, await resp.text()


async def test_jsonrpc_round_trip_and_headers(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    agent = EchoAgent()
    async with running(cfg, agent.handle) as urls:
        assert urls == (f"unix:{cfg.socket}",)
        request = {"jsonrpc": "2.0", "id": 7, "method": "echo", "params": {"a": 1}}
        status, text = await post(cfg.socket, json.dumps(request).encode(),
                                  {"X-Correlation-Id": "corr-1"})
    assert status == 200
    assert json.loads(text) == {
        "jsonrpc": "2.0", "id": 7,
        "result": {"method": "echo", "params": {"a": 1}, "correlation": "corr-1"},
    }


async def test_notification_gets_204(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    agent = EchoAgent()
    async with running(cfg, agent.handle):
        status, text = await post(cfg.socket, b'{"jsonrpc": "2.0", "method": "echo"}')
    assert (status, text) == (204, "")
    assert agent.calls == ["echo"]


async def test_handler_exception_is_a_jsonrpc_internal_error(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    async with running(cfg, EchoAgent().handle):
        status, text = await post(cfg.socket, b'{"jsonrpc": "2.0", "id": 1, "method": "boom"}')
        # ... and the agent keeps serving.
        again, _ = await post(cfg.socket, b'{"jsonrpc": "2.0", "id": 2, "method": "echo"}')
    assert status == 500
    assert json.loads(text)["error"]["code"] == -32603
    assert again == 200


async def test_oversized_body_is_refused_with_413(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    agent = EchoAgent()
    async with running(cfg, agent.handle):
        status, text = await post(cfg.socket, b" " * (MAX_BODY + 1))
    assert status == 413
    assert json.loads(text)["error"] == {
        "code": -32600, "message": f"request body exceeds {MAX_BODY} bytes ([rpc] max_body)"}
    assert agent.calls == []


async def test_body_that_is_not_utf8_is_a_parse_error(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    async with running(cfg, EchoAgent().handle):
        status, text = await post(cfg.socket, b"\xff\xfe{}")
    assert status == 400
    assert json.loads(text)["error"]["code"] == -32700


async def test_healthz_and_wrong_method(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    async with running(cfg, EchoAgent().handle), unix_session(cfg.socket) as session:
        async with session.get("http://agent/healthz") as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
        async with session.get("http://agent/jsonrpc") as resp:
            assert resp.status == 405


async def test_unix_socket_mode_parent_dir_and_removal(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    assert not cfg.socket.parent.exists()
    async with running(cfg, EchoAgent().handle):
        mode = cfg.socket.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
        assert stat.S_IMODE(cfg.socket.parent.stat().st_mode) == 0o755
    assert not cfg.socket.exists()


async def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    cfg.socket.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(cfg.socket))  # bound, never listening: what a killed agent leaves
    async with running(cfg, EchoAgent().handle):
        status, _ = await post(cfg.socket, b'{"jsonrpc": "2.0", "id": 1, "method": "echo"}')
    assert status == 200


async def test_socket_of_a_live_agent_is_not_stolen(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    async with running(cfg, EchoAgent().handle):
        with pytest.raises(ServerError, match="another process is listening on it"):
            await serve(cfg, EchoAgent().handle)
        status, _ = await post(cfg.socket, b'{"jsonrpc": "2.0", "id": 1, "method": "echo"}')
        assert status == 200


async def test_regular_file_at_socket_path_is_kept(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    cfg.socket.parent.mkdir()
    cfg.socket.write_text("precious")
    with pytest.raises(ServerError, match="exists and is not a socket"):
        await serve(cfg, EchoAgent().handle)
    assert cfg.socket.read_text() == "precious"


async def test_tcp_without_tls_needs_insecure(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, listen=("127.0.0.1", 0))
    with pytest.raises(ConfigError, match=r"\[tls\] cert: required to listen on 127\.0\.0\.1:0"):
        await serve(cfg, EchoAgent().handle)
    assert not cfg.socket.exists()


async def test_insecure_tcp_listener(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = local_config(tmp_path, listen=("127.0.0.1", 0), insecure=True)
    async with running(cfg, EchoAgent().handle) as urls:
        url = urls[1]
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.post(
            url + "/jsonrpc", json={"jsonrpc": "2.0", "id": 1, "method": "echo"}
        ) as resp:
            assert resp.status == 200
    assert any(r.levelname == "WARNING" and "insecure" in r.getMessage() for r in caplog.records)


async def test_access_log_names_request_status_peer_and_correlation_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="vdsm_net.access")
    cfg = local_config(tmp_path, listen=("127.0.0.1", 0), insecure=True)
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "echo"}'
    async with running(cfg, EchoAgent().handle) as urls:
        await post(cfg.socket, body, {"X-Correlation-Id": "corr-9"})
        async with aiohttp.ClientSession() as session, session.post(
            urls[1] + "/jsonrpc", data=body
        ) as resp:
            assert resp.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "vdsm_net.access"]
    assert len(lines) == 2, lines
    unix, tcp = lines
    assert unix.startswith("POST /jsonrpc echo 200 (")
    assert unix.endswith(" ms [correlation id corr-9]")
    assert " from " not in unix  # a Unix socket has no peer address
    assert tcp.startswith("POST /jsonrpc echo 200 (") and tcp.endswith(" ms from 127.0.0.1"), tcp


async def test_access_log_names_the_methods_of_a_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="vdsm_net.access")
    cfg = local_config(tmp_path)
    batch = [{"jsonrpc": "2.0", "id": i, "method": f"m{i}"} for i in range(5)]
    async with running(cfg, EchoAgent().handle):
        await post(cfg.socket, json.dumps(batch).encode())
        await post(cfg.socket, b"not json")
    lines = [r.getMessage() for r in caplog.records if r.name == "vdsm_net.access"]
    # (the echo handler answers no batch: its 500 is beside the point)
    assert lines[0].startswith("POST /jsonrpc m0, m1, m2, ... (5 requests) "), lines
    assert lines[1].split()[2].isdigit(), lines  # no method to name: the status follows


async def test_lifecycle_wraps_serving(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    events: list[str] = []

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        events.append(f"start, socket exists: {cfg.socket.exists()}")
        yield
        events.append("cleanup")

    async with running(cfg, EchoAgent().handle, lifecycle=lifecycle):
        events.append("ready")
    # The socket is bound before start-up (so a second agent fails before touching anything).
    assert events == ["start, socket exists: True", "ready", "cleanup"]


async def test_ready_after_listening_and_stopping_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = local_config(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    loop = asyncio.get_running_loop()
    with datagram_listener(tmp_path / "notify") as notify_sock:
        server = asyncio.create_task(serve(cfg, EchoAgent().handle))
        messages: list[bytes] = []
        while b"READY=1" not in messages:
            messages.append(await loop.sock_recv(notify_sock, 4096))
        # READY=1 means listening: a request succeeds right away.
        status, _ = await post(cfg.socket, b'{"jsonrpc": "2.0", "id": 1, "method": "echo"}')
        assert status == 200
        while messages.count(b"WATCHDOG=1") < 3:
            messages.append(await loop.sock_recv(notify_sock, 4096))
        os.kill(os.getpid(), signal.SIGTERM)
        await server
        while True:
            try:
                messages.append(notify_sock.recv(4096))
            except BlockingIOError:
                break
    assert b"STOPPING=1" in messages
    assert not cfg.socket.exists()


ACTIVATED = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.serve_helpers import EchoAgent
from vdsm_net.config import AgentConfig
from vdsm_net.server import serve
state = Path(sys.argv[1])
cfg = AgentConfig(state_dir=state, socket=state / "own.sock")
asyncio.run(serve(cfg, EchoAgent().handle, on_ready=lambda urls: print(*urls, flush=True)))
"""


async def test_systemd_socket_activation(tmp_path: Path) -> None:
    """Under systemd-socket-activate the agent serves the passed socket and creates none."""
    sock_path = tmp_path / "activated.sock"
    repo = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        "systemd-socket-activate", "-l", str(sock_path),
        sys.executable, "-c", ACTIVATED, str(tmp_path), str(repo),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        while not sock_path.exists():
            assert proc.returncode is None, "systemd-socket-activate exited"
            await asyncio.sleep(0.05)
        # The first connection makes systemd-socket-activate exec the agent.
        status, text = await post(sock_path, b'{"jsonrpc": "2.0", "id": 1, "method": "echo"}')
        assert status == 200
        assert json.loads(text)["result"]["method"] == "echo"
        assert (await proc.stdout.readline()).decode().strip() == f"unix:{sock_path}"
        assert not (tmp_path / "own.sock").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    assert proc.returncode == 0


async def test_stop_lets_a_pending_request_finish(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(body: str, headers: object) -> str:
        entered.set()
        await release.wait()
        return '{"jsonrpc": "2.0", "id": 1, "result": "finished"}'

    stop = asyncio.Event()
    server = asyncio.create_task(serve(cfg, slow, stop=stop))
    while not cfg.socket.exists():
        assert not server.done()
        await asyncio.sleep(0.01)
    request = asyncio.create_task(post(cfg.socket, b'{"jsonrpc": "2.0", "id": 1}'))
    await entered.wait()
    stop.set()
    await asyncio.sleep(0.1)
    assert not server.done()  # waiting for the request in flight, not cutting it off
    release.set()
    assert await request == (200, '{"jsonrpc": "2.0", "id": 1, "result": "finished"}')
    await server
