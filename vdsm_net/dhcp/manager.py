"""The DHCPv4 clients of the running config's ``bootproto: dhcp`` networks, one per network's
top device, and their part in a setupNetworks transaction.

A transaction touches DHCP in three steps (the pipeline calls them in this order):

1. ``prepare(old, new)`` before the kernel change: a network that stops being DHCP (removed,
   made static, moved to another top device or to/from the default route) gets its lease
   released now, while its device still exists (the RELEASE goes out on it, the address and
   the default route go). Its lease file's bytes are kept in the returned ``DhcpChange``.
2. ``start(change, new)`` after the kernel change: a client for every DHCP network of ``new``
   that has none; ``wait(change, new, timeout)`` then waits for the leases of those with
   ``blockingdhcp``.
3. On a rollback, ``abandon(change)`` releases the clients started by the transaction
   (before the kernel is reverted, so no renewal puts an address back), and ``resume(change)``
   after the revert puts the released lease files back and starts their clients again: in
   INIT-REBOOT, asking for the same address.

``resume_running(config)`` at agent start restarts the clients of the running config from
their saved leases (no DISCOVER, the address stays); ``stop_all()`` at shutdown stops them
without releasing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vdsm_net.dhcp.client import DhcpClient, DhcpTiming
from vdsm_net.dhcp.install import KernelLeaseInstaller
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.persist import StateFileError, atomic_write

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Key:
    """What a running client depends on: another value needs another client."""

    device: str
    default_route: bool

    @classmethod
    def of(cls, net: NetworkConfig) -> _Key:
        return cls(net.top, net.default_route)


@dataclass
class _Released:
    network: NetworkConfig
    lease_file: bytes | None  # the file as it was before the release (None: there was none)


@dataclass
class DhcpChange:
    """What one transaction did to the clients, for its rollback."""

    released: list[_Released] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # network names

    @property
    def touched(self) -> bool:
        return bool(self.released or self.started)


class DhcpManager:
    """The clients of the DHCP networks, by network name. Use it in the agent's loop."""

    def __init__(self, lease_dir: Path, timing: DhcpTiming | None = None) -> None:
        self.lease_dir = lease_dir
        self._timing = timing
        self._clients: dict[str, tuple[_Key, DhcpClient]] = {}

    def client(self, network: str) -> DhcpClient | None:
        entry = self._clients.get(network)
        return entry[1] if entry else None

    def lease_file(self, device: str) -> Path:
        return self.lease_dir / f"{device}.lease"

    # ---- a transaction -------------------------------------------------------------------

    async def prepare(self, old: NetConfig, new: NetConfig) -> DhcpChange:
        change = DhcpChange()
        for name, (key, client) in sorted(self._clients.items()):
            net = new.networks.get(name)
            if net is not None and net.dhcpv4 and _Key.of(net) == key:
                continue
            path = self.lease_file(key.device)
            saved = await asyncio.to_thread(_read_bytes, path)
            LOG.info("dhcp: releasing the lease of network %s on %s (%s)", name, key.device,
                     "network removed" if net is None else "no longer the same DHCP network")
            del self._clients[name]
            await client.release()
            previous = old.networks.get(name)
            if previous is not None:
                change.released.append(_Released(previous, saved))
        return change

    async def start(self, change: DhcpChange, new: NetConfig) -> None:
        """A client for every DHCP network of ``new`` without one. NetError(BAD_NIC) if a
        top device cannot be listened on (the caller rolls back)."""
        for name, net in sorted(new.networks.items()):
            if net.dhcpv4 and name not in self._clients:
                await self._start(net)
                change.started.append(name)

    async def wait(self, change: DhcpChange, new: NetConfig, timeout: float) -> None:
        """The leases of the networks started with ``blockingdhcp``, within ``timeout`` (for
        all of them together); NetError(CONNECTIVITY) naming the network otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for name in change.started:
            net = new.networks[name]
            client = self.client(name)
            if not net.blocking_dhcp or client is None:
                continue
            try:
                await client.wait_for_lease(max(0.0, deadline - loop.time()))
            except NetError:
                raise NetError(
                    ErrorKind.CONNECTIVITY,
                    f"networks.{name}.blockingdhcp: no DHCP lease on {net.top} within "
                    f"{timeout:g} s (client state {client.state}; is a DHCP server reachable "
                    "on that network?)") from None

    async def abandon(self, change: DhcpChange) -> None:
        for name in change.started:
            entry = self._clients.pop(name, None)
            if entry is not None:
                await entry[1].release()
        change.started.clear()

    async def resume(self, change: DhcpChange) -> None:
        for released in change.released:
            net = released.network
            if released.lease_file is not None:
                try:
                    await asyncio.to_thread(atomic_write, self.lease_file(net.top),
                                            released.lease_file)
                except StateFileError as exc:
                    LOG.error("dhcp: cannot put back the lease file of %s: %s", net.name,
                              exc.message)
            try:
                await self._start(net)
            except NetError as exc:
                LOG.error("dhcp: cannot restart the client of network %s: %s", net.name,
                          exc.message)
        change.released.clear()

    # ---- the daemon's life ---------------------------------------------------------------

    async def resume_running(self, config: NetConfig) -> None:
        """Agent start: a client for each DHCP network, from its saved lease if any."""
        for name, net in sorted(config.networks.items()):
            if net.dhcpv4 and name not in self._clients:
                try:
                    await self._start(net)
                except NetError as exc:
                    LOG.error("dhcp: network %s: %s", name, exc.message)

    async def stop_all(self) -> None:
        """Agent shutdown: stop every client, keeping leases, addresses and files."""
        clients, self._clients = self._clients, {}
        for _key, client in clients.values():
            await client.stop()

    def names(self) -> Iterable[str]:
        return sorted(self._clients)

    async def _start(self, net: NetworkConfig) -> None:
        try:
            await asyncio.to_thread(os.makedirs, self.lease_dir, 0o700, True)
        except OSError as exc:
            raise NetError(ErrorKind.STATE,
                           f"dhcp: cannot create {self.lease_dir}: {exc}") from exc
        client = DhcpClient(net.top, self.lease_file(net.top),
                            on_change=KernelLeaseInstaller(default_route=net.default_route),
                            timing=self._timing)
        await client.start()
        self._clients[net.name] = (_Key.of(net), client)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
