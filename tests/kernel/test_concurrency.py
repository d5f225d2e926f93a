"""Many clients at once on the real agent daemon's Unix socket (docs/errors.md, error 40: "never
interleave two"): threads calling setupNetworks (some with the connectivity check on),
getCapabilities, getNetworkStatistics and confirmConnectivity for a bounded number of calls.

- every setupNetworks succeeds or gets error 40, nothing else;
- every call answers within a generous bound (a deadlock would hang one);
- each request defines every network of a fixed set in full, with a unique MTU on one of them,
  so the final kernel state names the request that was applied last: it must be a success,
  the last one to complete, and the whole state must be exactly its definition (a mix of two
  requests would match none);
- the agent's resident memory after the run stays within 1.5x + 20 MiB of its warmed-up size.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import AgentError, AgentProcess
from tests.faults import rss_kib
from tests.netns import NetNS
from vdsm_net.persist import StateStore

SETUP_THREADS = 4
SETUPS_PER_THREAD = int(os.environ.get("VDSM_NET_CONCURRENCY_SETUPS", "250"))
READ_THREADS = 3
CONFIRM_THREADS = 2
CALL_BOUND = 60.0  # seconds; a call that takes longer counts as a hang
MARK = "c0"  # the network whose MTU identifies the request
BASE_MARK_MTU = 1600


def definition(index: int, rng: random.Random) -> dict[str, Any]:
    return {
        MARK: {"mtu": BASE_MARK_MTU + index},
        "c1": {"mtu": rng.choice([1500, 2000, 9000]), "stp": rng.random() < 0.5},
        "c2": {"mtu": rng.choice([1500, 4000])},
        "c3": {"nic": "eth1", "mtu": rng.choice([1500, 1600, 9000])},
        "c4": {"nic": "eth2", "bridged": False, "mtu": rng.choice([1500, 3000])},
    }


@dataclass
class Outcome:
    index: int
    networks: dict[str, Any]
    code: int | None  # None: success
    done: float  # monotonic time of the answer


@dataclass
class Run:
    agent: AgentProcess
    outcomes: list[Outcome] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    setups_done: threading.Event = field(default_factory=threading.Event)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        started = time.monotonic()
        try:
            return self.agent.call(method, params, timeout=CALL_BOUND)
        finally:
            took = time.monotonic() - started
            with self.lock:
                self.calls[method] += 1
                self.slowest = max(self.slowest, took)


def _guard(run: Run, fn: Callable[[], None]) -> Callable[[], None]:
    def body() -> None:
        try:
            fn()
        except Exception as exc:  # reported by the test, not lost in a thread
            with run.lock:
                run.failures.append(f"{type(exc).__name__}: {exc}")

    return body


def _setups(run: Run, ids: itertools.count[int], seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(SETUPS_PER_THREAD):
        with run.lock:
            index = next(ids)
        networks = definition(index, rng)
        options: dict[str, Any] = {"connectivityCheck": False}
        if rng.random() < 0.25:  # confirmed by the confirm threads
            options = {"connectivityCheck": True, "connectivityTimeout": 30}
        code: int | None = None
        try:
            run.call("Host.setupNetworks", {"networks": networks, "options": options})
        except AgentError as exc:
            if exc.code != 40:
                raise
            code = exc.code
        with run.lock:
            run.outcomes.append(Outcome(index, networks, code, time.monotonic()))
        time.sleep(rng.uniform(0, 0.02))  # let the others in now and then


def _reads(run: Run) -> None:
    while not run.setups_done.is_set():
        caps = run.call("Host.getCapabilities")
        assert isinstance(caps["networks"], dict) and caps["api_version"]
        stats = run.call("Host.getNetworkStatistics")
        assert isinstance(stats["interfaces"], dict)


def _confirms(run: Run) -> None:
    while not run.setups_done.is_set():
        assert run.call("Host.confirmConnectivity") == {}
        time.sleep(0.02)


@pytest.fixture
def agent(netns: NetNS, tmp_path: Path) -> AgentProcess:
    for nic in ("eth1", "eth2"):
        netns.add_nic(nic, dummy=False)
    return AgentProcess(netns, tmp_path / "state").start()


def _kernel_matches(ns: NetNS, networks: dict[str, Any]) -> list[str]:
    links = ns.links()
    wrong = []
    for name, net in networks.items():
        device = name if net.get("bridged", True) else net["nic"]
        link = links.get(device)
        if link is None:
            wrong.append(f"{device} missing")
            continue
        if link["mtu"] != net["mtu"]:
            wrong.append(f"{device}: mtu {link['mtu']}, expected {net['mtu']}")
        if device == name:
            stp = link["linkinfo"]["info_data"]["stp_state"] != 0
            if stp != net.get("stp", False):
                wrong.append(f"{device}: stp {stp}, expected {net.get('stp', False)}")
    return wrong


def test_many_clients_never_interleave_hang_or_leak(agent: AgentProcess, netns: NetNS) -> None:
    assert agent.proc is not None
    pid = agent.proc.pid
    # Warm-up: the code paths loaded and the caches filled once before measuring.
    rng = random.Random(0)
    for i in range(5):
        agent.call("Host.setupNetworks", {"networks": definition(10_000 + i, rng),
                                          "options": {"connectivityCheck": False}})
        agent.call("Host.getCapabilities")
        agent.call("Host.getNetworkStatistics")
    warm = rss_kib(pid)

    run = Run(agent)
    ids = itertools.count()
    seed = random.randrange(2**32)
    setup_threads = [threading.Thread(target=_guard(run, partial(_setups, run, ids, seed + i)))
                     for i in range(SETUP_THREADS)]
    others = [threading.Thread(target=_guard(run, lambda: _reads(run)))
              for _ in range(READ_THREADS)]
    others += [threading.Thread(target=_guard(run, lambda: _confirms(run)))
               for _ in range(CONFIRM_THREADS)]
    started = time.monotonic()
    for t in setup_threads + others:
        t.start()
    peak = warm
    while any(t.is_alive() for t in setup_threads):
        peak = max(peak, rss_kib(pid))
        time.sleep(0.2)
    run.setups_done.set()
    for t in setup_threads + others:
        t.join(timeout=CALL_BOUND * 2)
        assert not t.is_alive(), "a client never got its answer"
    elapsed = time.monotonic() - started
    final_rss = rss_kib(pid)

    assert not run.failures, run.failures[:5]
    ok = [o for o in run.outcomes if o.code is None]
    busy = [o for o in run.outcomes if o.code == 40]
    assert len(ok) + len(busy) == SETUP_THREADS * SETUPS_PER_THREAD
    assert ok, "no setupNetworks ever succeeded"
    mark = netns.link(MARK)["mtu"]
    applied = [o for o in run.outcomes if BASE_MARK_MTU + o.index == mark]
    assert applied and applied[0].code is None, f"the kernel shows request {mark}, not a success"
    assert applied[0] is max(ok, key=lambda o: o.done), "the last success is not what is applied"
    assert _kernel_matches(netns, applied[0].networks) == []
    # The agent's own record of its last commit is that request too.
    running = StateStore(agent.state_dir).load_running()
    assert running.networks[MARK].mtu == mark
    caps = agent.call("Host.getNetworkCapabilities")
    assert caps["networks"][MARK]["mtu"] == mark
    print(f"concurrency: {sum(run.calls.values())} calls in {elapsed:.1f} s {dict(run.calls)}; "
          f"setupNetworks {len(ok)} ok, {len(busy)} got 40; slowest call {run.slowest:.2f} s; "
          f"RSS warm {warm} KiB, peak {peak} KiB, final {final_rss} KiB; seed {seed}")
    assert final_rss < warm * 1.5 + 20 * 1024, (warm, final_rss)
    assert agent.call("Host.ping2") == {}
