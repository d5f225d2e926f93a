"""The multi-host update (SPEC §2.3) end to end: three real agents, each in its own network
namespace ("host") with its own address, reached over veth links from an "engine" namespace
where the real ``engine-client`` CLI runs, over mutual TLS with certificates from
``engine_client.pki``. Every assertion about a host is what that host's kernel reports.

The untagged case runs on any kernel; the VLAN case needs the 8021q module (User-Mode Linux on
a kernel without it, through the tests/uml.py plugin).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine_client import pki
from tests.daemon import AgentProcess
from tests.netns import NetNS, run

BIN = Path(sys.executable).parent
HOSTS = ("h1", "h2", "h3")
PORT = 54321
NET = "red"
PARTIAL = "3 are planned to be updated, however only 2 could be updated."


@dataclass
class Node:
    name: str
    ns: NetNS
    addr: str
    agent: AgentProcess

    @property
    def url(self) -> str:
        return f"https://{self.addr}:{PORT}"


@dataclass
class Cluster:
    engine: NetNS
    nodes: list[Node]
    db: Path
    pki_dir: Path

    def cli(self, *args: str, expect: int = 0) -> Any:
        """Run ``engine-client --json ...`` in the engine namespace; its parsed output."""
        # The global options go after the subcommand (SPEC §2.2 allows either place).
        argv = self.engine.exec_argv(
            str(BIN / "engine-client"), *args, "--db", str(self.db), "--json"
        )
        # ENGINE_CLIENT_DB too, so that a misparsed --db can never reach the user's own store.
        env = {**os.environ, "ENGINE_CLIENT_DB": str(self.db)}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == expect, (
            f"engine-client {' '.join(args)}: exit {proc.returncode}, expected {expect}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def events(self, correlation_id: str) -> list[str]:
        return [e["message"] for e in self.cli("events", "--correlation-id", correlation_id)]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def _start_cluster(base: Path) -> Cluster:
    engine = NetNS("eng")
    nodes: list[Node] = []
    pki_dir = base / "pki"
    pki.init_ca(pki_dir)
    engine_cert = pki.issue(pki_dir, "engine")
    try:
        for i, name in enumerate(HOSTS, start=1):
            ns = NetNS(f"mh{name}")
            addr = f"10.77.{i}.2"
            # The management link: engine side e<i>, host side "mgmt" (not a NIC of any
            # network, so the agent never touches it).
            run(
                "ip",
                "-n",
                engine.name,
                "link",
                "add",
                f"e{i}",
                "type",
                "veth",
                "peer",
                "name",
                "mgmt",
                "netns",
                ns.name,
            )
            engine.ip("addr", "add", f"10.77.{i}.1/24", "dev", f"e{i}")
            engine.ip("link", "set", f"e{i}", "up")
            ns.ip("addr", "add", f"{addr}/24", "dev", "mgmt")
            ns.ip("link", "set", "mgmt", "up")
            ns.add_nic("eth1")
            issued = pki.issue(pki_dir, name, ips=[addr])
            state = base / name
            state.mkdir()
            config = state / "agent.toml"
            config.write_text(
                f'[tls]\ncert = "{issued.cert}"\nkey = "{issued.key}"\n'
                f'ca = "{pki_dir / pki.CA_CERT}"\n'
            )
            agent = AgentProcess(ns, state, "--config", str(config), "--listen", f"{addr}:{PORT}")
            nodes.append(Node(name, ns, addr, agent))
        for node in nodes:
            node.agent.start()
    except BaseException:
        for node in nodes:
            node.ns.close()
        engine.close()
        raise
    cluster = Cluster(engine, nodes, base / "engine.db", pki_dir)
    cluster.cli("dc", "add", "dc1", "--version", "4.7")
    for node in nodes:
        cluster.cli(
            "host",
            "add",
            node.name,
            node.url,
            "--dc",
            "dc1",
            "--cert",
            str(engine_cert.cert),
            "--key",
            str(engine_cert.key),
            "--ca",
            str(pki_dir / pki.CA_CERT),
        )
    return cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="vdsm-net-mh-") as tmp:
        c = _start_cluster(Path(tmp))
        try:
            yield c
        finally:
            for node in reversed(c.nodes):
                node.ns.close()
            c.engine.close()


def _kind(dev: dict[str, Any]) -> str | None:
    info = dev.get("linkinfo") or {}
    return info.get("info_kind")


def assert_network(node: Node, *, vlan: int | None, mtu: int) -> None:
    """The host's kernel carries NET as a bridge over eth1 (or eth1.<vlan>), all at ``mtu``."""
    links = node.ns.links()
    bridge = links.get(NET)
    assert bridge is not None, f"{node.name}: no device {NET}: {sorted(links)}"
    assert _kind(bridge) == "bridge", f"{node.name}: {bridge}"
    assert bridge["mtu"] == mtu, f"{node.name}: bridge mtu {bridge['mtu']}, expected {mtu}"
    port = "eth1" if vlan is None else f"eth1.{vlan}"
    dev = links.get(port)
    assert dev is not None, f"{node.name}: no device {port}: {sorted(links)}"
    assert dev.get("master") == NET, f"{node.name}: {port} master {dev.get('master')}"
    assert dev["mtu"] == mtu, f"{node.name}: {port} mtu {dev['mtu']}, expected {mtu}"
    assert links["eth1"]["mtu"] == mtu, f"{node.name}: eth1 mtu {links['eth1']['mtu']}"
    if vlan is not None:
        assert _kind(dev) == "vlan"
        assert dev["linkinfo"]["info_data"]["id"] == vlan
        assert dev.get("link") == "eth1"
    stale = sorted(n for n in links if n.startswith("eth1.") and n != port)
    assert not stale, f"{node.name}: left-over VLAN devices {stale}"


def assert_no_network(node: Node) -> None:
    links = node.ns.links()
    assert NET not in links, f"{node.name}: {NET} still present"
    assert not [n for n in links if n.startswith("eth1.")], f"{node.name}: {sorted(links)}"
    assert links["eth1"].get("master") is None
    # A base device left with no networks goes back to 1500 (SPEC §1.3).
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
    add = ["network", "add", NET, "--dc", "dc1", "--mtu", "1500"]
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
