"""Rollout control (docs/engine-cli.md) end to end: three hosts, each a namespace with a real
TLS agent (tests/cluster.py), driven through the ``engine-client`` CLI. What a host did or did
not do is read from its kernel (``ip -d -j link``, and the full normalised dump of
tests/dump.py); what the store holds, from the store file itself.

A host is made to fail for real: its NIC ``eth1`` is deleted behind the agent's back, so the
agent refuses the network on it (error 23, no such NIC)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import BIN, DC, Cluster, Node, running_cluster
from tests.dump import Dump, assert_same_state, dump_state
from tests.listener import tcp_listener

HOSTS = ("h1", "h2", "h3")
NET = "red"
SKIPPED = "skipped: failure budget spent"
PORT = 3260


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(HOSTS) as c:
        c.cli("network", "add", NET, "--dc", DC)
        for node in c.nodes:
            c.cli("network", "attach", NET, node.name, "--nic", "eth1")
        yield c


def break_host(node: Node) -> None:
    """The host loses its NIC: the agent will refuse the network there (error 23)."""
    node.ns.ip("link", "del", "eth1")


def mtu(node: Node, dev: str = NET) -> int:
    return int(node.links()[dev]["mtu"])


def dumps(cluster: Cluster) -> dict[str, Dump]:
    return {n.name: dump_state(n.ns.name) for n in cluster.nodes}


def store_files(cluster: Cluster) -> tuple[bytes, list[str]]:
    """The SQLite store, byte for byte, and the files beside it (a journal left would show)."""
    db = Path(cluster.db)
    return db.read_bytes(), sorted(p.name for p in db.parent.iterdir() if p.is_file())


def text_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``engine-client ARGS`` without --json: what an operator reads."""
    argv = cluster.engine.exec_argv(str(BIN / "engine-client"), *args, "--db", str(cluster.db))
    env = {**os.environ, "ENGINE_CLIENT_DB": str(cluster.db), "COLUMNS": "160"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)


def hosts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["hosts"]}


def test_dry_run_changes_no_kernel_and_no_store(cluster: Cluster) -> None:
    kernels, store = dumps(cluster), store_files(cluster)
    doc = cluster.cli("network", "update", NET, "--mtu", "9000", "--dry-run")
    assert doc["dry_run"] is True and doc["events"] == []
    assert (doc["planned"], doc["can_apply"], doc["failed"]) == (3, 3, 0)
    for name, entry in hosts(doc).items():
        assert entry["ok"] is True, entry
        # The agent's own plan: the bridge and its NIC to 9000, nothing else.
        assert {(op["op"], op.get("device"), op.get("mtu")) for op in entry["plan"]} == {
            ("SetMtu", "eth1", 9000), ("SetMtu", NET, 9000)}, (name, entry["plan"])
        assert "SetMtu device=eth1 mtu=9000" in entry["operations"]
    for name, before in kernels.items():
        assert_same_state(before, dump_state(cluster.node(name).ns.name), f"{name} kernel")
    assert store_files(cluster) == store
    assert cluster.cli("network", "show", NET)["mtu"] == 1500

    # A host that could not apply: exit 1, its error, still nothing stored or changed.
    break_host(cluster.node("h3"))
    kernels, store = dumps(cluster), store_files(cluster)
    proc = text_cli(cluster, "network", "update", NET, "--mtu", "9000", "--dry-run")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "dry run: update network red" in proc.stdout
    assert any(line.split()[:3] == ["│", "h1", "│"] and "apply" in line for line in lines), \
        proc.stdout
    assert any("h3" in line and "fail" in line and "eth1" in line for line in lines), \
        proc.stdout
    assert "SetMtu device=eth1 mtu=9000" in proc.stdout
    assert "dry run: 2 of 3 hosts could apply; nothing was stored or changed" in proc.stdout
    for name, before in kernels.items():
        assert_same_state(before, dump_state(cluster.node(name).ns.name), f"{name} kernel")
    assert store_files(cluster) == store


def test_dry_run_of_attach_detach_labels_and_sync(cluster: Cluster) -> None:
    cluster.cli("network", "add", "blue", "--dc", DC, "--vlan", "0", "--no-vm")
    kernels, store = dumps(cluster), store_files(cluster)
    doc = cluster.cli("network", "attach", "blue", "h1", "--nic", "eth9", "--dry-run",
                      expect=1)
    assert hosts(doc)["h1"]["code"] == 23 and "eth9" in hosts(doc)["h1"]["failure"]
    doc = cluster.cli("network", "detach", NET, "h2", "--dry-run")
    assert any(op["op"].startswith("Delete")
               for op in hosts(doc)["h2"]["plan"]), hosts(doc)["h2"]["plan"]
    # A labelled VM network, then a host label that would attach it (isolated) on h3.
    cluster.cli("network", "add", "iso", "--dc", DC, "--label", "lab")
    kernels, store = dumps(cluster), store_files(cluster)
    doc = cluster.cli("label", "add", "h3", "lab", "--dry-run")
    (iso,) = doc["networks"]
    assert iso["network"] == "iso" and sorted(hosts(iso)) == ["h3"]
    assert any(op["op"] == "CreateBridge" and op.get("name") == "iso"
               for op in hosts(iso)["h3"]["plan"]), hosts(iso)["h3"]["plan"]
    doc = cluster.cli("network", "add", "iso2", "--dc", DC, "--label", "lab", "--dry-run")
    assert doc["networks"] == []  # no host carries the label yet: nothing to plan
    doc = cluster.cli("network", "remove", NET, "--dry-run")
    assert sorted(hosts(doc)) == ["h1", "h2", "h3"] and doc["failed"] == 0
    doc = cluster.cli("sync", "--dry-run")
    assert doc["networks"] == [] and doc["dry_run"] is True
    for name, before in kernels.items():
        assert_same_state(before, dump_state(cluster.node(name).ns.name), f"{name} kernel")
    assert store_files(cluster) == store
    assert [n["name"] for n in cluster.cli("network", "list")] == ["blue", "iso", NET]
    assert cluster.cli("label", "list", "h3") == []


def test_failed_canary_leaves_the_other_hosts_untouched(cluster: Cluster) -> None:
    break_host(cluster.node("h1"))
    others = {n: dump_state(cluster.node(n).ns.name) for n in ("h2", "h3")}
    doc = cluster.cli("network", "update", NET, "--mtu", "9000", "--canary", "1", expect=1)
    by = hosts(doc)
    assert by["h1"]["ok"] is False and by["h1"]["skipped"] is False
    assert "eth1" in by["h1"]["failure"]
    for name in ("h2", "h3"):
        assert by[name] | {"seconds": 0} == {"host": name, "ok": False, "failure": SKIPPED,
                                             "seconds": 0, "skipped": True,
                                             "in_sync": False, "differs": None}
        assert_same_state(others[name], dump_state(cluster.node(name).ns.name), name)
        assert mtu(cluster.node(name)) == 1500
    assert (doc["planned"], doc["updated"], doc["failed"], doc["skipped"]) == (3, 0, 1, 2)
    messages = [e["message"] for e in doc["events"]]
    assert messages.count(f"1/3 applying network {NET} on host h1") == 1
    assert not [m for m in messages if "applying" in m and "h1" not in m]
    assert f"network {NET} was not sent to host h2: {SKIPPED}" in messages
    assert "3 are planned to be updated, however only 0 could be updated." in messages
    # Out of sync, saying why, until a later push.
    shown = hosts({"hosts": cluster.cli("network", "show", NET)["hosts"]})
    for name in ("h2", "h3"):
        assert shown[name]["in_sync"] is False and shown[name]["last_error"] == SKIPPED


def test_budget_of_zero_with_parallel_1(cluster: Cluster) -> None:
    break_host(cluster.node("h2"))
    h3 = dump_state(cluster.node("h3").ns.name)
    doc = cluster.cli("network", "update", NET, "--mtu", "9000", "--max-failures", "0",
                      "--parallel", "1", expect=1)
    by = hosts(doc)
    assert (by["h1"]["ok"], by["h2"]["ok"], by["h3"]["skipped"]) == (True, False, True)
    assert by["h3"]["failure"] == SKIPPED
    assert (doc["updated"], doc["failed"], doc["skipped"]) == (1, 1, 1)
    assert mtu(cluster.node("h1")) == 9000 and mtu(cluster.node("h1"), "eth1") == 9000
    assert_same_state(h3, dump_state(cluster.node("h3").ns.name), "h3")
    assert mtu(cluster.node("h3")) == 1500

    # 50% of the two hosts still out of sync: h2's failure is within it, h3 goes.
    doc = cluster.cli("network", "update", NET, "--mtu", "9000", "--max-failures", "50%",
                      "--parallel", "1", expect=1)
    by = hosts(doc)
    assert sorted(by) == ["h2", "h3"]
    assert (by["h2"]["ok"], by["h3"]["ok"], doc["skipped"]) == (False, True, 0)
    assert mtu(cluster.node("h3")) == 9000


@pytest.fixture
def reachable(cluster: Cluster) -> Iterator[str]:
    """Every host routes the engine's management subnets through its own link, so one probe
    address (the engine end of h1's link) and a TCP listener there serve every host."""
    for i, node in enumerate(cluster.nodes, start=1):
        node.ns.ip("route", "add", "10.77.0.0/16", "via", f"10.77.{i}.1")
    with tcp_listener(cluster.engine, PORT):
        yield "10.77.1.1"


def test_probes_that_pass_keep_the_change(cluster: Cluster, reachable: str) -> None:
    doc = cluster.cli("network", "update", NET, "--mtu", "9000", "--probe", f"ping:{reachable}",
                      "--probe", f"tcp:{reachable}:{PORT}")
    assert doc["updated"] == 3
    for node in cluster.nodes:
        assert mtu(node) == 9000 and mtu(node, "eth1") == 9000


def test_probe_nobody_answers_rolls_back_every_host(cluster: Cluster, reachable: str) -> None:
    kernels = dumps(cluster)
    doc = cluster.cli("network", "update", NET, "--mtu", "9000", "--probe", f"ping:{reachable}",
                      "--probe", "ping:10.77.1.99", "--timeout", "3", expect=1)
    for name, entry in hosts(doc).items():
        assert entry["ok"] is False
        assert "(code 10)" in entry["failure"], entry
        assert "probe options.probes[1] ping:10.77.1.99 failed" in entry["failure"], entry
        assert "probes[0]" not in entry["failure"]
        assert_same_state(kernels[name], dump_state(cluster.node(name).ns.name), name)
        assert mtu(cluster.node(name)) == 1500


def test_bad_probe_is_a_usage_error(cluster: Cluster) -> None:
    kernels, store = dumps(cluster), store_files(cluster)
    err = cluster.refused("network", "update", NET, "--mtu", "9000", "--probe", "tcp:10.0.0.1")
    assert "argument --probe: expected ADDR:PORT, got \"10.0.0.1\" (in 'tcp:10.0.0.1')" in err
    for name, before in kernels.items():
        assert_same_state(before, dump_state(cluster.node(name).ns.name), name)
    assert store_files(cluster) == store
    assert json.dumps(cluster.cli("network", "show", NET)["mtu"]) == "1500"
