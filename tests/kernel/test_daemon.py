"""The agent as an operator runs it: a process in a namespace, killed, restarted, restored."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import AgentError, AgentProcess, http_post
from tests.dump import dump_state
from tests.netns import NetNS


def bridged(nic: str, mtu: int = 1500) -> dict[str, Any]:
    return {"nic": nic, "mtu": mtu}


NO_CHECK = {"connectivityCheck": False}


@pytest.fixture
def agent(netns: NetNS, tmp_path: Path) -> AgentProcess:
    for nic in ("eth1", "eth2"):
        netns.add_nic(nic, dummy=False)
    return AgentProcess(netns, tmp_path / "state").start()


def test_restore_after_kill9_keeps_safe_and_drops_unsafe(
    agent: AgentProcess, netns: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": bridged("eth1", 2000)},
                                      "options": NO_CHECK})
    agent.call("Host.setSafeNetworkConfig")
    safe_dump = dump_state(netns.name)
    index_a = netns.link("A")["ifindex"]
    agent.call("Host.setupNetworks", {"networks": {"B": bridged("eth2")}, "options": NO_CHECK})
    assert "B" in netns.links()
    agent.kill9()
    proc = agent.restore()
    assert proc.returncode == 0, proc.stderr
    links = netns.links()
    assert "B" not in links
    assert links["A"]["ifindex"] == index_a  # untouched, not recreated
    assert dump_state(netns.name) == safe_dump


def test_unconfirmed_change_does_not_survive_kill9(agent: AgentProcess, netns: NetNS) -> None:
    agent.call("Host.setupNetworks", {"networks": {"A": bridged("eth1")}, "options": NO_CHECK})
    before = dump_state(netns.name)
    pending = threading.Thread(target=lambda: _swallow(lambda: agent.call(
        "Host.setupNetworks",
        {"networks": {"B": bridged("eth2", 3000)},
         "options": {"connectivityCheck": True, "connectivityTimeout": 300}})))
    pending.start()
    deadline = time.monotonic() + 60
    while "B" not in netns.links():
        assert time.monotonic() < deadline, "the change was never applied"
        time.sleep(0.05)
    agent.kill9()
    pending.join()
    agent.start()  # the next start reverts the unconfirmed change
    assert "B" not in netns.links()
    assert dump_state(netns.name) == before
    caps = agent.call("Host.getNetworkCapabilities")
    assert sorted(caps["networks"]) == ["A"]


def _swallow(fn: Any) -> None:
    with contextlib.suppress(Exception):
        fn()


def test_json_rpc_protocol_errors(agent: AgentProcess) -> None:
    def post(body: bytes) -> Any:
        status, raw = http_post(agent.socket, body)
        assert status == 200, raw
        return json.loads(raw)

    assert post(b"{not json")["error"]["code"] == -32700
    assert post(b'{"jsonrpc": "2.0", "id": 1, "method": "Host.nope", "params": {}}')[
        "error"]["code"] == -32601
    assert post(b'{"jsonrpc": "2.0", "id": 2, "method": "Host.setupNetworks", "params": [1]}')[
        "error"]["code"] == -32602
    assert post(b'{"jsonrpc": "2.0", "id": 3, "method": "Host.setupNetworks", '
                b'"params": {"networks": [], "bogus": 1}}')["error"]["code"] == -32602
    batch = post(b'[{"jsonrpc": "2.0", "id": 4, "method": "Host.ping2", "params": {}},'
                 b' {"jsonrpc": "2.0", "id": 5, "method": "Host.setupNetworks",'
                 b' "params": {"networks": {"x": {"nic": "eth1", "vlan": 9999}}}}]')
    by_id = {r["id"]: r for r in batch}
    assert by_id[4]["result"] == {}
    assert by_id[5]["error"]["code"] == 26
    assert "networks.x.vlan" in by_id[5]["error"]["message"]
    # Each invalid member of a batch gets its own error; the valid members still run.
    invalid = {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "Invalid request",
        "data": "The request failed schema validation"}}
    assert post(b"[1, 2, 3]") == [invalid] * 3
    mixed = post(b'[{"jsonrpc": "2.0", "id": 6, "method": "Host.ping2"}, 5,'
                 b' {"jsonrpc": "2.0", "method": "Host.ping2"},'
                 b' {"jsonrpc": "2.0", "id": 7, "method": "Host.ping2", "params": "x"}]')
    assert sorted(mixed, key=lambda r: str(r["id"])) == [
        {"jsonrpc": "2.0", "id": 6, "result": {}},
        {"jsonrpc": "2.0", "id": 7, "error": {
            "code": -32602, "message": "Invalid params: params must be an object"}},
        invalid,
    ]


def test_error_from_agent_names_field(agent: AgentProcess) -> None:
    with pytest.raises(AgentError) as err:
        agent.call("Host.setupNetworks", {"networks": {"red": {"nic": "eth1", "mtu": 10}}})
    assert err.value.code == 21
    assert "networks.red.mtu" in err.value.message and "10" in err.value.message


def test_sigterm_stops_cleanly(agent: AgentProcess) -> None:
    assert agent.stop() == 0
    assert not agent.socket.exists()
