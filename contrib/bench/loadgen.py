"""A load generator: many simulated agents served from ONE process, for the engine benchmark.

Each simulated host is its own HTTPS listener (127.0.0.1, one port per host) with the real
agent's TLS set-up (``vdsm_net.tls.server_context``: TLS >= 1.2, client certificate required
and checked against the CA), answering JSON-RPC 2.0 on ``/jsonrpc`` like the real agent:

- ``Host.setupNetworks``: takes a fixed ``apply_seconds`` (200 ms) to "apply", then, with
  ``connectivityCheck``, waits for a ``Host.confirmConnectivity`` that arrives after the apply
  (error 10 and no change after ``connectivityTimeout``), as the agent does, and with
  ``commitOnSuccess`` makes the change safe after the confirmation;
- ``Host.confirmConnectivity``, ``Host.setSafeNetworkConfig``;
- ``Host.getNetworkCapabilities`` / ``Host.getCapabilities``: documents shaped as the real
  agent's (``vdsm_net.caps``), built from the networks the host carries.

It is not the agent (no kernel, no pipeline): it measures the engine client, not the hosts.

Run as its own process (``python -m contrib.bench.loadgen ...``, as ``contrib.bench engine``
does) so that the engine client and the hosts do not share one interpreter: it prints
``ready`` once every port listens, and on ``stop`` (stdin) one JSON line: its CPU seconds since
``ready``, and per host the networks, whether they are safe, the TLS connections accepted and
the times (monotonic, comparable with other processes) at which each call came and went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
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
    # (monotonic time, what): "<method> in", "<method> out", "applied"
    timeline: list[tuple[float, str]] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    resumed: set[int] = field(default_factory=set)  # of which TLS sessions were resumed

    def mark(self, what: str) -> None:
        self.timeline.append((time.monotonic(), what))

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
        self.mark("applied")
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
        if options.get("commitOnSuccess"):
            # As the agent: persisted only after the confirmation (docs/transaction.md, step 7).
            self.safe = dict(self.networks)
        return {}

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        self.mark(f"{method} in")
        try:
            return await self._handle(method, params)
        finally:
            self.mark(f"{method} out")

    async def _handle(self, method: str, params: dict[str, Any]) -> Any:
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
        host.connections.add(id(request.transport))
        tls = request.transport.get_extra_info("ssl_object") if request.transport else None
        if tls is not None and tls.session_reused:
            host.resumed.add(id(request.transport))
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


def report(gen: LoadGenerator, cpu: float) -> dict[str, Any]:
    return {
        "cpu_seconds": cpu,
        "hosts": [
            {
                "name": h.name,
                "networks": h.networks,
                "safe": h.safe == h.networks,
                "connections": len(h.connections),
                "resumed": len(h.resumed),
                "calls": h.calls,
                "timeline": h.timeline,
            }
            for h in gen.hosts.values()
        ],
    }


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def serve(args: argparse.Namespace) -> None:
    gen = LoadGenerator(args.count, cert=Path(args.cert), key=Path(args.key), ca=Path(args.ca),
                        base_port=args.base_port, apply_seconds=args.apply)
    for host in gen.hosts.values():
        for name in args.network:
            host.networks[name] = {"nic": NIC, "vlan": 100, "mtu": 1500, "bridged": True}
        host.safe = dict(host.networks)
    await gen.start()
    start = _cpu()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline) not in ("", "stop\n"):
        pass
    cpu = _cpu() - start
    await gen.stop()
    print(json.dumps(report(gen, cpu)), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m contrib.bench.loadgen")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--base-port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--apply", type=float, default=0.2)
    p.add_argument("--network", action="append", default=[],
                   help="a network every host carries at start (nic eth1, vlan 100, mtu 1500)")
    asyncio.run(serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
