"""The lab's kernel objects (namespaces, veth links, bridges), made and removed with ``ip``.

``ip`` rather than netlink from Python: the lab is a one-shot tool whose every step an
operator can read in its error messages and repeat by hand.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from vdsm_net.errors import ErrorKind, NetError

NETNS_DIR: Final = Path("/run/netns")
SYS_NET: Final = Path("/sys/class/net")
KINDS: Final = ("vlan", "bond", "dummy")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NetError(ErrorKind.KERNEL, "ip: not found; install iproute2") from None
    if check and proc.returncode != 0:
        raise NetError(
            ErrorKind.KERNEL, f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc


def ip_json(*args: str) -> list[dict[str, Any]]:
    out = ip("-j", *args).stdout
    return list(json.loads(out)) if out.strip() else []


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def link_exists(name: str) -> bool:
    return (SYS_NET / name).exists()


def add_netns(name: str) -> None:
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def del_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "del", name)


def del_link(name: str) -> None:
    if link_exists(name):
        # Gone meanwhile (its namespace's deletion took the peer with it) is no error.
        ip("link", "del", name, check=not link_exists(name))


def pids_in(netns: str) -> list[int]:
    if not netns_exists(netns):
        return []
    proc = ip("netns", "pids", netns, check=False)
    return [int(word) for word in proc.stdout.split() if word.isdigit()]


def networks_in_use() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every address (as its subnet) and route of the root namespace."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for dev in ip_json("addr", "show"):
        for addr in dev.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    for route in ip_json("route", "show", "table", "all"):
        dst = route.get("dst", "default")
        if dst != "default" and "/" not in dst and ":" not in dst:
            dst += "/32"
        if dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                continue  # a multicast or other special entry: no unicast range
    return nets


def probe_kinds(netns: str) -> tuple[str, ...]:
    """The device kinds of ``KINDS`` the running kernel can create, tried in a scratch
    namespace (``ip link add`` loads a module when the kernel has it as one)."""
    add_netns(netns)
    try:
        found = []
        ip("-n", netns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        for kind in KINDS:
            if kind == "vlan":
                args: Sequence[str] = ("link", "p0", "name", "p0.5", "type", "vlan", "id", "5")
            else:
                args = ("name", f"x{kind}", "type", kind)
            if ip("-n", netns, "link", "add", *args, check=False).returncode == 0:
                found.append(kind)
        return tuple(found)
    finally:
        del_netns(netns)


def add_veth(name: str, peer: str, *, netns: str | None, peer_netns: str) -> None:
    where = ["-n", netns] if netns else []
    ip(*where, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_netns)


def up(name: str, *, netns: str | None = None) -> None:
    where = ["-n", netns] if netns else []
    ip(*where, "link", "set", name, "up")


def add_addr(cidr: str, dev: str, *, netns: str | None = None) -> None:
    where = ["-n", netns] if netns else []
    ip(*where, "addr", "add", cidr, "dev", dev)


def links_of(netns: str) -> list[dict[str, Any]]:
    """``ip -d -j link`` of a namespace: what its kernel reports."""
    return ip_json("-n", netns, "-d", "link", "show")


def is_root() -> bool:
    return os.geteuid() == 0
