"""``engine-client``: the command line of the engine client (docs/engine-cli.md).

Exit codes: 0 success; 1 a host failed (unreachable, error, timeout, refused); 2 usage or
validation error (nothing was written or sent); 3 another engine-client is changing the same
network, or changed it since this command read it (nothing was written or sent).
``--json`` (before or after the subcommand) prints one JSON document on stdout; events then
go to the store only, not to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, TextIO

from engine_client import cli_rollout, ipsettings, labels, tlsfiles, validation
from engine_client import operations as ops
from engine_client.agent_client import AgentClient, AgentError, Transport
from engine_client.cli_labels import add_commands as add_label_commands
from engine_client.cli_status import cmd_status
from engine_client.events import event_json, local_time
from engine_client.insync import judge
from engine_client.models import Attachment, DataCenter, Event, Host, LogicalNetwork, Vm
from engine_client.operations import (
    EXIT_CONFLICT,
    EXIT_HOST_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Ctx,
    Probe,
    endpoint,
    table,
)
from engine_client.rest.commands import add_commands as add_rest_commands
from engine_client.store import Conflict, StoreError, default_location
from vdsm_net import __version__
from vdsm_net.errors import ErrorKind, NetError

URL_SCHEMES = ("https://", "http://", "unix://")

# -- commands -----------------------------------------------------------------------------


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
                # An unreachable host's version and state are not known now (its last
                # capabilities may be old): the note below says why.
                (r["agent_version"] or "-") if r["reachable"] else "-",
                (len(r["out_of_sync"]) or "-") if r["reachable"] else "-",
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


def _net_json(net: LogicalNetwork) -> dict[str, Any]:
    return asdict(net) | {"state": "removing" if net.removing else "defined"}


def _refuse_removing(net: LogicalNetwork) -> None:
    if net.removing:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"network {net.name} is being removed (some hosts still carry it): finish with "
            f"`engine-client network remove {net.name}` or `engine-client sync`",
        )


def cmd_network_add(ctx: Ctx, a: argparse.Namespace) -> int:
    net = LogicalNetwork(a.dc, a.name, vlan=a.vlan, mtu=a.mtu, vm=a.vm, label=a.label)
    validation.check_network(net)
    if net.label is not None:
        labels.check_label(net.label)
    ctx.hold([net.name])
    with ctx.store.transaction():
        ctx.store.add_network(net)
        # A labelled network goes at once to the NICs and hosts that carry its label.
        plan = labels.plan(ctx.store, networks=[net.name])
        labels.check(ctx.store, plan)
        labels.record(ctx.store, plan)
    if not ctx.json:
        ctx.print(f"network {net.name} {'would be added' if ctx.dry_run else 'added'}")
    cid = ops.start(ctx) if plan.add else None
    pushes = labels.apply(ctx, plan, cid) if cid is not None else []
    return ops.report_all(ctx, pushes, cid, "add", _net_json(net))


def cmd_network_list(ctx: Ctx, a: argparse.Namespace) -> int:
    nets = ctx.store.list_networks(dc=a.dc)
    hosts = {n.name: [x.host for x in ctx.store.list_attachments(network=n.name)] for n in nets}
    if ctx.json:
        # A network being removed: "hosts" are those that still carry it.
        ctx.print_json([_net_json(n) | {"hosts": hosts[n.name]} for n in nets])
        return EXIT_OK
    table(
        ctx,
        ["name", "dc", "vlan", "mtu", "vm", "label", "hosts"],
        [
            [
                n.name,
                n.dc,
                n.vlan if n.vlan is not None else "-",
                n.mtu,
                "yes" if n.vm else "no",
                n.label or "-",
                f"removing, still on {', '.join(hosts[n.name])}"
                if n.removing
                else len(hosts[n.name]),
            ]
            for n in nets
        ],
    )
    return EXIT_OK


def cmd_network_show(ctx: Ctx, a: argparse.Namespace) -> int:
    net = ctx.store.get_network(a.name)
    atts = ctx.store.list_attachments(network=net.name)
    probes = ops.refresh(ctx, [ctx.store.get_host(x.host) for x in atts])
    rows: list[dict[str, Any]] = []
    atts = ctx.store.list_attachments(network=net.name)
    verdicts = ops.verdicts(ctx, atts)
    for att in atts:
        probe = probes[att.host]
        verdict = verdicts[(att.host, att.network)]
        rows.append(
            {
                "host": att.host,
                "attached": att.describe(),
                "ip": asdict(att.ip),
                "via_label": att.via_label,
                "reachable": probe.reachable,
                "in_sync": verdict.in_sync,
                "differences": verdict.to_json(),
                "differs": verdict.describe(),
                "last_error": att.last_error,
                "error": probe.error,
            }
        )
    if ctx.json:
        ctx.print_json(_net_json(net) | {"hosts": rows})
        return EXIT_OK
    vlan = net.vlan if net.vlan is not None else "none"
    ctx.print(
        f"network {net.name} (data center {net.dc}): vlan {vlan}, mtu {net.mtu}, "
        f"{'VM' if net.vm else 'non-VM'} network, label {net.label or '-'}"
        + (", being removed (the hosts below still carry it)" if net.removing else "")
    )
    table(
        ctx,
        ["host", "attached", "in sync", "differs"],
        [
            [
                r["host"],
                r["attached"] + (f" (label {r['via_label']})" if r["via_label"] else ""),
                "yes" if r["in_sync"] else "no",
                r["differs"] + (f" (unreachable, as last read: {r['error']})" if r["error"] else "")
                or "-",
            ]
            for r in rows
        ],
    )
    return EXIT_OK


def _attachment(a: argparse.Namespace) -> Attachment:
    """The attachment the command states, whole: its place and its IP settings (left out:
    none). Re-run on an attached host it replaces what is there, and an attachment made by
    hand is no label's (docs/engine-cli.md "Addresses")."""
    ip = ipsettings.parse(a.ip, a.gateway, a.dhcp)
    return Attachment(a.host, a.name, nic=a.nic, bond=a.bond, isolated=a.isolated, ip=ip)


def cmd_network_attach(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.hold([a.name])
    net = ctx.store.get_network(a.name)
    _refuse_removing(net)
    host = ctx.store.get_host(a.host)
    if host.dc != net.dc:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"host: expected a host of data center {net.dc}, "
            f"got {host.name} (data center {host.dc})",
        )
    att = _attachment(a)
    others = [
        (ctx.store.get_network(o.network), o)
        for o in ctx.store.list_attachments(host=host.name)
        if o.network != net.name
    ]
    validation.check_attachment(net, att, others)
    validation.check_own_address(net, att, ctx.store.list_attachments(network=net.name))
    ctx.store.get_dc(net.dc)
    cid = ops.start(ctx)
    pushed = ops.push(ctx, net, [att], cid)
    if pushed.unsupported_dc is not None:
        # Nothing is sent to such a data center's hosts: the store is all there is to change.
        ctx.store.set_attachment(att)
    # Recorded only if the host applied it: a refused attach leaves the store as it was.
    ops.mark(ctx, pushed, record_failures=False)
    return ops.report(ctx, [pushed], cid, "attach")


def cmd_network_detach(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.hold([a.name])
    net = ctx.store.get_network(a.name)
    att = ctx.store.get_attachment(a.host, a.name)
    if att.via_label is not None:
        # The label would attach it again: the label is what the operator must change.
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"networks.{net.name}: attached to host {att.host} by label {att.via_label}; "
            f"remove the label from the host or its NIC, or the network's label, instead",
        )
    cid = ops.start(ctx)
    pushed = ops.push(ctx, net, [att], cid, remove=True)
    if pushed.unsupported_dc is not None:
        ctx.store.remove_attachment(att.host, att.network)
    ops.mark(ctx, pushed, removed=True, record_failures=False)
    return ops.report(ctx, [pushed], cid, "detach")


def cmd_network_update(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.hold({a.name, a.rename or a.name})
    old = ctx.store.get_network(a.name)
    _refuse_removing(old)
    new = replace(
        old,
        name=a.rename if a.rename is not None else old.name,
        vlan=None if a.no_vlan else (a.vlan if a.vlan is not None else old.vlan),
        mtu=a.mtu if a.mtu is not None else old.mtu,
        vm=a.vm if a.vm is not None else old.vm,
        label=None if a.no_label else (a.label if a.label is not None else old.label),
    )
    validation.check_network(new)  # before any host is asked for its capabilities
    if new.label is not None:
        labels.check_label(new.label)
    # The correlation id (and the bar, on a terminal) before the hosts are read.
    cid = ops.start(ctx)
    use = ops.usage(ctx, old)
    # The label attachments of the network as it is about to be (docs/engine-cli.md).
    plan = labels.plan_network(ctx.store, new, use.attachments)
    labels.check_update(old, new, use, plan)
    labels.check(ctx.store, plan, {new.name: new})
    moved = plan.moved_hosts(new.name)
    # Every staying host that does not carry the new definition (all of them when it changes
    # what hosts see), so that a re-run finishes what an earlier one left undone.
    staying = [
        att
        for att in use.attachments
        if att.host not in moved and not judge(new, att, use.host_caps.get(att.host)).in_sync
    ]
    with ctx.store.transaction():
        if new != old:
            new = ctx.store.update_network(old.name, new)
        labels.record(ctx.store, plan)
    also = {new.name: [replace(att, network=new.name) for att in staying]}
    pushes = labels.apply(ctx, plan, cid, also=also) or [ops.Push(new.name, [])]
    return ops.report(ctx, pushes, cid, "update")


def cmd_network_remove(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.hold([a.name])
    net = ctx.store.get_network(a.name)
    atts = ctx.store.list_attachments(network=net.name)
    validation.check_remove(
        net, validation.NetworkUsage(atts, ctx.store.list_vms(network=net.name))
    )
    if not net.removing or net.label is not None:
        # A network on its way out is no label's any more: were a host to fail the removal,
        # its label must not attach it again where it is already gone. It stays in the store,
        # "removing", until no host carries it (docs/engine-cli.md "Re-running a command").
        net = ctx.store.update_network(net.name, replace(net, label=None, removing=True))
    cid = ops.start(ctx)
    remaining = remove_everywhere(ctx, net, atts, cid)
    return ops.report(ctx, [remaining], cid, "remove", extra=_removal_json(ctx, net.name))


def remove_everywhere(
    ctx: Ctx, net: LogicalNetwork, atts: Sequence[Attachment], cid: str
) -> ops.Push:
    """Push the removal of a network being removed to ``atts``; forget those that applied
    it, and the network once no host carries it."""
    pushed = ops.push(ctx, net, atts, cid, remove=True)
    with ctx.store.transaction():
        if pushed.unsupported_dc is not None:
            for att in atts:
                ctx.store.remove_attachment(att.host, att.network)
        ops.mark(ctx, pushed, removed=True)
        if not ctx.store.list_attachments(network=net.name):
            ctx.store.remove_network(net.name)
    if not ctx.json and not ctx.dry_run and ctx.store.find_network(net.name) is not None:
        left = ", ".join(x.host for x in ctx.store.list_attachments(network=net.name))
        ctx.print(
            f"network {net.name} is being removed; still on: {left} (run `engine-client "
            f"network remove {net.name}` or `engine-client sync` again to finish)"
        )
    return pushed


def _removal_json(ctx: Ctx, name: str) -> dict[str, Any]:
    still = [x.host for x in ctx.store.list_attachments(network=name)]
    return {"removed": ctx.store.find_network(name) is None, "removing_on": still}


def cmd_sync(ctx: Ctx, a: argparse.Namespace) -> int:
    if a.host is not None:
        ctx.store.get_host(a.host)
    # Any network in scope may be pushed: all of them are held before anything is read.
    ctx.hold([a.network] if a.network is not None else [n.name for n in ctx.store.list_networks()])
    if a.network is not None:
        ctx.store.get_network(a.network)
    atts = ctx.store.list_attachments(host=a.host, network=a.network)
    hosts = sorted({att.host for att in atts} | ({a.host} if a.host else set()))
    cid = ops.start(ctx)
    ops.refresh(ctx, [ctx.store.get_host(h) for h in hosts])
    nets = {n.name: n for n in ctx.store.list_networks()}
    in_scope = [nets[a.network]] if a.network is not None else list(nets.values())
    pushes: list[ops.Push] = []
    # Networks being removed: removed from the hosts that still carry them, never re-sent.
    for net in (n for n in in_scope if n.removing):
        carrying = ctx.store.list_attachments(host=a.host, network=net.name)
        if carrying:
            pushes.append(remove_everywhere(ctx, net, carrying, cid))
    defined = [n.name for n in in_scope if not n.removing]
    # Label attachments that a failed push left behind (or that are missing) are made right
    # first: what the labels ask for is the definition that sync restores (docs/engine-cli.md).
    with ctx.store.transaction():
        plan = labels.plan(ctx.store, hosts=None if a.host is None else [a.host], networks=defined)
        labels.check(ctx.store, plan)
        labels.record(ctx.store, plan)
    pushes += labels.remove_pushed(ctx, plan.remove, cid)
    changed = {(att.host, att.network) for att in (*plan.remove, *plan.add)}
    current = [
        att
        for name in defined
        for att in ctx.store.list_attachments(host=a.host, network=name)
        if (att.host, att.network) not in changed
    ]
    verdicts = ops.verdicts(ctx, current)
    stale = [*plan.add, *(att for att in current if not verdicts[(att.host, att.network)].in_sync)]
    # One network at a time: an agent serialises setupNetworks (a second concurrent call on the
    # same host is refused with error 40), and hosts still run concurrently within a network.
    for name in sorted({att.network for att in stale}):
        pushed = ops.push(ctx, nets[name], [att for att in stale if att.network == name], cid)
        ops.mark(ctx, pushed)
        pushes.append(pushed)
    if ctx.json:
        ctx.print_json(
            {
                "action": "sync",
                "correlation_id": cid,
                "networks": [p.to_json(cid) for p in pushes],
                "events": ctx.events_json(),
            }
            | ({"dry_run": True} if ctx.dry_run else {})
        )
        return EXIT_HOST_FAILED if any(p.failed for p in pushes) else EXIT_OK
    if not pushes:
        ctx.print("everything is in sync")
    return ops.report(ctx, pushes, cid, "sync")


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


def cmd_events(ctx: Ctx, a: argparse.Namespace) -> int:
    if a.host is not None:
        ctx.store.get_host(a.host)
    if a.network is not None:
        ctx.store.get_network(a.network)
    filters = {"correlation_id": a.correlation_id, "host": a.host, "network": a.network}
    if a.follow:
        # Every event as any engine-client stores it (PostgreSQL: LISTEN/NOTIFY; SQLite:
        # polled), flushed line by line: the reader is often a pipe (| grep, a script).
        try:
            for e in ctx.store.follow_events(**filters, limit=a.limit):
                show_events(ctx, [e])
        except KeyboardInterrupt:  # the way to stop following
            pass
        return EXIT_OK
    events = ctx.store.list_events(**filters, limit=a.limit)
    if ctx.json:
        ctx.print_json([_event_doc(e) for e in events])
        return EXIT_OK
    show_events(ctx, events)
    return EXIT_OK


def _event_doc(e: Event) -> dict[str, Any]:
    return event_json(e) | {"id": e.id}


def show_events(ctx: Ctx, events: Sequence[Event]) -> None:
    """One line per event (with --json and --follow one JSON object per line, so that the
    output can be read as it comes)."""
    for e in events:
        if ctx.json:
            print(json.dumps(_event_doc(e), sort_keys=True), file=ctx.out)
        else:
            who = e.host or "-"
            print(
                f"{local_time(e.time)} {e.severity:<7} {e.correlation_id or '-'} {who} "
                f"{e.message}",
                file=ctx.out,
            )
    ctx.out.flush()


def cmd_vm_add(ctx: Ctx, a: argparse.Namespace) -> int:
    vm = ctx.store.add_vm(
        Vm(a.name, running=a.running, template=a.template, networks=tuple(a.network))
    )
    ctx.print_json(asdict(vm)) if ctx.json else ctx.print(f"vm {vm.name} added")
    return EXIT_OK


def cmd_vm_remove(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.store.remove_vm(a.name)
    ctx.print_json({"removed": a.name}) if ctx.json else ctx.print(f"vm {a.name} removed")
    return EXIT_OK


def cmd_vm_list(ctx: Ctx, a: argparse.Namespace) -> int:
    vms = ctx.store.list_vms()
    if ctx.json:
        ctx.print_json([asdict(v) for v in vms])
    else:
        table(
            ctx,
            ["name", "running", "template", "networks"],
            [[v.name, v.running, v.template, ", ".join(v.networks)] for v in vms],
        )
    return EXIT_OK


def cmd_pki_init(ctx: Ctx, a: argparse.Namespace) -> int:
    # cryptography costs ~50 ms of every command's start: only pki needs it.
    from engine_client import pki

    made = pki.init_ca(a.dir)
    if ctx.json:
        ctx.print_json({"cert": str(made.cert), "key": str(made.key)})
    else:
        ctx.print(f"CA certificate {made.cert}, key {made.key}")
    return EXIT_OK


def cmd_pki_issue(ctx: Ctx, a: argparse.Namespace) -> int:
    from engine_client import pki

    made = pki.issue(a.dir, a.name, ips=a.ip, dns=a.dns, role=a.role)
    if ctx.json:
        ctx.print_json({"cert": str(made.cert), "key": str(made.key)})
    else:
        ctx.print(f"certificate {made.cert}, key {made.key}")
    return EXIT_OK


# -- argument parsing ---------------------------------------------------------------------

Handler = Callable[[Ctx, argparse.Namespace], int]


def _common() -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand. On subparsers their defaults are
    SUPPRESS, so a value given before the subcommand is not reset by the subparser."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output (JSON on stdout)",
    )
    p.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        help="the store: an SQLite file path, or a postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        "URL (default $ENGINE_CLIENT_DB or ~/.local/share/engine-client/engine.db)",
    )
    p.add_argument(
        "--parallel", type=int, default=argparse.SUPPRESS, help="hosts updated at once (default 50)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="per-host connectivity timeout in seconds (default 120)",
    )
    p.add_argument(
        "--call-timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds for one request to an agent, apart from the connectivity timeout that "
        "setupNetworks may also wait (default 5 for capability reads, 30 for the others)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    # Two instances: parents share action objects, and set_defaults on the top parser would
    # otherwise turn the subparsers' SUPPRESS defaults into values that overwrite the top's.
    common = _common()
    parser = argparse.ArgumentParser(
        prog="engine-client",
        parents=[_common()],
        description="Keep logical networks of data centers and push them to hosts' agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(json=False, db=None, parallel=50, timeout=120.0, call_timeout=None)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def sub(parent: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_text)
        p.set_defaults(handler=handler)
        return p

    def group(name: str, help_text: str) -> Any:
        p = groups.add_parser(name, parents=[common], help=help_text)
        return p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dc = group("dc", "data centers")
    p = sub(dc, "add", cmd_dc_add, "add a data center")
    p.add_argument("name")
    p.add_argument("--version", required=True, help="compatibility version, e.g. 4.7")
    sub(dc, "list", cmd_dc_list, "list data centers")

    host = group("host", "hosts (agents)")
    p = sub(host, "add", cmd_host_add, "add a host")
    p.add_argument("name")
    p.add_argument("url", help="https://ADDR:54321, or unix:///run/vdsm-net/vdsm-net.sock")
    p.add_argument("--dc", required=True)
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

    net = group("network", "logical networks")
    p = sub(net, "add", cmd_network_add, "define a logical network")
    p.add_argument("name")
    p.add_argument("--dc", required=True)
    p.add_argument("--vlan", type=int)
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument(
        "--vm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="VM network (a bridge on every host); --no-vm for a bare device",
    )
    p.add_argument("--label")
    cli_rollout.add_options(p)
    p = sub(net, "list", cmd_network_list, "list logical networks")
    p.add_argument("--dc")
    p = sub(net, "show", cmd_network_show, "per host: where attached, in sync, what differs")
    p.add_argument("name")
    p = sub(net, "attach", cmd_network_attach, "attach to a host and configure it there")
    p.add_argument("name")
    p.add_argument("host")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--nic")
    where.add_argument("--bond")
    where.add_argument("--isolated", action="store_true")
    p.add_argument(
        "--ip",
        metavar="ADDR/PREFIX",
        help=f"this host's static address on the network, IPv4 or IPv6: {ipsettings.IP_HELP}; "
        "re-run attach to change it, without --ip/--dhcp to remove it",
    )
    p.add_argument("--gateway", metavar="IP", help="gateway of --ip's subnet (with --ip only)")
    p.add_argument("--dhcp", action="store_true", help="a DHCPv4 address (not with --ip)")
    cli_rollout.add_options(p)
    p = sub(net, "detach", cmd_network_detach, "remove from a host")
    p.add_argument("name")
    p.add_argument("host")
    cli_rollout.add_options(p)
    p = sub(net, "update", cmd_network_update, "change and push to every attached host")
    p.add_argument("name")
    tag = p.add_mutually_exclusive_group()
    tag.add_argument("--vlan", type=int)
    tag.add_argument("--no-vlan", action="store_true")
    p.add_argument("--mtu", type=int)
    p.add_argument("--vm", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--rename", metavar="NEW")
    label = p.add_mutually_exclusive_group()
    label.add_argument("--label")
    label.add_argument("--no-label", action="store_true", help="remove the network's label")
    cli_rollout.add_options(p)
    p = sub(net, "remove", cmd_network_remove, "remove from every host, then from the store")
    p.add_argument("name")
    cli_rollout.add_options(p)

    add_label_commands(group, sub)

    p = sub(groups, "sync", cmd_sync, "bring out-of-sync attachments back to their definition")
    p.add_argument("--host")
    p.add_argument("--network")
    cli_rollout.add_options(p)
    p = sub(groups, "status", cmd_status, "the fleet at a glance: hosts, networks, rollouts")
    p.add_argument(
        "--rollouts", type=int, default=10, metavar="N", help="last rollouts shown (default 10)"
    )
    p = sub(groups, "stats", cmd_stats, "network statistics from a host's agent")
    p.add_argument("host")
    p.add_argument("network", nargs="?")
    p = sub(groups, "events", cmd_events, "the event log, oldest first (times with their zone)")
    p.add_argument("--correlation-id", help="only the events of this command")
    p.add_argument("--host", help="only the events about this host")
    p.add_argument("--network", help="only the events about this logical network")
    p.add_argument("--limit", type=int, help="only the last N events")
    p.add_argument(
        "--follow",
        action="store_true",
        help="then print new events as they are stored, until interrupted (Ctrl-C)",
    )

    vm = group("vm", "VMs and templates (what validation reads)")
    p = sub(vm, "add", cmd_vm_add, "add a VM or template")
    p.add_argument("name")
    p.add_argument("--network", action="append", required=True, help="repeatable")
    p.add_argument("--running", action="store_true")
    p.add_argument("--template", action="store_true")
    p = sub(vm, "remove", cmd_vm_remove, "remove a VM or template")
    p.add_argument("name")
    sub(vm, "list", cmd_vm_list, "list VMs and templates")

    add_rest_commands(groups, group, sub)

    ca = group("pki", "a CA and certificates for agents and the engine client")
    p = sub(ca, "init", cmd_pki_init, "create DIR/ca.pem and DIR/ca-key.pem")
    p.add_argument("dir")
    p = sub(ca, "issue", cmd_pki_issue, "issue DIR/NAME.pem and DIR/NAME-key.pem")
    p.add_argument("dir")
    p.add_argument("name")
    p.add_argument("--ip", action="append", default=[], help="IP subjectAltName (repeatable)")
    p.add_argument("--dns", action="append", default=[], help="DNS subjectAltName (repeatable)")
    p.add_argument("--role", choices=("host", "engine"), default="host",
                   help="host (default): an agent's TLS server certificate, refused as a "
                   "client; engine: the engine client's TLS client certificate")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: Transport | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code. ``transport`` replaces the real HTTPS/Unix
    transport (tests)."""
    err = stderr if stderr is not None else sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.parallel < 1:
        print(f"error: parallel: expected >= 1, got {args.parallel}", file=err)
        return EXIT_USAGE
    if args.timeout <= 0:
        print(f"error: timeout: expected > 0, got {args.timeout:g}", file=err)
        return EXIT_USAGE
    if args.call_timeout is not None and args.call_timeout <= 0:
        print(f"error: call-timeout: expected > 0, got {args.call_timeout:g}", file=err)
        return EXIT_USAGE
    ctx = Ctx(
        db=default_location(args.db),
        json=args.json,
        parallel=args.parallel,
        timeout=args.timeout,
        call_timeout=args.call_timeout,
        transport=transport,
        out=stdout if stdout is not None else sys.stdout,
        err=err,
        control=cli_rollout.control(args),
    )
    handler: Handler = args.handler
    try:
        return handler(ctx, args)
    except Conflict as exc:
        print(f"error: {exc}", file=err)
        return EXIT_CONFLICT
    except (NetError, StoreError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    finally:
        ctx.close()
