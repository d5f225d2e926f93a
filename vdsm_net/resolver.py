"""The host's resolver file (``[network] resolv_conf``, /etc/resolv.conf by default).

VDSM reports the host's name servers as the ``nameserver`` lines of this file
(``vdsm.network.dns.get_host_nameservers``). Blocking file I/O: call it from a thread.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from vdsm_net.persist import atomic_write, remove_durably


def nameservers_of(text: str) -> list[str]:
    """The addresses of the ``nameserver`` lines, in order (comments and others skipped)."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            out.append(words[1])
    return out


def read_nameservers(path: Path) -> list[str]:
    """The host's resolvers; none when the file does not exist."""
    try:
        return nameservers_of(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []


def with_nameservers(text: str, nameservers: list[str] | tuple[str, ...]) -> str:
    """``text`` with its ``nameserver`` lines replaced by ``nameservers`` (where the first
    one was, else at the end); ``search``, ``options`` and comments are kept."""
    lines = text.splitlines()
    ours = [f"nameserver {a}" for a in nameservers]
    out: list[str] = []
    placed = False
    for line in lines:
        words = line.split()
        if words[:1] == ["nameserver"]:
            if not placed:
                out += ours
                placed = True
            continue
        out.append(line)
    if not placed:
        out += ours
    return "".join(f"{line}\n" for line in out)


@dataclass(frozen=True)
class Previous:
    """The resolver file before a change wrote it: its bytes, None when it did not exist."""

    path: Path
    data: bytes | None


def write_nameservers(path: Path, nameservers: tuple[str, ...]) -> Previous:
    """Write ``nameservers`` into the file atomically; what it held before, for a rollback.
    Raises StateFileError (persist) when the disk refuses."""
    try:
        old: bytes | None = path.read_bytes()
    except FileNotFoundError:
        old = None
    text = (old or b"").decode("utf-8", errors="surrogateescape")
    atomic_write(path, with_nameservers(text, nameservers).encode("utf-8", "surrogateescape"))
    return Previous(path, old)


def restore(previous: Previous) -> None:
    """Put the file's previous bytes back (or remove it if it did not exist)."""
    if previous.data is None:
        remove_durably(previous.path)
    else:
        atomic_write(previous.path, previous.data)


def supports_ipv6() -> bool:
    """VDSM's ``supportsIPv6``: the kernel gives IPv6 sockets."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError as exc:
        if exc.errno == errno.EAFNOSUPPORT:
            return False
        raise
    return True
