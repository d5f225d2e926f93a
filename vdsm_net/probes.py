"""Running connectivity probes (``options.probes``, docs/api.md) after a change is applied:
each must pass before the deadline, or the change is rolled back with error 10 naming it.

No process is spawned (no ``ping`` binary): an ICMP echo goes through a raw ICMP socket, a
TCP probe through ``asyncio.open_connection``, both on the event loop. Raw, not the
unprivileged ICMP datagram socket: that one is allowed only to the groups of
``net.ipv4.ping_group_range``, which a new network namespace sets to "1 0" (nobody, root
included), while the agent runs as root with CAP_NET_RAW wherever it runs. A raw socket
receives a copy of every ICMP message the host gets, so an answer is matched by its type,
source address, identifier, sequence number and payload.

A probe is retried until the deadline: right after a change a bridge may still be learning
(STP, forward delay), an IPv6 address may still be tentative, a peer's ARP entry stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from typing import Final

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel.constants import (
    ICMP_ECHO,
    ICMP_ECHOREPLY,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
)
from vdsm_net.probespec import IPAddress, Probe

# Between two echo requests, and the longest a TCP connect attempt waits for its answer
# (a SYN to an address nobody answers is retried by the kernel for two minutes).
RETRY_INTERVAL: Final = 0.5
TCP_ATTEMPT: Final = 2.0
# After a refused connection or an unreachable route: the next attempt.
TCP_RETRY: Final = 0.2


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(version: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP (or ICMPv6) echo request. The kernel fills the ICMPv6 checksum in itself (it
    covers the IPv6 pseudo-header, which only the kernel knows); ICMPv4's is ours."""
    kind = ICMP_ECHO if version == 4 else ICMPV6_ECHO_REQUEST
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if version == 6:
        return header + payload
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, checksum, ident, seq) + payload


def is_echo_reply(
    version: int, packet: bytes, ident: int, payload: bytes
) -> bool:
    """``packet`` as a raw socket hands it over (an IPv4 one with its IP header first) is the
    reply to one of our requests."""
    if version == 4:
        if len(packet) < 20:
            return False
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8:
        return False
    kind, _code, _checksum, got_ident, _seq = struct.unpack("!BBHHH", packet[:8])
    wanted = ICMP_ECHOREPLY if version == 4 else ICMPV6_ECHO_REPLY
    return kind == wanted and got_ident == ident and packet[8:] == payload


def _icmp_socket(address: IPAddress) -> socket.socket:
    if address.version == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setblocking(False)
    return sock


def _from(source: tuple[object, ...], address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(str(source[0])) == address
    except ValueError:
        return False


async def _answered(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, probe: Probe, ident: int,
    payload: bytes, wait: float,
) -> bool:
    """True once an answer to any of our requests comes within ``wait`` seconds."""
    until = time.monotonic() + wait
    while (left := until - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                packet, source = await loop.sock_recvfrom(sock, 65535)
        except TimeoutError:
            return False
        if _from(source, probe.address) and is_echo_reply(
            probe.address.version, packet, ident, payload
        ):
            return True
    return False


async def ping(probe: Probe, deadline: float) -> str | None:
    """None once an echo is answered; else why not, at ``deadline`` (monotonic)."""
    loop = asyncio.get_running_loop()
    try:
        sock = _icmp_socket(probe.address)
    except OSError as exc:
        return f"cannot open an ICMP socket: {os.strerror(exc.errno or 0)}"
    # Our own identifier and payload: the raw socket sees every echo reply of the host.
    ident = secrets.randbits(16)
    payload = secrets.token_bytes(16)
    sent = 0
    last = ""
    with sock:
        while (left := deadline - time.monotonic()) > 0:
            wait = min(RETRY_INTERVAL, left)
            request = echo_request(probe.address.version, ident, (sent + 1) & 0xFFFF, payload)
            try:
                await loop.sock_sendto(sock, request, (str(probe.address), 0))
            except OSError as exc:
                # No route yet (the change may still be settling): try again.
                last = f", last: {os.strerror(exc.errno) if exc.errno else exc}"
                await asyncio.sleep(wait)
                continue
            sent += 1
            if await _answered(loop, sock, probe, ident, payload, wait):
                return None
    return f"no echo reply to {sent} requests{last}"


async def tcp(probe: Probe, deadline: float) -> str | None:
    """None once a connection is accepted (and closed at once); else the last failure."""
    assert probe.port is not None
    last = "no attempt"
    while (left := deadline - time.monotonic()) > 0:
        attempt = time.monotonic()
        try:
            async with asyncio.timeout(min(TCP_ATTEMPT, left)):
                _reader, writer = await asyncio.open_connection(str(probe.address), probe.port)
        except TimeoutError:
            last = "connection timed out"
            continue
        except OSError as exc:
            last = os.strerror(exc.errno) if exc.errno else str(exc)
            await asyncio.sleep(max(0.0, min(TCP_RETRY - (time.monotonic() - attempt),
                                             deadline - time.monotonic())))
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return last


async def _run(probe: Probe, deadline: float) -> str | None:
    try:
        return await (ping(probe, deadline) if probe.kind == "ping" else tcp(probe, deadline))
    except Exception as exc:  # a probe that breaks fails; it never takes the agent down
        return f"{type(exc).__name__}: {exc}"


async def check(probes: Sequence[Probe], timeout: float) -> None:
    """Run every probe at once; raises NetError(CONNECTIVITY) naming each one that did not
    pass within ``timeout`` seconds."""
    if not probes:
        return
    deadline = time.monotonic() + timeout
    results = await asyncio.gather(*(_run(p, deadline) for p in probes))
    failed = [
        f"probe options.probes[{i}] {probe} failed ({why})"
        for i, (probe, why) in enumerate(zip(probes, results, strict=True))
        if why is not None
    ]
    if failed:
        raise NetError(
            ErrorKind.CONNECTIVITY,
            f"connectivity check failed: {'; '.join(failed)} within {timeout:g} s",
        )
