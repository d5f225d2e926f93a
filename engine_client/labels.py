"""Network labels (docs/engine-cli.md): which attachments labels make, and what follows when
a label comes or goes on a host, a NIC or a network.

A network with label L is attached, in its data center,
- to every NIC that carries NIC label L, as a network on that NIC (on a bond when the host
  reports the device as a bond), and
- when it is a VM network, to every host that carries host label L, as an isolated network (a
  bridge with no uplink; only the MTU of the definition applies).

Attachments a label made are recorded with ``via_label``; only those are ever changed or removed
by a label change. A manual attachment (``network attach``) of the same network on the same host
is never taken over, and stays when the label goes. On one host a label is either a host label
or the label of one NIC: two NICs, or the host and a NIC, carrying one label would ask for the
same network twice on one host (oVirt's design for host labels forbids the same: "cannot use
same label for nics").

The flow is the same for every command: inside one store transaction, write the label change,
``plan`` the attachment changes, ``check`` them (a NetError rolls everything back), ``record``
them; then ``apply`` pushes them to the hosts through ``operations.push`` (the concurrent path,
events and summary of docs/engine-cli.md), removals first so that a NIC slot is free before reuse.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from engine_client import operations as ops
from engine_client import validation
from engine_client.models import Attachment, Host, LogicalNetwork
from engine_client.store import Store
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.names import ifname_problem, show

LABEL_MAX = 50
_LABEL = re.compile(rf"[A-Za-z0-9_-]{{1,{LABEL_MAX}}}", re.ASCII)


def check_label(label: str) -> None:
    if _LABEL.fullmatch(label) is None:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"label: expected 1-{LABEL_MAX} letters, digits, '_' or '-', got {show(label)}",
        )


def check_nic_name(nic: str) -> None:
    problem = ifname_problem(nic)
    if problem is not None:
        raise NetError(ErrorKind.BAD_NIC, f"nic: bad device name {show(nic)} ({problem})")


# -- writing labels -------------------------------------------------------------------------


def add_host_label(store: Store, host: str, label: str) -> None:
    check_label(label)
    store.get_host(host)
    on_nics = store.list_nic_labels(host=host, label=label)
    if on_nics:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"label: {label} is already the label of nic {on_nics[0].nic} on host {host}; a "
            f"label is on a host or on one of its NICs, not both",
        )
    store.add_host_label(host, label)


def add_nic_label(store: Store, host: str, nic: str, label: str) -> None:
    check_label(label)
    check_nic_name(nic)
    store.get_host(host)
    if store.list_host_labels(host=host, label=label):
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"label: {label} is already a label of host {host}; a label is on a host or on "
            f"one of its NICs, not both",
        )
    others = [n.nic for n in store.list_nic_labels(host=host, label=label) if n.nic != nic]
    if others:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"label: {label} is already the label of nic {others[0]} on host {host}; a label "
            f"is on one NIC of a host",
        )
    store.add_nic_label(host, nic, label)


# -- which attachments labels make ------------------------------------------------------------


def _on_device(host: Host, network: str, dev: str, label: str) -> Attachment:
    # A label may sit on a bond: the host's last capabilities say which the device is.
    bonds = host.caps.get("bondings") or {}
    if dev in bonds:
        return Attachment(host.name, network, bond=dev, via_label=label)
    return Attachment(host.name, network, nic=dev, via_label=label)


def wanted(store: Store, net: LogicalNetwork) -> dict[str, Attachment]:
    """Per host, the attachment that ``net``'s label asks for (none without a label)."""
    if net.label is None:
        return {}
    hosts = {h.name: h for h in store.list_hosts(dc=net.dc)}
    out: dict[str, Attachment] = {}
    for nl in store.list_nic_labels(label=net.label):
        if nl.host in hosts and nl.host not in out:
            out[nl.host] = _on_device(hosts[nl.host], net.name, nl.nic, net.label)
    if net.vm:
        for hl in store.list_host_labels(label=net.label):
            if hl.host in hosts and hl.host not in out:
                out[hl.host] = Attachment(hl.host, net.name, isolated=True, via_label=net.label)
    return out


def same_place(a: Attachment, b: Attachment) -> bool:
    return (a.nic, a.bond, a.isolated) == (b.nic, b.bond, b.isolated)


@dataclass(frozen=True)
class LabelPlan:
    """What labels change: ``add`` is new label-made attachments or a new place for one (pushed
    with the network's definition); ``remove`` is label-made attachments that no label wants
    any more (pushed as removals); ``relabel`` keeps its place, only its ``via_label`` changes
    (store only)."""

    add: tuple[Attachment, ...] = ()
    remove: tuple[Attachment, ...] = ()
    relabel: tuple[Attachment, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.relabel)

    def moved_hosts(self, network: str) -> set[str]:
        """The hosts where ``network``'s attachment goes away or changes place."""
        return {a.host for a in (*self.add, *self.remove) if a.network == network}

    def __add__(self, other: LabelPlan) -> LabelPlan:
        return LabelPlan(
            self.add + other.add, self.remove + other.remove, self.relabel + other.relabel
        )


def plan_network(
    store: Store,
    net: LogicalNetwork,
    current: Iterable[Attachment],
    *,
    hosts: Collection[str] | None = None,
) -> LabelPlan:
    """Compare what ``net``'s label asks for (``net`` as it is, or as it is about to be) with
    its ``current`` attachments, on the given hosts (all when None)."""
    want = wanted(store, net)
    have = {a.host: a for a in current}
    add: list[Attachment] = []
    remove: list[Attachment] = []
    relabel: list[Attachment] = []
    for host in sorted(want.keys() | have.keys()):
        if hosts is not None and host not in hosts:
            continue
        cur, new = have.get(host), want.get(host)
        if cur is not None and cur.via_label is None:
            continue  # a manual attachment: never taken over, never removed by a label
        if cur is None and new is not None:
            add.append(new)
        elif cur is not None and new is None:
            remove.append(cur)
        elif cur is not None and new is not None:
            if not same_place(cur, new):
                add.append(new)
            elif cur.via_label != new.via_label:
                relabel.append(replace(cur, via_label=new.via_label))
    return LabelPlan(tuple(add), tuple(remove), tuple(relabel))


def plan(
    store: Store,
    *,
    hosts: Collection[str] | None = None,
    networks: Collection[str] | None = None,
) -> LabelPlan:
    """The label changes the store calls for, within the given hosts and networks (all when
    None)."""
    nets = (
        [store.get_network(n) for n in networks] if networks is not None else store.list_networks()
    )
    total = LabelPlan()
    for net in nets:
        total += plan_network(store, net, store.list_attachments(network=net.name), hosts=hosts)
    return total


def check(store: Store, p: LabelPlan, nets: Mapping[str, LogicalNetwork] | None = None) -> None:
    """What the agent would refuse, checked against each host as it will be after the plan:
    one network per (NIC or bond, VLAN), isolated networks only for VM networks. ``nets``
    overrides store definitions about to change (``network update``)."""
    after: dict[str, dict[str, Attachment]] = {}
    for host in sorted({a.host for a in (*p.add, *p.remove)}):
        after[host] = {a.network: a for a in store.list_attachments(host=host)}
    for att in p.remove:
        after[att.host].pop(att.network, None)
    for att in p.add:
        after[att.host][att.network] = att
    known = dict(nets or {})

    def net(name: str) -> LogicalNetwork:
        if name not in known:
            known[name] = store.get_network(name)
        return known[name]

    for att in p.add:
        others = [(net(o.network), o) for o in after[att.host].values() if o.network != att.network]
        validation.check_attachment(net(att.network), att, others)


def _busy(network: str, host: str, ports: Sequence[str]) -> NetError:
    return NetError(
        ErrorKind.BAD_PARAMS,
        f"networks.{network}: removing it from host {host} is not permitted while VMs are "
        f"using it (bridge ports {', '.join(ports)})",
    )


def check_removals(store: Store, p: LabelPlan) -> None:
    """A label change never pulls a bridge from under VMs: a removal is refused while the
    host last reported VM ports on the network's bridge (refresh the hosts first)."""
    for att in p.remove:
        net = store.get_network(att.network)
        caps = {att.host: store.get_host(att.host).caps}
        ports = validation.vm_ports(
            net, validation.NetworkUsage(attachments=[att], host_caps=caps)
        ).get(att.host)
        if net.vm and ports:
            raise _busy(net.name, att.host, ports)


def check_update(
    old: LogicalNetwork, new: LogicalNetwork, use: validation.NetworkUsage, p: LabelPlan
) -> None:
    """Validation of ``network update`` when its label attachments change too: the usual
    checks over the attachments that stay in place; those the update removes or moves must
    carry no VM either."""
    if new.name != old.name and (use.attachments or use.vms):
        raise NetError(ErrorKind.BAD_PARAMS, validation.RENAME_REFUSED)
    moved = p.moved_hosts(new.name)
    staying = [a for a in use.attachments if a.host not in moved]
    going = [a for a in use.attachments if a.host in moved]
    validation.check_update(old, new, replace(use, attachments=staying))
    taps = validation.vm_ports(old, replace(use, attachments=going)) if old.vm else {}
    if not taps:
        return
    if not new.vm:
        raise NetError(ErrorKind.BAD_PARAMS, validation.VM_TO_NON_VM_REFUSED)
    removed = {a.host for a in p.remove}
    for host, ports in sorted(taps.items()):
        if host in removed:
            raise _busy(old.name, host, ports)
    raise NetError(ErrorKind.BAD_PARAMS, validation.RUNNING_VMS_REFUSED)


def record(store: Store, p: LabelPlan) -> None:
    """What changes in the store alone: relabelled attachments. New and moved ones are
    recorded when their host has applied them (``operations.mark``), removed ones are
    forgotten when their host has removed the network (docs/engine-cli.md)."""
    with store.transaction():
        for att in p.relabel:
            store.set_attachment(att)


# -- pushing the plan -------------------------------------------------------------------------


def _by_network(atts: Iterable[Attachment]) -> dict[str, list[Attachment]]:
    out: dict[str, list[Attachment]] = {}
    for att in atts:
        out.setdefault(att.network, []).append(att)
    return out


def remove_pushed(ctx: ops.Ctx, atts: Sequence[Attachment], cid: str) -> list[ops.Push]:
    """Remove label-made attachments from their hosts, one network at a time (an agent runs
    one setupNetworks at a time), hosts concurrently; forget those that are gone."""
    pushes = []
    for name, group in sorted(_by_network(atts).items()):
        net = ctx.store.get_network(name)
        pushed = ops.push(ctx, net, group, cid, remove=True)
        with ctx.store.transaction():
            if pushed.unsupported_dc is not None:
                for att in group:
                    ctx.store.remove_attachment(att.host, att.network)
            ops.mark(ctx, pushed, removed=True)
        pushes.append(pushed)
    return pushes


def provision_pushed(ctx: ops.Ctx, atts: Sequence[Attachment], cid: str) -> list[ops.Push]:
    """Send each network's full definition to the given attachments' hosts."""
    pushes = []
    for name, group in sorted(_by_network(atts).items()):
        net = ctx.store.get_network(name)
        pushed = ops.push(ctx, net, group, cid)
        ops.mark(ctx, pushed)
        pushes.append(pushed)
    return pushes


def apply(
    ctx: ops.Ctx,
    p: LabelPlan,
    cid: str,
    *,
    also: Mapping[str, Sequence[Attachment]] | None = None,
) -> list[ops.Push]:
    """Push the plan: removals first, then additions. ``also`` adds, per network, attachments
    whose definition changed (``network update``) to that network's provisioning push, so that
    one network's hosts are updated together."""
    extra = dict(also or {})
    pushes = remove_pushed(ctx, p.remove, cid)
    adds = _by_network(p.add)
    for name in sorted(adds.keys() | extra.keys()):
        group = [*extra.get(name, []), *adds.get(name, [])]
        if group:
            pushes.extend(provision_pushed(ctx, group, cid))
    return pushes
