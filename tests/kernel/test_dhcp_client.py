"""The DHCPv4 client (vdsm_net/dhcp) against a real dnsmasq in a peer namespace.

The client runs in the test's event loop with this thread moved into the test's namespace,
so its raw socket and netlink sockets live there, as the agent's would on a host. What is
asserted is what the kernel reports (`ip -j addr`, `ip -j route`, `ip monitor`) and what the
server recorded (dnsmasq's lease file and log), not what the client believes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.kernel.dhcp_server import (
    FAST,
    POOL,
    SERVER_ADDR,
    Capture,
    Dnsmasq,
    addresses,
    veth_to_peer,
    wait_until,
)
from tests.netns import NetNS
from vdsm_net.dhcp import (
    DhcpClient,
    DhcpTiming,
    KernelLeaseInstaller,
    LeaseChange,
    LeaseEvent,
)
from vdsm_net.errors import ErrorKind, NetError

pytestmark = pytest.mark.kernel





class Recorder:
    """A lease handler that installs through KernelLeaseInstaller and keeps every change
    once installed (the client updates ``lease`` right after its handler returns)."""

    def __init__(self, default_route: bool = False) -> None:
        self.installer = KernelLeaseInstaller(default_route=default_route)
        self.changes: list[LeaseChange] = []

    async def __call__(self, change: LeaseChange) -> None:
        await self.installer(change)
        self.changes.append(change)

    def events(self) -> list[LeaseEvent]:
        return [c.event for c in self.changes]


@pytest.fixture
async def clients() -> AsyncIterator[list[DhcpClient]]:
    """Clients a test starts; any still running at the end are stopped (not released)."""
    started: list[DhcpClient] = []
    yield started
    for client in started:
        await client.stop()


def in_pool(address: str) -> bool:
    last = int(address.rsplit(".", 1)[1])
    return int(POOL[0].rsplit(".", 1)[1]) <= last <= int(POOL[1].rsplit(".", 1)[1])


async def bound_client(clients: list[DhcpClient], iface: str, lease_file: Path,
                       handler: Recorder, timing: DhcpTiming = FAST) -> DhcpClient:
    client = DhcpClient(iface, lease_file, on_change=handler, timing=timing, hostname="h17")
    clients.append(client)
    await client.start()
    return client


async def test_lease_on_a_plain_veth_is_installed_and_released(
    here: NetNS, peer: NetNS, tmp_path: Path, clients: list[DhcpClient]
) -> None:
    far = veth_to_peer(here, peer, "dh0")
    server = Dnsmasq(peer, far, tmp_path)
    await server.start()
    handler = Recorder(default_route=True)
    client = await bound_client(clients, "dh0", tmp_path / "dh0.lease", handler)

    lease = await client.wait_for_lease(15)

    assert in_pool(lease.address) and lease.prefixlen == 24
    assert (lease.router, lease.server, lease.lease_time) == (SERVER_ADDR, SERVER_ADDR, 120)
    (addr,) = addresses(here, "dh0")
    assert (addr["local"], addr["prefixlen"]) == (lease.address, 24)
    # The kernel drops the address by itself when the lease runs out.
    assert 0 < int(str(addr["valid_life_time"])) <= 120
    assert 0 < int(str(addr["preferred_life_time"])) <= 120
    (default,) = here.ip_json("-4", "route", "show", "default")
    assert (default["gateway"], default["dev"]) == (SERVER_ADDR, "dh0")
    mac = here.link("dh0")["address"]
    assert server.leases()[lease.address].endswith(mac)
    saved = json.loads((tmp_path / "dh0.lease").read_text())
    assert saved["lease"]["address"] == lease.address
    assert handler.events() == [LeaseEvent.BOUND]

    await client.release()

    assert addresses(here, "dh0") == []
    assert here.ip_json("-4", "route", "show", "default") == []
    await wait_until(lambda: lease.address not in server.leases(), 5,
                     "dnsmasq to drop the released lease")
    assert server.count("DHCPRELEASE") == 1
    assert not (tmp_path / "dh0.lease").exists()
    assert client.lease is None and client.state == "OFF"
    assert handler.events() == [LeaseEvent.BOUND, LeaseEvent.UNBOUND]


async def test_lease_on_a_bridge(here: NetNS, peer: NetNS, tmp_path: Path,
                                 clients: list[DhcpClient]) -> None:
    far = veth_to_peer(here, peer, "dh0")
    here.ip("link", "add", "br0", "type", "bridge")
    here.ip("link", "set", "dh0", "master", "br0")
    here.ip("link", "set", "br0", "up")
    server = Dnsmasq(peer, far, tmp_path)
    await server.start()
    client = await bound_client(clients, "br0", tmp_path / "br0.lease", Recorder())

    lease = await client.wait_for_lease(15)

    (addr,) = addresses(here, "br0")
    assert (addr["local"], addr["prefixlen"]) == (lease.address, 24)
    assert addresses(here, "dh0") == []
    assert server.leases()[lease.address].endswith(here.link("br0")["address"])


async def test_renewal_at_t1_extends_the_lease(here: NetNS, peer: NetNS, tmp_path: Path,
                                               clients: list[DhcpClient]) -> None:
    far = veth_to_peer(here, peer, "dh0")
    # dnsmasq's shortest lease is 2 minutes; options 58/59 bring the renewal to seconds. T2
    # stays far from T1: an ACK late by more than T2 - T1 (a loaded machine) finds the client
    # rebinding, a REBOUND instead of this RENEWED. (dnsmasq sends T1 = T2 - 1 when asked for
    # T1 = 2, whatever T2 is; T1 = 3 and T2 = 30 go out as asked.)
    server = Dnsmasq(peer, far, tmp_path, "--dhcp-option=option:T1,3",
                     "--dhcp-option=option:T2,30")
    await server.start()
    handler = Recorder()
    client = await bound_client(clients, "dh0", tmp_path / "dh0.lease", handler)
    lease = await client.wait_for_lease(15)
    assert lease.renewal_time is not None and lease.renewal_time < 6
    expiry_at_bind = int(server.leases()[lease.address].split()[0])

    await wait_until(lambda: LeaseEvent.RENEWED in handler.events(), 15, "a renewal")

    renewed = client.lease
    assert renewed is not None and renewed.address == lease.address
    assert renewed.obtained > lease.obtained
    assert int(server.leases()[lease.address].split()[0]) > expiry_at_bind
    assert server.count("DHCPDISCOVER") == 1  # renewing is a REQUEST, never a new DISCOVER
    (addr,) = addresses(here, "dh0")
    assert addr["local"] == lease.address
    saved = json.loads((tmp_path / "dh0.lease").read_text())
    assert saved["lease"]["obtained"] == renewed.obtained


async def test_rebinding_at_t2_when_the_server_missed_the_renewal(
    here: NetNS, peer: NetNS, tmp_path: Path, clients: list[DhcpClient]
) -> None:
    far = veth_to_peer(here, peer, "dh0")
    t1t2 = ("--dhcp-option=option:T1,2", "--dhcp-option=option:T2,4")
    server = Dnsmasq(peer, far, tmp_path, *t1t2)
    await server.start()
    handler = Recorder()
    client = await bound_client(clients, "dh0", tmp_path / "dh0.lease", handler)
    lease = await client.wait_for_lease(15)
    server.stop()  # the renewal at T1 goes unanswered

    await wait_until(lambda: client.state == "REBINDING", 10, "the client to rebind")
    # The same server database comes back (as a failed-over server would).
    await Dnsmasq(peer, far, tmp_path, *t1t2).start()
    await wait_until(lambda: LeaseEvent.REBOUND in handler.events(), 10, "the rebind ACK")

    assert client.lease is not None and client.lease.address == lease.address
    (addr,) = addresses(here, "dh0")
    assert addr["local"] == lease.address


async def test_restart_requests_the_saved_lease_without_a_gap(
    here: NetNS, peer: NetNS, tmp_path: Path, clients: list[DhcpClient]
) -> None:
    far = veth_to_peer(here, peer, "dh0")
    server = Dnsmasq(peer, far, tmp_path)
    await server.start()
    lease_file = tmp_path / "dh0.lease"
    first = await bound_client(clients, "dh0", lease_file, Recorder())
    lease = await first.wait_for_lease(15)
    monitor = AddressMonitor(here)
    try:
        await first.stop()  # agent shutdown: no RELEASE, the address stays
        assert [a["local"] for a in addresses(here, "dh0")] == [lease.address]
        second = await bound_client(clients, "dh0", lease_file, Recorder())
        renewed = await second.wait_for_lease(15)
    finally:
        events = monitor.close()

    assert second.saved_lease_reused
    assert renewed.address == lease.address
    assert [a["local"] for a in addresses(here, "dh0")] == [lease.address]
    assert not [e for e in events if e.startswith("Deleted") and lease.address in e], events
    assert server.count("DHCPRELEASE") == 0
    # INIT-REBOOT: the restarted client REQUESTed the saved address, it did not DISCOVER.
    assert server.count("DHCPDISCOVER") == 1
    assert server.count("DHCPREQUEST") == 2


class AddressMonitor:
    """`ip -4 monitor address` in the namespace: every IPv4 address event the kernel sends
    from construction to close()."""

    def __init__(self, ns: NetNS) -> None:
        self._proc = subprocess.Popen(["ip", "-4", "-o", "-n", ns.name, "monitor", "address"],
                                      stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # The monitor listens once it reports a marker address; until it has subscribed the
        # kernel's events go nowhere, so the marker is re-added until one is seen.
        deadline = time.monotonic() + 10
        while not any("127.0.0.9" in line for line in self.lines):
            assert time.monotonic() < deadline, f"ip monitor reported nothing: {self.lines}"
            ns.ip("addr", "replace", "127.0.0.9/8", "dev", "lo")
            time.sleep(0.1)
            if not any("127.0.0.9" in line for line in self.lines):
                ns.ip("addr", "del", "127.0.0.9/8", "dev", "lo", check=False)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.strip())

    def close(self) -> list[str]:
        self._proc.terminate()
        self._proc.wait(5)
        self._reader.join(5)
        return self.lines


async def test_a_silent_server_gives_a_clear_timeout_and_the_client_keeps_trying(
    here: NetNS, peer: NetNS, tmp_path: Path, clients: list[DhcpClient]
) -> None:
    far = veth_to_peer(here, peer, "dh0")
    capture = Capture(peer, far)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    try:
        client = await bound_client(clients, "dh0", tmp_path / "dh0.lease", Recorder())
        with pytest.raises(NetError) as err:
            await client.wait_for_lease(3)
        discovers = capture.drain()
    finally:
        beat.cancel()
        capture.close()

    assert err.value.kind is ErrorKind.CONNECTIVITY
    assert "no lease on dh0 within 3 s" in err.value.message
    assert "SELECTING" in err.value.message
    # Retransmitted with backoff (0.5 s, then up to 1 s): several DISCOVERs in 3 s.
    assert discovers >= 3
    # The event loop was not blocked: the 50 ms heartbeat kept running (about 60 ticks in
    # those 3 s; a loop blocked while waiting would give next to none; the bound leaves room
    # for a loaded machine).
    assert ticks >= 10
    assert addresses(here, "dh0") == []

    # It kept trying: once a server answers, the lease comes without a restart.
    server = Dnsmasq(peer, far, tmp_path)
    await server.start()
    lease = await client.wait_for_lease(10)
    assert [a["local"] for a in addresses(here, "dh0")] == [lease.address]


async def test_start_on_a_missing_interface_is_a_clear_error(
    here: NetNS, tmp_path: Path
) -> None:
    client = DhcpClient("nosuch0", tmp_path / "x.lease", timing=FAST)
    with pytest.raises(NetError) as err:
        await client.start()
    assert err.value.kind is ErrorKind.BAD_NIC and "nosuch0" in err.value.message
    assert not client.running
