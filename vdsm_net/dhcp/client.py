"""A DHCPv4 client inside the agent's event loop, built on pyroute2's asyncio client.

pyroute2's ``AsyncDHCPClient`` brings the RFC 2131 state machine, a raw packet socket with a
BPF filter (it works on an interface without any address), retransmission with randomized
backoff, the renewal (T1), rebinding (T2) and expiry timers (from options 58/59 when the
server sends them), INIT-REBOOT from a saved lease and a RELEASE on exit. This module adds
what the agent needs around it (see docs/dhcp.md for the review of the library):

- one lease file per interface at a path the agent chooses, written atomically and off the
  event loop (pyroute2 writes ``<iface>.lease.json`` in the working directory, in place);
- a choice at stop time between releasing the lease (network removed, or no longer DHCP) and
  keeping it (agent shutdown or restart: no RELEASE, the address stays installed, the next
  start REQUESTs the saved address in INIT-REBOOT);
- a single event handler (``LeaseChange``) for the pipeline instead of pyroute2's hooks, with
  the previous lease so a handler can replace an address the server changed;
- ``wait_for_lease(timeout)`` raising ``NetError`` (kind CONNECTIVITY) that says what the
  client was doing, for ``blockingdhcp``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pyroute2.dhcp import fsm
from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
from pyroute2.dhcp.hooks import Trigger, hook
from pyroute2.dhcp.leases import Lease

from vdsm_net.dhcp.lease import DhcpLease, LeaseFile, StoredLease
from vdsm_net.errors import ErrorKind, NetError

LOG = logging.getLogger(__name__)


class LeaseEvent(StrEnum):
    BOUND = "bound"  # a new lease (first one, or after INIT-REBOOT, or a new address)
    RENEWED = "renewed"  # T1: the granting server extended it
    REBOUND = "rebound"  # T2: another (or the same) server extended it by broadcast
    EXPIRED = "expired"  # nobody extended it in time: the address must go
    UNBOUND = "unbound"  # released by the agent, or refused by the server (NAK)


_EVENT_OF_TRIGGER = {
    Trigger.BOUND: LeaseEvent.BOUND,
    Trigger.RENEWED: LeaseEvent.RENEWED,
    Trigger.REBOUND: LeaseEvent.REBOUND,
    Trigger.EXPIRED: LeaseEvent.EXPIRED,
    Trigger.UNBOUND: LeaseEvent.UNBOUND,
}


@dataclass(frozen=True)
class LeaseChange:
    """What happened to the lease of ``lease.interface``. ``previous`` is the lease that was
    in force before (None for the first one); on BOUND its address may differ from the new
    one, and whoever installed the old address should remove it."""

    event: LeaseEvent
    lease: DhcpLease
    previous: DhcpLease | None

    @property
    def keeps_address(self) -> bool:
        return self.event in (LeaseEvent.BOUND, LeaseEvent.RENEWED, LeaseEvent.REBOUND)


LeaseHandler = Callable[[LeaseChange], Awaitable[None]]


@dataclass(frozen=True)
class DhcpTiming:
    """Retransmission and give-up times in seconds. The defaults are pyroute2's (RFC 2131
    §4.1: 4 s doubling to 64 s, randomized); tests shorten them."""

    retransmit_first: float = 4.0
    retransmit_max: float = 32.0
    # INIT-REBOOT: how long to wait for an answer to the REQUEST of the saved address before
    # forgetting it and DISCOVERing (the address stays until its lifetime ends).
    reboot_timeout: float = 10.0
    # After an OFFER, how long to wait for the ACK before starting over.
    request_timeout: float = 30.0
    # How long one DISCOVER round (one xid) lasts before starting over with a new xid.
    select_timeout: float = 15 * 60.0
    # A handler that runs longer is cancelled (and logged): the state machine must go on.
    handler_timeout: float = 10.0

    def backoff(self) -> Iterator[float]:
        delay = self.retransmit_first
        while True:
            yield delay
            delay = min(random.uniform(delay, delay * 2), self.retransmit_max)


class DhcpClient:
    """The DHCPv4 client of one interface. Create and use it inside the running event loop.

    ``start()`` returns once the client runs (it never waits for a server); ``lease`` is the
    lease in force; ``release()`` gives it back and stops; ``stop()`` stops and keeps it.
    The raw socket and the netlink sockets open in the network namespace of the calling
    thread.
    """

    def __init__(
        self,
        interface: str,
        lease_file: Path,
        *,
        on_change: LeaseHandler | None = None,
        timing: DhcpTiming | None = None,
        hostname: str | None = None,
    ) -> None:
        self.interface = interface
        self._file = LeaseFile(lease_file)
        self._on_change = on_change
        self._timing = timing or DhcpTiming()
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._client: Any = None  # pyroute2's AsyncDHCPClient, set by start()
        self._lease: DhcpLease | None = None
        # The lease read from the file at start, until a server answers for it: the
        # "previous" lease of the first change (its address may still be installed).
        self._saved: DhcpLease | None = None
        self._bound = asyncio.Event()
        self._writes: asyncio.Lock = asyncio.Lock()
        self.saved_lease_reused = False
        self.last_handler_error: str | None = None

    # -- public API -------------------------------------------------------------------

    @property
    def lease(self) -> DhcpLease | None:
        """The lease in force (None before the first ACK and after release or expiry)."""
        return self._lease

    @property
    def state(self) -> str:
        """The RFC 2131 state name (``OFF`` when not running)."""
        return "OFF" if self._client is None else str(self._client.state.name)

    @property
    def running(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        if self._client is not None:
            raise RuntimeError(f"dhcp client on {self.interface} is already running")
        stored = await asyncio.to_thread(self._file.read, self.interface)
        self._saved = stored.lease if stored else None
        config = ClientConfig(
            interface=self.interface,
            lease_type=_lease_type(stored),
            hooks=self._hooks(),
            timeouts={
                fsm.State.REBOOTING: self._timing.reboot_timeout,
                fsm.State.REQUESTING: self._timing.request_timeout,
                fsm.State.SELECTING: self._timing.select_timeout,
            },
            retransmission=self._timing.backoff,
            release=True,
            hook_timeout=self._timing.handler_timeout,
            handle_signals=False,  # the agent owns its signals
            vendor_id="vdsm-net",
            host_name=self._hostname or None,
        )
        client = AsyncDHCPClient(config)
        try:
            await client.__aenter__()
        except OSError as err:
            # The raw socket looks the interface up by name first.
            raise NetError(ErrorKind.BAD_NIC,
                           f"dhcp: cannot listen on {self.interface}: {err}") from err
        self._client = client
        self.saved_lease_reused = client.state is fsm.State.INIT_REBOOT
        LOG.info("dhcp %s: starting in %s%s", self.interface, client.state.name,
                 f" (requesting saved {self._saved.cidr})" if self._saved else "")
        await client.bootstrap()

    async def wait_for_lease(self, timeout: float) -> DhcpLease:
        """The lease, once there is one; NetError(CONNECTIVITY) after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._bound.wait(), timeout)
        except TimeoutError:
            raise NetError(
                ErrorKind.CONNECTIVITY,
                f"dhcp: no lease on {self.interface} within {timeout:g} s (client state "
                f"{self.state}; is a DHCP server reachable on that network?)",
            ) from None
        assert self._lease is not None  # _bound is set only while a lease is in force
        return self._lease

    async def release(self) -> None:
        """Give the lease back (DHCPRELEASE), let the handler remove the address, forget
        the lease file, and stop. For a network removed or no longer DHCP."""
        await self._stop(release=True)
        async with self._writes:
            await asyncio.to_thread(self._file.remove)

    async def stop(self) -> None:
        """Stop without releasing: the address stays, the lease file stays, and the next
        ``start()`` asks for the same address (agent shutdown or restart)."""
        await self._stop(release=False)

    # -- internals ------------------------------------------------------------------------

    async def _stop(self, *, release: bool) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        # Read by pyroute2's __aexit__: RELEASE and the UNBOUND hook only when asked.
        client.config.release = release
        await client.__aexit__(None, None, None)
        if release:
            self._set_lease(None)

    def _set_lease(self, lease: DhcpLease | None) -> None:
        self._lease = lease
        if lease is None:
            self._bound.clear()
        else:
            self._bound.set()

    def _hooks(self) -> list[Any]:
        # pyroute2 calls a hook with the lease only; one hook per trigger tells them apart.
        hooks = []
        for trigger in _EVENT_OF_TRIGGER:
            async def on_trigger(lease: Any, trigger: Trigger = trigger) -> None:
                await self._on_trigger(_EVENT_OF_TRIGGER[trigger], lease)

            on_trigger.__name__ = f"vdsm_net_{trigger}"
            hooks.append(hook(trigger)(on_trigger))
        return hooks

    async def _on_trigger(self, event: LeaseEvent, lease: Any) -> None:
        previous = self._lease or self._saved
        self._saved = None
        current = DhcpLease.from_ack(dict(lease.ack), self.interface, str(lease.server_mac),
                                     float(lease.obtained))
        change = LeaseChange(event, current, previous)
        LOG.info("dhcp %s: %s %s from %s (lease %s s, router %s)", self.interface,
                 event.value, current.cidr, current.server, current.lease_time,
                 current.router)
        if change.keeps_address:
            record = asdict(lease)
            async with self._writes:
                await asyncio.to_thread(self._file.write, StoredLease(current, record))
        await self._run_handler(change)
        # Only now: wait_for_lease() returns once the handler has installed the lease.
        self._set_lease(current if change.keeps_address else None)

    async def _run_handler(self, change: LeaseChange) -> None:
        if self._on_change is None:
            return
        try:
            await self._on_change(change)
            self.last_handler_error = None
        except Exception as err:
            # The lease stays valid even if installing it failed; the next renewal calls
            # the handler again. The error is kept for the capabilities and the log.
            self.last_handler_error = f"{change.event.value}: {err}"
            LOG.error("dhcp %s: lease handler failed on %s: %s", self.interface,
                      change.event.value, err)


def _lease_type(stored: StoredLease | None) -> type[Any]:
    """The lease class pyroute2's client is configured with: it loads the lease this agent
    saved (read beforehand, off the loop) and does not write files itself (the client
    writes them atomically from its BOUND/RENEWED/REBOUND handler)."""

    class AgentLease(Lease):  # type: ignore[misc]
        def dump(self) -> None:
            pass

        @classmethod
        def load(cls, interface: str) -> Any:
            if stored is None:
                return None
            record = stored.client_record
            return cls(ack=record["ack"], interface=interface,
                       server_mac=record["server_mac"], obtained=float(record["obtained"]))

    return AgentLease
