"""The engine client's use of the wire, against real mutual-TLS servers on 127.0.0.1
(``Hosts`` of test_failure_modes): one connection pool per command, so the connection a host's
capabilities were read on carries its setupNetworks, the confirmations have a second one, which
resumes the first one's TLS session (the agent's own server context); ``--call-timeout``
bounds one request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from engine_client.store import Store
from tests.enginecli import cli, in_sync
from tests.unit.engine.fakeagent import FakeAgent
from tests.unit.engine.test_failure_modes import NET, AgentServer, Hosts, populate
from vdsm_net.tls import server_context


class CountingServer(AgentServer):
    """Counts the TLS connections it accepts and how many of them resumed a session."""

    connections: set[int]
    resumed: set[int]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        key = id(request.transport)
        self.connections.add(key)
        if request.transport.get_extra_info("ssl_object").session_reused:
            self.resumed.add(key)
        return await super().handle(request)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    h = Hosts(tmp_path)
    try:
        yield h
    finally:
        h.close()


def add(hosts: Hosts, name: str, setup_delay: float) -> CountingServer:
    ctx = server_context(hosts.server.cert, hosts.server.key, hosts.ca.cert)
    server = CountingServer(name, ctx, FakeAgent(name=name, setup_delay=setup_delay))
    server.connections, server.resumed = set(), set()
    hosts.run(server.start())
    hosts.servers[name] = server
    return server


def test_update_reads_and_applies_on_one_connection_and_confirms_on_a_second(
    hosts: Hosts, tmp_path: Path
) -> None:
    names = ["h1", "h2", "h3"]
    # setupNetworks held long enough for the confirmations to need a connection of their own.
    servers = [add(hosts, name, setup_delay=0.3) for name in names]
    db = tmp_path / "engine.db"
    populate(hosts, db, names)
    for server in servers:
        server.connections.clear()
        server.resumed.clear()

    code, out = cli(db, "network", "update", NET, "--mtu", "9000", "--timeout", "10")

    assert code == 0, out
    assert out["updated"] == 3, out
    for server in servers:
        assert server.agent.networks[NET]["mtu"] == 9000
        assert server.agent.safe == server.agent.networks
        # getCapabilities and setupNetworks (commitOnSuccess) on one connection (a full
        # handshake); the confirmations on a second one, which resumed the first's session.
        assert len(server.connections) == 2, server.name
        assert len(server.resumed) == 1, server.name
        assert server.resumed < server.connections, server.name


def test_call_timeout_bounds_one_request(hosts: Hosts, tmp_path: Path) -> None:
    names = ["good", "hang"]
    for name in names:
        add(hosts, name, setup_delay=0.0)
    db = tmp_path / "engine.db"
    populate(hosts, db, names)
    hosts.set_mode("hang", "hang")

    code, out = cli(db, "network", "update", NET, "--mtu", "9000", "--timeout", "1",
                    "--call-timeout", "0.5")

    assert code == 1, out
    by_host = {h["host"]: h for h in out["hosts"]}
    assert by_host["good"]["ok"]
    # setupNetworks may take the connectivity timeout plus one request's: 1 + 0.5 s.
    assert "timed out after 1.5 s" in by_host["hang"]["failure"], by_host["hang"]
    with Store.open(db) as store:
        assert not in_sync(store, "hang", NET)


def test_call_timeout_must_be_positive(tmp_path: Path) -> None:
    code, out = cli(tmp_path / "engine.db", "dc", "list", "--call-timeout", "0")
    assert code == 2
    assert "call-timeout: expected > 0, got 0" in out
