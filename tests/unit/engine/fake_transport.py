"""An in-process fake agent behind the engine client's ``Transport`` protocol.

It speaks JSON-RPC 2.0 like the agent (SPEC §1.2, §1.6 connectivity check) without HTTP or a
kernel, so the rollout's concurrency, ordering and failure handling can be tested exactly: it
records every request (method, params, headers) and counts in-flight setupNetworks calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine_client.agent_client import UNREACHABLE, AgentError, Endpoint


@dataclass
class FakeHost:
    """Behaviour of one fake agent."""

    apply_seconds: float = 0.0  # time setupNetworks spends "applying" before the check
    error: tuple[int, str] | None = None  # setupNetworks answers this error
    hang: bool = False  # setupNetworks never answers
    unreachable: bool = False  # every request fails to connect
    drop_confirms: bool = False  # confirmConnectivity never reaches the agent
    networks: dict[str, Any] = field(default_factory=dict)  # running config
    safe: dict[str, Any] = field(default_factory=dict)  # safe config
    # set while setupNetworks waits for a confirmation that arrives after the change
    _awaiting: asyncio.Event | None = None


@dataclass(frozen=True)
class Call:
    url: str
    method: str
    params: Mapping[str, Any]
    headers: Mapping[str, str]
    setup_pending: bool  # was a setupNetworks of this host in flight when this call arrived


class FakeAgents:
    """The Transport: routes each request to the FakeHost named by the endpoint's URL."""

    def __init__(self, hosts: Mapping[str, FakeHost]) -> None:
        self.hosts = dict(hosts)
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._pending: set[str] = set()

    def calls_to(self, url: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.url == url and (method is None or c.method == method)]

    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        host = self.hosts[endpoint.url]
        request = json.loads(body)
        method = request["method"]
        params = request.get("params") or {}
        self.calls.append(
            Call(endpoint.url, method, params, dict(headers), endpoint.url in self._pending)
        )
        await asyncio.sleep(0)  # a request always yields, as a real one would
        if host.unreachable:
            raise AgentError(UNREACHABLE, f"cannot connect to {endpoint.url}: Connection refused")
        try:
            result = await self._dispatch(endpoint.url, host, method, params)
        except AgentError as exc:
            return _reply(request["id"], error={"code": exc.code, "message": exc.message})
        return _reply(request["id"], result=result)

    async def _dispatch(
        self, url: str, host: FakeHost, method: str, params: Mapping[str, Any]
    ) -> Any:
        if method == "Host.setupNetworks":
            return await self._setup(url, host, params)
        if method == "Host.confirmConnectivity":
            if not host.drop_confirms and host._awaiting is not None:
                host._awaiting.set()
            return {}
        if method == "Host.setSafeNetworkConfig":
            host.safe = dict(host.networks)
            return {}
        if method == "Host.ping2":
            return {}
        raise AgentError(-32601, f"Method not found: {method}")

    async def _setup(self, url: str, host: FakeHost, params: Mapping[str, Any]) -> Any:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._pending.add(url)
        try:
            await asyncio.sleep(host.apply_seconds)
            if host.hang:
                await asyncio.Event().wait()
            if host.error is not None:
                raise AgentError(*host.error)
            options = params.get("options") or {}
            if options.get("connectivityCheck", True):
                # Only a confirmation that arrives from now on counts (SPEC §1.6 step 5).
                host._awaiting = asyncio.Event()
                try:
                    async with asyncio.timeout(float(options.get("connectivityTimeout", 120))):
                        await host._awaiting.wait()
                except TimeoutError:
                    raise AgentError(
                        10,
                        "connectivity check failed: no confirmation within "
                        f"{options.get('connectivityTimeout')} s; rolled back",
                    ) from None
                finally:
                    host._awaiting = None
            for name, attrs in (params.get("networks") or {}).items():
                if attrs.get("remove"):
                    host.networks.pop(name, None)
                else:
                    host.networks[name] = attrs
            return {}
        finally:
            self._pending.discard(url)
            self.in_flight -= 1


def _reply(request_id: int, **member: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, **member}).encode()
