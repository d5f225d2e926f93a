"""A load generator: many simulated agents served from ONE process, for the engine benchmark.

Each simulated host is its own HTTPS listener (127.0.0.1, one port per host) with the real
agent's TLS set-up (``vdsm_net.tls.server_context``: TLS >= 1.2, client certificate required
and checked against the CA), answering JSON-RPC 2.0 on ``/jsonrpc`` like the real agent:

- ``Host.setupNetworks``: takes a fixed ``apply_seconds`` (200 ms) to "apply", then, with
  ``connectivityCheck``, waits for a ``Host.confirmConnectivity`` that arrives after the apply
  (error 10 and no change after ``connectivityTimeout``), as the agent does;
- ``Host.confirmConnectivity``, ``Host.setSafeNetworkConfig``;
- ``Host.getNetworkCapabilities`` / ``Host.getCapabilities``: documents shaped as the real
  agent's (``vdsm_net.caps``), built from the networks the host carries.

It is not the agent (no kernel, no pipeline): it measures the engine client, not the hosts.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from vdsm_net import API_VERSION, __version__
from vdsm_net.tls import server_context

NIC = "eth1"


@dataclass
class SimHost:
    name: str
    apply_seconds: float
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    safe: dict[str, dict[str, Any]] = field(default_factory=dict)
    confirmed: asyncio.Event | None = None
    calls: dict[str, int] = field(default_factory=dict)

    def caps(self) -> dict[str, Any]:
        nets: dict[str, Any] = {}
        bridges: dict[str, Any] = {}
        vlans: dict[str, Any] = {}
        for name, attrs in sorted(self.networks.items()):
            nic = attrs.get("nic")
            vlan = attrs.get("vlan")
            south = None if nic is None else (f"{nic}.{vlan}" if vlan is not None else nic)
            bridged = bool(attrs.get("bridged", True))
            mtu = int(attrs.get("mtu", 1500))
            entry: dict[str, Any] = {
                "iface": name if bridged else south, "bridged": bridged, "southbound": south,
                "mtu": mtu, "isolated": nic is None, "ipv4addrs": [], "ipv6addrs": [],
                "gateway": "", "ipv6gateway": "", "defaultRoute": False,
            }
            if vlan is not None and south is not None:
                entry["vlanid"] = vlan
                vlans[south] = {"iface": nic, "vlanid": vlan, "mtu": mtu}
            if bridged:
                ports = [south] if south else []
                entry["ports"] = ports
                entry["stp"] = False
                bridges[name] = {"ports": ports, "mtu": mtu, "stp": False}
            nets[name] = entry
        return {
            "networks": nets,
            "bridges": bridges,
            "nics": {NIC: {"hwaddr": "02:00:00:00:00:01", "mtu": 1500, "speed": 10000,
                           "operstate": "up"}},
            "vlans": vlans,
            "bondings": {},
            "netConfigDirty": self.networks != self.safe,
        }

    async def setup(self, params: dict[str, Any]) -> dict[str, Any]:
        options = params.get("options") or {}
        new = dict(self.networks)
        for name, attrs in (params.get("networks") or {}).items():
            if attrs.get("remove"):
                new.pop(name, None)
            else:
                new[name] = attrs
        await asyncio.sleep(self.apply_seconds)
        if options.get("connectivityCheck"):
            self.confirmed = asyncio.Event()
            try:
                await asyncio.wait_for(self.confirmed.wait(),
                                       float(options.get("connectivityTimeout", 120)))
            except TimeoutError:
                raise _RpcError(10, "connectivity check failed; rolled back") from None
            finally:
                self.confirmed = None
        self.networks = new
        return {}

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "Host.setupNetworks":
            return await self.setup(params)
        if method == "Host.confirmConnectivity":
            if self.confirmed is not None:
                self.confirmed.set()
            return {}
        if method == "Host.setSafeNetworkConfig":
            self.safe = dict(self.networks)
            return {}
        if method == "Host.getNetworkCapabilities":
            return self.caps()
        if method == "Host.getCapabilities":
            return {**self.caps(), "software_version": __version__, "api_version": API_VERSION}
        if method == "Host.ping2":
            return {}
        raise _RpcError(-32601, f"method not found: {method}")


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LoadGenerator:
    """``count`` simulated hosts on 127.0.0.1, ports ``base_port`` + i."""

    def __init__(self, count: int, *, cert: Path, key: Path, ca: Path, base_port: int,
                 apply_seconds: float = 0.2) -> None:
        self.hosts = {base_port + i: SimHost(f"sim{i}", apply_seconds) for i in range(count)}
        self._ssl = server_context(cert, key, ca)
        self._runner: web.AppRunner | None = None

    def url(self, port: int) -> str:
        return f"https://127.0.0.1:{port}"

    async def _jsonrpc(self, request: web.Request) -> web.Response:
        # Which simulated host: the port the client connected to (its Host header).
        host = self.hosts[int(request.host.rpartition(":")[2])]
        doc = json.loads(await request.read())
        try:
            result = await host.handle(doc["method"], doc.get("params") or {})
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": doc.get("id"), "result": result}
        except _RpcError as e:
            answer = {"jsonrpc": "2.0", "id": doc.get("id"),
                      "error": {"code": e.code, "message": e.message}}
        return web.json_response(answer)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/jsonrpc", self._jsonrpc)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for port in self.hosts:
            site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self._ssl,
                               backlog=1024, reuse_address=True)
            await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
