"""The real ``vdsm-net-agent`` process inside a test namespace, spoken to over its Unix socket."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.netns import NetNS
from vdsm_net import jsonrpc_codec

BIN = Path(sys.executable).parent


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class AgentError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def http_post(sock_path: Path, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(str(sock_path), timeout)
    try:
        conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class AgentProcess:
    def __init__(self, ns: NetNS, state_dir: Path, *extra: str) -> None:
        self.ns = ns
        self.state_dir = state_dir
        self.socket = state_dir / "agent.sock"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir / "agent.log"
        # Callers on many threads at once (test_concurrency): each call takes its own id.
        self._ids = jsonrpc_codec.Ids()

    def argv(self, *sub: str) -> list[str]:
        return self.ns.exec_argv(str(BIN / "vdsm-net-agent"), *sub, "--state-dir",
                                 str(self.state_dir), "--socket", str(self.socket), *self.extra)

    def start(self, timeout: float = 60) -> AgentProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log)
        self.ns.defer(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                self.call("Host.ping2")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"agent did not answer within {timeout} s: {self.log.read_text()}")

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 120) -> Any:
        request = jsonrpc_codec.Request(self._ids.next(), method, params or {})
        body = request.encode()
        _, raw = http_post(self.socket, body, timeout)
        response = jsonrpc_codec.decode_response(raw, request.id)
        if response.error is not None:
            raise AgentError(response.error.code, response.error.message)
        return response.result

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def restore(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv("restore"), capture_output=True, text=True,
                              env={**os.environ}, timeout=120)
