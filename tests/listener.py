"""A TCP listener in a network namespace, for the connectivity probes' tests: a child
interpreter that accepts and closes every connection (IPv4 and IPv6) until the test ends."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from tests.netns import NetNS

_SCRIPT = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""


@contextlib.contextmanager
def tcp_listener(ns: NetNS, port: int) -> Iterator[None]:
    """Listening on every address of ``ns`` at ``port`` once this enters."""
    proc = subprocess.Popen(ns.exec_argv(sys.executable, "-c", _SCRIPT, str(port)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()
