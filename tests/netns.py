"""Network namespaces for kernel tests: one fresh namespace per test, destroyed afterwards.

Everything a test creates is registered with the namespace's cleanup registry and undone in
reverse order, even when the test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

_counter = itertools.count()


def run(
    *argv: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def kernel_has(kind: str) -> bool:
    """Whether the running kernel can create a device of this kind (tried in a scratch netns);
    ``hfsc``: whether it has host QoS's qdiscs and filters (HFSC, fq_codel, ingress, u32,
    basic with the meta ematch)."""
    ns = f"probe-{os.getpid()}-{kind}"
    run("ip", "netns", "add", ns)
    try:
        if kind == "vlan":
            ok = run("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "p1", check=False)
            ok = run("ip", "-n", ns, "link", "add", "link", "p0", "name", "p0.5", "type", "vlan",
                     "id", "5", check=False)
        elif kind == "hfsc":
            ok = run("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "p1", check=False)
            tc = ("ip", "netns", "exec", ns, "tc")
            for argv in (("qdisc", "add", "dev", "p0", "root", "handle", "1:", "hfsc"),
                         ("class", "add", "dev", "p0", "parent", "1:", "classid", "1:1", "hfsc",
                          "ls", "m2", "1kbit"),
                         ("qdisc", "add", "dev", "p0", "parent", "1:1", "fq_codel"),
                         ("qdisc", "add", "dev", "p0", "ingress"),
                         ("filter", "add", "dev", "p0", "parent", "1:", "pref", "1", "basic",
                          "match", "meta(vlan eq 1)", "flowid", "1:1"),
                         ("filter", "add", "dev", "p0", "parent", "1:", "pref", "2", "u32",
                          "match", "u8", "0", "0", "flowid", "1:1")):
                if ok.returncode == 0:
                    ok = run(*tc, *argv, check=False)
        else:
            ok = run("ip", "-n", ns, "link", "add", "x0", "type", kind, check=False)
        return ok.returncode == 0
    finally:
        run("ip", "netns", "del", ns, check=False)


class NetNS:
    """A named network namespace with helpers to run commands in it and a cleanup registry."""

    def __init__(self, prefix: str = "vn") -> None:
        self.name = f"{prefix}{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:4]}"
        self._cleanups: list[Callable[[], object]] = []
        run("ip", "netns", "add", self.name)
        self.defer(lambda: run("ip", "netns", "del", self.name, check=False))
        self.ip("link", "set", "lo", "up")

    def defer(self, fn: Callable[[], object]) -> None:
        self._cleanups.append(fn)

    def close(self) -> None:
        while self._cleanups:
            fn = self._cleanups.pop()
            # Cleanup must go on; a leak is visible in `ip netns`.
            with contextlib.suppress(Exception):
                fn()

    def exec_argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def sh(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.exec_argv(*argv), check=check)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.name, *args, check=check)

    def ip_json(self, *args: str) -> Any:
        out = self.ip("-j", *args).stdout
        return json.loads(out) if out.strip() else []

    def add_nic(self, name: str, *, dummy: bool | None = None) -> str:
        """A simulated NIC: a dummy device where the kernel has them, else a veth whose peer
        stays in the namespace under the name ``<name>p`` (truncated to 15 chars)."""
        if dummy is None:
            dummy = kernel_has_cached("dummy")
        if dummy:
            self.ip("link", "add", name, "type", "dummy")
        else:
            peer = (name + "p")[-15:] if len(name) >= 15 else name + "p"
            self.ip("link", "add", name, "type", "veth", "peer", "name", peer)
            self.ip("link", "set", peer, "up")
        self.ip("link", "set", name, "up")
        return name

    def link(self, name: str) -> dict[str, Any]:
        """The kernel's own report of one device (`ip -d -j link show`)."""
        data = self.ip_json("-d", "link", "show", "dev", name)
        return dict(data[0])

    def links(self) -> dict[str, dict[str, Any]]:
        return {d["ifname"]: d for d in self.ip_json("-d", "link", "show")}


_has: dict[str, bool] = {}


def kernel_has_cached(kind: str) -> bool:
    if kind not in _has:
        _has[kind] = kernel_has(kind)
    return _has[kind]
