"""The engine client against real agents in namespaces, reached over their Unix sockets (the
kernel variant of tests/unit/engine/test_failure_modes.py; host kernel: bridges on veth NICs).

- ``network update`` with one healthy host, one whose agent was killed (unreachable) and one
  whose agent is busy with another change (error 40): each failed host fails alone with its
  reason, the store records exactly that, and every kernel shows what the store says;
- ``engine-client`` killed with SIGKILL at random points of a rollout: the store stays sound
  and never says "in sync" for a host whose kernel does not have the definition; once the
  agents have settled (no undo journal left: unconfirmed changes rolled back), ``sync``
  converges every host.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine_client.store import Store
from tests.daemon import AgentProcess
from tests.enginecli import assert_store_sound, cli, in_sync
from tests.netns import NetNS
from vdsm_net.journal import JOURNAL_FILE

BIN = Path(sys.executable).parent
NET = "red"
KILLS = 5


@dataclass
class Host:
    name: str
    ns: NetNS
    agent: AgentProcess

    @property
    def url(self) -> str:
        return f"unix://{self.agent.socket}"

    def bridge_mtu(self) -> int | None:
        links = self.ns.links()
        return int(links[NET]["mtu"]) if NET in links else None

    def settled(self) -> bool:
        return not (self.agent.state_dir / JOURNAL_FILE).exists()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Host]]:
    spaces = []
    try:
        hosts = []
        for i in range(3):
            ns = NetNS()
            spaces.append(ns)
            ns.add_nic("eth1", dummy=False)
            agent = AgentProcess(ns, tmp_path / f"h{i}").start()
            hosts.append(Host(f"h{i}", ns, agent))
        yield hosts
    finally:
        for ns in spaces:
            ns.close()


def populate(db: Path, hosts: list[Host]) -> None:
    assert cli(db, "dc", "add", "dc1", "--version", "4.7")[0] == 0
    assert cli(db, "network", "add", NET, "--dc", "dc1")[0] == 0
    for h in hosts:
        assert cli(db, "host", "add", h.name, h.url, "--dc", "dc1")[0] == 0
        code, out = cli(db, "network", "attach", NET, h.name, "--nic", "eth1", "--timeout", "10")
        assert code == 0, out
        assert h.bridge_mtu() == 1500


def settle(hosts: list[Host]) -> None:
    deadline = time.monotonic() + 60
    while not all(h.settled() for h in hosts):
        assert time.monotonic() < deadline, "an agent never finished its change"
        time.sleep(0.1)


def test_dead_and_busy_hosts_fail_alone(cluster: list[Host], tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    populate(db, cluster)
    good, dead, busy = cluster
    dead.agent.kill9()
    # Another change holds the busy host's transaction, waiting for its confirmation.
    pending = threading.Thread(target=lambda: _swallow(lambda: busy.agent.call(
        "Host.setupNetworks", {"networks": {"blue": {"mtu": 2000}},
                               "options": {"connectivityCheck": True,
                                           "connectivityTimeout": 5}})))
    pending.start()
    deadline = time.monotonic() + 30
    while "blue" not in busy.ns.links():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    code, out = cli(db, "network", "update", NET, "--mtu", "9000", "--timeout", "10")
    assert code == 1, out
    by_host = {h["host"]: h for h in out["hosts"]}
    assert by_host[good.name]["ok"]
    assert "cannot connect" in by_host[dead.name]["failure"], by_host
    assert "code 40" in by_host[busy.name]["failure"], by_host
    pending.join()
    assert good.bridge_mtu() == 9000 and busy.bridge_mtu() == 1500
    assert "blue" not in busy.ns.links()  # never confirmed: rolled back
    with Store.open(db) as store:
        atts = {a.host: a for a in store.list_attachments(network=NET)}
        synced = {a.host: in_sync(store, a.host, NET) for a in atts.values()}
    assert synced[good.name] and atts[good.name].last_error is None
    for h in (dead, busy):
        assert not synced[h.name] and atts[h.name].last_error == by_host[h.name]["failure"]

    dead.agent.start()
    code, out = cli(db, "sync", "--timeout", "10")
    assert code == 0, out
    assert [h.bridge_mtu() for h in cluster] == [9000, 9000, 9000]


def _swallow(fn: Any) -> None:
    with contextlib.suppress(Exception):
        fn()


def _check(db: Path, hosts: list[Host], mtus: tuple[int, int]) -> tuple[int, int]:
    assert_store_sound(db)
    with Store.open(db) as store:
        mtu = store.get_network(NET).mtu
        atts = {a.host: a for a in store.list_attachments(network=NET)}
        synced = {a.host: in_sync(store, a.host, NET) for a in atts.values()}
    assert mtu in mtus and sorted(atts) == sorted(h.name for h in hosts)
    for h in hosts:
        if synced[h.name]:
            assert h.bridge_mtu() == mtu, (h.name, atts[h.name], h.bridge_mtu())
    return mtu, sum(synced.values())


def test_killed_engine_client_leaves_store_and_hosts_consistent(
    cluster: list[Host], tmp_path: Path
) -> None:
    db = tmp_path / "engine.db"
    populate(db, cluster)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    env = {**os.environ, "ENGINE_CLIENT_DB": str(db)}
    seen = []
    for kill in range(KILLS):
        old, new = 1500 + 100 * kill, 1600 + 100 * kill
        delay = rng.uniform(0.1, 0.9)
        proc = subprocess.Popen(
            [str(BIN / "engine-client"), "network", "update", NET, "--mtu", str(new),
             "--timeout", "5", "--db", str(db), "--json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mtu, in_sync = _check(db, cluster, (old, new))
        seen.append(f"{delay:.2f}s: mtu {mtu}, {in_sync}/3 in sync")
        settle(cluster)  # unconfirmed changes roll back after the connectivity timeout
        _check(db, cluster, (old, new))
        if mtu == old:
            code, out = cli(db, "network", "update", NET, "--mtu", str(new), "--timeout", "10")
            assert code == 0, out
        code, out = cli(db, "sync", "--timeout", "10")
        assert code == 0, out
        assert _check(db, cluster, (new, new)) == (new, 3)
    print(f"engine kill -9 vs real agents: seed {seed}: " + "; ".join(seen))
