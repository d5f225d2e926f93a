"""The default lease handler: the leased address (and, when asked, the default route via the
leased router) in the kernel, through netlink.

The address carries the lease's remaining time as its valid and preferred lifetimes, so the
kernel itself removes it when the lease runs out even if the agent is gone; every renewal
refreshes the lifetimes. The pipeline may use its own handler instead (LeaseHandler).
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from collections.abc import Awaitable
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vdsm_net.dhcp.client import LeaseChange
from vdsm_net.dhcp.lease import DhcpLease

LOG = logging.getLogger(__name__)

# Deleting what is already gone: the address or route vanished (lifetime ran out, or an
# operator removed it) - the wanted end state holds.
_GONE = (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH, errno.ENODEV)


class KernelLeaseInstaller:
    """A LeaseHandler that installs the lease on its interface.

    ``default_route``: also keep ``default via <router> dev <iface>`` in the main table (the
    defaultRoute network). ``metric``: that route's priority.
    """

    def __init__(self, *, default_route: bool = False, metric: int = 0) -> None:
        self.default_route = default_route
        self.metric = metric

    async def __call__(self, change: LeaseChange) -> None:
        async with AsyncIPRoute() as ipr:
            previous = change.previous
            if change.keeps_address:
                if previous is not None and previous.cidr != change.lease.cidr:
                    await self._remove(ipr, previous)
                await self._install(ipr, change.lease)
            else:
                await self._remove(ipr, change.lease)

    async def _install(self, ipr: AsyncIPRoute, lease: DhcpLease) -> None:
        index = socket.if_nametoindex(lease.interface)
        lifetime = _lifetime(lease)
        await ipr.addr("replace", index=index, address=lease.address,
                       prefixlen=lease.prefixlen, broadcast=_broadcast(lease),
                       valid_lft=lifetime, preferred_lft=lifetime)
        if self.default_route and lease.router:
            await ipr.route("replace", dst="0.0.0.0/0", gateway=lease.router, oif=index,
                            priority=self.metric)

    async def _remove(self, ipr: AsyncIPRoute, lease: DhcpLease) -> None:
        try:
            index = socket.if_nametoindex(lease.interface)
        except OSError:
            return  # the device is gone, and its addresses and routes with it
        if self.default_route and lease.router:
            await _ignore_gone(ipr.route("del", dst="0.0.0.0/0", gateway=lease.router,
                                         oif=index, priority=self.metric))
        await _ignore_gone(ipr.addr("del", index=index, address=lease.address,
                                    prefixlen=lease.prefixlen))


def _lifetime(lease: DhcpLease) -> int:
    remaining = lease.remaining()
    if remaining is None:
        return 0xFFFFFFFF  # "forever" for the kernel
    # The kernel refuses a valid lifetime of 0; a lease with under a second left is given
    # one second and the expiry event removes it.
    return max(1, math.ceil(remaining))


def _broadcast(lease: DhcpLease) -> str:
    host = int.from_bytes(socket.inet_aton(lease.address), "big")
    mask = (0xFFFFFFFF << (32 - lease.prefixlen)) & 0xFFFFFFFF if lease.prefixlen else 0
    return socket.inet_ntoa(((host & mask) | (~mask & 0xFFFFFFFF)).to_bytes(4, "big"))


async def _ignore_gone(request: Awaitable[Any]) -> None:
    try:
        await request
    except NetlinkError as err:
        if err.code not in _GONE:
            raise
        LOG.debug("already gone: %s", err)
