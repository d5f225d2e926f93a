"""Giving memory back after a burst of connections.

asyncio's TLS protocol gives each connection a 256 KiB buffer, and its transport, protocol and
SSL objects refer to each other: when a connection ends, they wait for Python's cyclic garbage
collector, whose oldest generation runs seldom. A burst of a few hundred connections (a flood
of handshakes that never complete) then left the agent ~80 MiB larger after each of the first
bursts, and glibc keeps what was freed in its heap. ``release_freed_memory`` runs the collector
and asks glibc to return free heap pages to the kernel (``malloc_trim(3)``); the listeners call
it once a burst is over (``vdsm_net.guarded_site``).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    # CDLL(None): the symbols already loaded into the process, libc's among them. Not
    # ctypes.util.find_library, which runs `ldconfig -p`: the agent spawns no process.
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc only; musl has none
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    started = time.monotonic()
    collected = gc.collect()
    trimmed = _TRIM(0) if _TRIM is not None else 0
    log.debug("released memory after a burst of connections: %d objects collected, heap %s, "
              "in %.1f ms", collected, "trimmed" if trimmed else "not trimmed",
              (time.monotonic() - started) * 1000)
