"""The concurrent multi-host rollout (docs/engine-cli.md) against in-process fake agents."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from engine_client.agent_client import Endpoint
from engine_client.report import summary_json, summary_table
from engine_client.rollout import HostChange, HostOutcome, rollout
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport

CID = "cid-1234"
NET = "red"


@dataclass(frozen=True)
class Emitted:
    message: str
    correlation_id: str
    host: str | None
    severity: str


class Recorder:
    def __init__(self) -> None:
        self.events: list[Emitted] = []

    def emit(
        self,
        message: str,
        *,
        correlation_id: str,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
    ) -> None:
        self.events.append(Emitted(message, correlation_id, host, severity))

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.events]


def url(name: str) -> str:
    return f"https://{name}.example:54321"


def make(hosts: dict[str, FakeAgent]) -> tuple[FakeTransport, list[HostChange]]:
    net = FakeTransport({url(h): agent for h, agent in hosts.items()})
    changes = [
        HostChange(h, Endpoint(url(h)), {NET: {"nic": "eth1", "vlan": 100, "mtu": 9000}})
        for h in hosts
    ]
    return net, changes


async def run(
    net: FakeTransport,
    changes: list[HostChange],
    rec: Recorder,
    *,
    parallel: int = 50,
    poll_interval: float = 0.05,
    connectivity_timeout: float = 120,
    call_timeout: float | None = None,
) -> list[HostOutcome]:
    return await rollout(
        NET,
        changes,
        transport=net,
        correlation_id=CID,
        events=rec,
        parallel=parallel,
        poll_interval=poll_interval,
        connectivity_timeout=connectivity_timeout,
        call_timeout=call_timeout,
    )


async def test_fifty_hosts_run_concurrently() -> None:
    net, changes = make({f"h{i:02}": FakeAgent(setup_delay=0.2) for i in range(50)})
    rec = Recorder()
    outcomes = await run(net, changes, rec)
    assert net.max_in_flight == 50
    assert [o.host for o in outcomes] == [c.host for c in changes]
    assert all(o.ok and o.failure is None for o in outcomes)
    assert len(rec.events) == 100
    assert not any("planned" in m for m in rec.messages)
    for h in (c.host for c in changes):
        assert net.agents[url(h)].safe == {NET: {"nic": "eth1", "vlan": 100, "mtu": 9000}}


async def test_parallel_bounds_in_flight_calls() -> None:
    net, changes = make({f"h{i}": FakeAgent(setup_delay=0.05) for i in range(20)})
    outcomes = await run(net, changes, Recorder(), parallel=5)
    assert net.max_in_flight == 5
    assert all(o.ok for o in outcomes)


async def test_event_texts_verbatim_in_start_order() -> None:
    net, changes = make({"alpha": FakeAgent(), "beta": FakeAgent(), "gamma": FakeAgent()})
    rec = Recorder()
    await run(net, changes, rec, parallel=1)
    assert rec.messages == [
        "1/3 applying network red on host alpha",
        "1/3 network red were updated on host alpha",
        "2/3 applying network red on host beta",
        "2/3 network red were updated on host beta",
        "3/3 applying network red on host gamma",
        "3/3 network red were updated on host gamma",
    ]
    assert {e.correlation_id for e in rec.events} == {CID}
    assert [e.host for e in rec.events] == ["alpha"] * 2 + ["beta"] * 2 + ["gamma"] * 2


async def test_completion_event_keeps_the_start_number() -> None:
    # The first host to start is the last to finish: its completion still says 1/3.
    net, changes = make(
        {
            "slow": FakeAgent(setup_delay=0.3),
            "mid": FakeAgent(setup_delay=0.1),
            "fast": FakeAgent(),
        }
    )
    rec = Recorder()
    await run(net, changes, rec)
    applying = [m for m in rec.messages if "applying" in m]
    assert applying == [
        "1/3 applying network red on host slow",
        "2/3 applying network red on host mid",
        "3/3 applying network red on host fast",
    ]
    done = [m for m in rec.messages if "updated on" in m]
    assert done == [
        "3/3 network red were updated on host fast",
        "2/3 network red were updated on host mid",
        "1/3 network red were updated on host slow",
    ]


async def test_partial_failure_events_and_outcomes() -> None:
    net, changes = make(
        {
            "h1": FakeAgent(),
            "h2": FakeAgent(fail_setup=(26, "networks.red.vlan: expected 0-4094, got 5000")),
            "h3": FakeAgent(),
        }
    )
    rec = Recorder()
    outcomes = await run(net, changes, rec, parallel=1)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].failure == "networks.red.vlan: expected 0-4094, got 5000 (code 26)"
    assert (
        "2/3 failed to update red changes on host h2 due to: "
        "networks.red.vlan: expected 0-4094, got 5000 (code 26)"
    ) in rec.messages
    failed = next(e for e in rec.events if "failed to update" in e.message)
    assert failed.severity == "error" and failed.host == "h2"
    last = rec.events[-1]
    assert last.message == "3 are planned to be updated, however only 2 could be updated."
    assert last.severity == "warning" and last.correlation_id == CID and last.host is None
    # The failed host is not made safe; the others are (commitOnSuccess).
    assert net.agents[url("h2")].safe == {}
    assert net.agents[url("h1")].safe == net.agents[url("h1")].networks != {}
    assert net.agents[url("h3")].safe == net.agents[url("h3")].networks


async def test_hanging_host_fails_alone_on_its_timeout() -> None:
    net, changes = make(
        {"stuck": FakeAgent(hang=True), **{f"ok{i}": FakeAgent(setup_delay=0.05) for i in range(5)}}
    )
    rec = Recorder()
    outcomes = await run(net, changes, rec, connectivity_timeout=0.3, call_timeout=0.3)
    by_host = {o.host: o for o in outcomes}
    assert not by_host["stuck"].ok
    assert "timed out after" in (by_host["stuck"].failure or "")
    assert all(by_host[f"ok{i}"].ok for i in range(5))
    # Every healthy host finished before the stuck host was given up on.
    stuck_fail = next(i for i, m in enumerate(rec.messages) if "failed to update" in m)
    updated = [i for i, m in enumerate(rec.messages) if "were updated" in m]
    assert len(updated) == 5 and max(updated) < stuck_fail
    assert rec.messages[-1] == "6 are planned to be updated, however only 5 could be updated."


async def test_unreachable_host_is_a_failed_host() -> None:
    net, changes = make({"down": FakeAgent(unreachable=True), "up": FakeAgent()})
    rec = Recorder()
    outcomes = await run(net, changes, rec)
    assert [o.ok for o in outcomes] == [False, True]
    assert outcomes[0].failure == (
        "cannot connect to https://down.example:54321: Connection refused (code -1)"
    )


async def test_confirm_connectivity_polled_while_pending() -> None:
    net, changes = make({"h1": FakeAgent(setup_delay=0.8)})
    outcomes = await run(net, changes, Recorder(), connectivity_timeout=5, poll_interval=0.5)
    assert outcomes[0].ok
    confirms = net.calls_to(url("h1"), "Host.confirmConnectivity")
    assert len(confirms) >= 2
    assert all(c.setup_pending for c in confirms)
    # Polling stops with the setupNetworks call.
    await asyncio.sleep(1.0)
    assert len(net.calls_to(url("h1"), "Host.confirmConnectivity")) == len(confirms)
    methods = [c.method for c in net.calls_to(url("h1"))]
    assert methods[0] == "Host.setupNetworks"
    # Over TLS one Host.ping2 opens the confirmations' connection while the agent applies;
    # then confirmations, and the read-back of what the host now has.
    assert methods[1] == "Host.ping2"
    assert set(methods[2:-1]) == {"Host.confirmConnectivity"}
    assert methods[-1] == "Host.getCapabilities"
    assert outcomes[0].caps is not None and outcomes[0].caps["networks"][NET]["mtu"] == 9000
    assert net.agents[url("h1")].safe == net.agents[url("h1")].networks


async def test_no_confirmation_means_connectivity_failure_and_no_safe_config() -> None:
    net, changes = make({"lost": FakeAgent(drop_confirm=True), "fine": FakeAgent()})
    rec = Recorder()
    outcomes = await run(net, changes, rec, connectivity_timeout=0.7)
    assert [o.ok for o in outcomes] == [False, True]
    assert "(code 10)" in (outcomes[0].failure or "")
    assert net.agents[url("lost")].safe == {}
    assert net.agents[url("lost")].networks == {}


async def test_setup_params_and_correlation_header_on_every_call() -> None:
    net, changes = make({"h1": FakeAgent(setup_delay=0.6), "h2": FakeAgent()})
    await run(net, changes, Recorder(), connectivity_timeout=42)
    assert {c.method for c in net.calls} == {
        "Host.setupNetworks",
        "Host.ping2",
        "Host.confirmConnectivity",
        "Host.getCapabilities",
    }
    assert all(c.headers.get("X-Correlation-Id") == CID for c in net.calls)
    setup = net.calls_to(url("h1"), "Host.setupNetworks")[0]
    assert setup.params == {
        "networks": {NET: {"nic": "eth1", "vlan": 100, "mtu": 9000}},
        "bondings": {},
        "options": {
            "connectivityCheck": True,
            "connectivityTimeout": 42,
            "commitOnSuccess": True,
        },
    }


async def test_remove_is_sent_as_is() -> None:
    net = FakeTransport({url("h1"): FakeAgent(networks={NET: {"nic": "eth1"}})})
    changes = [HostChange("h1", Endpoint(url("h1")), {NET: {"remove": True}})]
    outcomes = await run(net, changes, Recorder())
    assert outcomes[0].ok
    assert net.agents[url("h1")].networks == {}


async def test_no_hosts_is_no_events() -> None:
    rec = Recorder()
    assert await run(FakeTransport({}), [], rec) == []
    assert rec.events == []


def test_summary_table_and_json() -> None:
    outcomes = [HostOutcome("h1", True, None, 0.25), HostOutcome("h2", False, "boom (code 41)", 1)]
    table = summary_table(outcomes)
    assert table.row_count == 2
    assert summary_json(NET, outcomes, correlation_id=CID) == {
        "network": NET,
        "correlation_id": CID,
        "planned": 2,
        "updated": 1,
        "failed": 1,
        "skipped": 0,
        "hosts": [
            {"host": "h1", "ok": True, "failure": None, "seconds": 0.25, "skipped": False},
            {"host": "h2", "ok": False, "failure": "boom (code 41)", "seconds": 1,
             "skipped": False},
        ],
    }
