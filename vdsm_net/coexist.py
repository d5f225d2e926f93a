"""Is a network manager about to fight the agent over its devices? (docs/config.md)

The project ships a udev rule (``contrib/networkmanager/80-vdsm-net-unmanaged.rules``) that
marks every device in the agent's IFLA_GROUP (sysfs ``netdev_group``) ``NM_UNMANAGED=1`` and
``VDSM_NET_OWNED=1``, and a systemd-networkd file matching that property with
``Unmanaged=yes``. At start the agent checks, without spawning a program or speaking D-Bus,
by reading the files those daemons keep:

- a NetworkManager (or systemd-networkd) process in the agent's network namespace, found in
  ``/proc`` by its command name;
- its per-device state: ``/run/NetworkManager/devices/IFINDEX`` (``managed=true``) and
  ``/run/systemd/netif/links/IFINDEX`` (``ADMIN_STATE=`` other than ``unmanaged``);
- whether the rule (and the networkd file) are installed.

Each finding is a warning line naming the device or the missing file.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vdsm_net.state import Device

UDEV_RULE = "80-vdsm-net-unmanaged.rules"
NETWORKD_FILE = "00-vdsm-net-unmanaged.network"
UDEV_RULE_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/lib/udev/rules.d",
                  "/lib/udev/rules.d")
NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/usr/lib/systemd/network",
                 "/lib/systemd/network")


@dataclass(frozen=True)
class Host:
    """Where to look; tests point it at a tree of their own."""

    proc: Path = Path("/proc")
    run: Path = Path("/run")
    root: Path = Path("/")


def _pids_named(host: Host, name: str) -> list[int]:
    pids = []
    try:
        entries = list(os.scandir(host.proc))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().strip()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if comm == name:
            pids.append(int(entry.name))
    return pids


def _netns(host: Host, pid: str) -> str | None:
    try:
        return os.readlink(host.proc / pid / "ns" / "net")
    except OSError:
        return None


def _running_here(host: Host, comm: str) -> bool:
    """A process of that command name shares our network namespace (a manager in another
    namespace never sees our devices)."""
    ours = _netns(host, "self")
    return any(_netns(host, str(pid)) == ours for pid in _pids_named(host, comm))


def _installed(host: Host, dirs: Sequence[str], name: str) -> bool:
    return any((host.root / d.lstrip("/") / name).is_file() for d in dirs)


def _nm_manages(host: Host, device: Device) -> bool:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string((host.run / "NetworkManager" / "devices" / str(device.index))
                           .read_text())
    except (OSError, configparser.Error):
        return False
    return parser.get("device", "managed", fallback="false").strip().lower() == "true"


def _networkd_manages(host: Host, device: Device) -> bool:
    try:
        text = (host.run / "systemd" / "netif" / "links" / str(device.index)).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "ADMIN_STATE":
            return value.strip() not in ("unmanaged", "")
    return False


def warnings(owned: Sequence[Device], host: Host | None = None) -> list[str]:
    """What an operator should hear about NetworkManager and systemd-networkd."""
    where = host or Host()
    found: list[str] = []
    if _running_here(where, "NetworkManager"):
        if not _installed(where, UDEV_RULE_DIRS, UDEV_RULE):
            found.append(
                f"NetworkManager runs and the udev rule {UDEV_RULE} that keeps it off the "
                "agent's devices is not installed: install it from contrib/networkmanager/ "
                "(see docs/operations.md, NetworkManager)")
        managed = [d.name for d in owned if _nm_manages(where, d)]
        if managed:
            found.append("NetworkManager manages devices that vdsm-net owns: "
                         f"{', '.join(managed)}; it may reconfigure or remove them")
    # comm is cut at 15 characters: "systemd-networkd" reads "systemd-network".
    if _running_here(where, "systemd-network"):
        if not _installed(where, NETWORKD_DIRS, NETWORKD_FILE):
            found.append(
                f"systemd-networkd runs and {NETWORKD_FILE}, which keeps it off the agent's "
                "devices, is not installed: install it from contrib/networkmanager/ "
                "(see docs/operations.md)")
        managed = [d.name for d in owned if _networkd_manages(where, d)]
        if managed:
            found.append("systemd-networkd manages devices that vdsm-net owns: "
                         f"{', '.join(managed)}")
    return found
