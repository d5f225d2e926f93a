"""kill -9 of the agent at random points of a large apply (docs/transaction.md: after an unclean
stop (power loss, kill -9 in the middle of a change) the host comes back to its safe config).

A safe config (bridges on NICs and isolated bridges) is made and dumped; then a request that
changes every MTU of it and adds 60 bridged networks is started, and the daemon is killed after
a random delay spread over the time a full apply takes. After each kill the state files parse,
and ``vdsm-net-agent restore`` brings the kernel back to exactly the safe dump. Runs on the
host kernel (veth NICs and bridges only).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import AgentProcess
from tests.dump import Dump, assert_same_state, dump_state
from tests.netns import NetNS
from vdsm_net.journal import JOURNAL_FILE, Journal
from vdsm_net.persist import StateStore

KILLS = 8
NEW_NETWORKS = 60
NICS = ("eth1", "eth2", "eth3")
NO_CHECK = {"connectivityCheck": False}
SAFE: dict[str, Any] = {
    **{f"a{i}": {"nic": nic, "mtu": 1500} for i, nic in enumerate(NICS)},
    **{f"i{i}": {"mtu": 1500} for i in range(5)},
}
BIG: dict[str, Any] = {
    **{f"a{i}": {"nic": nic, "mtu": 9000} for i, nic in enumerate(NICS)},
    **{f"i{i}": {"mtu": 4000} for i in range(5)},
    **{f"b{i}": {"mtu": 1500 + 100 * (i % 20)} for i in range(NEW_NETWORKS)},
}


def _apply_in_background(agent: AgentProcess) -> threading.Thread:
    def call() -> None:
        # The daemon is killed under this call on purpose: its failure is the point.
        with contextlib.suppress(Exception):
            agent.call("Host.setupNetworks", {"networks": BIG, "options": NO_CHECK}, timeout=120)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def _state_files_parse(state_dir: Path) -> bool:
    """Every state file parses; whether an undo journal was left (a change in flight)."""
    store = StateStore(state_dir)
    store.load_running()
    store.load_safe()
    return Journal(state_dir).pending() is not None


def _restore(agent: AgentProcess) -> str:
    proc = agent.restore()
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.fixture
def agent(netns: NetNS, tmp_path: Path) -> AgentProcess:
    for nic in NICS:
        netns.add_nic(nic, dummy=False)
    return AgentProcess(netns, tmp_path / "state").start()


def test_kill9_mid_apply_then_restore_gives_the_safe_config(
    agent: AgentProcess, netns: NetNS
) -> None:
    agent.call("Host.setupNetworks", {"networks": SAFE, "options": NO_CHECK})
    agent.call("Host.setSafeNetworkConfig")
    safe: Dump = dump_state(netns.name)

    # How long a whole apply takes here, to spread the kills over it.
    started = time.monotonic()
    agent.call("Host.setupNetworks", {"networks": BIG, "options": NO_CHECK})
    full = time.monotonic() - started
    assert sum(1 for n in netns.links() if n.startswith("b")) == NEW_NETWORKS
    agent.stop()
    _restore(agent)
    assert_same_state(safe, dump_state(netns.name), "after restoring an applied, unsafe change")

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    mid_change = 0
    delays = []
    for kill in range(KILLS):
        agent.start()
        delay = rng.uniform(0.0, full * 1.1)
        delays.append(round(delay, 2))
        caller = _apply_in_background(agent)
        time.sleep(delay)
        agent.kill9()
        caller.join(timeout=60)
        what = f"kill {kill} after {delay:.2f} s (seed {seed})"
        if _state_files_parse(agent.state_dir):
            mid_change += 1
        _restore(agent)
        assert not (agent.state_dir / JOURNAL_FILE).exists(), what
        _state_files_parse(agent.state_dir)
        assert_same_state(safe, dump_state(netns.name), f"after restore, {what}")
    print(f"crash: full apply {full:.2f} s; {KILLS} kills at {delays} s, {mid_change} of them "
          f"mid-change (undo journal present); seed {seed}")
    agent.start()
    caps = agent.call("Host.getNetworkCapabilities")
    assert sorted(caps["networks"]) == sorted(SAFE)
    assert caps["netConfigDirty"] is False
