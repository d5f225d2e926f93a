"""Several "hosts" for multi-host kernel tests: each a network namespace running a real
``vdsm-net-agent`` with TLS (certificates from ``engine_client.pki``), reached over a veth
management link from an "engine" namespace where the real ``engine-client`` CLI runs.

``running_cluster(("h1", "h2"))`` gives a ``Cluster`` with a data center ``dc1`` holding every
host; each host has the simulated NICs it was asked for (``eth1`` by default) and a management
device ``mgmt`` that no network uses. ``Cluster.plug_vm`` puts a "VM" on a host bridge: a veth
pair whose host end is the VM's tap and whose far end lives in a namespace of its own.
Everything is torn down when the ``with`` block ends, even after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_client import pki
from tests.daemon import AgentProcess
from tests.netns import NetNS, run

BIN = Path(sys.executable).parent
PORT = 54321
DC = "dc1"


@dataclass
class Node:
    name: str
    ns: NetNS
    addr: str
    agent: AgentProcess

    @property
    def url(self) -> str:
        return f"https://{self.addr}:{PORT}"

    def links(self) -> dict[str, dict[str, Any]]:
        """``ip -d -j link`` of the host, by device name: what its kernel reports."""
        return self.ns.links()


@dataclass
class Cluster:
    engine: NetNS
    nodes: list[Node]
    db: Path | str  # an SQLite file or a postgresql:// URL
    pki_dir: Path
    # Namespaces closed with the cluster: VMs, and hosts while they are being set up.
    extra: list[NetNS] = field(default_factory=list)

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``engine-client ARGS --db DB --json`` in the engine namespace."""
        # The global options go after the subcommand (docs/engine-cli.md allows either place).
        argv = self.engine.exec_argv(
            str(BIN / "engine-client"), *args, "--db", str(self.db), "--json"
        )
        # ENGINE_CLIENT_DB too, so that a misparsed --db can never reach the user's own store.
        env = {**os.environ, "ENGINE_CLIENT_DB": str(self.db)}
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)

    def cli(self, *args: str, expect: int = 0) -> Any:
        """Run the command, check its exit code; its parsed JSON output (None if empty)."""
        proc = self.run_cli(*args)
        assert proc.returncode == expect, (
            f"engine-client {' '.join(args)}: exit {proc.returncode}, expected {expect}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def refused(self, *args: str) -> str:
        """Run a command that must be refused (exit 2); its error text."""
        proc = self.run_cli(*args)
        assert proc.returncode == 2, (
            f"engine-client {' '.join(args)}: exit {proc.returncode}, expected 2\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc.stderr

    def events(self, correlation_id: str) -> list[str]:
        return [e["message"] for e in self.cli("events", "--correlation-id", correlation_id)]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def plug_vm(self, node: Node, bridge: str, tap: str, cidr: str) -> NetNS:
        """A VM on ``node``'s ``bridge``: host end ``tap`` enslaved to the bridge, far end
        ``eth0`` with address ``cidr`` in the VM's own namespace. Like libvirt, the tap gets
        the bridge's MTU before it joins (a smaller one would pull the bridge's MTU down)."""
        vm = NetNS("vm")
        self.extra.append(vm)
        mtu = str(node.ns.link(bridge)["mtu"])
        run(
            "ip", "-n", node.ns.name, "link", "add", tap, "mtu", mtu,
            "type", "veth", "peer", "name", "eth0", "mtu", mtu, "netns", vm.name,
        )  # fmt: skip
        node.ns.ip("link", "set", tap, "master", bridge)
        node.ns.ip("link", "set", tap, "up")
        vm.ip("addr", "add", cidr, "dev", "eth0")
        vm.ip("link", "set", "eth0", "up")
        return vm

    def close(self) -> None:
        for vm in reversed(self.extra):
            vm.close()
        for node in reversed(self.nodes):
            node.ns.close()
        self.engine.close()


def _mgmt_link(engine: NetNS, ns: NetNS, i: int, subnet: str) -> str:
    """The management link: engine side ``e<i>`` (``<subnet>.<i>.1``), host side ``mgmt``
    (``<subnet>.<i>.2``), a device no network uses, so the agent never touches it."""
    run(
        "ip", "-n", engine.name, "link", "add", f"e{i}",
        "type", "veth", "peer", "name", "mgmt", "netns", ns.name,
    )  # fmt: skip
    engine.ip("addr", "add", f"{subnet}.{i}.1/24", "dev", f"e{i}")
    engine.ip("link", "set", f"e{i}", "up")
    addr = f"{subnet}.{i}.2"
    ns.ip("addr", "add", f"{addr}/24", "dev", "mgmt")
    ns.ip("link", "set", "mgmt", "up")
    return addr


def start_cluster(
    base: Path,
    hosts: Sequence[str],
    *,
    nics: Sequence[str] = ("eth1",),
    dummy: bool | None = None,
    subnet: str = "10.77",
    version: str = "4.7",
    db: str | None = None,
) -> Cluster:
    """Start one agent per host under ``base`` and register them all in data center ``dc1``
    of a fresh engine-client store. ``dummy`` chooses the NICs' kind as ``NetNS.add_nic`` does
    (False: a veth whose peer ``<nic>p`` is the far side of the host's "cable")."""
    engine = NetNS("eng")
    cluster = Cluster(engine, [], db or base / "engine.db", base / "pki")
    try:
        pki.init_ca(cluster.pki_dir)
        engine_cert = pki.issue(cluster.pki_dir, "engine", role="engine")
        ca = cluster.pki_dir / pki.CA_CERT
        for i, name in enumerate(hosts, start=1):
            ns = NetNS(f"mh{name}")
            cluster.extra.append(ns)  # closed with the cluster until it is a node
            addr = _mgmt_link(engine, ns, i, subnet)
            for nic in nics:
                ns.add_nic(nic, dummy=dummy)
            issued = pki.issue(cluster.pki_dir, name, ips=[addr])
            state = base / name
            state.mkdir()
            config = state / "agent.toml"
            config.write_text(f'[tls]\ncert = "{issued.cert}"\nkey = "{issued.key}"\nca = "{ca}"\n')
            agent = AgentProcess(ns, state, "--config", str(config), "--listen", f"{addr}:{PORT}")
            cluster.extra.remove(ns)
            cluster.nodes.append(Node(name, ns, addr, agent))
        for node in cluster.nodes:
            node.agent.start()
        cluster.cli("dc", "add", DC, "--version", version)
        for node in cluster.nodes:
            cluster.cli(
                "host", "add", node.name, node.url, "--dc", DC,
                "--cert", str(engine_cert.cert), "--key", str(engine_cert.key), "--ca", str(ca),
            )  # fmt: skip
    except BaseException:
        cluster.close()
        raise
    return cluster


@contextlib.contextmanager
def running_cluster(hosts: Sequence[str], **kwargs: Any) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="vdsm-net-cluster-") as tmp:
        cluster = start_cluster(Path(tmp), hosts, **kwargs)
        try:
            yield cluster
        finally:
            cluster.close()


def kind(dev: dict[str, Any]) -> str | None:
    """The device kind from ``ip -d -j link`` (None for a plain device without linkinfo)."""
    info = dev.get("linkinfo") or {}
    value = info.get("info_kind")
    return None if value is None else str(value)


def ports_of(links: dict[str, dict[str, Any]], bridge: str) -> list[str]:
    return sorted(name for name, dev in links.items() if dev.get("master") == bridge)


# ICMP echo without a ping binary (the test image has none): a raw socket, stdlib only, run
# with ``python -S`` inside the namespace so that it starts fast.
_PING = r"""
import os, socket, struct, sys, time
addr, count, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def csum(b):
    total = sum(struct.unpack(f"!{len(b) // 2}H", b))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
for seq in range(count):
    payload = b"vdsm-net-ping..."
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, csum(head + payload), ident, seq) + payload
    deadline = time.monotonic() + wait
    try:
        sock.sendto(packet, (addr, 0))
    except OSError:  # neighbour unreachable: no answer this round
        time.sleep(max(deadline - time.monotonic(), 0))
        continue
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(2048)
        except (TimeoutError, OSError):
            break
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
        if kind == 0 and rid == ident and src[0] == addr:
            sys.exit(0)
sys.exit(1)
"""


def pings(ns: NetNS, addr: str, *, count: int = 3, wait: float = 1.0) -> bool:
    """Whether ``addr`` answers an ICMP echo sent from namespace ``ns`` (``count`` tries,
    ``wait`` seconds each; the first answer ends it)."""
    proc = ns.sh(sys.executable, "-S", "-c", _PING, addr, str(count), str(wait), check=False)
    return proc.returncode == 0
