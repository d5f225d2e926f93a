"""What the engine says about the fleet is what the hosts' kernels have (docs/engine-cli.md "In
sync",
"Re-running a command", "One change of a network at a time"), end to end: three real agents
with TLS in namespaces (tests/cluster.py), the real ``engine-client`` CLI, and every
assertion about a host made on what its kernel reports (``ip -d -j link``).

- a bridge deleted behind the agent's back: the agent no longer reports the network, the
  engine says "missing on host", ``sync`` recreates it (isolated networks too);
- a re-run after a partial failure sends the definition to the host that missed it, and
  says "every host is in sync" when there is none;
- a refused attach leaves the store and the host as they were;
- a partial remove keeps the network "removing" with the host that still carries it; a
  re-run (``network remove`` or ``sync``) removes it there, and from the store;
- two concurrent updates of one network: exactly one exits 3 with the contract's sentence,
  having written and sent nothing;
- a holder killed with SIGKILL mid-rollout stops holding: a new command succeeds within 30 s.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_client.store import Store
from tests.cluster import BIN, DC, Cluster, Node, kind, running_cluster
from tests.pg import BACKENDS, fresh_location
from vdsm_net.journal import JOURNAL_FILE

HOSTS = ("h1", "h2", "h3")
NET = "red"
BUSY = "network red is being changed by another engine-client (correlation id {cid}, since "
LEASE_PROMISE = 30.0  # seconds within which a dead holder stops holding (docs/engine-cli.md)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(HOSTS) as c:
        yield c


@pytest.fixture(params=BACKENDS)
def shared_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Engine-client processes sharing one store: an SQLite file, or a PostgreSQL database
    (the store of engines on several machines)."""
    with running_cluster(HOSTS, db=fresh_location(request, request.param, tmp_path)) as c:
        yield c


def attach_everywhere(cluster: Cluster, mtu: int = 1500) -> None:
    cluster.cli("network", "add", NET, "--dc", DC, "--mtu", str(mtu))
    for node in cluster.nodes:
        cluster.cli("network", "attach", NET, node.name, "--nic", "eth1")


def bridge_mtu(node: Node, bridge: str = NET) -> int | None:
    """The bridge's MTU as the host's kernel has it, with its uplink eth1 as port (None: no
    such bridge)."""
    links = node.links()
    dev = links.get(bridge)
    if dev is None:
        return None
    assert kind(dev) == "bridge", dev
    if bridge == NET:
        assert links["eth1"].get("master") == NET, links["eth1"]
        assert links["eth1"]["mtu"] == dev["mtu"], (links["eth1"], dev)
    return int(dev["mtu"])


def shown(cluster: Cluster, network: str = NET) -> dict[str, dict[str, Any]]:
    return {r["host"]: r for r in cluster.cli("network", "show", network)["hosts"]}


def agent_networks(node: Node) -> set[str]:
    """The networks the agent's own capabilities document reports (over its Unix socket)."""
    return set(node.agent.call("Host.getCapabilities")["networks"])


def settle(cluster: Cluster) -> None:
    """Wait until no agent holds an unconfirmed change (they roll back on their own)."""
    deadline = time.monotonic() + 120
    while any((n.agent.state_dir / JOURNAL_FILE).exists() for n in cluster.nodes):
        assert time.monotonic() < deadline, "an agent never finished its change"
        time.sleep(0.1)


def popen_cli(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    argv = cluster.engine.exec_argv(
        str(BIN / "engine-client"), *args, "--db", str(cluster.db), "--json"
    )
    env = {**os.environ, "ENGINE_CLIENT_DB": str(cluster.db)}
    # SIGINT back to its default before the exec: a test run started in the background by a
    # shell (`cmd &`, nohup) has it ignored, the exec'd engine-client would inherit that and
    # never stop on the SIGINT these tests send (seen: a follower that ran to the timeout).
    return subprocess.Popen(
        [sys.executable, "-c", _SIGINT_DEFAULT_EXEC, *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


_SIGINT_DEFAULT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def wait_for_lease(cluster: Cluster, proc: subprocess.Popen[str]) -> str:
    """The correlation id of the command that holds NET, once it holds it."""
    deadline = time.monotonic() + 120
    while True:
        with Store.open(cluster.db) as store:
            holder = store.lease_holder(NET)
        if holder is not None:
            return holder
        assert proc.poll() is None, f"exited {proc.returncode} before holding: {proc.stderr}"
        assert time.monotonic() < deadline, "the command never took its lease"
        time.sleep(0.05)


def wait_for_rollout(cluster: Cluster, cid: str, proc: subprocess.Popen[str]) -> None:
    """Until the command ``cid`` has started pushing."""
    deadline = time.monotonic() + 120
    while True:
        with Store.open(cluster.db) as store:
            if any(r.correlation_id == cid for r in store.list_rollouts()):
                return
        assert proc.poll() is None, f"exited {proc.returncode} before its rollout"
        assert time.monotonic() < deadline, "the command never started its rollout"
        time.sleep(0.05)


def test_bridge_deleted_behind_the_agents_back_is_missing_and_sync_recreates_it(
    cluster: Cluster,
) -> None:
    attach_everywhere(cluster)
    cluster.cli("network", "add", "iso", "--dc", DC)
    h1, h2 = cluster.node("h1"), cluster.node("h2")
    cluster.cli("network", "attach", "iso", "h1", "--isolated")
    assert all(bridge_mtu(n) == 1500 for n in cluster.nodes)
    assert bridge_mtu(h1, "iso") == 1500

    h2.ns.ip("link", "del", NET)
    h1.ns.ip("link", "del", "iso")
    assert NET not in h2.links() and "iso" not in h1.links()
    # The agent's part (docs/api.md): a network whose device is gone is not reported.
    assert NET not in agent_networks(h2) and "iso" not in agent_networks(h1)
    assert NET in agent_networks(h1)

    rows = shown(cluster)
    assert {h: r["in_sync"] for h, r in rows.items()} == {"h1": True, "h2": False, "h3": True}
    assert rows["h2"]["differs"] == "missing on host", rows["h2"]
    assert shown(cluster, "iso")["h1"]["differs"] == "missing on host"
    hosts = {r["name"]: r for r in cluster.cli("host", "list")}
    assert [o["network"] for o in hosts["h2"]["out_of_sync"]] == [NET]
    assert [o["network"] for o in hosts["h1"]["out_of_sync"]] == ["iso"]
    assert hosts["h3"]["out_of_sync"] == []
    status = {n["name"]: n for n in cluster.cli("status")["networks"]}
    assert (status[NET]["out_of_sync"], status[NET]["hosts"]) == (1, ["h2"])
    assert status["iso"]["out_of_sync"] == 1

    out = cluster.cli("sync")
    pushed = sorted((net["network"], h["host"]) for net in out["networks"] for h in net["hosts"])
    assert pushed == [("iso", "h1"), (NET, "h2")], out
    assert all(bridge_mtu(n) == 1500 for n in cluster.nodes)
    assert bridge_mtu(h1, "iso") == 1500
    assert all(r["in_sync"] for r in shown(cluster).values())
    assert shown(cluster, "iso")["h1"]["in_sync"]
    assert cluster.cli("sync")["networks"] == []  # nothing left to do


def test_rerun_of_an_update_finishes_the_host_that_missed_it(cluster: Cluster) -> None:
    attach_everywhere(cluster)
    h3 = cluster.node("h3")
    h3.agent.stop()
    out = cluster.cli("network", "update", NET, "--mtu", "4000", expect=1)
    assert (out["planned"], out["updated"]) == (3, 2), out
    assert {h["host"]: h["in_sync"] for h in out["hosts"]} == {"h1": True, "h2": True, "h3": False}
    assert [bridge_mtu(n) for n in cluster.nodes] == [4000, 4000, 1500]
    rows = shown(cluster)
    assert not rows["h3"]["in_sync"]
    assert rows["h3"]["differs"] == "mtu: expected 4000, found 1500", rows["h3"]

    h3.agent.start()
    # The same command again: nothing changes in the definition, h3 still gets it.
    out = cluster.cli("network", "update", NET, "--mtu", "4000")
    assert [h["host"] for h in out["hosts"]] == ["h3"], out
    # The outcome is judged from what h3 reported right after the change.
    assert (out["hosts"][0]["in_sync"], out["hosts"][0]["differs"]) == (True, ""), out
    assert [bridge_mtu(n) for n in cluster.nodes] == [4000, 4000, 4000]
    assert all(r["in_sync"] for r in shown(cluster).values())

    out = cluster.cli("network", "update", NET, "--mtu", "4000")
    assert (out["planned"], out["message"]) == (0, "every host is in sync"), out


def test_refused_attach_leaves_store_and_host_as_they_were(cluster: Cluster) -> None:
    attach_everywhere(cluster)
    h1 = cluster.node("h1")
    before = cluster.cli("network", "show", NET)
    out = cluster.cli("network", "attach", NET, "h1", "--nic", "nosuch0", expect=1)
    assert not out["hosts"][0]["ok"], out
    assert cluster.cli("network", "show", NET) == before
    assert shown(cluster)["h1"]["attached"] == "nic eth1"
    assert bridge_mtu(h1) == 1500  # still the bridge on eth1

    cluster.cli("network", "add", "blue", "--dc", DC)
    cluster.cli("network", "attach", "blue", "h2", "--nic", "nosuch0", expect=1)
    assert cluster.cli("network", "show", "blue")["hosts"] == []
    assert "blue" not in cluster.node("h2").links()


@pytest.mark.parametrize("rerun", [f"network remove {NET}", "sync"])
def test_partial_remove_stays_removing_until_a_rerun_removes_it(
    cluster: Cluster, rerun: str
) -> None:
    attach_everywhere(cluster)
    h3 = cluster.node("h3")
    h3.agent.stop()
    out = cluster.cli("network", "remove", NET, expect=1)
    assert (out["planned"], out["updated"], out["removing_on"]) == (3, 2, ["h3"]), out
    assert [bridge_mtu(n) for n in cluster.nodes] == [None, None, 1500]

    [listed] = cluster.cli("network", "list")
    assert (listed["name"], listed["state"], listed["hosts"]) == (NET, "removing", ["h3"])
    rows = shown(cluster)
    assert list(rows) == ["h3"] and not rows["h3"]["in_sync"], rows
    assert rows["h3"]["differs"].startswith("being removed"), rows
    status = {n["name"]: n for n in cluster.cli("status")["networks"]}
    assert (status[NET]["state"], status[NET]["being_removed"]) == ("removing", 1)

    h3.agent.start()
    cluster.cli(*rerun.split())
    assert [bridge_mtu(n) for n in cluster.nodes] == [None, None, None]
    assert cluster.node("h3").links()["eth1"].get("master") is None
    assert cluster.cli("network", "list") == []
    assert cluster.cli("sync")["networks"] == []


def test_two_concurrent_updates_one_exits_3_having_done_nothing(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    attach_everywhere(cluster)
    h3 = cluster.node("h3")
    assert h3.agent.proc is not None
    # A host that does not answer keeps the winner busy for its call timeout, long after the
    # loser has tried: their overlap does not depend on the machine's speed.
    h3.agent.proc.send_signal(signal.SIGSTOP)
    try:
        # Timeouts with room for a loaded machine (TLS handshakes of a second or more).
        args = ("--timeout", "10", "--call-timeout", "5")
        procs = {
            mtu: popen_cli(cluster, "network", "update", NET, "--mtu", str(mtu), *args)
            for mtu in (4000, 5000)
        }
        results = {mtu: (p.wait(timeout=300), *p.communicate()) for mtu, p in procs.items()}
    finally:
        h3.agent.proc.send_signal(signal.SIGCONT)
    codes = sorted(code for code, _, _ in results.values())
    assert codes == [1, 3], results  # the winner failed on h3 only
    [winner] = [m for m, (code, _, _) in results.items() if code == 1]
    [loser] = [m for m, (code, _, _) in results.items() if code == 3]
    won = json.loads(results[winner][1])
    winner_cid = won["correlation_id"]
    assert {h["host"]: h["ok"] for h in won["hosts"]} == {"h1": True, "h2": True, "h3": False}, won
    err = results[loser][2].strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: " + BUSY.format(cid=winner_cid)), err
    assert results[loser][1].strip() == ""
    # The loser wrote nothing and sent nothing: the store and the kernels have the winner's.
    with Store.open(cluster.db) as store:
        assert store.get_network(NET).mtu == winner
        # The three attaches and the winner's update: no rollout of the loser.
        assert len(store.list_rollouts()) == 4
    assert [bridge_mtu(n) for n in cluster.nodes[:2]] == [winner, winner]
    settle(cluster)
    assert bridge_mtu(h3) == 1500
    cluster.cli("sync")
    assert [bridge_mtu(n) for n in cluster.nodes] == [winner] * 3


def test_killed_holder_stops_holding_within_30_s(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    attach_everywhere(cluster)
    h3 = cluster.node("h3")
    assert h3.agent.proc is not None
    h3.agent.proc.send_signal(signal.SIGSTOP)  # the rollout is still running when killed
    try:
        proc = popen_cli(
            cluster, "network", "update", NET, "--mtu", "4000", "--timeout", "5",
            "--call-timeout", "3",
        )  # fmt: skip
        cid = wait_for_lease(cluster, proc)
        wait_for_rollout(cluster, cid, proc)
        time.sleep(0.5)  # h1 and h2 are applying, h3 does not answer
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed = time.monotonic()
    finally:
        h3.agent.proc.send_signal(signal.SIGCONT)
    while True:
        run = cluster.run_cli("network", "update", NET, "--mtu", "4000")
        if run.returncode != 3:
            break
        assert BUSY.format(cid=cid) in run.stderr, run.stderr
        assert time.monotonic() - killed < LEASE_PROMISE, "the dead holder still holds"
        time.sleep(0.5)
    # The lease is free. The agents may still be rolling back the dead command's unconfirmed
    # change (error 40 while they do): that is theirs to finish, not a lease.
    assert run.returncode in (0, 1), (run.stdout, run.stderr)
    out = json.loads(run.stdout)
    assert all("(code 40)" in h["failure"] for h in out["hosts"] if not h["ok"]), out
    deadline = time.monotonic() + 120
    while run.returncode != 0:
        assert time.monotonic() < deadline, (run.stdout, run.stderr)
        time.sleep(0.5)
        settle(cluster)
        run = cluster.run_cli("sync")
    assert [bridge_mtu(n) for n in cluster.nodes] == [4000, 4000, 4000]
    assert all(r["in_sync"] for r in shown(cluster).values())


def test_a_second_process_follows_the_events_of_the_first(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    attach_everywhere(cluster)
    follower = popen_cli(cluster, "events", "--follow", "--limit", "0")
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    def pump() -> None:
        for line in follower.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        time.sleep(1)  # let it start following (events stored before are not asked for)
        out = cluster.cli("network", "update", NET, "--mtu", "4000")
        cid = out["correlation_id"]
        wanted = {f"network {NET} were updated on host {h}" for h in HOSTS}
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not wanted <= {e["message"].split(" ", 1)[1] for e in seen}:
            remaining = deadline - time.monotonic()
            assert remaining > 0, seen
            try:
                seen.append(json.loads(lines.get(timeout=remaining)))
            except queue.Empty:
                raise AssertionError(f"the follower saw only {seen}") from None
        assert {e["correlation_id"] for e in seen} == {cid}, seen
        with Store.open(cluster.db) as store:
            stored = [e.id for e in store.list_events(correlation_id=cid)]
        assert [e["id"] for e in seen] == stored[: len(seen)]  # in the store's order
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            code = follower.wait(timeout=30)
        finally:
            # One that did not stop (started with SIGINT ignored, as by `nohup cmd &`) must not
            # outlive the test: the reader thread would keep the session from ending.
            if follower.poll() is None:
                follower.kill()
                follower.wait()
            reader.join(timeout=30)
    assert code == 0, follower.stderr.read() if follower.stderr else ""
