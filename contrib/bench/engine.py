"""Engine benchmark: one ``engine-client network update`` (MTU change) on N simulated hosts.

    python -m contrib.bench engine [--sizes 1,100,500,1000] [--parallel 50] [--apply 0.2]

Each host is an HTTPS + mutual-TLS JSON-RPC endpoint of the load generator
(``contrib/bench/loadgen.py``: many simulated agents in this process, one 127.0.0.1 port
each) that takes a fixed 200 ms to apply and waits for the connectivity confirmation like the
real agent. ``engine-client`` runs as a subprocess, exactly as a user runs it (store read,
capabilities refresh, the concurrent rollout with confirmation and setSafeNetworkConfig, store
write); reported: its wall time, its marginal cost per host over a run with one host, and its
peak RSS (``wait4`` rusage of that child).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from contrib.bench.loadgen import LoadGenerator
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


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def make_store(db: Path, gen: LoadGenerator, cert: pki.Issued, ca: Path) -> None:
    store = Store.open(db)
    try:
        with store.transaction():
            store.add_dc(DataCenter("dc1", "4.7"))
            store.add_network(LogicalNetwork("dc1", NET, vlan=100, mtu=1500))
            for port, host in gen.hosts.items():
                store.add_host(Host(host.name, gen.url(port), "dc1", cert=str(cert.cert),
                                    key=str(cert.key), ca=str(ca)))
                store.set_attachment(Attachment(host.name, NET, nic="eth1", in_sync=True))
                host.networks[NET] = {"nic": "eth1", "vlan": 100, "mtu": 1500, "bridged": True}
                host.safe = dict(host.networks)
    finally:
        store.close()


def run_child(argv: list[str]) -> tuple[int, float, float, str]:
    """(exit code, seconds, peak RSS in MiB, output) of one child process.

    The peak is the child's VmHWM, polled: rusage's ru_maxrss would also count the pages of
    this (large) parent that the child mapped between fork and exec."""
    start = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                text = status.read_text()
            except OSError:
                break
            for line in text.splitlines():
                if line.startswith("VmHWM:") and "engine-client" in Path(
                        f"/proc/{proc.pid}/cmdline").read_text(errors="replace"):
                    peak = max(peak, int(line.split()[1]) / 1024)
            time.sleep(0.02)
        proc.wait()
        seconds = time.perf_counter() - start
        out.seek(0)
        return proc.returncode, seconds, peak, out.read().decode(errors="replace")


async def bench(
    n: int, parallel: int, apply_seconds: float, tmp: Path, mtu: int, profile: str | None = None
) -> EngineResult:
    pki_dir = tmp / "pki"
    if not (pki_dir / pki.CA_CERT).exists():
        pki.init_ca(pki_dir)
        pki.issue(pki_dir, "agent", ips=["127.0.0.1"])
        pki.issue(pki_dir, "engine")
    ca = pki_dir / pki.CA_CERT
    agent = pki.Issued(pki_dir / "agent.pem", pki_dir / "agent-key.pem")
    engine = pki.Issued(pki_dir / "engine.pem", pki_dir / "engine-key.pem")
    gen = LoadGenerator(n, cert=agent.cert, key=agent.key, ca=ca, base_port=BASE_PORT,
                        apply_seconds=apply_seconds)
    db = tmp / f"engine-{n}-{parallel}.db"
    make_store(db, gen, engine, ca)
    await gen.start()
    try:
        argv = [str(BIN / "engine-client"), "network", "update", NET, "--mtu", str(mtu),
                "--db", str(db), "--json", "--parallel", str(parallel)]
        if profile is not None:
            argv = [sys.executable, "-m", "cProfile", "-o", f"{profile}-{n}.prof", *argv]
        code, seconds, rss, out = await asyncio.to_thread(run_child, argv)
    finally:
        await gen.stop()
    ok = sum(1 for h in gen.hosts.values() if h.networks[NET]["mtu"] == mtu
             and h.safe == h.networks)
    if code != 0:
        print(f"engine-client exit {code}: {out[-3000:]}", file=sys.stderr)
    return EngineResult(n, parallel, seconds, rss, ok, code)


def print_rows(results: list[EngineResult]) -> None:
    one = {r.parallel: r.seconds for r in results if r.hosts == 1}
    print(f"{'hosts':>6} {'parallel':>8} {'wall s':>8} {'per host ms':>12} {'ok':>6} "
          f"{'peak RSS MiB':>13}")
    for r in results:
        base = one.get(r.parallel)
        per = (r.seconds - base) / (r.hosts - 1) * 1000 if base and r.hosts > 1 else 0.0
        print(f"{r.hosts:>6} {r.parallel:>8} {r.seconds:>8.2f} {per:>12.2f} "
              f"{r.ok:>6} {r.peak_rss_mb:>13.1f}")


async def main_async(args: argparse.Namespace) -> list[EngineResult]:
    _raise_nofile()
    results = []
    with tempfile.TemporaryDirectory(prefix="vdsm-net-bench-engine-") as tmp:
        mtu = 1400
        for parallel in args.parallel:
            for n in args.sizes:
                r = await bench(n, parallel, args.apply, Path(tmp), mtu, args.profile)
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
    args = p.parse_args(argv)
    results = asyncio.run(main_async(args))
    print()
    print_rows(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
