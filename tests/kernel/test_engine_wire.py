"""The engine's wire to real agents, end to end: four hosts (agents in network namespaces,
mutual TLS with certificates from ``engine_client.pki``, tests/cluster.py), the real
``engine-client`` CLI in the engine's namespace, and each host's kernel asked what it carries.

A rollout over TLS works every time (the old client's TLS session trick failed 1 to 6 of 12
steps at random on a loaded machine, issue 12), and ``--json`` carries the command's events,
the partial-update one included, while the event lines go to stderr as well."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import DC, Cluster, Node, kind, running_cluster

HOSTS = ("h1", "h2", "h3", "h4")
NET = "blue"
ROUNDS = 8


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(HOSTS, subnet="10.78") as c:
        c.cli("network", "add", NET, "--dc", DC)
        for node in c.nodes:
            c.cli("network", "attach", NET, node.name, "--nic", "eth1")
        yield c


def mtu_on(node: Node) -> int:
    """The MTU of NET's bridge and of its port eth1, as the host's kernel reports them."""
    links = node.links()
    bridge = links[NET]
    assert kind(bridge) == "bridge", bridge
    assert links["eth1"].get("master") == NET
    assert links["eth1"]["mtu"] == bridge["mtu"], (links["eth1"], bridge)
    return int(bridge["mtu"])


def update(cluster: Cluster, mtu: int, *, expect: int) -> tuple[dict[str, Any], list[str]]:
    proc = cluster.run_cli("network", "update", NET, "--mtu", str(mtu), "--timeout", "30")
    assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout), proc.stderr.splitlines()


def test_rollout_over_tls_to_four_hosts_works_every_time(cluster: Cluster) -> None:
    for i in range(ROUNDS):
        mtu = 1500 + 500 * (i % 4 + 1)
        out, stderr = update(cluster, mtu, expect=0)
        assert (out["planned"], out["updated"], out["failed"]) == (4, 4, 0), (i, out)
        assert {node.name: mtu_on(node) for node in cluster.nodes} == dict.fromkeys(HOSTS, mtu)
        messages = [e["message"] for e in out["events"]]
        assert len(messages) == 8, messages  # applying and updated, per host
        assert sorted(stderr) == sorted(messages)  # the same lines on stderr


def test_json_carries_the_events_and_the_partial_update(cluster: Cluster) -> None:
    down = cluster.node("h3")
    down.agent.stop()
    out, stderr = update(cluster, 4000, expect=1)
    assert (out["planned"], out["updated"], out["failed"]) == (4, 3, 1), out
    cid = out["correlation_id"]
    events = out["events"]
    assert {e["correlation_id"] for e in events} == {cid}
    partial = events[-1]
    assert partial["message"] == "4 are planned to be updated, however only 3 could be updated."
    assert (partial["severity"], partial["host"], partial["network"]) == ("warning", None, NET)
    (failed,) = [e for e in events if e["severity"] == "error"]
    assert failed["host"] == "h3"
    assert f"failed to update {NET} changes on host h3 due to: cannot connect to {down.url}" in (
        failed["message"]
    )
    assert all(e["time"][-6] in "+-" and e["time"][-3] == ":" for e in events)  # zoned
    # Every event line on stderr too, the partial one last.
    assert sorted(stderr) == sorted(e["message"] for e in events)
    assert stderr[-1] == partial["message"]
    # What was stored is what was printed.
    stored = cluster.cli("events", "--correlation-id", cid)
    assert [e["message"] for e in stored] == [e["message"] for e in events]
    for node in cluster.nodes:
        assert mtu_on(node) == (1500 if node is down else 4000), node.name
