"""What the engine client's commands do with hosts: read their capabilities, push one logical
network to the hosts that carry it (``rollout``; docs/engine-cli.md), and record the outcome in
the store. The command line (``cli.py``) parses arguments and prints; this module holds the
per-command context and the multi-host steps the commands share.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TextIO, TypeVar

from engine_client import dryrun, validation
from engine_client.agent_client import AgentClient, AgentError, Endpoint, Transport
from engine_client.events import MAX_AGE, EventBuffer, PendingEvent, event_json
from engine_client.insync import IN_SYNC, Verdict, desired_attrs, judge
from engine_client.leases import NetworkLeases
from engine_client.models import Attachment, Host, LogicalNetwork
from engine_client.report import print_summary, summary_json
from engine_client.rollout import HostChange, HostOutcome, rollout
from engine_client.rollout_policy import RolloutControl
from engine_client.screen import HostsBar, NoBar, Screen
from engine_client.store import Store
from engine_client.transport import HttpTransport
from vdsm_net.errors import ErrorKind

EXIT_OK, EXIT_HOST_FAILED, EXIT_USAGE, EXIT_CONFLICT = 0, 1, 2, 3
EVERY_HOST_IN_SYNC = "every host is in sync"
# The agent's answer to the removal of a network it does not have (error 27): the removal
# is done (an earlier run's removal that was applied but not recorded, say).
NOT_CONFIGURED = int(ErrorKind.BAD_BRIDGE)
PROBE_TIMEOUT = 5.0  # seconds for capability reads (host list/refresh, network show, sync)
# Agents whose idle connections the command keeps (least recently used closed first). Each
# idle TLS connection holds ~0.27 MiB (asyncio's 256 KiB read buffer): 1000 kept connections
# cost ~270 MiB, and save 1000 handshakes when a refresh is followed by a rollout.
KEEP_AGENTS = 1000
PROBE_PARALLEL = 250  # capability reads in flight at once (at least --parallel)

T = TypeVar("T")

# A correlation id chosen by the caller (the REST API's Correlation-Id header) for the command
# run in this context; ``start`` makes a new one when it is unset.
CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "engine_client_correlation_id", default=None
)


def unsupported_dc_event(network: str, dc: str) -> str:
    return (
        f"{network} network changes will not be applied to data center: {dc} due to "
        f"unsupported data center version."
    )


@dataclass
class Ctx:
    db: str  # a file path or a postgresql:// URL (store.default_location)
    json: bool
    parallel: int
    timeout: float
    call_timeout: float | None  # --call-timeout: one request; None: the defaults
    transport: Transport | None
    out: TextIO
    err: TextIO
    _store: Store | None = None
    _events: EventBuffer | None = None
    _screen: Screen | None = None
    # Every event of this command, in order, for its JSON output (docs/engine-cli.md).
    emitted: list[PendingEvent] = field(default_factory=list)
    # One event loop and one connection pool for the whole command: the connection a host's
    # capabilities were read on carries its setupNetworks (one TLS handshake saved per host).
    _runner: asyncio.Runner | None = None
    _pool: HttpTransport | None = None
    _cid: str | None = None
    _leases: NetworkLeases | None = None
    # --dry-run, --max-failures, --canary, --probe (engine_client/cli_rollout.py).
    control: RolloutControl = field(default_factory=RolloutControl)

    @property
    def dry_run(self) -> bool:
        """Nothing is stored and no host changed: the store is a scratch copy
        (``Store.open_scratch``) and hosts are only asked for their plans."""
        return self.control.dry_run

    @property
    def correlation_id(self) -> str:
        """The command's correlation id: its events, its rollouts, its leases."""
        if self._cid is None:
            # The REST API hands the request's Correlation-Id header down (rest/actions.py).
            self._cid = CORRELATION_ID.get() or str(uuid.uuid4())
        return self._cid

    def hold(self, networks: Iterable[str]) -> None:
        """Lease ``networks`` for the rest of the command (docs/engine-cli.md "One change of a
        network
        at a time"): ``NetworkBusy`` (exit 3) if another engine-client holds one of them. A
        dry run holds nothing: it changes nothing, and writes no lease."""
        if self.dry_run:
            return
        if self._leases is None:
            self._leases = NetworkLeases.for_db(self.store, self.db, self.correlation_id)
        self._leases.acquire(list(networks))

    def check_leases(self) -> None:
        """Before sending or recording anything: the leases are still ours."""
        if self._leases is not None:
            self._leases.check()

    @property
    def read_timeout(self) -> float:
        """Seconds for one capabilities (or statistics) read."""
        return PROBE_TIMEOUT if self.call_timeout is None else self.call_timeout

    @property
    def store(self) -> Store:
        """Opened on first use, so that ``pki`` needs no database."""
        if self._store is None:
            self._store = Store.open_scratch(self.db) if self.dry_run else Store.open(self.db)
        return self._store

    @property
    def screen(self) -> Screen:
        """stderr: event lines, and the bar on a terminal (not with --json)."""
        if self._screen is None:
            self._screen = Screen(self.err, live=not self.json)
        return self._screen

    def bar(self, description: str, total: int) -> HostsBar:
        return self.screen.hosts(description, total) if self.screen.live else NoBar()

    @property
    def events(self) -> EventBuffer:
        if self._events is None:
            self._events = EventBuffer(lambda batch: self.store.add_events(batch))
        return self._events

    def flush_events(self) -> None:
        """Store the events emitted so far (before recording an outcome, and at exit)."""
        if self._events is not None:
            self._events.flush()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the command's event loop (the same one for every call)."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coro)

    def agent_transport(self) -> Transport:
        """The command's transport (on its event loop): the injected one, or one HTTPS/Unix
        connection pool that lives until ``close``."""
        if self.transport is not None:
            return self.transport
        if self._pool is None:
            self._pool = HttpTransport(limit=KEEP_AGENTS)
        return self._pool

    def close(self) -> None:
        if self._screen is not None:
            self._screen.end()
        try:
            self.flush_events()
        finally:
            if self._leases is not None:
                with contextlib.suppress(Exception):
                    self._leases.release()
                self._leases = None
            if self._runner is not None:
                with contextlib.suppress(Exception):
                    if self._pool is not None:
                        self._runner.run(self._pool.close())
                self._pool = None
                self._runner.close()
                self._runner = None
            if self._store is not None:
                self._store.close()
                self._store = None

    def emit(
        self,
        message: str,
        *,
        correlation_id: str,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
    ) -> None:
        """EventSink: printed on stderr at once, one line each (above the bar on a terminal),
        kept for the command's JSON, and stored in batches (``EventBuffer``: stored before
        the command records outcomes and exits)."""
        self.screen.line(message, style=_STYLES.get(severity))
        event = self.events.emit(
            message, correlation_id=correlation_id, host=host, network=network, severity=severity
        )
        self.emitted.append(event)

    def events_json(self) -> list[dict[str, Any]]:
        """The command's events as its JSON output carries them."""
        return [event_json(e) for e in self.emitted]

    def print(self, text: str = "") -> None:
        # stdout and the bar share the terminal: the bar goes first.
        self.screen.end()
        print(text, file=self.out, flush=True)

    def print_json(self, doc: Any) -> None:
        self.screen.end()
        print(json.dumps(doc, indent=2, sort_keys=True, default=str), file=self.out)


_STYLES = {"error": "red", "warning": "yellow"}


def table(ctx: Ctx, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        ctx.print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def endpoint(host: Host) -> Endpoint:
    return Endpoint(url=host.url, cert=host.cert, key=host.key, ca=host.ca)


# -- reading hosts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    host: str
    caps: dict[str, Any] | None
    version: str | None
    error: str | None

    @property
    def reachable(self) -> bool:
        return self.caps is not None


async def probe(ctx: Ctx, hosts: Sequence[Host]) -> dict[str, Probe]:
    # --parallel bounds changes (docs/engine-cli.md); a read is no change. The handshakes of
    # a refresh are CPU-bound on both ends: more of them in flight keeps both busy (500
    # hosts: refresh 0.95 -> 0.5-0.8 s at --parallel 50), PROBE_PARALLEL keeps it sane.
    gate = asyncio.Semaphore(max(ctx.parallel, PROBE_PARALLEL))
    bar = ctx.bar(f"reading {len(hosts)} hosts", len(hosts))

    async def one(host: Host, transport: Transport) -> Probe:
        async with gate:
            bar.running()
            client = AgentClient(endpoint(host), transport, timeout=ctx.read_timeout)
            try:
                caps = await client.call("Host.getCapabilities")
            except AgentError as exc:
                bar.finished(False)
                return Probe(host.name, None, None, str(exc))
        bar.finished(isinstance(caps, dict))
        if not isinstance(caps, dict):
            return Probe(host.name, None, None, "bad response: capabilities not an object")
        version = caps.get("software_version")
        return Probe(host.name, caps, None if version is None else str(version), None)

    transport = ctx.agent_transport()
    probes = await asyncio.gather(*(one(h, transport) for h in hosts))
    return {p.host: p for p in probes}


def by_host(atts: Iterable[Attachment]) -> dict[str, list[Attachment]]:
    out: dict[str, list[Attachment]] = {}
    for att in atts:
        out.setdefault(att.host, []).append(att)
    return out


def record(ctx: Ctx, probes: dict[str, Probe]) -> None:
    """Store fresh capabilities: what every in-sync judgement of these hosts reads next."""
    with ctx.store.transaction():
        for probe in probes.values():
            if probe.caps is not None:
                ctx.store.set_host_caps(probe.host, probe.caps, agent_version=probe.version)


def verdicts(ctx: Ctx, atts: Iterable[Attachment]) -> dict[tuple[str, str], Verdict]:
    """``insync.judge`` of each attachment against its host's latest stored capabilities."""
    hosts = {h.name: h for h in ctx.store.list_hosts()}
    nets = {n.name: n for n in ctx.store.list_networks()}
    return {(a.host, a.network): judge(nets[a.network], a, hosts[a.host].caps) for a in atts}


def refresh(ctx: Ctx, hosts: Sequence[Host]) -> dict[str, Probe]:
    probes = ctx.run(probe(ctx, hosts)) if hosts else {}
    record(ctx, probes)
    return probes


# -- pushing a network to hosts (docs/engine-cli.md) ----------------------------------


@dataclass(frozen=True)
class Push:
    network: str
    outcomes: list[HostOutcome]
    unsupported_dc: str | None = None  # set when the DC version gate stopped the push
    attachments: tuple[Attachment, ...] = ()  # what each host was sent, by host
    # Per host, ``insync.judge`` of what it reported right after the change (a removal: in
    # sync once applied); absent for a host that failed or could not be read back.
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)
    # A dry run: each host's plan (``outcomes`` then say which hosts could apply).
    plans: tuple[dryrun.HostPlan, ...] | None = None

    @property
    def failed(self) -> bool:
        return any(not o.ok for o in self.outcomes)

    def to_json(self, correlation_id: str) -> dict[str, Any]:
        if self.plans is not None:
            return dryrun.plans_json(self.network, self.plans, correlation_id=correlation_id) | {
                "unsupported_dc": self.unsupported_dc
            }
        doc = summary_json(self.network, self.outcomes, correlation_id=correlation_id)
        doc["unsupported_dc"] = self.unsupported_dc
        for entry in doc["hosts"]:
            verdict = self.verdicts.get(entry["host"])
            entry["in_sync"] = verdict is not None and verdict.in_sync
            entry["differs"] = verdict.describe() if verdict is not None else None
        return doc


def push(
    ctx: Ctx,
    net: LogicalNetwork,
    atts: Sequence[Attachment],
    cid: str,
    *,
    remove: bool = False,
) -> Push:
    dc = ctx.store.get_dc(net.dc)
    if not atts:
        return Push(net.name, [])
    if not dc.supports_network_updates:
        ctx.emit(
            unsupported_dc_event(net.name, dc.name),
            correlation_id=cid,
            network=net.name,
            severity="warning",
        )
        return Push(net.name, [], unsupported_dc=dc.name)
    hosts = {h.name: h for h in ctx.store.list_hosts()} if len(atts) > 1 else {}
    changes = [
        HostChange(
            host=att.host,
            endpoint=endpoint(hosts.get(att.host) or ctx.store.get_host(att.host)),
            networks={net.name: {"remove": True} if remove else desired_attrs(net, att)},
        )
        # Hosts start in host-name order (docs/engine-cli.md): the canaries are the first.
        for att in sorted(atts, key=lambda a: a.host)
    ]

    if ctx.dry_run:
        return _plan(ctx, net, changes, cid, atts)
    bar = ctx.bar(f"network {net.name}", len(changes))

    async def run() -> list[HostOutcome]:
        async with _flushing(ctx):
            return await rollout(
                net.name,
                changes,
                transport=ctx.agent_transport(),
                correlation_id=cid,
                parallel=ctx.parallel,
                events=ctx,
                connectivity_timeout=ctx.timeout,
                call_timeout=ctx.call_timeout,
                bar=bar,
                policy=ctx.control.policy,
                probes=ctx.control.probes,
            )

    ctx.check_leases()
    rollout_id = ctx.store.start_rollout(cid, net.name, "remove" if remove else "apply", len(atts))
    outcomes = ctx.run(run())
    ctx.flush_events()
    updated = sum(1 for o in outcomes if o.ok)
    ctx.store.end_rollout(rollout_id, updated=updated, failed=len(outcomes) - updated)
    sent = {a.host: a for a in atts}
    verdicts = {
        o.host: IN_SYNC if remove else judge(net, sent[o.host], o.caps)
        for o in outcomes
        if o.ok and (remove or o.caps is not None)
    }
    return Push(net.name, outcomes, attachments=tuple(atts), verdicts=verdicts)


def _plan(
    ctx: Ctx, net: LogicalNetwork, changes: Sequence[HostChange], cid: str,
    atts: Sequence[Attachment],
) -> Push:
    """--dry-run: each host's plan instead of the change; no event, no rollout record."""
    bar = ctx.bar(f"dry run: network {net.name}", len(changes))
    plans = ctx.run(
        dryrun.plan_all(
            changes,
            transport=ctx.agent_transport(),
            correlation_id=cid,
            parallel=ctx.parallel,
            connectivity_timeout=ctx.timeout,
            call_timeout=ctx.call_timeout,
            probes=ctx.control.probes,
            bar=bar,
        )
    )
    return Push(net.name, [p.outcome() for p in plans], attachments=tuple(atts),
                plans=tuple(plans))


@asynccontextmanager
async def _flushing(ctx: Ctx) -> AsyncIterator[None]:
    """Store buffered events every ``MAX_AGE`` seconds while a rollout runs, even when no
    host finishes for a while (a hanging host)."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(MAX_AGE)
            ctx.events.tick()

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def mark(ctx: Ctx, push: Push, *, removed: bool = False, record_failures: bool = True) -> None:
    """Record the outcome per host. A host that applied: its attachment is recorded as it was
    sent (a new attachment only now: docs/engine-cli.md), or forgotten for a removal, and the
    capabilities it reported right after are stored. A host that failed: its attachment (if
    the store has one) keeps its place and gets the failure (unless not ``record_failures``:
    an attach or detach the host refused leaves the store exactly as it was)."""
    ctx.flush_events()  # the events of a rollout are stored before its outcome
    ctx.check_leases()
    sent = {a.host: a for a in push.attachments}
    with ctx.store.transaction():
        for o in push.outcomes:
            if o.caps is not None:
                ctx.store.set_host_caps(o.host, o.caps, agent_version=_version(o.caps))
            known = ctx.store.find_attachment(o.host, push.network)
            if removed and (o.ok or o.code == NOT_CONFIGURED):
                if known is not None:
                    ctx.store.remove_attachment(o.host, push.network)
            elif o.ok:
                att = sent.get(o.host) or known
                if att is not None:
                    ctx.store.set_attachment(replace(att, last_error=None))
            elif known is not None and record_failures:
                ctx.store.mark_attachment(o.host, push.network, last_error=o.failure)


def _version(caps: dict[str, Any]) -> str | None:
    version = caps.get("software_version")
    return None if version is None else str(version)


def report(
    ctx: Ctx,
    pushes: Sequence[Push],
    cid: str,
    action: str,
    *,
    extra: dict[str, Any] | None = None,
) -> int:
    if ctx.json:
        docs = [_planned(ctx, p).to_json(cid) for p in pushes]
        ctx.print_json(
            (
                docs[0] | {"action": action}
                if len(docs) == 1
                else {"action": action, "correlation_id": cid, "networks": docs}
            )
            | (extra or {})
            | ({"message": EVERY_HOST_IN_SYNC} if _all_in_sync(pushes) else {})
            | _dry(ctx)
            | {"events": ctx.events_json()}
        )
    else:
        for p in pushes:
            if p.plans is not None:
                _print_plans(ctx, p, f"dry run: {action} network {p.network}")
            elif p.outcomes:
                print_summary(p.outcomes, title=f"{action} network {p.network}", stream=ctx.out)
            elif p.unsupported_dc is None:
                ctx.print(f"network {p.network}: {EVERY_HOST_IN_SYNC}")
    return EXIT_HOST_FAILED if any(p.failed for p in pushes) else EXIT_OK


def _all_in_sync(pushes: Sequence[Push]) -> bool:
    """Nothing was sent because no host needed it; not because the data center's version
    stopped the push (its hosts were not asked at all)."""
    return not any(p.outcomes or p.unsupported_dc is not None for p in pushes)


def _planned(ctx: Ctx, p: Push) -> Push:
    """In a dry run, a network with no host to ask (every host in sync, none attached) is a
    plan of no host: its JSON has the dry run's shape (``can_apply``, ``failed``), not the
    rollout's (``updated``, ``skipped``)."""
    return replace(p, plans=()) if ctx.dry_run and p.plans is None else p


def _dry(ctx: Ctx) -> dict[str, Any]:
    """A dry run's JSON says so at its top (``dry_run``), as each network's does."""
    return {"dry_run": True} if ctx.dry_run else {}


def _print_plans(ctx: Ctx, p: Push, title: str) -> None:
    ctx.screen.end()
    dryrun.print_plans(p.plans or (), title=title, stream=ctx.out)


def report_all(
    ctx: Ctx,
    pushes: Sequence[Push],
    cid: str | None,
    action: str,
    head: dict[str, Any] | None = None,
) -> int:
    """Like ``report`` for commands that may push several networks or none (labels): JSON is
    always ``head`` plus ``action``, ``correlation_id`` and a ``networks`` list."""
    if ctx.json:
        ctx.print_json(
            (head or {})
            | {
                "action": action,
                "correlation_id": cid,
                "networks": [_planned(ctx, p).to_json(cid or "") for p in pushes],
                "events": ctx.events_json(),
            }
            | _dry(ctx)
        )
    else:
        for p in pushes:
            if p.plans is not None:
                _print_plans(ctx, p, f"dry run: {action}: network {p.network}")
            elif p.outcomes:
                print_summary(p.outcomes, title=f"{action}: network {p.network}", stream=ctx.out)
    return EXIT_HOST_FAILED if any(p.failed for p in pushes) else EXIT_OK


def start(ctx: Ctx) -> str:
    """The command's correlation id, printed (unless --json), and the bar shown at once (on a
    terminal), before any host is asked anything."""
    cid = ctx.correlation_id
    if not ctx.json:
        ctx.print(f"correlation id: {cid}")
        if ctx.dry_run:
            ctx.print("dry run: the hosts are asked for their plans; nothing is stored or changed")
        ctx.screen.begin("starting")
    return cid


def usage(ctx: Ctx, net: LogicalNetwork) -> validation.NetworkUsage:
    atts = ctx.store.list_attachments(network=net.name)
    known = {h.name: h for h in ctx.store.list_hosts()}
    hosts = [known[a.host] for a in atts]
    # Taps on the bridge count as running VMs: read what the hosts have now, not last week.
    probes = refresh(ctx, hosts)
    # What the refresh stored: the fresh capabilities, or the last known of an unreachable host.
    fresh = {
        h.name: MappingProxyType(p.caps) if (p := probes.get(h.name)) and p.caps else h.caps
        for h in hosts
    }
    nets = {n.name: n for n in ctx.store.list_networks()}
    others = by_host(o for o in ctx.store.list_attachments() if o.network != net.name)
    neighbours = {a.host: [(nets[o.network], o) for o in others.get(a.host, [])] for a in atts}
    return validation.NetworkUsage(
        attachments=atts,
        vms=ctx.store.list_vms(network=net.name),
        host_caps=fresh,
        neighbours=neighbours,
    )
