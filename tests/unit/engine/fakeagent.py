"""In-process stand-ins for the network between the engine client and its agents.

``FakeTransport`` implements ``engine_client.agent_client.Transport``: it decodes the JSON-RPC
request and hands it to the ``FakeAgent`` registered for the endpoint's URL, which keeps a
capabilities document (docs/api.md) that ``Host.setupNetworks`` changes. It is a test double of
the network and of remote hosts, not of the code under test: the engine client's real
``AgentClient`` and ``rollout`` run unchanged over it.

The transport records every request (``calls``, in arrival order, with its headers and whether a
setupNetworks of that host was still running) and counts the setupNetworks calls in flight, so
that the rollout's concurrency and ordering can be tested exactly. Each agent has scripted
failures: an error answer, a slow or hanging apply, an unreachable host, lost confirmations.

Like the agent, ``setupNetworks`` with ``connectivityCheck`` waits for a
``Host.confirmConnectivity`` on a new request after it applied the change, and rolls back with
error 10 when none comes within ``connectivityTimeout``; with ``commitOnSuccess`` it makes the
change safe after the confirmation, before it answers.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine_client.agent_client import UNREACHABLE, AgentError, Endpoint

_BOOL_TRUE = (True, "true", 1, "1")


@dataclass(frozen=True)
class Call:
    endpoint: Endpoint
    method: str
    params: dict[str, Any]
    headers: Mapping[str, str]
    setup_pending: bool  # was a setupNetworks of this host in flight when this call arrived

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("X-Correlation-Id")


class RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FakeAgent:
    """One host: its NICs, the networks the agent built, and scripted failures."""

    name: str = "host"
    nics: tuple[str, ...] = ("eth0", "eth1", "eth2")
    version: str = "0.1.0"
    # setupNetworks answers this error (code, message) instead of applying.
    fail_setup: tuple[int, str] | None = None
    # confirmConnectivity never reaches the agent (the host "lost" the engine after the change).
    drop_confirm: bool = False
    # Time setupNetworks spends after applying, before it answers or waits for a confirmation.
    setup_delay: float = 0.0
    # setupNetworks never answers.
    hang: bool = False
    # Every request fails to connect.
    unreachable: bool = False
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    safe: dict[str, dict[str, Any]] = field(default_factory=dict)
    taps: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _confirmed: asyncio.Event | None = None

    # -- what the engine client sees ----------------------------------------------------

    def add_tap(self, network: str, tap: str) -> None:
        self.taps.setdefault(network, []).append(tap)

    def methods(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.method == name]

    def caps(self) -> dict[str, Any]:
        nets: dict[str, Any] = {}
        bridges: dict[str, Any] = {}
        vlans: dict[str, Any] = {}
        for name, attrs in self.networks.items():
            uplink = attrs.get("nic") or attrs.get("bonding")
            vlan = attrs.get("vlan")
            south = None if uplink is None else (f"{uplink}.{vlan}" if vlan is not None else uplink)
            bridged = bool(attrs.get("bridged", True))
            mtu = int(attrs.get("mtu", 1500))
            entry: dict[str, Any] = {
                "iface": name if bridged else south,
                "bridged": bridged,
                "southbound": south,
                "mtu": mtu,
                "isolated": uplink is None,
                "ipv4addrs": [f"{attrs['ipaddr']}/{attrs['prefix']}"] if "ipaddr" in attrs else [],
                "ipv6addrs": [attrs["ipv6addr"]] if "ipv6addr" in attrs else [],
                "gateway": attrs.get("gateway", ""),
                "ipv6gateway": attrs.get("ipv6gateway", "::"),
                "dhcpv4": attrs.get("bootproto") == "dhcp",
                "defaultRoute": False,
            }
            if vlan is not None and south is not None:
                entry["vlanid"] = vlan
                vlans[south] = {"iface": uplink, "vlanid": vlan, "mtu": mtu}
            if bridged:
                ports = ([south] if south else []) + self.taps.get(name, [])
                entry["ports"] = ports
                entry["stp"] = False
                bridges[name] = {"ports": ports, "mtu": mtu, "stp": False}
            nets[name] = entry
        return {
            "networks": nets,
            "bridges": bridges,
            "nics": {
                n: {"hwaddr": "02:00:00:00:00:01", "mtu": 1500, "speed": 0, "operstate": "up"}
                for n in self.nics
            },
            "vlans": vlans,
            "bondings": {},
            "netConfigDirty": self.networks != self.safe,
        }

    # -- JSON-RPC ---------------------------------------------------------------------

    async def handle(self, call: Call) -> Any:
        self.calls.append(call)
        method, params = call.method, call.params
        if method == "Host.ping2":
            return {}
        if method == "Host.getNetworkCapabilities":
            return self.caps()
        if method == "Host.getCapabilities":
            return {**self.caps(), "software_version": self.version, "api_version": 1}
        if method == "Host.confirmConnectivity":
            if self._confirmed is not None and not self.drop_confirm:
                self._confirmed.set()
            return {}
        if method == "Host.setSafeNetworkConfig":
            self.safe = copy.deepcopy(self.networks)
            return {}
        if method == "Host.getNetworkStatistics":
            return self.stats()
        if method == "Host.setupNetworks":
            return await self.setup(params)
        raise RpcFailure(-32601, f"Method not found: {method}")

    def stats(self) -> dict[str, Any]:
        def counters(i: int) -> dict[str, Any]:
            return {
                "rx": 1000 * i,
                "tx": 2000 * i,
                "rxDropped": 0,
                "txDropped": 0,
                "rxErrors": 0,
                "txErrors": 0,
                "state": "up",
                "speed": 0,
                "duplex": "full",
            }

        return {
            "interfaces": {n: counters(i + 1) for i, n in enumerate(self.nics)},
            "networks": {n: counters(i + 1) for i, n in enumerate(sorted(self.networks))},
            "sampleTime": 1.0,
        }

    def _check(self, name: str, attrs: Mapping[str, Any]) -> None:
        if attrs.get("remove") in _BOOL_TRUE:
            if name not in self.networks:
                raise RpcFailure(27, f"networks.{name}: cannot remove: no such network")
            return
        vlan = attrs.get("vlan")
        if vlan is not None and not 0 <= int(vlan) <= 4094:
            raise RpcFailure(26, f"networks.{name}.vlan: expected 0-4094, got {vlan}")
        mtu = attrs.get("mtu", 1500)
        if not 68 <= int(mtu) <= 65535:
            raise RpcFailure(21, f"networks.{name}.mtu: expected 68-65535, got {mtu}")
        nic = attrs.get("nic")
        if nic is not None and nic not in self.nics:
            raise RpcFailure(23, f"networks.{name}.nic: no such NIC {nic!r}")

    async def setup(self, params: dict[str, Any]) -> Any:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_setup is not None:
            raise RpcFailure(*self.fail_setup)
        requested: dict[str, Any] = params.get("networks") or {}
        for name, attrs in requested.items():
            self._check(name, attrs)
        if (params.get("options") or {}).get("dryRun", False) in _BOOL_TRUE:
            # As the agent: validated, planned, nothing touched (one "op" per network here).
            return {"plan": [{"op": "Network", "name": n, **a} for n, a in requested.items()]}
        before = copy.deepcopy(self.networks)
        for name, attrs in requested.items():
            if attrs.get("remove") in _BOOL_TRUE:
                del self.networks[name]
            else:
                self.networks[name] = dict(attrs)
        if self.setup_delay:
            await asyncio.sleep(self.setup_delay)
        options = params.get("options") or {}
        if options.get("connectivityCheck", True) in _BOOL_TRUE:
            # Only a confirmation that arrives from now on counts (docs/transaction.md, step 6).
            self._confirmed = asyncio.Event()
            try:
                await asyncio.wait_for(
                    self._confirmed.wait(), float(options.get("connectivityTimeout", 120))
                )
            except TimeoutError:
                self.networks = before
                raise RpcFailure(
                    10, "connectivity check failed: no confirmation from the engine; rolled back"
                ) from None
            finally:
                self._confirmed = None
        if options.get("commitOnSuccess", False) in _BOOL_TRUE:
            # As the agent: made safe only once confirmed (docs/transaction.md, step 7).
            self.safe = copy.deepcopy(self.networks)
        return {}


@dataclass
class FakeTransport:
    """Routes each request to the agent registered for its endpoint URL; an unknown URL is an
    unreachable host."""

    agents: dict[str, FakeAgent] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0  # setupNetworks calls now running, over all agents
    max_in_flight: int = 0
    _setups: dict[str, int] = field(default_factory=dict)  # by URL: setupNetworks running

    def add(self, url: str, agent: FakeAgent) -> FakeAgent:
        self.agents[url] = agent
        return agent

    def calls_to(self, url: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.url == url and (method is None or c.method == method)]

    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        request = json.loads(body)
        url = endpoint.url
        call = Call(
            endpoint,
            request["method"],
            copy.deepcopy(request.get("params") or {}),
            dict(headers),
            self._setups.get(url, 0) > 0,
        )
        self.calls.append(call)
        await asyncio.sleep(0)  # a request always yields, as a real one would
        agent = self.agents.get(url)
        if agent is None or agent.unreachable:
            raise AgentError(UNREACHABLE, f"cannot connect to {url}: Connection refused")
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        setup = call.method == "Host.setupNetworks"
        if setup:
            self._setups[url] = self._setups.get(url, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply["result"] = await agent.handle(call)
        except RpcFailure as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
        finally:
            if setup:
                self._setups[url] -= 1
                self.in_flight -= 1
        return json.dumps(reply).encode()
