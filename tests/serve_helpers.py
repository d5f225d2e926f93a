"""Run the real agent server in-process with a small, real JSON-RPC handler (no agent behind
it): what the server, TLS and client tests talk to."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vdsm_net.config import AgentConfig
from vdsm_net.server import Handler, Lifecycle, serve


class EchoAgent:
    """JSON-RPC 2.0 over a few methods: ``echo`` returns its params and the correlation id,
    ``fail`` returns error 21, ``boom`` raises, ``Host.setupNetworks`` waits for a
    ``Host.confirmConnectivity`` (error 10 after ``confirm_timeout``), as the agent does."""

    def __init__(self, confirm_timeout: float = 10.0) -> None:
        self.confirm_timeout = confirm_timeout
        self.confirmed = asyncio.Event()
        self.calls: list[str] = []

    async def handle(self, body: str, headers: Mapping[str, str]) -> str | None:
        doc = json.loads(body)
        method = doc["method"]
        self.calls.append(method)
        if "id" not in doc:
            return None
        if method == "boom":
            raise RuntimeError("handler bug")
        if method == "fail":
            return self._error(doc["id"], 21, "networks.red.vlan: expected 0-4094, got 5000")
        if method == "Host.confirmConnectivity":
            self.confirmed.set()
            return self._result(doc["id"], {})
        if method == "Host.setupNetworks":
            try:
                await asyncio.wait_for(self.confirmed.wait(), self.confirm_timeout)
            except TimeoutError:
                return self._error(doc["id"], 10, "connectivity check failed")
            return self._result(doc["id"], {})
        result = {"method": method, "params": doc.get("params"),
                  "correlation": headers.get("X-Correlation-Id")}
        return self._result(doc["id"], result)

    @staticmethod
    def _result(ident: Any, result: Any) -> str:
        return json.dumps({"jsonrpc": "2.0", "id": ident, "result": result})

    @staticmethod
    def _error(ident: Any, code: int, message: str) -> str:
        return json.dumps({"jsonrpc": "2.0", "id": ident,
                           "error": {"code": code, "message": message}})


@asynccontextmanager
async def running(
    cfg: AgentConfig, handler: Handler, lifecycle: Lifecycle | None = None
) -> AsyncIterator[tuple[str, ...]]:
    """Serve until the block ends; yields the listener URLs ("unix:/p", "https://h:port")."""
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(cfg, handler, on_ready=ready.set_result, lifecycle=lifecycle, stop=stop)
    )
    waiters: set[asyncio.Future[Any]] = {task, ready}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what serve raised
        raise AssertionError("serve returned before it was ready")
    try:
        yield ready.result()
    finally:
        stop.set()
        await task


def local_config(tmp_path: Path, **kwargs: Any) -> AgentConfig:
    return AgentConfig(state_dir=tmp_path / "state", socket=tmp_path / "run" / "agent.sock",
                       **kwargs)


def datagram_listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock
