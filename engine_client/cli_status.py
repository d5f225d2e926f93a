"""``engine-client status`` (docs/engine-cli.md): the fleet at a glance. Hosts reachable and not
(their capabilities are read now), networks with how many of their attachments are out of sync
or still being removed, and on which hosts (judged as everywhere, ``insync.judge``), and the
last rollouts and how they ended."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from engine_client import operations as ops
from engine_client.events import local_time
from engine_client.models import Rollout
from engine_client.operations import EXIT_OK, Ctx, table

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return local_time(epoch, "seconds")


def _result(r: Rollout) -> str:
    if r.ended is None:
        return "unfinished"  # still running, or its engine-client died
    if not r.failed:
        return "done"
    return "failed" if not r.updated else "partial"


def _counted(count: int, hosts: list[str]) -> str:
    return f"{count} ({', '.join(hosts)})"


def status_doc(ctx: Ctx, rollouts: int) -> dict[str, Any]:
    hosts = ctx.store.list_hosts()
    probes = ops.refresh(ctx, hosts)
    atts = ctx.store.list_attachments()
    verdicts = ops.verdicts(ctx, atts)
    networks = []
    for net in ctx.store.list_networks():
        mine = [a for a in atts if a.network == net.name]
        # A network being removed: the hosts that still carry it ("listed with the hosts that
        # still carry it by ... status").
        stale = [a.host for a in mine if net.removing or not verdicts[(a.host, a.network)].in_sync]
        networks.append(
            {
                "name": net.name,
                "dc": net.dc,
                "state": "removing" if net.removing else "defined",
                "attachments": len(mine),
                "out_of_sync": 0 if net.removing else len(stale),
                "being_removed": len(mine) if net.removing else 0,
                "hosts": stale,
            }
        )
    return {
        "hosts": {
            "total": len(hosts),
            "reachable": sorted(n for n, p in probes.items() if p.reachable),
            "unreachable": [
                {"name": n, "error": p.error} for n, p in sorted(probes.items()) if not p.reachable
            ],
        },
        "networks": networks,
        "rollouts": [
            {
                "correlation_id": r.correlation_id,
                "network": r.network,
                "action": r.action,
                "started": _when(r.started),
                "ended": _when(r.ended),
                "planned": r.planned,
                "updated": r.updated,
                "failed": r.failed,
                "result": _result(r),
            }
            for r in ctx.store.list_rollouts(limit=rollouts)
        ],
    }


def cmd_status(ctx: Ctx, a: argparse.Namespace) -> int:
    doc = status_doc(ctx, a.rollouts)
    if ctx.json:
        ctx.print_json(doc)
        return EXIT_OK
    h = doc["hosts"]
    ctx.print(f"hosts: {len(h['reachable'])} of {h['total']} reachable")
    for u in h["unreachable"]:
        ctx.print(f"  unreachable: {u['name']}: {u['error']}")
    ctx.print()
    table(
        ctx,
        ["network", "state", "hosts", "out of sync", "being removed on"],
        [
            [
                n["name"],
                n["state"],
                n["attachments"],
                _counted(n["out_of_sync"], n["hosts"]) if n["out_of_sync"] else 0,
                _counted(n["being_removed"], n["hosts"]) if n["being_removed"] else "-",
            ]
            for n in doc["networks"]
        ],
    )
    ctx.print()
    table(
        ctx,
        ["started", "network", "action", "result", "updated", "correlation id"],
        [
            [
                r["started"],
                r["network"],
                r["action"],
                r["result"],
                f"{r['updated'] if r['updated'] is not None else '?'}/{r['planned']}",
                r["correlation_id"],
            ]
            for r in doc["rollouts"]
        ],
    )
    return EXIT_OK


def add_command(groups: Any, sub: Sub) -> None:
    p = sub(groups, "status", cmd_status, "the fleet at a glance: hosts, networks, rollouts")
    p.add_argument(
        "--rollouts", type=int, default=10, metavar="N", help="last rollouts shown (default 10)"
    )
