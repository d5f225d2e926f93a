"""Many mutual-TLS connections made at once through one ``HttpTransport``, against a real aiohttp
TLS server listening on many ports (one "agent" each, with a TLS context, so session ticket
keys, of its own), while every core of the machine is kept busy.

The engine's earlier client offered each new connection the TLS session of the agent's latest
one, read while that one could still be handshaking: under concurrent connects OpenSSL then
failed at random with "i2d() failed (code -1)" (issue 12). Several requests at once to each
agent make several connections to it start together, some while the others are half-way
through their handshakes, which is exactly that case. Sessions are now resumed only from
connections whose handshake is over (``engine_client.tls_sessions``): no connect may fail, and
every connection after an agent's first round resumes (a session offered to an agent it did
not come from would be refused by that agent's own keys, and the connection would not)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from engine_client.agent_client import AgentClient, AgentError, Endpoint
from engine_client.transport import HttpTransport
from tests.pki_helpers import issue, make_ca

AGENTS = 50
AT_ONCE = 4  # requests in flight to each agent: 200 connects at once in the first round
ROUNDS = 3


@dataclass
class Counting:
    """Per port: the TLS connections accepted and the requests answered."""

    connections: dict[int, set[int]] = field(default_factory=dict)
    resumed: dict[int, set[int]] = field(default_factory=dict)  # of which resumed a session
    requests: dict[int, int] = field(default_factory=dict)

    def clear(self) -> None:
        self.connections.clear()
        self.resumed.clear()

    async def handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        port = request.transport.get_extra_info("sockname")[1]
        self.connections.setdefault(port, set()).add(id(request.transport))
        if request.transport.get_extra_info("ssl_object").session_reused:
            self.resumed.setdefault(port, set()).add(id(request.transport))
        self.requests[port] = self.requests.get(port, 0) + 1
        req = json.loads(await request.read())
        # Held a moment, so that a round's requests to one agent overlap and each needs a
        # connection of its own.
        await asyncio.sleep(0.05)
        return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": {"port": port}})


@dataclass
class Fleet:
    urls: list[str]
    server: Counting
    client_files: tuple[str, str, str]  # cert, key, ca
    runner: web.AppRunner
    server_files: tuple[str, str, str]  # cert, key, ca
    sites: dict[int, web.TCPSite] = field(default_factory=dict)

    def endpoint(self, url: str) -> Endpoint:
        cert, key, ca = self.client_files
        return Endpoint(url, cert=cert, key=key, ca=ca)

    async def listen(self, port: int = 0) -> int:
        """One more agent, or the agent on ``port`` again: restarted, new session keys."""
        cert, key, ca = self.server_files
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        site = web.TCPSite(self.runner, "127.0.0.1", port, ssl_context=ctx, reuse_address=True)
        before = {addr[1] for addr in self.runner.addresses}
        await site.start()
        (bound,) = {addr[1] for addr in self.runner.addresses} - before
        self.sites[int(bound)] = site
        return int(bound)

    async def restart(self, port: int) -> None:
        await self.sites.pop(port).stop()
        await self.listen(port)


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """Every core busy (one spinning process each) while the test runs: the earlier client's
    race showed on a loaded machine."""
    spin = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture
async def fleet(tmp_path: Path, busy_machine: None) -> AsyncIterator[Fleet]:
    ca = make_ca(tmp_path, "test CA")
    server_cert = issue(ca, "127.0.0.1", server=True)
    client = issue(ca, "engine")
    server = Counting()
    app = web.Application()
    app.router.add_post("/jsonrpc", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    fleet = Fleet([], server, (str(client.cert), str(client.key), str(ca.cert)), runner,
                  (str(server_cert.cert), str(server_cert.key), str(ca.cert)))
    try:
        for _ in range(AGENTS):
            fleet.urls.append(f"https://127.0.0.1:{await fleet.listen()}")
        yield fleet
    finally:
        await runner.cleanup()


async def _round(transport: HttpTransport, fleet: Fleet) -> list[object]:
    async def call(url: str, delay: float) -> object:
        await asyncio.sleep(delay)
        client = AgentClient(fleet.endpoint(url), transport, timeout=60)
        try:
            return await client.call("Host.ping2")
        except AgentError as exc:
            return exc

    # The i-th request to agent k starts i * (k % 5) ms after the first: for some agents all
    # connect at once, for the others the later connects start while the earlier ones are
    # half-way through their handshakes (the old client failed 150 of 200 of these).
    return list(
        await asyncio.gather(
            *(
                call(url, i * (k % 5) / 1000)
                for k, url in enumerate(fleet.urls)
                for i in range(AT_ONCE)
            )
        )
    )


async def test_many_concurrent_mutual_tls_connects_all_succeed_and_are_reused(
    fleet: Fleet,
) -> None:
    async with HttpTransport(limit=AGENTS, limit_per_host=AT_ONCE, connect_timeout=60) as t:
        for _ in range(ROUNDS):
            answers = await _round(t, fleet)
            failures = [a for a in answers if isinstance(a, AgentError)]
            assert failures == [], f"{len(failures)} of {len(answers)} failed: {failures[:3]}"
            ports = sorted(int(url.rsplit(":", 1)[1]) for url in fleet.urls)
            expected = sorted(p for p in ports for _ in range(AT_ONCE))
            assert sorted(a["port"] for a in answers if isinstance(a, dict)) == expected
    for url in fleet.urls:
        port = int(url.rsplit(":", 1)[1])
        assert fleet.server.requests[port] == AT_ONCE * ROUNDS
        # At most AT_ONCE connections ever, and the later rounds reused them.
        assert len(fleet.server.connections[port]) <= AT_ONCE, url


async def test_released_agents_reconnect_under_concurrency(fleet: Fleet) -> None:
    """``release`` between rounds (what a rollout does when a host is done): every round
    makes all its connections afresh, 200 at once, and all succeed."""
    async with HttpTransport(limit=AGENTS, limit_per_host=AT_ONCE, connect_timeout=60) as t:
        for round_ in range(ROUNDS):
            fleet.server.clear()
            answers = await _round(t, fleet)
            assert [a for a in answers if isinstance(a, AgentError)] == []
            for url in fleet.urls:
                await t.release(fleet.endpoint(url))
            for port in _ports(fleet):
                connections = fleet.server.connections[port]
                # Nothing kept across a release: each round opened its own connections.
                assert len(connections) > 1, port
                if round_ > 0:
                    # Each resumed the session kept from an earlier round, its agent's own.
                    assert fleet.server.resumed.get(port) == connections, port


async def test_a_restarted_agent_gets_a_full_handshake_then_resumes_again(fleet: Fleet) -> None:
    """An agent that lost its session keys (restarted) refuses the kept session: the connect
    falls back to a full handshake (no failure), and the next connections resume the new
    session."""
    restarted = _ports(fleet)[: AGENTS // 2]
    async with HttpTransport(limit=AGENTS, limit_per_host=AT_ONCE, connect_timeout=60) as t:
        assert [a for a in await _round(t, fleet) if isinstance(a, AgentError)] == []
        for url in fleet.urls:
            await t.release(fleet.endpoint(url))
        for port in restarted:
            await fleet.restart(port)
        for round_ in range(2):
            fleet.server.clear()
            answers = await _round(t, fleet)
            assert [a for a in answers if isinstance(a, AgentError)] == [], round_
            for url in fleet.urls:
                await t.release(fleet.endpoint(url))
            for port in _ports(fleet):
                connections = fleet.server.connections[port]
                resumed = fleet.server.resumed.get(port, set())
                if round_ == 0 and port in restarted:
                    assert resumed < connections, port  # at least one full handshake
                else:
                    assert resumed == connections, (round_, port)


def _ports(fleet: Fleet) -> list[int]:
    return [int(url.rsplit(":", 1)[1]) for url in fleet.urls]


async def test_agents_past_the_limit_are_closed_and_reconnect(fleet: Fleet) -> None:
    """Only 10 agents' connections are kept: the least recently used are closed as others
    are asked, while requests to other agents are in flight, and are made afresh next time."""
    async with HttpTransport(limit=10, limit_per_host=AT_ONCE, connect_timeout=60) as t:
        for _ in range(ROUNDS):
            answers = await _round(t, fleet)
            assert [a for a in answers if isinstance(a, AgentError)] == []
    reconnected = [
        url for url in fleet.urls
        if len(fleet.server.connections[int(url.rsplit(":", 1)[1])]) > AT_ONCE
    ]  # fmt: skip
    assert len(reconnected) >= AGENTS - 10, reconnected
