"""The concurrent multi-host update of one logical network (docs/engine-cli.md, the rollout).

Every host gets ``Host.setupNetworks`` with the connectivity check on; while that call is
pending a poller sends ``Host.confirmConnectivity`` on new requests (the agent only counts a
confirmation that arrives after it applied the change, and rolls back if none comes within the
connectivity timeout). The call carries ``commitOnSuccess``: the agent makes the change safe
itself once it is confirmed, before it answers (docs/transaction.md, step 7), so a host that answers
success is updated and persisted, and no ``Host.setSafeNetworkConfig`` round trip follows.
Hosts run concurrently, bounded by a semaphore that a host holds only for its setupNetworks;
each has its own deadline, so a dead or hanging host fails alone and never delays the others
beyond that deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from engine_client.agent_client import AgentClient, AgentError, Endpoint, Transport
from engine_client.rollout_policy import SKIPPED, RolloutPolicy
from engine_client.screen import HostsBar, NoBar

POLL_INTERVAL: Final = 0.5
DEFAULT_CALL_TIMEOUT: Final = 30.0
MAX_CONFIRM_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class HostChange:
    """What one host is sent: the ``networks`` (and ``bondings``) params of setupNetworks."""

    host: str
    endpoint: Endpoint
    networks: dict[str, dict[str, Any]]
    bondings: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostOutcome:
    host: str
    ok: bool
    failure: str | None
    seconds: float
    # The host's capabilities read right after it applied the change (None: not read): what
    # the outcome's in-sync state is judged from.
    caps: dict[str, Any] | None = None
    code: int | None = None  # the agent's error code (or AgentError's transport code)
    # Not sent: the failure budget was spent, or a canary failed (rollout_policy).
    skipped: bool = False


class EventSink(Protocol):
    def emit(
        self,
        message: str,
        *,
        correlation_id: str,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
    ) -> None: ...


def applying_event(i: int, n: int, network: str, host: str) -> str:
    return f"{i}/{n} applying network {network} on host {host}"


def updated_event(i: int, n: int, network: str, host: str) -> str:
    return f"{i}/{n} network {network} were updated on host {host}"


def failed_event(i: int, n: int, network: str, host: str, failure: str) -> str:
    return f"{i}/{n} failed to update {network} changes on host {host} due to: {failure}"


def skipped_event(network: str, host: str) -> str:
    return f"network {network} was not sent to host {host}: {SKIPPED}"


def partial_event(planned: int, updated: int) -> str:
    return f"{planned} are planned to be updated, however only {updated} could be updated."


@dataclass(frozen=True)
class _Timeouts:
    connectivity: float
    call: float
    poll_interval: float

    @property
    def setup(self) -> float:
        # The agent may legitimately hold setupNetworks for the whole connectivity timeout.
        return self.connectivity + self.call

    @property
    def confirm(self) -> float:
        return min(self.call, MAX_CONFIRM_TIMEOUT)

    @property
    def host(self) -> float:
        # A safety net behind setupNetworks' own timeout.
        return self.setup + self.call


# When to confirm. The agent only counts a confirmation that arrives after it applied, and a
# host holds its --parallel slot until then: the wait between a host's apply and its next
# confirmation is paid once per slot turn (10 turns for 500 hosts at --parallel 50).
# Confirmations go out every step for DENSE_POLLING, then every 1.5 times the previous wait,
# up to the poll interval (all in poll intervals, here at the default 0.5 s). Until a host of
# this rollout has been confirmed, the first goes out after FIRST_WAIT (0.1 s) and the step is
# POLL_STEP (50 ms). After that, the hosts of one rollout applying the same change, the first
# goes out half a FINE_STEP before the earliest moment a host of this rollout was seen ready
# (the confirmation its setupNetworks answered to) and the step is FINE_STEP (15 ms): later
# hosts are not sent confirmations they cannot count yet (each costs CPU on both ends) and
# wait ~8 ms for the one that counts (500 hosts, --parallel 50: median 25-50 ms with 50 ms
# steps, 50-100 ms with waits of 0.1, 0.15, 0.225 s, ...).
FIRST_WAIT: Final = 0.2
POLL_STEP: Final = 0.1
FINE_STEP: Final = 0.03
DENSE_POLLING: Final = 2.0
POLL_GROWTH: Final = 1.5


class _Pace:
    """The earliest a host of this rollout was seen ready: seconds from its setupNetworks to
    the confirmation that setupNetworks answered to."""

    def __init__(self) -> None:
        self.ready: float | None = None

    def step(self, interval: float) -> float:
        return interval * (POLL_STEP if self.ready is None else FINE_STEP)

    def first_wait(self, interval: float) -> float:
        if self.ready is None:
            return interval * FIRST_WAIT
        step = self.step(interval)
        return max(step, self.ready - step / 2)

    def seen_ready(self, seconds: float, *, first: bool, interval: float) -> None:
        """``first``: the host's first confirmation was the one that counted, so it may have
        been ready well before: the next hosts try a step earlier. Without that the estimate
        could only come down half a step per slot turn, and the first turn's (confirmations
        every 50 ms, hundreds of hosts at once) is late by up to ~100 ms: at --parallel 100
        hosts then waited 70-130 ms for their confirmation."""
        if first:
            seconds -= interval * FINE_STEP
        if self.ready is None or seconds < self.ready:
            self.ready = seconds


async def _poll_confirm(
    client: AgentClient,
    correlation_id: str,
    timeouts: _Timeouts,
    pace: _Pace,
    sent: list[float],
) -> None:
    """Confirm until cancelled; ``sent`` gets the time each confirmation went out."""
    interval = timeouts.poll_interval
    step = pace.step(interval)
    wait = pace.first_wait(interval)
    dense_until = wait + interval * DENSE_POLLING
    waited = 0.0
    begun = time.monotonic()
    # A Host.ping2 at once opens the confirmations' connection (a TLS handshake, ~1 ms on
    # each end, more on a loaded machine) while the agent applies, instead of when the first
    # confirmation that counts is due: at --parallel 50 on a loaded machine the wait from
    # apply to the counted confirmation went from ~390 to ~120 ms a host. Not an early
    # confirmation: one read by a busy agent only after its apply would count without
    # proving that the new configuration still reaches the engine.
    if client.endpoint.scheme == "https":
        with contextlib.suppress(AgentError):
            await client.call(
                "Host.ping2", correlation_id=correlation_id, timeout=timeouts.confirm
            )
    first = True
    while True:
        await asyncio.sleep(max(0.0, wait - (time.monotonic() - begun)) if first else wait)
        first = False
        waited += wait
        wait = step if waited < dense_until else min(wait * POLL_GROWTH, timeouts.poll_interval)
        sent.append(time.monotonic())
        # Failures are expected while the host's network is being changed; keep polling.
        with contextlib.suppress(AgentError):
            await client.call(
                "Host.confirmConnectivity",
                correlation_id=correlation_id,
                timeout=timeouts.confirm,
            )


async def _apply_one(
    change: HostChange,
    client: AgentClient,
    correlation_id: str,
    timeouts: _Timeouts,
    pace: _Pace,
    probes: Sequence[Mapping[str, str]],
) -> None:
    options: dict[str, Any] = {
        "connectivityCheck": True,
        "connectivityTimeout": timeouts.connectivity,
        # Persisted by the agent only after the confirmation (docs/transaction.md, steps 6-7).
        "commitOnSuccess": True,
    }
    if probes:
        options["probes"] = [dict(p) for p in probes]
    params = {"networks": change.networks, "bondings": change.bondings, "options": options}
    started = time.monotonic()
    sent: list[float] = []
    setup = asyncio.ensure_future(
        client.call(
            "Host.setupNetworks", params, correlation_id=correlation_id, timeout=timeouts.setup
        )
    )
    poller = asyncio.ensure_future(_poll_confirm(client, correlation_id, timeouts, pace, sent))
    try:
        await setup
    finally:
        setup.cancel()
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    if sent:
        pace.seen_ready(sent[-1] - started, first=len(sent) == 1, interval=timeouts.poll_interval)


class _Counter:
    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        self._next += 1
        return self._next


async def rollout(
    network: str,
    changes: Sequence[HostChange],
    *,
    transport: Transport,
    correlation_id: str,
    parallel: int = 50,
    events: EventSink,
    connectivity_timeout: float = 120,
    call_timeout: float | None = None,
    bar: HostsBar | None = None,
    poll_interval: float = POLL_INTERVAL,
    read_back: bool = True,
    policy: RolloutPolicy | None = None,
    probes: Sequence[Mapping[str, str]] = (),
) -> list[HostOutcome]:
    """Apply each host's change concurrently (at most ``parallel`` at once), hosts started in
    the order of ``changes`` (the commands give host-name order), as are the outcomes.
    Never raises for a host's failure. ``bar`` is told as each host starts and ends.
    ``read_back``: a host that applied is asked for its capabilities at once, on the
    connection its change used. ``policy``: the failure budget and canaries (hosts it
    stops are not sent, outcome ``skipped``); ``probes``: sent to every host as
    ``options.probes``."""
    if parallel < 1:
        raise ValueError(f"parallel: expected >= 1, got {parallel}")
    timeouts = _Timeouts(
        connectivity=connectivity_timeout,
        call=DEFAULT_CALL_TIMEOUT if call_timeout is None else call_timeout,
        poll_interval=poll_interval,
    )
    n = len(changes)
    gate = asyncio.Semaphore(parallel)
    order = _Counter()
    pace = _Pace()
    policy = policy or RolloutPolicy()
    budget = policy.budget(n)

    shown = bar if bar is not None else NoBar()

    async def one(change: HostChange, canary: bool) -> HostOutcome:
        # The slot is the host's change: freed as soon as setupNetworks answered (the next
        # host starts at once, a sliding window), the bookkeeping below runs outside it.
        async with gate:
            if not budget.may_send():
                return _skipped(change)
            i = order.take()
            shown.running()
            events.emit(
                applying_event(i, n, network, change.host),
                correlation_id=correlation_id,
                host=change.host,
                network=network,
            )
            start = time.monotonic()
            failure, code = await _guarded(
                change, correlation_id, transport, timeouts, pace, probes
            )
            seconds = time.monotonic() - start
            # Inside the slot: the next host's turn sees this failure (--parallel 1).
            budget.record(failure is None, canary=canary)
        if failure is None:
            events.emit(
                updated_event(i, n, network, change.host),
                correlation_id=correlation_id,
                host=change.host,
                network=network,
            )
        else:
            events.emit(
                failed_event(i, n, network, change.host, failure),
                correlation_id=correlation_id,
                host=change.host,
                network=network,
                severity="error",
            )
        shown.finished(failure is None)
        caps = None
        if failure is None and read_back:
            caps = await _read_back(change.endpoint, transport, correlation_id, timeouts)
        await _release(transport, change.endpoint)
        return HostOutcome(change.host, failure is None, failure, seconds, caps, code)

    def _skipped(change: HostChange) -> HostOutcome:
        shown.running()
        shown.finished(False)
        events.emit(
            skipped_event(network, change.host),
            correlation_id=correlation_id,
            host=change.host,
            network=network,
            severity="warning",
        )
        return HostOutcome(change.host, False, SKIPPED, 0.0, skipped=True)

    done: dict[int, HostOutcome] = {}
    waves = policy.waves(list(enumerate(changes)))
    for number, wave in enumerate(waves):
        canary = policy.canary > 0 and number == 0 and len(waves) > 1
        results = await asyncio.gather(*(one(c, canary) for _, c in wave))
        done.update(zip((index for index, _ in wave), results, strict=True))
    outcomes = [done[index] for index in range(n)]
    updated = sum(1 for o in outcomes if o.ok)
    if updated < n:
        events.emit(
            partial_event(n, updated),
            correlation_id=correlation_id,
            network=network,
            severity="warning",
        )
    return outcomes


async def _guarded(
    change: HostChange,
    correlation_id: str,
    transport: Transport,
    timeouts: _Timeouts,
    pace: _Pace,
    probes: Sequence[Mapping[str, str]] = (),
) -> tuple[str | None, int | None]:
    """The host's failure as text and its code, or (None, None) on success."""
    client = AgentClient(change.endpoint, transport, timeout=timeouts.call)
    try:
        async with asyncio.timeout(timeouts.host):
            await _apply_one(change, client, correlation_id, timeouts, pace, probes)
    except AgentError as exc:
        return str(exc), exc.code
    except TimeoutError:
        return f"{change.endpoint.url}: timed out after {timeouts.host:g} s", None
    except Exception as exc:  # one host's unexpected failure must not abort the others
        return f"internal error: {type(exc).__name__}: {exc}", None
    return None, None


async def _read_back(
    endpoint: Endpoint, transport: Transport, correlation_id: str, timeouts: _Timeouts
) -> dict[str, Any] | None:
    client = AgentClient(endpoint, transport, timeout=timeouts.confirm)
    try:
        caps = await client.call("Host.getCapabilities", correlation_id=correlation_id)
    except AgentError:
        return None  # judged from the capabilities read before: out of sync until re-read
    return caps if isinstance(caps, dict) else None


async def _release(transport: Transport, endpoint: Endpoint) -> None:
    """The host is done: its idle connections (each TLS one holds ~256 KiB of asyncio
    buffers) would otherwise pile up over a rollout to hundreds of hosts. A transport that
    pools nothing (a test double) has no ``release``."""
    release = getattr(transport, "release", None)
    if release is not None:
        with contextlib.suppress(Exception):
            await release(endpoint)
