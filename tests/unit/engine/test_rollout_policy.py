"""Rollout control (docs/engine-cli.md): --max-failures N|P%, --canary N and --probe, as the
policy decides and as the rollout applies it to in-process fake agents."""

from __future__ import annotations

import argparse

import pytest

from engine_client.agent_client import Endpoint
from engine_client.cli_rollout import probe
from engine_client.report import summary_json
from engine_client.rollout import HostChange, HostOutcome, rollout
from engine_client.rollout_policy import SKIPPED, MaxFailures, RolloutPolicy
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport
from tests.unit.engine.test_rollout import CID, NET, Recorder, url

BROKEN = (23, "networks.red.nic: no such NIC 'eth1'")


def test_max_failures_parse() -> None:
    assert MaxFailures.parse("0") == MaxFailures(count=0)
    assert MaxFailures.parse("12") == MaxFailures(count=12)
    assert MaxFailures.parse("25%") == MaxFailures(percent=25.0)
    assert MaxFailures.parse("12.5%") == MaxFailures(percent=12.5)
    assert MaxFailures.parse("100%") == MaxFailures(percent=100.0)
    for bad in ("-1", "101%", "x", "5 %", "%", "", "1.5", "½"):
        with pytest.raises(ValueError, match=r"expected N .* or P% .*, got"):
            MaxFailures.parse(bad)


def test_budget_n_and_percent_are_exact() -> None:
    assert not MaxFailures(count=0).exceeded(0, 10)
    assert MaxFailures(count=0).exceeded(1, 10)
    assert not MaxFailures(count=2).exceeded(2, 10)
    assert MaxFailures(count=2).exceeded(3, 10)
    # 25% of 10 hosts is 2.5: 2 failures are within, 3 are more.
    assert not MaxFailures(percent=25).exceeded(2, 10)
    assert MaxFailures(percent=25).exceeded(3, 10)
    # 50% of 4 is exactly 2: "more than" means a third failure.
    assert not MaxFailures(percent=50).exceeded(2, 4)
    assert MaxFailures(percent=50).exceeded(3, 4)
    assert MaxFailures(percent=0).exceeded(1, 1000)
    assert not MaxFailures(percent=100).exceeded(1000, 1000)


def test_waves() -> None:
    hosts = ["a", "b", "c", "d"]
    assert RolloutPolicy().waves(hosts) == [hosts]
    assert RolloutPolicy(canary=1).waves(hosts) == [["a"], ["b", "c", "d"]]
    assert RolloutPolicy(canary=3).waves(hosts) == [["a", "b", "c"], ["d"]]
    assert RolloutPolicy(canary=4).waves(hosts) == [hosts]
    assert RolloutPolicy(canary=9).waves(hosts) == [hosts]
    assert RolloutPolicy(canary=2).waves([]) == []


def test_budget_stops_after_a_failed_canary() -> None:
    budget = RolloutPolicy(canary=1).budget(3)
    assert budget.may_send()
    budget.record(False, canary=True)
    assert not budget.may_send()
    other = RolloutPolicy(max_failures=MaxFailures(count=1)).budget(3)
    other.record(False, canary=False)
    assert other.may_send()
    other.record(False, canary=False)
    assert not other.may_send()


def make(hosts: dict[str, FakeAgent]) -> tuple[FakeTransport, list[HostChange]]:
    net = FakeTransport({url(h): agent for h, agent in hosts.items()})
    changes = [HostChange(h, Endpoint(url(h)), {NET: {"nic": "eth1", "mtu": 9000}}) for h in hosts]
    return net, changes


async def run(
    net: FakeTransport, changes: list[HostChange], rec: Recorder, *, parallel: int = 50,
    policy: RolloutPolicy | None = None, probes: tuple[dict[str, str], ...] = (),
) -> list[HostOutcome]:
    return await rollout(NET, changes, transport=net, correlation_id=CID, events=rec,
                         parallel=parallel, poll_interval=0.05, policy=policy, probes=probes)


def setups(agent: FakeAgent) -> int:
    return len(agent.methods("Host.setupNetworks"))


async def test_budget_of_zero_with_parallel_1_skips_every_later_host() -> None:
    agents = {"h1": FakeAgent(), "h2": FakeAgent(fail_setup=BROKEN), "h3": FakeAgent(),
              "h4": FakeAgent()}
    net, changes = make(agents)
    rec = Recorder()
    outcomes = await run(net, changes, rec, parallel=1,
                         policy=RolloutPolicy(max_failures=MaxFailures(count=0)))
    assert [(o.host, o.ok, o.skipped) for o in outcomes] == [
        ("h1", True, False), ("h2", False, False), ("h3", False, True), ("h4", False, True),
    ]
    assert [o.failure for o in outcomes[2:]] == [SKIPPED, SKIPPED]
    # Not sent at all: the agents of h3 and h4 were never asked to change anything.
    assert [setups(agents[h]) for h in ("h1", "h2", "h3", "h4")] == [1, 1, 0, 0]
    assert agents["h3"].networks == {} and agents["h4"].networks == {}
    assert f"network {NET} was not sent to host h3: {SKIPPED}" in rec.messages
    assert rec.messages[-1] == "4 are planned to be updated, however only 1 could be updated."
    doc = summary_json(NET, outcomes, correlation_id=CID)
    assert (doc["planned"], doc["updated"], doc["failed"], doc["skipped"]) == (4, 1, 1, 2)


async def test_budget_of_one_lets_one_failure_through() -> None:
    agents = {"h1": FakeAgent(fail_setup=BROKEN), "h2": FakeAgent(), "h3": FakeAgent(
        fail_setup=BROKEN), "h4": FakeAgent()}
    net, changes = make(agents)
    outcomes = await run(net, changes, Recorder(), parallel=1,
                         policy=RolloutPolicy(max_failures=MaxFailures(count=1)))
    assert [(o.ok, o.skipped) for o in outcomes] == [
        (False, False), (True, False), (False, False), (False, True),
    ]


async def test_budget_in_percent() -> None:
    # 25% of 4 hosts: one failure is within it, the second is more.
    agents = {f"h{i}": FakeAgent(fail_setup=BROKEN if i in (1, 2) else None) for i in range(1, 5)}
    net, changes = make(agents)
    outcomes = await run(net, changes, Recorder(), parallel=1,
                         policy=RolloutPolicy(max_failures=MaxFailures(percent=25)))
    assert [o.skipped for o in outcomes] == [False, False, True, True]


async def test_failed_canary_stops_the_others() -> None:
    agents = {"b": FakeAgent(), "a": FakeAgent(fail_setup=BROKEN), "c": FakeAgent()}
    net, changes = make(agents)
    rec = Recorder()
    outcomes = await run(net, sorted(changes, key=lambda c: c.host), rec,
                         policy=RolloutPolicy(canary=1))
    assert [(o.host, o.ok, o.skipped) for o in outcomes] == [
        ("a", False, False), ("b", False, True), ("c", False, True),
    ]
    assert setups(agents["b"]) == setups(agents["c"]) == 0


async def test_canaries_go_alone_then_the_others() -> None:
    agents = {h: FakeAgent(setup_delay=0.05) for h in ("a", "b", "c", "d")}
    net, changes = make(agents)
    outcomes = await run(net, changes, Recorder(), policy=RolloutPolicy(canary=2))
    assert all(o.ok for o in outcomes)
    def index(host: str, method: str) -> int:
        return next(i for i, c in enumerate(net.calls)
                    if c.url == url(host) and c.method == method)

    # c and d were sent only after both canaries had answered (and were read back).
    canaries_done = max(index(h, "Host.getCapabilities") for h in ("a", "b"))
    assert min(index(h, "Host.setupNetworks") for h in ("c", "d")) > canaries_done
    # The canaries went together, not one after the other.
    assert index("b", "Host.setupNetworks") < index("a", "Host.getCapabilities")


async def test_probes_are_sent_to_every_host() -> None:
    agents = {"h1": FakeAgent(), "h2": FakeAgent()}
    net, changes = make(agents)
    wanted = ({"ping": "192.0.2.1"}, {"tcp": "[2001:db8::1]:22"})
    await run(net, changes, Recorder(), probes=wanted)
    for agent in agents.values():
        (call,) = agent.methods("Host.setupNetworks")
        assert call.params["options"]["probes"] == list(wanted)


async def test_without_probes_no_probes_option() -> None:
    agents = {"h1": FakeAgent()}
    net, changes = make(agents)
    await run(net, changes, Recorder())
    (call,) = agents["h1"].methods("Host.setupNetworks")
    assert "probes" not in call.params["options"]


def test_probe_option_values() -> None:
    assert probe("ping:192.0.2.1") == {"ping": "192.0.2.1"}
    assert probe("ping:2001:db8::1") == {"ping": "2001:db8::1"}
    assert probe("tcp:192.0.2.1:3260") == {"tcp": "192.0.2.1:3260"}
    assert probe("tcp:[2001:db8::1]:22") == {"tcp": "[2001:db8::1]:22"}
    for bad, message in [
        ("http:1.2.3.4", "expected ping:ADDR or tcp:ADDR:PORT"),
        ("192.0.2.1", "expected ping:ADDR or tcp:ADDR:PORT"),
        ("tcp:192.0.2.1:99999", "port: expected 1-65535, got \"99999\" "
                                "(in 'tcp:192.0.2.1:99999')"),
        ("ping:gw", "expected an IPv4 or IPv6 address, got \"gw\" (in 'ping:gw')"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as err:
            probe(bad)
        assert message in str(err.value)
