"""IPv6 autoconfiguration of the networks' devices (``ipv6autoconf``), as VDSM sets it.

With ``ipv6autoconf: false`` (the default) a network's devices neither accept router
advertisements nor autoconfigure addresses (``accept_ra=0``, ``autoconf=0``); with true its
top device does both (SLAAC), while the devices under it (the bridge's port, the VLAN's base)
stay off. The kernel offers these knobs only as sysctls: RTM_SETLINK's IFLA_AF_SPEC for
AF_INET6 takes the address token and generation mode, not the devconf array, so they are
written under ``/proc/sys/net/ipv6/conf/<dev>/``. No process is spawned.

/proc/sys/net shows the network namespace of the thread that opens the file, so these run on
the thread that owns the agent's namespace (the event loop's); each is a write to procfs of a
few bytes that never waits on a disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from vdsm_net.model import NetworkConfig

LOG = logging.getLogger(__name__)

CONF = Path("/proc/sys/net/ipv6/conf")
KNOBS = ("accept_ra", "autoconf")

Setting = tuple[str, str]  # (device, knob)


def wanted(networks: Iterable[NetworkConfig]) -> dict[Setting, str]:
    """(device, knob) -> value for the devices of ``networks``."""
    out: dict[Setting, str] = {}
    for net in networks:
        lower = [d for d in (net.vlan_device, net.southbound) if d is not None and d != net.top]
        for device in lower:
            for knob in KNOBS:
                out.setdefault((device, knob), "0")
        for knob in KNOBS:
            out[(net.top, knob)] = "1" if net.ipv6autoconf else "0"
    return out


def read(setting: Setting) -> str | None:
    try:
        return (CONF / setting[0] / setting[1]).read_text().strip()
    except OSError:
        return None  # no such device, or IPv6 disabled on it


def apply(settings: Mapping[Setting, str]) -> dict[Setting, str]:
    """Write ``settings``; returns the previous values of those it changed (the undo)."""
    undo: dict[Setting, str] = {}
    for setting, value in sorted(settings.items()):
        old = read(setting)
        if old is None or old == value:
            continue
        if _write(setting, value):
            undo[setting] = old
    return undo


def _write(setting: Setting, value: str) -> bool:
    try:
        (CONF / setting[0] / setting[1]).write_text(value)
    except OSError as exc:
        LOG.warning("ipv6: cannot set %s %s=%s: %s", setting[0], setting[1], value, exc)
        return False
    LOG.debug("ipv6: %s %s=%s", setting[0], setting[1], value)
    return True


def restore(undo: Mapping[Setting, str]) -> None:
    """Put back what ``apply`` changed, on the devices that still exist."""
    for setting, value in sorted(undo.items()):
        if read(setting) is not None:
            _write(setting, value)
