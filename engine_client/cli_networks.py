"""``engine-client network add|list|show|attach|detach|update|remove`` and ``sync``
(docs/engine-cli.md): logical networks, their attachments to hosts, and bringing out-of-sync
attachments back to their definition (a network being removed is removed from the hosts that
still carry it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

from engine_client import cli_rollout, ipsettings, labels, validation
from engine_client import operations as ops
from engine_client.insync import judge
from engine_client.models import Attachment, LogicalNetwork
from engine_client.operations import EXIT_HOST_FAILED, EXIT_OK, Ctx, table
from vdsm_net.errors import ErrorKind, NetError

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]


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
    # A change of what hosts see goes to every staying host (docs/engine-cli.md): a host's
    # capabilities may be stale (unreachable now, or changed by hand since), so "it already
    # shows that" is no reason to skip it. A re-run that changes nothing goes to the hosts
    # out of sync, so that it finishes what an earlier run left undone.
    changed = (new.name, new.vlan, new.mtu, new.vm) != (old.name, old.vlan, old.mtu, old.vm)
    staying = [
        att
        for att in use.attachments
        if att.host not in moved
        and (changed or not judge(new, att, use.host_caps.get(att.host)).in_sync)
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


VLANS = f"{validation.VLAN_MIN}-{validation.VLAN_MAX}"
MTUS = f"{validation.MTU_MIN}-{validation.MTU_MAX}"


def add_commands(group: Group, sub: Sub) -> None:
    """``network``."""
    net = group("network", "logical networks")
    p = sub(net, "add", cmd_network_add, "define a logical network")
    p.add_argument("name")
    p.add_argument("--dc", required=True, help="the data center the network belongs to")
    p.add_argument("--vlan", type=int, help=f"VLAN id {VLANS} (default: untagged)")
    p.add_argument("--mtu", type=int, default=1500, help=f"MTU {MTUS} (default 1500)")
    p.add_argument(
        "--vm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="VM network (a bridge on every host); --no-vm for a bare device",
    )
    p.add_argument("--label", help="attach the network wherever a NIC or host carries this label")
    cli_rollout.add_options(p)
    p = sub(net, "list", cmd_network_list, "list logical networks")
    p.add_argument("--dc", help="only this data center's networks")
    p = sub(net, "show", cmd_network_show, "per host: where attached, in sync, what differs")
    p.add_argument("name")
    p = sub(net, "attach", cmd_network_attach, "attach to a host and configure it there")
    p.add_argument("name")
    p.add_argument("host")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--nic", help="the host's NIC that carries the network")
    where.add_argument("--bond", help="the host's bond that carries the network")
    where.add_argument("--isolated", action="store_true",
                       help="no NIC: a bridge whose VMs reach each other only (VM networks)")
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
    tag.add_argument("--vlan", type=int, help=f"the new VLAN id {VLANS}")
    tag.add_argument("--no-vlan", action="store_true", help="remove the VLAN tag")
    p.add_argument("--mtu", type=int, help=f"the new MTU {MTUS}")
    p.add_argument("--vm", action=argparse.BooleanOptionalAction, default=None,
                   help="make it a VM network (a bridge), or with --no-vm a bare device")
    p.add_argument("--rename", metavar="NEW",
                   help="a new name (only while no host carries it and no VM uses it)")
    label = p.add_mutually_exclusive_group()
    label.add_argument("--label", help="set the network's label")
    label.add_argument("--no-label", action="store_true", help="remove the network's label")
    cli_rollout.add_options(p)
    p = sub(net, "remove", cmd_network_remove, "remove from every host, then from the store")
    p.add_argument("name")
    cli_rollout.add_options(p)


def add_sync_command(groups: Any, sub: Sub) -> None:
    p = sub(groups, "sync", cmd_sync, "bring out-of-sync attachments back to their definition")
    p.add_argument("--host", help="only this host's attachments")
    p.add_argument("--network", help="only this network's attachments")
    cli_rollout.add_options(p)
