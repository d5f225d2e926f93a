"""``engine-client label add|remove|list`` (docs/engine-cli.md): host labels and NIC labels, and
the provisioning or removal of the labelled networks that follows on the host concerned."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from engine_client import cli_rollout, labels
from engine_client import operations as ops
from engine_client.operations import EXIT_OK, Ctx, table

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]


def _where(a: argparse.Namespace) -> str:
    return f"host {a.host}" if a.nic is None else f"nic {a.nic} of host {a.host}"


def _head(a: argparse.Namespace) -> dict[str, Any]:
    return {"host": a.host, "label": a.label, "nic": a.nic}


def _push(ctx: Ctx, p: labels.LabelPlan, a: argparse.Namespace, action: str) -> int:
    if p.empty:
        return ops.report_all(ctx, [], None, action, _head(a))
    cid = ops.start(ctx) if p.add or p.remove else None
    pushes = labels.apply(ctx, p, cid) if cid is not None else []
    return ops.report_all(ctx, pushes, cid, action, _head(a))


def _hold(ctx: Ctx, a: argparse.Namespace) -> None:
    """Lease what a label change on the host may push: the networks of its data center that
    carry a label, and those that labels attached to the host."""
    host = ctx.store.get_host(a.host)
    ctx.hold(
        {n.name for n in ctx.store.list_networks(dc=host.dc) if n.label is not None}
        | {x.network for x in ctx.store.list_attachments(host=host.name) if x.via_label}
    )


def cmd_label_add(ctx: Ctx, a: argparse.Namespace) -> int:
    labels.check_label(a.label)
    if a.nic is not None:
        labels.check_nic_name(a.nic)
    _hold(ctx, a)
    # Current capabilities: is the labelled device a NIC or a bond?
    ops.refresh(ctx, [ctx.store.get_host(a.host)])
    with ctx.store.transaction():
        if a.nic is None:
            labels.add_host_label(ctx.store, a.host, a.label)
        else:
            labels.add_nic_label(ctx.store, a.host, a.nic, a.label)
        p = labels.plan(ctx.store, hosts=[a.host])
        labels.check(ctx.store, p)
        labels.record(ctx.store, p)
    if not ctx.json:
        ctx.print(f"label {a.label} {'would be added' if ctx.dry_run else 'added'} to {_where(a)}")
    return _push(ctx, p, a, "label add")


def cmd_label_remove(ctx: Ctx, a: argparse.Namespace) -> int:
    _hold(ctx, a)
    # Fresh capabilities: a network is not pulled from under VMs that a host reports now.
    ops.refresh(ctx, [ctx.store.get_host(a.host)])
    with ctx.store.transaction():
        if a.nic is None:
            ctx.store.remove_host_label(a.host, a.label)
        else:
            ctx.store.remove_nic_label(a.host, a.nic, a.label)
        p = labels.plan(ctx.store, hosts=[a.host])
        labels.check(ctx.store, p)
        labels.check_removals(ctx.store, p)
        labels.record(ctx.store, p)
    if not ctx.json:
        ctx.print(
            f"label {a.label} {'would be removed' if ctx.dry_run else 'removed'} from {_where(a)}"
        )
    return _push(ctx, p, a, "label remove")


def cmd_label_list(ctx: Ctx, a: argparse.Namespace) -> int:
    hosts = [ctx.store.get_host(a.host)] if a.host is not None else ctx.store.list_hosts()
    rows: list[dict[str, Any]] = []
    for host in hosts:
        entries = [(hl.label, None) for hl in ctx.store.list_host_labels(host=host.name)] + [
            (nl.label, nl.nic) for nl in ctx.store.list_nic_labels(host=host.name)
        ]
        for label, nic in sorted(entries, key=lambda e: (e[0], e[1] or "")):
            made = [
                att.network
                for att in ctx.store.list_attachments(host=host.name)
                if att.via_label == label
            ]
            labelled = [n.name for n in ctx.store.list_networks(dc=host.dc, label=label)]
            rows.append(
                {
                    "host": host.name,
                    "label": label,
                    "nic": nic,
                    "networks": labelled,
                    "attached": made,
                }
            )
    if ctx.json:
        ctx.print_json(rows)
        return EXIT_OK
    table(
        ctx,
        ["host", "label", "on", "networks", "attached"],
        [
            [
                r["host"],
                r["label"],
                "host" if r["nic"] is None else f"nic {r['nic']}",
                ", ".join(r["networks"]) or "-",
                ", ".join(r["attached"]) or "-",
            ]
            for r in rows
        ],
    )
    return EXIT_OK


def add_commands(group: Group, sub: Sub) -> None:
    lab = group("label", "host labels and NIC labels (networks with the label follow them)")
    for name, handler, help_text in (
        ("add", cmd_label_add, "label a host (isolated networks) or one of its NICs"),
        ("remove", cmd_label_remove, "remove a label and the networks that it attached"),
    ):
        p = sub(lab, name, handler, help_text)
        p.add_argument("host")
        p.add_argument("label")
        p.add_argument("--nic", metavar="DEV", help="a NIC (or bond) label instead of a host one")
        cli_rollout.add_options(p)
    p = sub(lab, "list", cmd_label_list, "labels of a host (of every host without HOST)")
    p.add_argument("host", nargs="?")
