"""Engine benchmark: one ``engine-client network update`` (MTU change) on N simulated hosts.

    python -m contrib.bench engine [--sizes 1,100,500,1000] [--parallel 50] [--apply 0.2]
                                   [--baseline SRC]

Each host is an HTTPS + mutual-TLS JSON-RPC endpoint of the load generator
(``contrib/bench/loadgen.py``: many simulated agents in one process of their own, one
127.0.0.1 port each) that takes a fixed 200 ms to apply and waits for the connectivity
confirmation like the real agent. ``engine-client`` runs as a subprocess, exactly as a user
runs it (store read, capabilities refresh, the concurrent rollout with confirmation and
commitOnSuccess, store write); reported: its wall time, its marginal cost per host over a
run with one host, its peak RSS (polled VmHWM), its CPU seconds and the load generator's (they
share the cores), the TLS connections per host and how many resumed, and from the hosts' side
a per-host breakdown (apply, wait for the confirmation, the rest of setupNetworks, and
setSafeNetworkConfig if an engine sends it).

With ``--baseline SRC`` (a source tree of another commit, e.g. ``git archive OLD | tar -x -C
SRC``) each configuration also runs with that tree's engine-client, just before this one's, so
the two are compared under the same load of a shared machine (printed on each row).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine_client import pki
from engine_client.models import Attachment, DataCenter, Host, LogicalNetwork
from engine_client.store import Store

BIN = Path(sys.executable).parent
NET = "vmnet"
BASE_PORT = 20000  # below the ephemeral range (32768-60999) the clients use


@dataclass
class EngineResult:
    hosts: int
    parallel: int
    seconds: float
    peak_rss_mb: float
    ok: int
    exit_code: int
    engine_cpu: float = 0.0  # CPU seconds (user + system) of engine-client
    loadgen_cpu: float = 0.0  # of the load generator, while engine-client ran
    connections: float = 0.0  # median TLS connections a host accepted
    resumed: int = 0  # TLS connections that resumed a session, all hosts
    breakdown: dict[str, float] = field(default_factory=dict)
    engine: str = "this tree"  # or the --baseline source tree it ran from
    load: float = 0.0  # the machine's 1-minute load average when it started


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def make_store(db: Path, names: list[str], urls: list[str], cert: pki.Issued, ca: Path) -> None:
    store = Store.open(db)
    try:
        with store.transaction():
            store.add_dc(DataCenter("dc1", "4.7"))
            store.add_network(LogicalNetwork("dc1", NET, vlan=100, mtu=1500))
            for name, url in zip(names, urls, strict=True):
                store.add_host(Host(name, url, "dc1", cert=str(cert.cert), key=str(cert.key),
                                    ca=str(ca)))
                store.set_attachment(Attachment(name, NET, nic="eth1"))
    finally:
        store.close()


@dataclass(frozen=True)
class Child:
    exit_code: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    output: str


def run_child(argv: list[str], env: dict[str, str] | None = None) -> Child:
    """One child process: exit code, wall and CPU seconds, peak RSS, output.

    The peak is the child's VmHWM, polled: rusage's ru_maxrss would also count the pages of
    this parent that the child mapped between fork and exec."""
    start = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        status = Path(f"/proc/{proc.pid}/status")
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        while True:
            pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                text = status.read_text()
                ours = "engine-client" in cmdline.read_text(errors="replace")
            except OSError:
                text, ours = "", False
            for line in text.splitlines():
                if line.startswith("VmHWM:") and ours:
                    peak = max(peak, int(line.split()[1]) / 1024)
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        out.seek(0)
        return Child(proc.returncode, seconds, peak, usage.ru_utime + usage.ru_stime,
                     out.read().decode(errors="replace"))


class LoadProcess:
    """The load generator in its own process (``python -m contrib.bench.loadgen``)."""

    def __init__(self, n: int, apply_seconds: float, agent: pki.Issued, ca: Path) -> None:
        self.n = n
        self._argv = [sys.executable, "-m", "contrib.bench.loadgen", "--count", str(n),
                      "--base-port", str(BASE_PORT), "--cert", str(agent.cert),
                      "--key", str(agent.key), "--ca", str(ca), "--apply", str(apply_seconds),
                      "--network", NET]
        self._proc: subprocess.Popen[str] | None = None

    def urls(self) -> list[str]:
        return [f"https://127.0.0.1:{BASE_PORT + i}" for i in range(self.n)]

    def names(self) -> list[str]:
        return [f"sim{i}" for i in range(self.n)]

    def start(self) -> None:
        self._proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if line != "ready\n":
            self._proc.kill()
            raise RuntimeError(f"load generator did not start: {line!r}")

    def stop(self) -> dict[str, Any]:
        assert self._proc is not None
        out, _ = self._proc.communicate("stop\n", timeout=60)
        doc: dict[str, Any] = json.loads(out)
        return doc


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def breakdown(hosts: list[dict[str, Any]], started: float) -> dict[str, float]:
    """Medians over hosts (ms) of where a host's rollout time goes, from the hosts' side:
    setupNetworks arrival to apply done (the apply), apply done to the first confirmation,
    the rest of setupNetworks (with commitOnSuccess, the persist), and setSafeNetworkConfig
    when the engine sends one; and the phases of the command (s after its start): the first
    and last capabilities read (the refresh), the first setupNetworks, the last answered."""
    parts: dict[str, list[float]] = {
        "apply": [], "confirm_wait": [], "setup_rest": [], "set_safe": [], "host_total": [],
        "confirms": [],
    }
    caps_in, caps_out, first_setup, last_done = [], [], [], []
    for h in hosts:
        t: dict[str, float] = {}
        confirm_after = None
        for when, what in h["timeline"]:
            t.setdefault(what, when)
            if what == "Host.confirmConnectivity in" and "applied" in t and confirm_after is None:
                confirm_after = when
        if "Host.getCapabilities in" in t:
            caps_in.append(t["Host.getCapabilities in"])
            caps_out.append(t["Host.getCapabilities out"])
        need = ("Host.setupNetworks in", "applied", "Host.setupNetworks out")
        if confirm_after is None or any(k not in t for k in need):
            continue
        parts["apply"].append(t["applied"] - t["Host.setupNetworks in"])
        parts["confirm_wait"].append(confirm_after - t["applied"])
        parts["setup_rest"].append(t["Host.setupNetworks out"] - confirm_after)
        end = t["Host.setupNetworks out"]
        if "Host.setSafeNetworkConfig out" in t:
            parts["set_safe"].append(t["Host.setSafeNetworkConfig out"] - end)
            end = t["Host.setSafeNetworkConfig out"]
        parts["host_total"].append(end - t["Host.setupNetworks in"])
        parts["confirms"].append(h["calls"].get("Host.confirmConnectivity", 0) / 1000)
        first_setup.append(t["Host.setupNetworks in"])
        last_done.append(end)
    out = {k: _median(v) * 1000 for k, v in parts.items()}
    out["confirms"] = sum(parts["confirms"]) * 1000 / max(len(parts["confirms"]), 1)
    if caps_in:
        out["first_caps_s"] = min(caps_in) - started
        out["last_caps_s"] = max(caps_out) - started
    if first_setup:
        out["first_setup_s"] = min(first_setup) - started
        out["last_done_s"] = max(last_done) - started
    return out


async def bench(
    n: int, parallel: int, apply_seconds: float, tmp: Path, mtu: int, profile: str | None = None,
    extra: list[str] | None = None, dump: str | None = None, source: Path | None = None,
) -> EngineResult:
    """``source``: run engine-client from that source tree (``--baseline``), not this one."""
    pki_dir = tmp / "pki"
    if not (pki_dir / pki.CA_CERT).exists():
        pki.init_ca(pki_dir)
        pki.issue(pki_dir, "agent", ips=["127.0.0.1"])
        pki.issue(pki_dir, "engine", role="engine")
    ca = pki_dir / pki.CA_CERT
    agent = pki.Issued(pki_dir / "agent.pem", pki_dir / "agent-key.pem")
    engine = pki.Issued(pki_dir / "engine.pem", pki_dir / "engine-key.pem")
    gen = LoadProcess(n, apply_seconds, agent, ca)
    db = tmp / f"engine-{n}-{parallel}-{mtu}.db"
    make_store(db, gen.names(), gen.urls(), engine, ca)
    gen.start()
    try:
        argv = [str(BIN / "engine-client"), "network", "update", NET, "--mtu", str(mtu),
                "--db", str(db), "--json", "--parallel", str(parallel), *(extra or [])]
        if profile is not None:
            argv = [sys.executable, "-m", "cProfile", "-o", f"{profile}-{n}.prof", *argv]
        # A source tree first on the path: its engine_client, not this tree's (installed).
        env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
        load = os.getloadavg()[0]
        started = time.monotonic()
        child = await asyncio.to_thread(run_child, argv, env)
    finally:
        state = gen.stop()
    hosts = state["hosts"]
    if dump is not None:
        Path(f"{dump}-{n}-{parallel}.json").write_text(json.dumps({"started": started, **state}))
    ok = sum(1 for h in hosts if h["networks"][NET]["mtu"] == mtu and h["safe"])
    if child.exit_code != 0:
        print(f"engine-client exit {child.exit_code}: {child.output[-3000:]}", file=sys.stderr)
    return EngineResult(
        n, parallel, child.seconds, child.peak_rss_mb, ok, child.exit_code,
        engine_cpu=child.cpu_seconds, loadgen_cpu=state["cpu_seconds"],
        connections=_median([float(h["connections"]) for h in hosts]),
        resumed=sum(h["resumed"] for h in hosts),
        breakdown=breakdown(hosts, started),
        engine="this tree" if source is None else f"baseline {source}", load=load,
    )


def print_rows(results: list[EngineResult]) -> None:
    one = {(r.engine, r.parallel): r.seconds for r in results if r.hosts == 1}
    print(f"{'hosts':>6} {'parallel':>8} {'wall s':>7} {'per host ms':>11} {'ok':>5} "
          f"{'peak RSS MiB':>12} {'engine CPU s':>12} {'loadgen CPU s':>13} {'conns/host':>10} "
          f"{'resumed':>7}")
    for r in results:
        base = one.get((r.engine, r.parallel))
        per = (r.seconds - base) / (r.hosts - 1) * 1000 if base and r.hosts > 1 else 0.0
        print(f"{r.hosts:>6} {r.parallel:>8} {r.seconds:>7.2f} {per:>11.2f} {r.ok:>5} "
              f"{r.peak_rss_mb:>12.1f} {r.engine_cpu:>12.2f} {r.loadgen_cpu:>13.2f} "
              f"{r.connections:>10.0f} {r.resumed:>7}  {r.engine}, load {r.load:.1f}")
        b = r.breakdown
        if b:
            print(f"{'':>6} per host (median ms): apply {b['apply']:.0f}, apply to first "
                  f"confirmation {b['confirm_wait']:.0f}, rest of setupNetworks "
                  f"{b['setup_rest']:.0f}, setSafe {b['set_safe']:.0f}, total "
                  f"{b['host_total']:.0f}; confirmations per host {b['confirms']:.2f}")
            print(f"{'':>6} phases (s from start): capabilities "
                  f"{b.get('first_caps_s', 0):.2f}-{b.get('last_caps_s', 0):.2f}, "
                  f"setupNetworks {b.get('first_setup_s', 0):.2f}-"
                  f"{b.get('last_done_s', 0):.2f}, exit {r.seconds:.2f}")


async def main_async(args: argparse.Namespace) -> list[EngineResult]:
    _raise_nofile()
    results = []
    with tempfile.TemporaryDirectory(prefix="vdsm-net-bench-engine-") as tmp:
        mtu = 1400
        sources = [None] if args.baseline is None else [Path(args.baseline).resolve(), None]
        for parallel in args.parallel:
            for n in args.sizes:
                # The baseline and this tree in turn, one configuration after the other: the
                # load of a shared machine changes by the minute.
                for source in sources:
                    r = await bench(n, parallel, args.apply, Path(tmp), mtu, args.profile,
                                    args.engine_arg, args.dump, source)
                    mtu = 1300 if mtu == 1400 else 1400
                    print_rows([r])
                    results.append(r)
    return results


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="contrib.bench engine")
    p.add_argument("--sizes", type=_ints, default=[1, 100, 500, 1000])
    p.add_argument("--parallel", type=_ints, default=[50],
                   help="engine-client --parallel values, comma separated")
    p.add_argument("--apply", type=float, default=0.2, help="seconds each host takes to apply")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--profile", help="cProfile engine-client into PREFIX-N.prof")
    p.add_argument("--dump", help="write the hosts' call timelines to PREFIX-N-PARALLEL.json")
    p.add_argument("--baseline", metavar="SRC",
                   help="also run each configuration with the engine_client of this source "
                        "tree (e.g. `git archive OLD | tar -x -C SRC`), just before this tree's")
    p.add_argument("--engine-arg", action="append", default=[],
                   help="one more engine-client argument (repeatable), e.g. --engine-arg=--x")
    args = p.parse_args(argv)
    results = asyncio.run(main_async(args))
    print()
    print_rows(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
