"""Connectivity probes (docs/api.md, ``options.probes``) on a real kernel: a host namespace
whose NIC ``eth1`` is cabled (a veth) to a peer namespace holding 192.0.2.1/24 and
2001:db8::1/64 and a TCP listener. The probes run in the agent, in the host's namespace, through
the configuration the change just applied: a probe that can pass keeps the change, one that
cannot rolls it back with error 10 naming it, the kernel exactly as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, RpcError
from tests.dump import dump_state
from tests.listener import tcp_listener
from tests.netns import NetNS, run

PORT = 3260
RED = {"nic": "eth1", "ipaddr": "192.0.2.10", "prefix": "24", "ipv6addr": "2001:db8::10/64"}


@pytest.fixture
def cabled(netns: NetNS, peer: NetNS) -> Iterator[NetNS]:
    """``eth1`` of the host namespace, its other end ``eth1p`` in ``peer`` with the peer's
    addresses (no duplicate address detection: the peer is ready at once)."""
    run("ip", "-n", netns.name, "link", "add", "eth1", "type", "veth",
        "peer", "name", "eth1p", "netns", peer.name)  # fmt: skip
    netns.ip("link", "set", "eth1", "up")
    peer.ip("addr", "add", "192.0.2.1/24", "dev", "eth1p")
    peer.ip("addr", "add", "2001:db8::1/64", "dev", "eth1p", "nodad")
    peer.ip("link", "set", "eth1p", "up")
    yield peer


@pytest.fixture
def listener(cabled: NetNS) -> Iterator[None]:
    with tcp_listener(cabled, PORT):
        yield


@pytest.fixture
async def agent(here: NetNS, cabled: NetNS, tmp_path: Path) -> AsyncIterator[AgentInNs]:
    """The agent, its probes' sockets in the host namespace (``here``: this thread is)."""
    a = AgentInNs(here, tmp_path)
    try:
        yield a
    finally:
        a.close()


def addresses(ns: NetNS, dev: str) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for d in ns.ip_json("addr", "show", "dev", dev)
            for a in d["addr_info"] if a.get("scope") == "global"}


async def refused(agent: AgentInNs, code: int, **options: Any) -> str:
    with pytest.raises(RpcError) as err:
        await agent.setup({"red": RED}, **options)
    assert err.value.code == code, err.value.message
    return err.value.message


@pytest.mark.usefixtures("listener")
async def test_probes_that_pass_keep_the_change(agent: AgentInNs, here: NetNS) -> None:
    probes = [{"ping": "192.0.2.1"}, {"ping": "2001:db8::1"}, {"tcp": f"192.0.2.1:{PORT}"},
              {"tcp": f"[2001:db8::1]:{PORT}"}]
    # IPv6: the host's own 2001:db8::10 is tentative (DAD) for a while: the probe retries.
    assert await agent.setup({"red": RED}, probes=probes, connectivityTimeout=20) == {}
    assert addresses(here, "red") == {"192.0.2.10/24", "2001:db8::10/64"}
    assert here.link("eth1")["master"] == "red"
    assert (await agent.caps())["networks"]["red"]["ipv4addrs"] == ["192.0.2.10/24"]


@pytest.mark.usefixtures("listener")
async def test_probes_run_beside_the_confirmation(agent: AgentInNs, here: NetNS) -> None:
    setup = asyncio.create_task(agent.setup(
        {"red": RED}, probes=[{"tcp": f"192.0.2.1:{PORT}"}], connectivityCheck=True,
        connectivityTimeout=20))
    while not (await agent.caps())["netConfigPending"]:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    await agent.call("Host.confirmConnectivity")
    assert await setup == {}
    assert addresses(here, "red") == {"192.0.2.10/24", "2001:db8::10/64"}


async def test_ping_nobody_answers_rolls_back_with_error_10(
    agent: AgentInNs, here: NetNS
) -> None:
    before = dump_state(here.name)
    message = await refused(agent, 10, probes=[{"ping": "192.0.2.1"}, {"ping": "192.0.2.99"}],
                            connectivityTimeout=2)
    assert message.startswith("connectivity check failed: probe options.probes[1] "
                              "ping:192.0.2.99 failed (no echo reply to ")
    assert "probes[0]" not in message  # the peer answered
    assert message.endswith("within 2 s; the change was rolled back")
    assert dump_state(here.name) == before
    assert "red" not in here.links()
    assert (await agent.caps())["networks"] == {}


async def test_tcp_refused_rolls_back_with_error_10(agent: AgentInNs, here: NetNS) -> None:
    before = dump_state(here.name)
    message = await refused(agent, 10, probes=[{"tcp": "[2001:db8::1]:3261"}],
                            connectivityTimeout=2)
    assert "probe options.probes[0] tcp:[2001:db8::1]:3261 failed (Connection refused)" in message
    assert dump_state(here.name) == before


async def test_a_change_that_cuts_the_probe_off_is_undone(agent: AgentInNs, here: NetNS) -> None:
    """The probe passes before the change and not through it: the host keeps its address."""
    await agent.setup({"red": RED}, probes=[{"ping": "192.0.2.1"}], connectivityTimeout=10)
    before = dump_state(here.name)
    with pytest.raises(RpcError) as err:
        await agent.setup({"red": {"nic": "eth1"}}, probes=[{"ping": "192.0.2.1"}],
                          connectivityTimeout=2)
    assert err.value.code == 10
    assert "ping:192.0.2.1 failed (no echo reply to 0 requests, last: Network is unreachable)" \
        in err.value.message
    assert dump_state(here.name) == before
    assert addresses(here, "red") == {"192.0.2.10/24", "2001:db8::10/64"}


async def test_bad_probe_is_error_21_and_changes_nothing(agent: AgentInNs, here: NetNS) -> None:
    before = dump_state(here.name)
    message = await refused(agent, 21, probes=[{"ping": "192.0.2.1"}, {"tcp": "192.0.2.1:0"}])
    assert message == 'options.probes[1].tcp: port: expected 1-65535, got "0"'
    assert dump_state(here.name) == before


async def test_dry_run_checks_probes_and_runs_none(agent: AgentInNs, here: NetNS) -> None:
    before = dump_state(here.name)
    plan = await agent.setup({"red": RED}, probes=[{"ping": "192.0.2.99"}], dryRun=True,
                             connectivityTimeout=30)
    assert plan["plan"] and dump_state(here.name) == before
