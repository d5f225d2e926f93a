"""Real agents: ``engine-client network update`` of one network on 20 namespaced hosts, each a
real ``vdsm-net-agent`` with mutual TLS (``tests/cluster.py``), against the same on one host.

    python -m contrib.bench cluster [--hosts 20]

The network is an untagged bridged network on a veth NIC (the host kernel builds it); the
update changes its MTU, with the connectivity check and commitOnSuccess, as in production.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tests.cluster import DC, running_cluster

NET = "vmnet"


def update_time(hosts: int) -> float:
    names = [f"h{i}" for i in range(hosts)]
    with running_cluster(names, dummy=False) as cluster:
        cluster.cli("network", "add", NET, "--dc", DC, "--mtu", "1500")
        for node in cluster.nodes:
            cluster.cli("network", "attach", NET, node.name, "--nic", "eth1")
        start = time.perf_counter()
        cluster.cli("network", "update", NET, "--mtu", "1400")
        seconds = time.perf_counter() - start
        for node in cluster.nodes:
            assert node.ns.link(NET)["mtu"] == 1400, node.name
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="contrib.bench cluster")
    p.add_argument("--hosts", type=int, default=20)
    p.add_argument("--json", help="write the result as JSON to this file")
    args = p.parse_args(argv)
    one = update_time(1)
    many = update_time(args.hosts)
    print(f"real agents: network update on 1 host {one:.2f} s, on {args.hosts} hosts "
          f"{many:.2f} s ({many / one:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"hosts": args.hosts, "one": one, "many": many}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
