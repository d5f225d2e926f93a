"""``engine-client serve`` for tests: started in a cluster's engine namespace (where the
agents are reached), and a worker thread that has entered that namespace, so that clients in
the test process (the real ``ovirtsdk4``, aiohttp's websocket client to Chromium's DevTools)
reach it. A thread's network namespace is its own (setns(2) changes the calling thread only).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine_client import pki
from tests.cluster import BIN, Cluster

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
PASSWORD = "correct horse battery"
USER = "admin"


class NsThread:
    """One worker thread inside network namespace ``name``; ``run(fn)`` calls fn there."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, initializer=self._enter, initargs=(name,))

    @staticmethod
    def _enter(name: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {name}")
        finally:
            os.close(fd)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(fn, *args).result(timeout=600)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Served:
    url: str  # https://ADDR:PORT or http://127.0.0.1:PORT
    ca: str | None
    proc: subprocess.Popen[str]
    log: Path
    ns: NsThread

    @property
    def api(self) -> str:
        return f"{self.url}/ovirt-engine/api"

    def connection(self, password: str = PASSWORD, user: str = f"{USER}@internal") -> Any:
        import ovirtsdk4

        return ovirtsdk4.Connection(url=self.api, username=user, password=password,
                                    ca_file=self.ca, timeout=300)


def add_user(cluster: Cluster, name: str = USER, password: str = PASSWORD) -> None:
    argv = cluster.engine.exec_argv(str(BIN / "engine-client"), "user", "add", name,
                                    "--db", str(cluster.db))
    proc = subprocess.run(argv, input=password + "\n", capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def _wait_listening(ns: NsThread, host: str, port: int, proc: subprocess.Popen[str],
                    log: Path) -> None:
    def attempt() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        return False

    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()}")
        if ns.run(attempt):
            return
        time.sleep(0.1)
    raise AssertionError(f"serve did not listen on {host}:{port}: {log.read_text()}")


@contextlib.contextmanager
def serving(cluster: Cluster, *, tls: bool = True, port: int = 18443) -> Iterator[Served]:
    """``engine-client serve`` on the cluster's store, in its engine namespace: HTTPS on the
    engine's first management address (a certificate from the cluster's PKI), or plain HTTP on
    127.0.0.1."""
    host = cluster.nodes[0].addr.rsplit(".", 1)[0] + ".1" if tls else "127.0.0.1"
    argv = [str(BIN / "engine-client"), "serve", "--listen", f"{host}:{port}",
            "--refresh-interval", "0", "--db", str(cluster.db)]
    ca = None
    if tls:
        issued = pki.issue(cluster.pki_dir, "rest", ips=[host])
        argv += ["--cert", str(issued.cert), "--key", str(issued.key)]
        ca = str(cluster.pki_dir / pki.CA_CERT)
    log = cluster.pki_dir.parent / f"serve-{port}.log"
    out = log.open("w")
    proc = subprocess.Popen(cluster.engine.exec_argv(*argv), stdout=out, stderr=out, text=True,
                            env={**os.environ, "ENGINE_CLIENT_DB": str(cluster.db)})
    ns = NsThread(cluster.engine.name)
    try:
        _wait_listening(ns, host, port, proc, log)
        yield Served(f"{'https' if tls else 'http'}://{host}:{port}", ca, proc, log, ns)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        ns.close()
        print(log.read_text(), file=sys.stderr)
