"""The engine client against agents that misbehave on a real wire, and killed mid-rollout.

Every host is a real aiohttp server with mutual TLS on 127.0.0.1 (certificates from
tests/pki_helpers.py), running in a thread of its own; a healthy one answers with the in-process
``FakeAgent`` logic (tests/unit/engine/fakeagent.py). A host can be switched to: hang (never
answers), close (closes the connection in the middle of a response), garbage (answers HTML), or
badcert (presents a certificate from another CA). The real ``engine-client`` runs against them:

- ``network update`` with one host of each kind: each bad host fails alone with a reason that
  says what happened, the healthy ones are updated, and the store says exactly that;
- ``engine-client`` killed with SIGKILL at random points of a rollout, several times: the store
  opens, passes SQLite's integrity and foreign key checks, keeps every attachment, holds the
  old or the new definition, and never says "in sync" for a host that does not have the new
  definition; a later ``sync`` converges every host.

Known gap, worked around here: after a killed rollout, a host still waiting for its
connectivity confirmation reports the unconfirmed change in its capabilities; a ``sync`` or
``host refresh`` in that window marks it in sync, and the host then rolls back on its own, so
the store says "in sync" for a host that is not. The test waits for hosts to settle first.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from engine_client.agent_client import Endpoint
from engine_client.store import Store
from tests.enginecli import assert_store_sound, cli, in_sync
from tests.pki_helpers import CA, Issued, issue, make_ca
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport
from vdsm_net.tls import server_context

T = TypeVar("T")
BIN = Path(sys.executable).parent
NET = "red"
MODES = ("hang", "close", "garbage", "badcert")
KILLS = 5


@dataclass
class AgentServer:
    """One host: a real HTTPS listener in front of a FakeAgent, with a switchable misbehaviour."""

    name: str
    ctx: ssl.SSLContext
    agent: FakeAgent = field(default_factory=FakeAgent)
    transport: FakeTransport = field(default_factory=FakeTransport)
    mode: str = "good"
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.mode == "hang":
            await asyncio.Event().wait()  # until the server shuts down
        if self.mode == "garbage":
            return web.Response(body=b"<html>\x00\xff 502 Bad Gateway</html>", status=200,
                                content_type="text/html")
        if self.mode == "close":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 4096
            await resp.prepare(request)
            await resp.write(b'{"jsonrpc": "2.0", "id": ')
            assert request.transport is not None
            request.transport.close()
            return resp
        data = await self.transport.post(Endpoint(self.url), body, dict(request.headers), 60)
        return web.Response(body=data, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/jsonrpc", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ctx)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"
        self.transport.add(self.url, self.agent)


async def _cancel_the_rest() -> None:
    """Handlers still hanging (the "hang" host, a FakeAgent waiting for a confirmation)."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Hosts:
    """The servers' event loop, in a thread: the engine client runs its own asyncio.run."""

    def __init__(self, tmp: Path) -> None:
        self.ca: CA = make_ca(tmp)
        self.server: Issued = issue(self.ca, "agent", server=True)
        self.client: Issued = issue(self.ca, "engine")
        self.foreign: Issued = issue(make_ca(tmp, "other-ca"), "agent", server=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: dict[str, AgentServer] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def add(self, name: str, setup_delay: float = 0.0) -> AgentServer:
        ctx = server_context(self.server.cert, self.server.key, self.ca.cert)
        server = AgentServer(name, ctx, FakeAgent(name=name, setup_delay=setup_delay))
        self.run(server.start())
        self.servers[name] = server
        return server

    def set_mode(self, name: str, mode: str) -> None:
        server = self.servers[name]
        # A context's certificate can be replaced; new handshakes present the new one.
        cert = self.foreign if mode == "badcert" else self.server
        server.ctx.load_cert_chain(cert.cert, cert.key)
        server.mode = mode

    def close(self) -> None:
        for server in self.servers.values():
            if server.runner is not None:
                self.run(server.runner.cleanup())
        self.run(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    h = Hosts(tmp_path)
    try:
        yield h
    finally:
        h.close()


def populate(hosts: Hosts, db: Path, names: list[str]) -> None:
    assert cli(db, "dc", "add", "dc1", "--version", "4.7")[0] == 0
    c = hosts.client
    for name in names:
        server = hosts.servers[name]
        code, out = cli(db, "host", "add", name, server.url, "--dc", "dc1", "--cert",
                        str(c.cert), "--key", str(c.key), "--ca", str(hosts.ca.cert))
        assert code == 0, out
    assert cli(db, "network", "add", NET, "--dc", "dc1", "--vlan", "100")[0] == 0
    for name in names:
        code, out = cli(db, "network", "attach", NET, name, "--nic", "eth1", "--timeout", "5")
        assert code == 0, out


def test_each_bad_host_fails_alone_with_its_reason(hosts: Hosts, tmp_path: Path) -> None:
    names = ["good1", *MODES, "good2"]
    for name in names:
        hosts.add(name)
    db = tmp_path / "engine.db"
    populate(hosts, db, names)
    for mode in MODES:
        hosts.set_mode(mode, mode)

    started = time.monotonic()
    code, out = cli(db, "network", "update", NET, "--mtu", "9000", "--timeout", "1")
    took = time.monotonic() - started
    assert code == 1, out
    by_host = {h["host"]: h for h in out["hosts"]}
    assert (out["planned"], out["updated"], out["failed"]) == (6, 2, 4), out
    assert by_host["good1"]["ok"] and by_host["good2"]["ok"]
    reasons = {m: by_host[m]["failure"] for m in MODES}
    assert "timed out" in reasons["hang"], reasons
    assert "connection closed" in reasons["close"] or "bad response" in reasons["close"], reasons
    assert "bad response" in reasons["garbage"], reasons
    assert "TLS" in reasons["badcert"] and "certificate verify failed" in reasons["badcert"]
    for mode in MODES:
        assert hosts.servers[mode].url in reasons[mode], reasons  # which host, by address
    print(f"failure modes: update over 6 hosts in {took:.1f} s; reasons: {reasons}")

    with Store.open(db) as store:
        assert store.get_network(NET).mtu == 9000
        for name in names:
            att = store.get_attachment(name, NET)
            good = name.startswith("good")
            assert in_sync(store, name, NET) is good, att
            assert (att.last_error is None) is good, att
            if not good:
                assert att.last_error == by_host[name]["failure"]
        events = [e.message for e in store.list_events(correlation_id=out["correlation_id"])]
    assert "6 are planned to be updated, however only 2 could be updated." in events
    for name in ("good1", "good2"):
        assert hosts.servers[name].agent.networks[NET]["mtu"] == 9000
        assert hosts.servers[name].agent.safe[NET]["mtu"] == 9000

    # Healthy again: sync brings every host to the definition.
    for mode in MODES:
        hosts.set_mode(mode, "good")
    code, out = cli(db, "sync", "--timeout", "5")
    assert code == 0, out
    with Store.open(db) as store:
        assert all(in_sync(store, a.host, NET) for a in store.list_attachments(network=NET))
    for server in hosts.servers.values():
        assert server.agent.networks[NET]["mtu"] == 9000


def _check_store(db: Path, hosts: Hosts, names: list[str], mtus: tuple[int, int]) -> int:
    """The store after a kill: sound, complete, and never optimistic. Its network MTU."""
    assert_store_sound(db)
    with Store.open(db) as store:
        mtu = store.get_network(NET).mtu
        assert mtu in mtus, mtu
        atts = {a.host: a for a in store.list_attachments(network=NET)}
        assert sorted(atts) == sorted(names)
        for name, att in atts.items():
            have = hosts.servers[name].agent.networks.get(NET, {}).get("mtu", 1500)
            if in_sync(store, name, NET):
                assert have == mtu, (name, att, have)
    return mtu


def test_killed_mid_rollout_leaves_a_consistent_store(hosts: Hosts, tmp_path: Path) -> None:
    names = [f"h{i}" for i in range(6)]
    for i, name in enumerate(names):
        hosts.add(name, setup_delay=0.2 * (i + 1))
    db = tmp_path / "engine.db"
    populate(hosts, db, names)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    outcomes = []
    env = {**os.environ, "ENGINE_CLIENT_DB": str(db)}
    for kill in range(KILLS):
        old = 1500 + 100 * kill
        new = old + 100
        delay = rng.uniform(0.05, 3.0)
        proc = subprocess.Popen(
            [str(BIN / "engine-client"), "network", "update", NET, "--mtu", str(new),
             "--timeout", "3", "--db", str(db), "--json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mtu = _check_store(db, hosts, names, (old, new))
        with Store.open(db) as store:
            synced = sum(in_sync(store, a.host, NET) for a in store.list_attachments(network=NET))
        outcomes.append(f"{delay:.2f}s: mtu {mtu}, {synced}/6 in sync")
        # Put the definition at `new` for the next round, whatever the kill left.
        if mtu == old:
            code, out = cli(db, "network", "update", NET, "--mtu", str(new), "--timeout", "3")
            assert code == 0, out
        # Hosts that were mid-change roll back on their own (no confirmation): wait for it.
        # Before that, their capabilities show the unconfirmed change and a sync would take
        # them as in sync (see the module docstring).
        deadline = time.monotonic() + 30
        while any(s.transport.in_flight for s in hosts.servers.values()):
            assert time.monotonic() < deadline, "a host never finished its setupNetworks"
            time.sleep(0.1)
        while True:
            code, out = cli(db, "sync", "--timeout", "3")
            if code == 0:
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.5)
        _check_store(db, hosts, names, (new, new))
        with Store.open(db) as store:
            assert all(in_sync(store, a.host, NET) for a in store.list_attachments(network=NET))
    print(f"engine kill -9: {KILLS} kills (seed {seed}): " + "; ".join(outcomes))
