"""systemd's notification protocol: READY=1, STOPPING=1 and the watchdog (sd_notify(3)).

Written against the protocol rather than a library: one datagram to ``$NOTIFY_SOCKET``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(raw: str) -> str | bytes | None:
    if raw.startswith("@"):
        # Abstract namespace: the leading '@' stands for a NUL byte.
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # vsock addresses ("vsock:...") are not used by this service


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification; False when not under systemd or when the send fails."""
    env = os.environ if environ is None else environ
    raw = env.get("NOTIFY_SOCKET")
    if not raw:
        return False
    address = _address(raw)
    if address is None:
        log.warning("NOTIFY_SOCKET=%r: unsupported address, not notifying", raw)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # A datagram send blocks once the receiver's queue is full (10 by default):
            # never let a slow receiver stall the event loop.
            sock.setblocking(False)
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify %r to %r failed: %s", message, raw, exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between two WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if disabled."""
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID")
    # The variables are inherited by children; the watchdog belongs to the process
    # systemd started, not to a child that happens to see them.
    if pid_text and pid_text != str(os.getpid()):
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer: watchdog disabled", usec_text)
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


async def watchdog(interval: float, environ: Mapping[str, str] | None = None) -> None:
    """Ping until cancelled. Runs on the event loop: a blocked loop stops the pings, and
    systemd restarting a wedged agent is exactly the point."""
    while True:
        notify("WATCHDOG=1", environ)
        await asyncio.sleep(interval)
