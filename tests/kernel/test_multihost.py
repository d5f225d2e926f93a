"""The multi-host update (docs/engine-cli.md) end to end: three real agents, each in its own network
namespace ("host") with its own address, reached over veth links from an "engine" namespace
where the real ``engine-client`` CLI runs, over mutual TLS with certificates from
``engine_client.pki`` (tests/cluster.py). Every assertion about a host is what that host's
kernel reports.

The untagged case runs on any kernel; the VLAN case needs the 8021q module (User-Mode Linux on
a kernel without it, through the tests/uml.py plugin).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import DC, Cluster, Node, kind, running_cluster

HOSTS = ("h1", "h2", "h3")
NET = "red"
PARTIAL = "3 are planned to be updated, however only 2 could be updated."


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(HOSTS) as c:
        yield c


def assert_network(node: Node, *, vlan: int | None, mtu: int) -> None:
    """The host's kernel carries NET as a bridge over eth1 (or eth1.<vlan>), all at ``mtu``."""
    links = node.links()
    bridge = links.get(NET)
    assert bridge is not None, f"{node.name}: no device {NET}: {sorted(links)}"
    assert kind(bridge) == "bridge", f"{node.name}: {bridge}"
    assert bridge["mtu"] == mtu, f"{node.name}: bridge mtu {bridge['mtu']}, expected {mtu}"
    port = "eth1" if vlan is None else f"eth1.{vlan}"
    dev = links.get(port)
    assert dev is not None, f"{node.name}: no device {port}: {sorted(links)}"
    assert dev.get("master") == NET, f"{node.name}: {port} master {dev.get('master')}"
    assert dev["mtu"] == mtu, f"{node.name}: {port} mtu {dev['mtu']}, expected {mtu}"
    assert links["eth1"]["mtu"] == mtu, f"{node.name}: eth1 mtu {links['eth1']['mtu']}"
    if vlan is not None:
        assert kind(dev) == "vlan"
        assert dev["linkinfo"]["info_data"]["id"] == vlan
        assert dev.get("link") == "eth1"
    stale = sorted(n for n in links if n.startswith("eth1.") and n != port)
    assert not stale, f"{node.name}: left-over VLAN devices {stale}"


def assert_no_network(node: Node) -> None:
    links = node.links()
    assert NET not in links, f"{node.name}: {NET} still present"
    assert not [n for n in links if n.startswith("eth1.")], f"{node.name}: {sorted(links)}"
    assert links["eth1"].get("master") is None
    # A base device left with no networks goes back to 1500 (docs/api.md).
    assert links["eth1"]["mtu"] == 1500


def _update_args(vlan: int | None) -> list[str]:
    return ["--no-vlan"] if vlan is None else ["--vlan", str(vlan)]


@pytest.mark.parametrize(
    ("first_vlan", "second_vlan"),
    [
        pytest.param(None, None, id="untagged"),
        pytest.param(100, 200, id="vlan", marks=pytest.mark.needs("vlan")),
    ],
)
def test_update_partial_failure_sync_and_remove(
    cluster: Cluster, first_vlan: int | None, second_vlan: int | None
) -> None:
    add = ["network", "add", NET, "--dc", DC, "--mtu", "1500"]
    cluster.cli(*add, *([] if first_vlan is None else ["--vlan", str(first_vlan)]))
    for node in cluster.nodes:
        cluster.cli("network", "attach", NET, node.name, "--nic", "eth1")
    for node in cluster.nodes:
        assert_network(node, vlan=first_vlan, mtu=1500)

    # 1. Update VLAN and MTU on every host at once.
    out = cluster.cli("network", "update", NET, *_update_args(second_vlan), "--mtu", "9000")
    assert (out["planned"], out["updated"], out["failed"]) == (3, 3, 0), out
    for node in cluster.nodes:
        assert_network(node, vlan=second_vlan, mtu=9000)
    events = cluster.events(out["correlation_id"])
    for name in HOSTS:
        assert any(m.endswith(f"/3 applying network {NET} on host {name}") for m in events), events
        assert any(m.endswith(f"/3 network {NET} were updated on host {name}") for m in events), (
            events
        )
    assert PARTIAL not in events

    # 2. One agent is down: the others are updated, the command fails, the event says so.
    down = cluster.node("h3")
    down.agent.stop()
    out = cluster.cli("network", "update", NET, "--mtu", "4000", expect=1)
    assert (out["planned"], out["updated"], out["failed"]) == (3, 2, 1), out
    failed = [h for h in out["hosts"] if not h["ok"]]
    assert [h["host"] for h in failed] == ["h3"]
    assert f"cannot connect to {down.url}" in failed[0]["failure"]
    events = cluster.events(out["correlation_id"])
    assert PARTIAL in events, events
    assert any(
        f"/3 failed to update {NET} changes on host h3 due to: cannot connect to {down.url}" in m
        for m in events
    ), events
    for name in ("h1", "h2"):
        assert_network(cluster.node(name), vlan=second_vlan, mtu=4000)
    assert_network(down, vlan=second_vlan, mtu=9000)  # untouched while its agent was down

    # 3. Back up, `sync` heals it, and only it.
    down.agent.start()
    out = cluster.cli("sync")
    pushed = {h["host"] for net in out["networks"] for h in net["hosts"]}
    assert pushed == {"h3"}, out
    assert all(h["ok"] for net in out["networks"] for h in net["hosts"]), out
    for node in cluster.nodes:
        assert_network(node, vlan=second_vlan, mtu=4000)

    # 4. Remove from every host.
    out = cluster.cli("network", "remove", NET)
    assert (out["planned"], out["updated"]) == (3, 3), out
    for node in cluster.nodes:
        assert_no_network(node)
    assert cluster.cli("network", "list") == []
