"""``engine-client dc add|list``, ``host add|list|remove|refresh`` and ``stats``
(docs/engine-cli.md): data centers, hosts, the host table (reachability, agent version, the
networks out of sync on each host) and a host's network statistics, read from its agent."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from engine_client import operations as ops
from engine_client import tlsfiles, validation
from engine_client.agent_client import AgentClient, AgentError
from engine_client.models import DataCenter, Host
from engine_client.operations import EXIT_HOST_FAILED, EXIT_OK, Ctx, Probe, endpoint, table
from vdsm_net.errors import ErrorKind, NetError

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]

URL_SCHEMES = ("https://", "http://", "unix://")


def cmd_dc_add(ctx: Ctx, a: argparse.Namespace) -> int:
    validation.check_dc_version(a.version)
    dc = ctx.store.add_dc(DataCenter(a.name, a.version))
    ctx.print_json(asdict(dc)) if ctx.json else ctx.print(f"data center {dc.name} added")
    return EXIT_OK


def cmd_dc_list(ctx: Ctx, a: argparse.Namespace) -> int:
    dcs = ctx.store.list_dcs()
    if ctx.json:
        ctx.print_json([asdict(d) for d in dcs])
    else:
        table(ctx, ["name", "version"], [[d.name, d.version] for d in dcs])
    return EXIT_OK


def cmd_host_add(ctx: Ctx, a: argparse.Namespace) -> int:
    if not a.url.startswith(URL_SCHEMES):
        raise NetError(
            ErrorKind.BAD_PARAMS, f"url: expected https://, http:// or unix://, got {a.url!r}"
        )
    tls = tlsfiles.checked(a.cert, a.key, a.ca)
    host = ctx.store.add_host(Host(a.name, a.url, a.dc, cert=tls.cert, key=tls.key, ca=tls.ca))
    if ctx.json:
        ctx.print_json(
            {
                "name": host.name,
                "url": host.url,
                "dc": host.dc,
                "cert": host.cert,
                "key": host.key,
                "ca": host.ca,
            }
        )
    else:
        ctx.print(f"host {host.name} added")
    return EXIT_OK


def _host_rows(ctx: Ctx, hosts: Sequence[Host], probes: dict[str, Probe]) -> list[dict[str, Any]]:
    rows = []
    for host in hosts:
        probe = probes.get(host.name)
        atts = ctx.store.list_attachments(host=host.name)
        verdicts = ops.verdicts(ctx, atts)
        out_of_sync = [
            {
                "network": att.network,
                "differences": verdict.to_json(),
                "differs": verdict.describe(),
                "last_error": att.last_error,
            }
            for att in atts
            if not (verdict := verdicts[(att.host, att.network)]).in_sync
        ]
        stored = ctx.store.get_host(host.name)
        rows.append(
            {
                "name": host.name,
                "url": host.url,
                "dc": host.dc,
                "reachable": bool(probe and probe.reachable),
                "error": probe.error if probe else None,
                "agent_version": stored.agent_version,
                "out_of_sync": out_of_sync,
            }
        )
    return rows


def _print_hosts(ctx: Ctx, rows: list[dict[str, Any]]) -> None:
    """A table of short cells (readable at 80 columns), then per host what does not fit in
    one: why it is unreachable, which networks are out of sync, wrapped at 80 columns."""
    if ctx.json:
        ctx.print_json(rows)
        return
    table(
        ctx,
        ["name", "dc", "url", "reachable", "version", "out of sync"],
        [
            [
                r["name"],
                r["dc"],
                r["url"],
                "yes" if r["reachable"] else "no",
                # An unreachable host's version is not known now (its last capabilities may
                # be old): the note below says why. Its networks count as out of sync.
                (r["agent_version"] or "-") if r["reachable"] else "-",
                len(r["out_of_sync"]) or "-",
            ]
            for r in rows
        ],
    )
    notes = []
    for r in rows:
        if not r["reachable"]:
            notes.append(f"{r['name']}: unreachable: {r['error']}")
        if r["out_of_sync"]:
            names = ", ".join(o["network"] for o in r["out_of_sync"])
            notes.append(f"{r['name']}: out of sync: {names}")
    if notes:
        ctx.print()
    for note in notes:
        ctx.print(textwrap.fill(note, width=80, subsequent_indent="    ", break_on_hyphens=False))


def cmd_host_list(ctx: Ctx, a: argparse.Namespace) -> int:
    hosts = ctx.store.list_hosts()
    _print_hosts(ctx, _host_rows(ctx, hosts, ops.refresh(ctx, hosts)))
    return EXIT_OK


def cmd_host_refresh(ctx: Ctx, a: argparse.Namespace) -> int:
    hosts = [ctx.store.get_host(n) for n in a.names] if a.names else ctx.store.list_hosts()
    probes = ops.refresh(ctx, hosts)
    _print_hosts(ctx, _host_rows(ctx, hosts, probes))
    return EXIT_OK if all(p.reachable for p in probes.values()) else EXIT_HOST_FAILED


def cmd_host_remove(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.store.remove_host(a.name)
    ctx.print_json({"removed": a.name}) if ctx.json else ctx.print(f"host {a.name} removed")
    return EXIT_OK


def cmd_stats(ctx: Ctx, a: argparse.Namespace) -> int:
    host = ctx.store.get_host(a.host)
    if a.network is not None:
        ctx.store.get_attachment(host.name, a.network)

    async def run() -> Any:
        client = AgentClient(endpoint(host), ctx.agent_transport(), timeout=ctx.read_timeout)
        return await client.call("Host.getNetworkStatistics")

    try:
        stats = ctx.run(run())
    except AgentError as exc:
        print(f"error: host {host.name}: {exc}", file=ctx.err)
        return EXIT_HOST_FAILED
    networks = stats.get("networks") or {}
    if a.network is not None:
        if a.network not in networks:
            print(
                f"error: host {host.name} reports no statistics for network {a.network}",
                file=ctx.err,
            )
            return EXIT_HOST_FAILED
        networks = {a.network: networks[a.network]}
    if ctx.json:
        ctx.print_json(
            {"host": host.name, "networks": networks, "sampleTime": stats.get("sampleTime")}
        )
        return EXIT_OK
    keys = ["state", "rx", "tx", "rxDropped", "txDropped", "rxErrors", "txErrors"]
    table(
        ctx,
        ["network", *keys],
        [[n, *(s.get(k) for k in keys)] for n, s in sorted(networks.items())],
    )
    return EXIT_OK


def add_commands(group: Group, sub: Sub) -> None:
    """``dc`` and ``host``."""
    dc = group("dc", "data centers")
    p = sub(dc, "add", cmd_dc_add, "add a data center")
    p.add_argument("name")
    p.add_argument("--version", required=True, help="compatibility version, e.g. 4.7")
    sub(dc, "list", cmd_dc_list, "list data centers")

    host = group("host", "hosts (agents)")
    p = sub(host, "add", cmd_host_add, "add a host")
    p.add_argument("name")
    p.add_argument("url", help="https://ADDR:54321, or unix:///run/vdsm-net/vdsm-net.sock")
    p.add_argument("--dc", required=True, help="the data center the host belongs to")
    p.add_argument(
        "--cert", help="the engine client's certificate (PEM; checked, stored as an absolute path)"
    )
    p.add_argument("--key", help="its private key (PEM; must match --cert)")
    p.add_argument(
        "--ca", help="CA that signed the agent's certificate (PEM; default: the system's CAs)"
    )
    sub(host, "list", cmd_host_list, "hosts with reachability, agent version, out-of-sync")
    p = sub(host, "remove", cmd_host_remove, "forget a host (its kernel is untouched)")
    p.add_argument("name")
    p = sub(host, "refresh", cmd_host_refresh, "re-read hosts' capabilities")
    p.add_argument("names", nargs="*", metavar="NAME")


def add_stats_command(groups: Any, sub: Sub) -> None:
    p = sub(groups, "stats", cmd_stats, "network statistics from a host's agent")
    p.add_argument("host")
    p.add_argument("network", nargs="?")
