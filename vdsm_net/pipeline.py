"""The setupNetworks transaction: retrieve, validate, plan, apply, verify, commit or roll back.

One ``Agent`` per process. Netlink work runs on dedicated worker threads (one for the
transaction, one for read-only queries), each with its own ``Backend`` socket, so the event
loop never blocks and a capabilities query never interleaves with an apply on one socket.

A transaction is scoped when it can be (``vdsm_net.scope``): it reads, renders, plans,
journals and verifies only the devices of the networks the request names, of the NICs and
bonds under them and of the untagged networks on those (the VLAN networks sharing them only
set a floor to the base's MTU), so that changing one network costs the same on a host with
1000 networks as on a host with one. Merge still checks the whole resulting config. The
same phases run on the whole kernel state when the scope says so (bonds named, a large
request), when what was read reaches outside the scope, when an undo journal is left over
(a change died or its rollback failed: its residue may lie anywhere), and for restore.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from vdsm_net import API_VERSION, __version__, coexist, ipv6conf, probes, resolver
from vdsm_net.caps import LinkStats, capabilities, statistics
from vdsm_net.config import AgentConfig
from vdsm_net.dhcp.client import DhcpTiming
from vdsm_net.dhcp.manager import DhcpChange, DhcpManager
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.journal import Journal, PendingChange
from vdsm_net.merge import merge
from vdsm_net.model import NetConfig, NetworkConfig, SetupOptions
from vdsm_net.ops import Op
from vdsm_net.persist import (
    StagedFile,
    StateFileError,
    StateStore,
    atomic_write,
    install,
    remove_durably,
)
from vdsm_net.planner import plan
from vdsm_net.qos import QosTree
from vdsm_net.qos.change import (
    QosBackend,
    QosChange,
    apply_change,
    change_of,
    planned_ops,
    record_before,
    sync_config,
    undo_change,
)
from vdsm_net.qos.plan import tc_op_json
from vdsm_net.render import render
from vdsm_net.request import parse_setup_request
from vdsm_net.scope import ReadScope, base_floor, covers, in_scope, is_closed, scope_of
from vdsm_net.state import Device, KernelState, make_state

log = logging.getLogger("vdsm_net.pipeline")

T = TypeVar("T")

# At info, an applied change names this many of its operations (all of them at debug).
_OPS_SHOWN = 5

# Re-plans after an apply: the kernel acts on its own (a released bond slave gets its old MTU
# back, a VLAN follows a lowered base MTU), so one pass may leave a residue to converge.
_CONVERGE_PASSES = 3


class KernelBackend(Protocol):
    def read_state(self, scope: ReadScope | None = None) -> KernelState: ...
    def apply(self, ops: Sequence[Op]) -> None: ...
    def read_stats(self) -> Mapping[str, LinkStats]: ...
    def close(self) -> None: ...


def _default_backend() -> KernelBackend:
    from vdsm_net.kernel.backend import Backend  # the only pyroute2 importer

    return Backend()


def _default_qos() -> QosBackend:
    from vdsm_net.qos.kernel import QosKernel  # pyroute2's tc, on first use

    return QosKernel()


class _Worker:
    """A single thread owning one backend socket (and, once host QoS is used, one tc
    socket)."""

    def __init__(self, name: str, factory: Callable[[], KernelBackend],
                 qos_factory: Callable[[], QosBackend]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._backend: KernelBackend | None = None
        self._factory = factory
        self._qos: QosBackend | None = None
        self._qos_factory = qos_factory

    def _get(self) -> KernelBackend:
        if self._backend is None:
            self._backend = self._factory()
        return self._backend

    def qos(self) -> QosBackend:
        """The worker's tc socket; only from functions that run on the worker."""
        if self._qos is None:
            self._qos = self._qos_factory()
        return self._qos

    def call_sync(self, fn: Callable[[KernelBackend], T]) -> T:
        return self._pool.submit(lambda: fn(self._get())).result()

    async def call(self, fn: Callable[[KernelBackend], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._get()))

    def close(self) -> None:
        def _close() -> None:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            if self._qos is not None:
                self._qos.close()
                self._qos = None

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)


class RestoreRefused(Exception):
    """restore would take a mistake (a missing state directory, no safe config) for an order
    to remove the agent's devices (docs/transaction.md); the message names the directory and
    them."""


@dataclass
class RestoreReport:
    ops: int = 0
    skipped: list[str] = field(default_factory=list)  # "network red: NIC eth9 is missing"
    removed: list[str] = field(default_factory=list)  # networks
    devices_removed: list[str] = field(default_factory=list)
    devices_created: list[str] = field(default_factory=list)
    devices_changed: list[str] = field(default_factory=list)
    reverted_journal: bool = False


def converge(
    backend: KernelBackend,
    desired: KernelState,
    first: Sequence[Op],
    scope: ReadScope | None = None,
    *,
    strict: bool = True,
) -> KernelState:
    """Apply ``first``, then re-plan against what the kernel reports until nothing is left.
    ``scope``: the state was read (and ``desired`` rendered) for those devices only.
    ``strict``: a device of ``desired`` that is gone after an apply, or replaced by another of
    its name, fails the change (a revert passes False: it restores what can be restored).

    Raises NetError(KERNEL) when the kernel refuses an op, when a device the change needs
    vanished, or when the state still differs after the last pass (verification failed)."""
    ops = list(first)
    for _ in range(_CONVERGE_PASSES):
        if ops:
            backend.apply(ops)
        after = backend.read_state(scope)
        if strict:
            _check_present(desired, after)
        ops = plan(after, desired)
        if not ops:
            return after
    raise NetError(
        ErrorKind.KERNEL,
        "verification failed: the kernel state still differs from the request after "
        f"{_CONVERGE_PASSES} passes; remaining: " + "; ".join(str(op) for op in ops[:5]),
    )


def _check_present(desired: KernelState, after: KernelState) -> None:
    """The planner skips a NIC that is missing (it cannot create one), so a NIC deleted or
    renamed mid-change would verify as "nothing left to do"; a device created by the change
    and deleted behind its back would be quietly re-created. Both fail the change instead."""
    problems = []
    for name, wanted in sorted(desired.devices.items()):
        found = after.get(name)
        if found is None:
            problems.append(f"{name} disappeared")
        elif wanted.index and found.index != wanted.index:
            problems.append(f"{name} was replaced by another device of that name "
                            f"(ifindex {wanted.index} -> {found.index})")
    if problems:
        raise NetError(ErrorKind.KERNEL, "verification failed: during the change "
                       + "; ".join(problems[:5])
                       + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))


def revert(backend: KernelBackend, snapshot: KernelState, scope: ReadScope | None = None) -> None:
    """Bring the kernel back to ``snapshot`` (of the devices of ``scope`` if given), as far as
    the devices still exist (a NIC deleted meanwhile cannot come back); raises NetError if
    that fails."""
    current = backend.read_state(scope)
    after = converge(backend, snapshot, plan(current, snapshot), scope, strict=False)
    _revert_renamed(backend, snapshot, after)


def _revert_renamed(backend: KernelBackend, snapshot: KernelState, now: KernelState) -> None:
    """A NIC of the snapshot renamed meanwhile is found by its ifindex and gets its MTU, up
    flag and master back under its new name (a deleted one is simply gone)."""
    missing = {d.index: d for d in snapshot.devices.values()
               if d.is_nic and d.index and now.get(d.name) is None}
    if not missing:
        return
    everything = backend.read_state()
    renamed = [(found, missing[found.index]) for found in everything.devices.values()
               if found.index in missing]
    if not renamed:
        return
    devices = dict(everything.devices)
    for found, before in renamed:
        log.warning("rollback: NIC %s was renamed %s during the change; restoring it",
                    before.name, found.name)
        devices[found.name] = before.evolve(name=found.name, index=found.index)
    desired = make_state(list(devices.values()), set(everything.routes))
    converge(backend, desired, plan(everything, desired), strict=False)


def retrieve(
    backend: KernelBackend, journal: Journal, scope: ReadScope | None
) -> tuple[KernelState, ReadScope | None]:
    """The current state, of ``scope`` if scoping is safe; else of everything (scope None)."""
    if scope is not None and not journal.exists():
        current = backend.read_state(scope)
        if is_closed(current, scope):
            return current, scope
    return backend.read_state(), None


class Agent:
    def __init__(
        self,
        cfg: AgentConfig,
        store: StateStore,
        backend_factory: Callable[[], KernelBackend] = _default_backend,
        *,
        dhcp_timing: DhcpTiming | None = None,
        qos_factory: Callable[[], QosBackend] = _default_qos,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.journal = Journal(cfg.state_dir)
        self.running: NetConfig = store.load_running()
        self._tx = _Worker("netlink-tx", backend_factory, qos_factory)
        self._ro = _Worker("netlink-ro", backend_factory, qos_factory)
        self._lock = asyncio.Lock()
        # Resolved True by Host.confirmConnectivity, False when the daemon stops.
        self._confirmation: asyncio.Future[bool] | None = None
        self._stopping = False
        # True from the undo journal's record until commit or rollback: the kernel then shows
        # a change that may still be undone, and capabilities say so (netConfigPending).
        self._pending = False
        self.dhcp = DhcpManager(cfg.state_dir / "dhcp", dhcp_timing)
        # What the transaction in progress did besides the kernel change, for its rollback.
        self._dhcp_change = DhcpChange()
        self._ipv6_undo: dict[ipv6conf.Setting, str] = {}
        self._resolver_undo: resolver.Previous | None = None
        self._qos = QosChange()  # with its undo record, the trees before the change
        self._qos_ops = 0  # tc operations the transaction applied

    async def start_clients(self) -> None:
        """Daemon start: the DHCP clients of the running config resume from their saved
        leases, and its networks' IPv6 autoconfiguration and host QoS are set (devices made
        at boot by restore start with the kernel's defaults; a change that died after its
        QoS step left its trees)."""
        ipv6conf.apply(ipv6conf.wanted(self.running.networks.values()))
        try:
            await self._tx.call(lambda b: self._sync_qos(b, self.running))
        except NetError as exc:  # the agent still serves; the next change of it retries
            log.error("host QoS of the running config not applied at start: %s", exc.message)
        await self.dhcp.resume_running(self.running)

    async def stop_clients(self) -> None:
        """Daemon shutdown: the DHCP clients stop, keeping their leases and addresses."""
        await self.dhcp.stop_all()

    def close(self) -> None:
        self._tx.close()
        self._ro.close()

    def stopping(self) -> None:
        """The daemon stops (SIGTERM): a change waiting for its confirmation, or reaching that
        wait from now on, is rolled back at once instead of after its timeout."""
        self._stopping = True
        if self._confirmation is not None and not self._confirmation.done():
            self._confirmation.set_result(False)

    def reconfigure(self, cfg: AgentConfig) -> None:
        """SIGHUP: later transactions use ``cfg`` (its default connectivity timeout)."""
        self.cfg = cfg

    # ---- setupNetworks -------------------------------------------------------------------

    async def setup_networks(
        self, params: Mapping[str, Any], *, correlation_id: str | None = None
    ) -> dict[str, Any]:
        if self._lock.locked():
            raise NetError(ErrorKind.IN_PROGRESS, "another setupNetworks is in progress")
        async with self._lock:
            return await self._setup_locked(params, correlation_id)

    async def _setup_locked(
        self, params: Mapping[str, Any], cid: str | None
    ) -> dict[str, Any]:
        started = time.monotonic()
        request = parse_setup_request(params, default_timeout=self.cfg.connectivity_timeout)
        wanted = scope_of(self.running, request)
        current, scope = await self._tx.call(lambda b: retrieve(b, self.journal, wanted))
        new_config = merge(self.running, request, current)  # validate
        desired = self._render(new_config, current, scope)
        if scope is not None and not covers(desired, scope):
            # Not expected (scope_of names every device the render can produce); the whole
            # state is always right.
            log.error("scope %s does not cover the rendered devices %s", sorted(scope.devices),
                      sorted(desired.devices))
            current, scope = await self._tx.call(lambda b: retrieve(b, self.journal, None))
            new_config = merge(self.running, request, current)
            desired = self._render(new_config, current, scope)
        ops = plan(current, desired)  # plan
        tag = f"[{cid}] " if cid else ""
        log.info(
            "%ssetupNetworks networks=%s bondings=%s: %d operations%s%s",
            tag, _names(request.networks), _names(request.bondings), len(ops),
            " (dry run)" if request.options.dry_run else "",
            f" (scope: {len(scope.devices)} devices)" if scope is not None else "",
        )
        _log_ops(tag, ops)
        if request.options.dry_run:
            # The tc operations too: a change of hostQos alone is kernel work, not "nothing".
            qos = change_of(self.running, new_config, request.networks)
            tc = await self._tx.call(lambda _b: planned_ops(self._tx.qos(), qos)) if qos else []
            return {"plan": [op.to_json() for op in ops] + [tc_op_json(op) for op in tc]}

        self._qos, self._qos_ops = change_of(self.running, new_config, request.networks), 0
        if self._qos:
            self._qos = await self._tx.call(lambda _b: record_before(self._tx.qos(), self._qos))
        self._dhcp_change = dhcp = await self.dhcp.prepare(self.running, new_config)
        self._ipv6_undo = {}
        self._resolver_undo = None
        if dhcp.released:
            # Released leases took their addresses along: plan from the kernel as it is now.
            current, scope = await self._tx.call(
                lambda b: retrieve(b, self.journal, wanted if scope is not None else None))
            desired = self._render(new_config, current, scope)
            ops = plan(current, desired)
        if ops:
            try:
                await asyncio.to_thread(self.journal.record, current, cid, scope)
            except StateFileError as exc:
                await self.dhcp.resume(dhcp)
                exc.extend("; nothing was changed")
                raise
            self._pending = True
            try:
                await self._tx.call(lambda b: converge(b, desired, ops, scope))  # apply + verify
            except NetError as exc:
                await self._roll_back(current, scope, exc, tag)
                raise
            except Exception as exc:  # a bug or an unexpected netlink error: still roll back
                log.exception("%sunexpected failure during apply", tag)
                error = NetError(ErrorKind.KERNEL, f"apply failed: {exc}")
                await self._roll_back(current, scope, error, tag)
                raise error from exc
            log.info("%sapplied %d operations in %.0f ms", tag, len(ops),
                     (time.monotonic() - started) * 1000)

        timeout = request.options.connectivity_timeout or self.cfg.connectivity_timeout
        try:
            await self._after_kernel(request.networks, new_config, timeout)
        except NetError as exc:
            if await self._roll_back(current, scope, exc, tag):
                exc.extend("; the change was rolled back")
            raise
        if (ops or self._qos_ops) and (request.options.connectivity_check
                                       or request.options.probes):
            await self._check_connectivity(request.options, timeout, current, scope, tag)

        # The commit is part of the transaction: the files first, then memory. A change that
        # cannot be saved is rolled back, or a restart would find a kernel that no state
        # file describes.
        changed = new_config != self.running
        try:
            await asyncio.to_thread(
                self._commit, new_config, changed, request.options.commit_on_success
            )
        except StateFileError as exc:
            if (not ops and not dhcp.touched and not self._ipv6_undo
                    and not self._resolver_undo and not self._qos_ops):
                exc.extend("; nothing was changed")
                raise
            if await self._roll_back(current, scope, exc, tag):
                exc.extend("; the change was rolled back")
            raise
        self.running = new_config
        self._pending = False
        log.info("%ssetupNetworks done in %.0f ms", tag, (time.monotonic() - started) * 1000)
        return {}

    async def _after_kernel(
        self, named: Mapping[str, object], config: NetConfig, timeout: float
    ) -> None:
        """The steps that need the new devices: host QoS on their NICs and bonds, IPv6
        autoconfiguration of the named networks, DHCP clients for the DHCP networks, and the
        ``blockingdhcp`` wait."""
        if self._qos:
            self._qos_ops = await self._tx.call(
                lambda _b: apply_change(self._tx.qos(), self._qos))
        networks = [config.networks[n] for n in sorted(named) if n in config.networks]
        self._ipv6_undo = ipv6conf.apply(ipv6conf.wanted(networks))
        servers = [n.nameservers for n in networks if n.default_route and n.nameservers]
        if servers:  # [] (or none given) leaves the resolvers alone (docs/api.md)
            path = self.cfg.resolv_conf
            self._resolver_undo = await asyncio.to_thread(
                resolver.write_nameservers, path, servers[0])
        await self.dhcp.start(self._dhcp_change, config)
        await self.dhcp.wait(self._dhcp_change, config, timeout)

    async def _check_connectivity(
        self, options: SetupOptions, timeout: float, snapshot: KernelState,
        scope: ReadScope | None, tag: str,
    ) -> None:
        """Step 5 (docs/transaction.md): the engine's confirmation (when connectivityCheck is
        on) and every probe of ``options.probes``, at once, within one timeout; either failing
        rolls the change back with error 10."""
        waited = time.monotonic()
        probing = asyncio.ensure_future(probes.check(options.probes, timeout))
        try:
            if options.connectivity_check:
                outcome = await self._wait_for_confirmation(timeout)
                if outcome is not True:
                    why = (f"no Host.confirmConnectivity within {timeout:g} s"
                           if outcome is None else "the agent is stopping (SIGTERM or SIGINT)")
                    raise NetError(ErrorKind.CONNECTIVITY, f"connectivity check failed: {why}")
                log.info("%sconnectivity confirmed after %.1f s", tag, time.monotonic() - waited)
            await probing
        except NetError as error:
            await _stopped(probing)  # no probe runs while the kernel is being reverted
            if await self._roll_back(snapshot, scope, error, tag):
                error.extend("; the change was rolled back")
            raise
        finally:
            await _stopped(probing)
        if options.probes:
            log.info("%s%d probes passed after %.1f s", tag, len(options.probes),
                     time.monotonic() - waited)

    def _render(
        self, config: NetConfig, current: KernelState, scope: ReadScope | None
    ) -> KernelState:
        if scope is None:
            return render(config, current, self.running)
        return render(in_scope(config, scope), current, in_scope(self.running, scope),
                      base_floor(config, scope))

    def _commit(self, config: NetConfig, changed: bool, make_safe: bool) -> None:
        """Save ``config`` as the running config (and the safe one), then drop the undo
        journal; raises StateFileError with the files as they were (best effort once a rename
        happened: only a failing disk gets there)."""
        # An unchanged config is already on disk (running.json is what self.running was
        # loaded from or last saved as): a re-send skips the write and its two fsyncs.
        staged: list[StagedFile] = []
        try:
            if changed:
                staged.append(self.store.stage_running(config))
            if make_safe:
                staged.append(self.store.stage_safe(config))
            # The bytes, not the parsed config: only a failed install needs them.
            old_safe = self.store.read_safe_bytes() if make_safe else None
        except StateFileError:
            for item in staged:
                item.discard()
            raise
        try:
            install(staged)
            self.journal.clear()
            if make_safe:
                self._log_safe_saved(config)
        except StateFileError:
            for item in staged:
                item.discard()
            self._put_back(self.running if changed else None, make_safe, old_safe)
            raise

    def _put_back(
        self, running: NetConfig | None, safe_changed: bool, safe: bytes | None
    ) -> None:
        """After a failed install: the previous state files again, as far as the disk lets."""
        try:
            if running is not None:
                self.store.save_running(running)
            if safe_changed:
                if safe is None:
                    remove_durably(self.store.safe_path)
                else:
                    atomic_write(self.store.safe_path, safe)
        except StateFileError as exc:
            log.critical("cannot put the previous state files back: %s", exc.message)

    def _save_safe(self, config: NetConfig) -> None:
        self.store.save_safe(config)
        self._log_safe_saved(config)

    @staticmethod
    def _log_safe_saved(config: NetConfig) -> None:
        log.info("saved the safe config: %d networks %s, %d bonds %s", len(config.networks),
                 _names(config.networks), len(config.bondings), _names(config.bondings))

    async def _roll_back(
        self, snapshot: KernelState, scope: ReadScope | None, cause: NetError, tag: str
    ) -> bool:
        """Revert the kernel to ``snapshot``; whether that worked (if not, ``cause`` says so)."""
        log.warning("%srolling back: %s", tag, cause.message)
        self._pending = False
        # The transaction's DHCP clients go first, or a renewal could put an address back.
        await self.dhcp.abandon(self._dhcp_change)
        try:
            await self._tx.call(lambda b: revert(b, snapshot, scope))
            if self._qos:  # after the links: a bond the change deleted is back
                await self._tx.call(lambda _b: undo_change(self._tx.qos(), self._qos))
            ipv6conf.restore(self._ipv6_undo)
            if self._resolver_undo is not None:
                await asyncio.to_thread(resolver.restore, self._resolver_undo)
                self._resolver_undo = None
            await self.dhcp.resume(self._dhcp_change)
        except Exception as exc:
            # The journal stays: the next start (or `vdsm-net-agent restore`) converges.
            log.critical("%sROLLBACK FAILED, host state is inconsistent: %s", tag, exc)
            cause.extend(f"; ROLLBACK FAILED: {exc} (run `vdsm-net-agent restore`)")
            return False
        try:
            await asyncio.to_thread(self.journal.clear)
        except StateFileError as exc:
            # Harmless: the journal describes the state the kernel is now back in.
            log.error("%srolled back, but the undo journal stays: %s", tag, exc.message)
        else:
            log.info("%srolled back", tag)
        return True

    async def _wait_for_confirmation(self, timeout: float) -> bool | None:
        """True: confirmed; False: the daemon stops; None: timed out."""
        if self._stopping:
            return False
        self._confirmation = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(self._confirmation, timeout)
        except TimeoutError:
            return None
        finally:
            self._confirmation = None

    async def confirm_connectivity(self) -> dict[str, Any]:
        # Only a request that arrives after the apply counts: before it, there is no future.
        if self._confirmation is not None and not self._confirmation.done():
            self._confirmation.set_result(True)
        return {}

    # ---- persistence ---------------------------------------------------------------------

    async def set_safe_network_config(self) -> dict[str, Any]:
        async with self._lock:
            await asyncio.to_thread(self._save_safe, self.running)
        return {}

    def _dirty(self) -> bool:
        return (self.store.load_safe() or NetConfig()) != self.running

    # ---- queries -------------------------------------------------------------------------

    async def network_capabilities(self) -> dict[str, Any]:
        def read(b: KernelBackend) -> tuple[KernelState, dict[str, QosTree]]:
            state = b.read_state()
            devices = {d.name: d.index for d in state.devices.values() if d.index}
            return state, self._ro.qos().read_trees(devices)

        state, trees = await self._ro.call(read)
        dirty = await asyncio.to_thread(self._dirty)
        resolvers = await asyncio.to_thread(resolver.read_nameservers, self.cfg.resolv_conf)
        ipv6 = await asyncio.to_thread(resolver.supports_ipv6)
        # netConfigPending, beyond docs/api.md: an engine must not take an unconfirmed change
        # for the host's state.
        doc = capabilities(
            state,
            self.running,
            dirty=dirty,
            pending=self._pending,
            nameservers=resolvers,
            supports_ipv6=ipv6,
            qos=trees,
        )
        return dict(doc)

    async def manager_warnings(self) -> list[str]:
        """What NetworkManager or systemd-networkd may do to the owned devices (coexist)."""
        return await self._ro.call(lambda b: coexist.warnings(b.read_state().owned()))

    async def capabilities(self) -> dict[str, Any]:
        doc = await self.network_capabilities()
        doc["software_version"] = __version__
        doc["api_version"] = API_VERSION
        return doc

    async def network_statistics(self) -> dict[str, Any]:
        def read(b: KernelBackend) -> tuple[Mapping[str, LinkStats], KernelState]:
            return b.read_stats(), b.read_state()

        stats, state = await self._ro.call(read)
        return statistics(stats, state, self.running, sample_time=time.time())

    # ---- start-up and boot ---------------------------------------------------------------

    async def recover(self) -> bool:
        """At start: undo a change that was in flight when the agent died."""
        return await self._tx.call(self._recover_sync)

    def _recover_sync(self, backend: KernelBackend) -> bool:
        change = self.journal.pending_change()
        if change is None:
            return False
        log.warning("found an unfinished change (agent died mid-change): reverting it")
        _revert_change(backend, change)
        self.journal.clear()
        return True

    def restore(self, *, force: bool = False) -> RestoreReport:
        """Make the kernel match the safe config (the boot step, and after a crash). Raises
        RestoreRefused, changing nothing, when the state directory is missing or holds no
        safe config while the kernel holds owned devices, unless ``force``."""
        return self._tx.call_sync(lambda b: self._restore_sync(b, force))

    def _restore_refusal(self, state: KernelState) -> str | None:
        directory = self.cfg.state_dir
        owned = sorted(d.name for d in state.owned())
        doomed = (f"it would remove the {len(owned)} devices the agent owns: {', '.join(owned)}"
                  if owned else "no device of the agent exists")
        if not directory.is_dir():
            return (f"state directory {str(directory)!r} does not exist (a typo in [state] dir "
                    f"or --state-dir, a lost disk?); {doomed}; --force restores an empty "
                    "config")
        if owned and self.store.load_safe() is None:
            return (f"state directory {str(directory)!r} holds no safe config "
                    f"({self.store.safe_path.name}); {doomed}; --force removes them")
        return None

    def _restore_sync(self, backend: KernelBackend, force: bool) -> RestoreReport:
        report = RestoreReport()
        before = backend.read_state()
        refusal = None if force else self._restore_refusal(before)
        if refusal is not None:
            raise RestoreRefused(refusal)
        report.reverted_journal = self._revert_journal(backend)
        current = backend.read_state()
        safe = self.store.load_safe() or NetConfig()
        target = _without_missing_nics(safe, current, report)
        previous = _union(self.running, safe)
        desired = render(target, current, previous)
        ops = plan(current, desired)
        # Removed: the networks never made safe. One whose NIC is missing is skipped, not
        # removed: it stays in the safe config.
        report.removed = sorted(set(self.running.networks) - set(safe.networks))
        report.ops = len(ops)
        for line in report.skipped:
            log.warning("restore: %s", line)
        after = converge(backend, desired, ops)
        report.ops += self._sync_qos(backend, target, after)
        self.running = target
        self.store.save_running(target)
        self.journal.clear()
        _report_devices(before, after, report)
        log.info("restore: %d operations; networks removed: %s; devices removed: %s, "
                 "created: %s, changed: %s; skipped %d", report.ops,
                 ", ".join(report.removed) or "none", ", ".join(report.devices_removed) or "none",
                 ", ".join(report.devices_created) or "none",
                 ", ".join(report.devices_changed) or "none", len(report.skipped))
        return report

    def _sync_qos(self, backend: KernelBackend, config: NetConfig,
                  state: KernelState | None = None) -> int:
        """Host QoS as ``config`` says on every device (on the transaction's worker)."""
        if state is None:
            state = backend.read_state()
        devices = {d.name: d.index for d in state.devices.values() if d.index}
        return sync_config(self._tx.qos(), config, devices)

    def _revert_journal(self, backend: KernelBackend) -> bool:
        """First undo a change that died or whose rollback failed: only its snapshot knows
        the state of devices that no config mentions (e.g. a NIC that a failed change
        enslaved to a new bond, released and thereby downed). Best effort: the safe config
        is converged to afterwards whatever happens here."""
        try:
            change = self.journal.pending_change()
        except NetError as exc:
            log.warning("restore: ignoring the undo journal: %s", exc.message)
            return False
        if change is None:
            return False
        log.warning("restore: an unfinished change left an undo journal: reverting it first")
        try:
            _revert_change(backend, change)
        except NetError as exc:
            log.warning("restore: reverting the unfinished change failed (%s); "
                        "converging to the safe config anyway", exc.message)
        return True


async def _stopped(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, NetError):
        await task


def _log_ops(tag: str, ops: Sequence[Op]) -> None:
    if not ops:
        return
    shown = "; ".join(str(op) for op in ops[:_OPS_SHOWN])
    more = f"; ... ({len(ops) - _OPS_SHOWN} more)" if len(ops) > _OPS_SHOWN else ""
    log.info("%splan of %d operations: %s%s", tag, len(ops), shown, more)
    for number, op in enumerate(ops, start=1):
        log.debug("%soperation %d/%d: %s", tag, number, len(ops), op)


_COMPARED = [f.name for f in dataclasses.fields(Device) if f.compare and f.name != "name"]


def _device_changes(old: Device, new: Device) -> str:
    return ", ".join(f"{name} {getattr(old, name)!r} -> {getattr(new, name)!r}"
                     for name in _COMPARED if getattr(old, name) != getattr(new, name))


def _report_devices(before: KernelState, after: KernelState, report: RestoreReport) -> None:
    """Log, by name, each device restore removed, created or changed (as the kernel shows)."""
    for name in sorted(set(before.devices) - set(after.devices)):
        report.devices_removed.append(name)
        log.info("restore: removed device %s", name)
    for name in sorted(set(after.devices) - set(before.devices)):
        report.devices_created.append(name)
        log.info("restore: created device %s (%s)", name, after.devices[name].kind)
    for name in sorted(set(before.devices) & set(after.devices)):
        changes = _device_changes(before.devices[name], after.devices[name])
        if changes:
            report.devices_changed.append(name)
            log.info("restore: changed device %s: %s", name, changes)


def _revert_change(backend: KernelBackend, change: PendingChange) -> None:
    revert(backend, change.before, change.scope)


def _names(names: Iterable[str], shown: int = 5) -> str:
    """A log-sized list: ``[a, b, c]``, or ``200: [a, b, c, d, e, ...]``."""
    ordered = sorted(names)
    if len(ordered) <= shown:
        return "[" + ", ".join(ordered) + "]"
    return f"{len(ordered)}: [" + ", ".join(ordered[:shown]) + ", ...]"


def _union(a: NetConfig, b: NetConfig) -> NetConfig:
    return NetConfig({**b.networks, **a.networks}, {**b.bondings, **a.bondings})


def _without_missing_nics(cfg: NetConfig, current: KernelState, report: RestoreReport) -> NetConfig:
    """Drop what cannot be built because a NIC is gone; report it."""
    bonds = {}
    for name, bond in sorted(cfg.bondings.items()):
        missing = [n for n in bond.nics if current.get(n) is None]
        if missing:
            report.skipped.append(f"bond {name}: NIC {', '.join(missing)} missing")
            continue
        bonds[name] = bond
    networks: dict[str, NetworkConfig] = {}
    for name, net in sorted(cfg.networks.items()):
        if net.nic is not None and current.get(net.nic) is None:
            report.skipped.append(f"network {name}: NIC {net.nic} missing")
            continue
        if net.bonding is not None and net.bonding not in bonds:
            report.skipped.append(f"network {name}: bond {net.bonding} not restored")
            continue
        networks[name] = net
    return NetConfig(networks, bonds)
