"""The host's resolver file (``[network] resolv_conf``, /etc/resolv.conf by default).

VDSM reports the host's name servers as the ``nameserver`` lines of this file
(``vdsm.network.dns.get_host_nameservers``). Blocking file I/O: call it from a thread.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path


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


def supports_ipv6() -> bool:
    """VDSM's ``supportsIPv6``: the kernel gives IPv6 sockets."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError as exc:
        if exc.errno == errno.EAFNOSUPPORT:
            return False
        raise
    return True
