"""A DHCP test bed: a peer namespace joined to the test's namespace by a veth pair, and a
dnsmasq DHCP server on the peer end, in the foreground, with its files in a temporary
directory and nothing left behind (no pid file, no daemon, its own lease file)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pyroute2 import netns as pr_netns

from tests.netns import NetNS
from vdsm_net.dhcp import DhcpTiming

DNSMASQ = "/usr/sbin/dnsmasq"
SERVER_ADDR = "10.77.0.1"
POOL = ("10.77.0.50", "10.77.0.99")


class Dnsmasq:
    """One dnsmasq DHCP server on ``iface`` of ``peer``. ``options``: extra arguments."""

    def __init__(self, peer: NetNS, iface: str, workdir: Path, *options: str) -> None:
        self.peer = peer
        self.iface = iface
        self.leasefile = workdir / "dnsmasq.leases"
        self.log = workdir / "dnsmasq.log"
        self.options = options
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        argv = [
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--no-ping", "--port=0", f"--interface={self.iface}", "--bind-interfaces",
            "--except-interface=lo", "--pid-file=", "--user=root", "--log-dhcp",
            "--log-facility=-", f"--dhcp-leasefile={self.leasefile}",
            f"--dhcp-range={POOL[0]},{POOL[1]},255.255.255.0,2m",
            f"--dhcp-option=option:router,{SERVER_ADDR}", *self.options,
        ]
        log = self.log.open("ab")
        try:
            self._proc = subprocess.Popen(self.peer.exec_argv(*argv), stdout=log,
                                          stderr=subprocess.STDOUT)
        finally:
            log.close()
        self.peer.defer(self.stop)
        # dnsmasq logs "DHCP, IP range ..." once its DHCP socket is bound.
        deadline = time.monotonic() + 10
        while "DHCP, IP range" not in self.log_text():
            if self._proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited ({self._proc.returncode}):\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start:\n{self.log_text()}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def count(self, message: str) -> int:
        """How many times dnsmasq logged receiving or sending ``message`` (e.g. DHCPDISCOVER)."""
        return sum(1 for line in self.log_text().splitlines() if f" {message}(" in line)

    def leases(self) -> dict[str, str]:
        """dnsmasq's lease database: {address: "expiry mac"}."""
        try:
            lines = self.leasefile.read_text().splitlines()
        except FileNotFoundError:
            return {}
        out = {}
        for line in lines:
            fields = line.split()
            out[fields[2]] = f"{fields[0]} {fields[1]}"
        return out


def veth_to_peer(ns: NetNS, peer: NetNS, name: str) -> str:
    """A veth ``name`` in ``ns`` whose other end ``<name>s`` is in ``peer``, addressed
    SERVER_ADDR/24 there; both ends up. Returns the peer end's name."""
    far = name + "s"
    ns.ip("link", "add", name, "type", "veth", "peer", "name", far, "netns", peer.name)
    peer.ip("addr", "add", f"{SERVER_ADDR}/24", "dev", far)
    peer.ip("link", "set", far, "up")
    ns.ip("link", "set", name, "up")
    return far


@contextlib.contextmanager
def inside(ns: NetNS) -> Iterator[None]:
    """Run this thread in ``ns``: sockets opened meanwhile (the DHCP client's raw socket,
    pyroute2's netlink sockets) belong to ``ns`` for their whole life."""
    pr_netns.pushns(ns.name)
    try:
        yield
    finally:
        pr_netns.popns()


class Capture:
    """Frames to UDP port 67 (DHCP requests) arriving on ``iface`` of ``peer``, read from a
    packet socket opened in that namespace."""

    def __init__(self, peer: NetNS, iface: str) -> None:
        with inside(peer):
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self._sock.bind((iface, 0))
        self._sock.setblocking(False)
        self.requests = 0

    def drain(self) -> int:
        """Count the DHCP requests received since the last call; returns the running total."""
        while True:
            try:
                frame = self._sock.recv(4096)
            except BlockingIOError:
                return self.requests
            if len(frame) < 42 or frame[23] != socket.IPPROTO_UDP:
                continue
            ihl = (frame[14] & 0x0F) * 4
            (dport,) = struct.unpack("!H", frame[14 + ihl + 2 : 14 + ihl + 4])
            if dport == 67:
                self.requests += 1

    def close(self) -> None:
        self._sock.close()


def addresses(ns: NetNS, dev: str) -> list[dict[str, object]]:
    """IPv4 addresses of ``dev`` in the kernel's own report (`ip -j addr`)."""
    data = ns.ip_json("-4", "addr", "show", "dev", dev)
    return [a for entry in data for a in entry.get("addr_info", [])]


async def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll without blocking the event loop (the DHCP client runs in it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


assert os.path.exists(DNSMASQ), f"{DNSMASQ} is missing: apt-get install dnsmasq-base"


# Retransmissions every ~0.5-1 s instead of 4-32 s, so a lost exchange costs a test a second.
FAST = DhcpTiming(retransmit_first=0.5, retransmit_max=1.0, reboot_timeout=5.0)
