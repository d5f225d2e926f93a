"""The routes of the oVirt API v4 networking subset (docs/rest.md) under ``/ovirt-engine/api``.

Reads build resources from one ``Fleet`` read of the store (``view``); changes run the
engine-client command that does the same from the command line (``actions``) and answer when
it has ended, with the resource as it then is, or with oVirt's fault.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from engine_client.models import Attachment, Host, LogicalNetwork
from engine_client.rest import doc, ids, search, view
from engine_client.rest.actions import Outcome
from engine_client.rest.app import (
    API_PREFIX,
    Fault,
    answer,
    bad_request,
    command_fault,
    correlation_id,
    not_found,
    server,
)
from engine_client.rest.doc import many
from engine_client.rest.view import Fleet

R = API_PREFIX


def _limit(request: web.Request, nodes: Sequence[doc.Node]) -> list[doc.Node]:
    text = request.query.get("max")
    if text is None:
        return list(nodes)
    try:
        count = int(text)
    except ValueError:
        raise bad_request(f"max: expected an integer, got {text!r}") from None
    return list(nodes) if count < 0 else list(nodes)[:count]


def _search(request: web.Request, keys: Mapping[str, str]) -> dict[str, str]:
    try:
        return search.parse(request.query.get("search", ""), keys)
    except search.BadSearch as exc:
        raise bad_request(str(exc)) from None


async def _done(request: web.Request, outcome: Outcome) -> Outcome:
    """After a change, the capabilities of the hosts it went to are read again (as oVirt's
    engine does after setupNetworks): in_sync is judged from what the hosts report now."""
    hosts = tuple(sorted({h["host"] for h in outcome.hosts()}))
    if hosts:
        await server(request).refresh(hosts)
    if not outcome.ok:
        raise command_fault(outcome)
    return outcome


async def _fleet(request: web.Request) -> Fleet:
    return await server(request).fleet()


def _host(fleet: Fleet, request: web.Request) -> Host:
    h = fleet.host(request.match_info["host"])
    if h is None:
        raise not_found(f"host {request.match_info['host']}")
    return h


def _network(fleet: Fleet, request: web.Request, key: str = "network") -> LogicalNetwork:
    n = fleet.network(request.match_info[key])
    if n is None:
        raise not_found(f"network {request.match_info[key]}")
    return n


def _nic(fleet: Fleet, h: Host, nic_id: str) -> tuple[str, Mapping[str, Any], bool]:
    for dev, entry, bond in view.nic_devices(h):
        if ids.nic(h.name, dev) == nic_id:
            return dev, entry, bond
    raise not_found(f"nic {nic_id} of host {h.name}")


def _attachment(fleet: Fleet, h: Host, att_id: str) -> Attachment:
    for att in fleet.attachments_of(h.name):
        if ids.attachment(att.host, att.network) == att_id:
            return att
    raise not_found(f"network attachment {att_id} of host {h.name}")


def _request_attachment(fleet: Fleet, h: Host, request: web.Request) -> Attachment:
    """The attachment the path names; under ``nics/{nic}`` only one on that NIC or bond (the
    SDK's ``nic_service(id).network_attachments_service().attachment_service(id)``)."""
    att = _attachment(fleet, h, request.match_info["attachment"])
    if "nic" in request.match_info:
        dev, _, _ = _nic(fleet, h, request.match_info["nic"])
        if att.southbound != dev:
            raise not_found(
                f"network attachment {request.match_info['attachment']} on nic {dev} "
                f"of host {h.name}"
            )
    return att


async def _body(request: web.Request, root: str) -> ET.Element:
    kind = doc.JSON if doc.JSON in request.headers.get("Content-Type", "") else doc.XML
    return doc.parse(await request.read(), kind, root)


# -- root, data centers, clusters ----------------------------------------------------------


async def get_api(request: web.Request) -> web.Response:
    return answer(request, view.api_root())


async def list_dcs(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    terms = _search(request, {"name": "name"})
    nodes = [view.data_center(d) for d in fleet.dcs if search.matches(terms, {"name": d.name})]
    return answer(request, many("data_centers", _limit(request, nodes)))


async def get_dc(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    dc = fleet.dc(request.match_info["dc"])
    if dc is None:
        raise not_found(f"data center {request.match_info['dc']}")
    return answer(request, view.data_center(dc))


async def list_dc_networks(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    dc = fleet.dc(request.match_info["dc"])
    if dc is None:
        raise not_found(f"data center {request.match_info['dc']}")
    nets = [view.network(n) for n in fleet.networks if n.dc == dc.name]
    return answer(request, many("networks", nets))


async def list_clusters(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    terms = _search(request, {"name": "name", "datacenter": "dc"})
    nodes = [
        view.cluster(d) for d in fleet.dcs if search.matches(terms, {"name": d.name, "dc": d.name})
    ]
    return answer(request, many("clusters", _limit(request, nodes)))


def _cluster_dc(fleet: Fleet, request: web.Request) -> str:
    dc = fleet.cluster(request.match_info["cluster"])
    if dc is None:
        raise not_found(f"cluster {request.match_info['cluster']}")
    return dc.name


async def get_cluster(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    name = _cluster_dc(fleet, request)
    return answer(request, view.cluster(next(d for d in fleet.dcs if d.name == name)))


async def list_cluster_networks(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    dc = _cluster_dc(fleet, request)
    nets = [view.network(n, in_cluster=True) for n in fleet.networks if n.dc == dc]
    return answer(request, many("networks", nets))


async def get_cluster_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    dc = _cluster_dc(fleet, request)
    net = _network(fleet, request)
    if net.dc != dc:
        raise not_found(f"network {request.match_info['network']} in this cluster")
    return answer(request, view.network(net, in_cluster=True))


async def add_cluster_network(request: web.Request) -> web.Response:
    """Every network of a data center is in its one cluster: assigning one that is there
    already is answered with it; one of another data center is refused."""
    fleet = await _fleet(request)
    dc = _cluster_dc(fleet, request)
    body = await _body(request, "network")
    name, ident = doc.value(body, "name"), doc.value(body, "id")
    net = fleet.network(ident) if ident else (fleet.net_named(name) if name else None)
    if net is None:
        raise not_found(f"network {ident or name}")
    if net.dc != dc:
        raise bad_request(f"network {net.name} is in data center {net.dc}, not {dc}")
    return answer(request, view.network(net, in_cluster=True), 201)


async def update_cluster_network(request: web.Request) -> web.Response:
    """A network's role in its cluster (what ovirt.ovirt's ``ovirt_network`` sends with
    ``clusters:``). engine-client's networks have none (not required, not display, migration
    or gluster): a body asking for what is already so is answered with the network; one
    asking for a role is refused, naming it."""
    fleet = await _fleet(request)
    dc = _cluster_dc(fleet, request)
    net = _network(fleet, request)
    if net.dc != dc:
        raise not_found(f"network {request.match_info['network']} in this cluster")
    body = await _body(request, "network")
    for flag in ("required", "display"):
        if doc.boolean(body, flag):
            raise bad_request(
                f"{flag}: engine-client's cluster networks are not {flag}, got true; "
                f"leave {flag} out or false"
            )
    roles = sorted(
        u.text or "" for u in doc.items(body, "usages") if (u.text or "") not in ("vm", "")
    )
    if roles:
        raise bad_request(
            f"usages: engine-client's cluster networks carry no {', '.join(roles)} role; "
            "only vm (a VM network, PUT networks/{id} to change it)"
        )
    return answer(request, view.network(net, in_cluster=True))


async def remove_cluster_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    dc = _cluster_dc(fleet, request)
    net = _network(fleet, request)
    if net.dc != dc:
        raise not_found(f"network {request.match_info['network']} in this cluster")
    raise bad_request(
        f"network {net.name}: every network of data center {dc} is in its one cluster; "
        "remove the network itself (DELETE networks/{id}) instead"
    )


# -- hosts and NICs ------------------------------------------------------------------------


async def list_hosts(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    terms = _search(request, {"name": "name", "datacenter": "dc", "cluster": "dc"})
    nodes = [
        view.host(fleet, h)
        for h in fleet.hosts
        if search.matches(terms, {"name": h.name, "dc": h.dc})
    ]
    return answer(request, many("hosts", _limit(request, nodes)))


async def get_host(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    return answer(request, view.host(fleet, _host(fleet, request)))


async def list_nics(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    nodes = [view.host_nic(fleet, h, dev, e, bond) for dev, e, bond in view.nic_devices(h)]
    return answer(request, many("host_nics", nodes))


async def get_nic(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    dev, entry, bond = _nic(fleet, h, request.match_info["nic"])
    return answer(request, view.host_nic(fleet, h, dev, entry, bond))


async def _agent_stats(request: web.Request, h: Host) -> Mapping[str, Any]:
    stats = await server(request).agent_call(h, "Host.getNetworkStatistics")
    if not isinstance(stats, Mapping):
        raise Fault(502, "Bad Gateway", f"host {h.name}: statistics are not an object")
    return stats


async def nic_statistics(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    dev, _, _ = _nic(fleet, h, request.match_info["nic"])
    counters = ((await _agent_stats(request, h)).get("interfaces") or {}).get(dev) or {}
    owner = view.nic_ref(h.name, dev)
    return answer(
        request, view.statistics(owner, ids.nic(h.name, dev), view.nic_href(h.name, dev), counters)
    )


async def attachment_statistics(request: web.Request) -> web.Response:
    """The "Isolated Networks" design's statistics of one network attachment: the counters
    of the network's top device on the host, as its agent reports them."""
    fleet = await _fleet(request)
    h = _host(fleet, request)
    att = _attachment(fleet, h, request.match_info["attachment"])
    counters = ((await _agent_stats(request, h)).get("networks") or {}).get(att.network)
    if counters is None:
        raise not_found(
            f"statistics of network {att.network} on host {h.name} (the host reports none)"
        )
    owner = doc.el(
        "network_attachment",
        id=ids.attachment(att.host, att.network),
        href=view.attachment_href(att.host, att.network),
    )
    return answer(
        request,
        view.statistics(
            owner,
            ids.attachment(att.host, att.network),
            view.attachment_href(att.host, att.network),
            counters,
        ),
    )


# -- network attachments -------------------------------------------------------------------


async def list_attachments(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    atts = fleet.attachments_of(h.name)
    if "nic" in request.match_info:
        dev, _, _ = _nic(fleet, h, request.match_info["nic"])
        atts = [a for a in atts if a.southbound == dev]
    nodes = [view.network_attachment(fleet, a) for a in atts]
    return answer(request, many("network_attachments", nodes))


async def get_attachment(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    return answer(request, view.network_attachment(fleet, _request_attachment(fleet, h, request)))


def _where(fleet: Fleet, h: Host, item: ET.Element) -> list[str]:
    """``--nic DEV``, ``--bond DEV`` or ``--isolated`` (no ``host_nic``: the "Isolated
    Networks" design's attachment without a NIC)."""
    nic = item.find("host_nic")
    if nic is None:
        return ["--isolated"]
    name, ident = doc.value(nic, "name"), doc.value(nic, "id")
    devices = {dev: bond for dev, _, bond in view.nic_devices(h)}
    if ident and not name:
        name = next((d for d in devices if ids.nic(h.name, d) == ident), None)
        if name is None:
            raise not_found(f"nic {ident} of host {h.name}")
    if not name:
        raise bad_request("host_nic: expected a name or an id")
    return ["--bond" if devices.get(name) else "--nic", name]


def _attachment_where(fleet: Fleet, h: Host, item: ET.Element) -> list[str]:
    """Where a modified attachment goes: its ``host_nic``; an existing attachment (named by
    its ``id``) sent without one keeps its place (a change of its IP settings only)."""
    ident = doc.value(item, "id")
    if item.find("host_nic") is None and ident:
        att = _attachment(fleet, h, ident)
        if att.nic is not None:
            return ["--nic", att.nic]
        if att.bond is not None:
            return ["--bond", att.bond]
    return _where(fleet, h, item)


def _ip_options(item: ET.Element) -> list[str]:
    """oVirt's ``ip_address_assignments`` of a network attachment as ``network attach``'s
    ``--ip ADDR/NETMASK [--gateway IP]`` or ``--dhcp`` (docs/rest.md). Left out, or only
    ``none``: no address, as oVirt gives an attachment whose IP configuration is not set. One
    address per attachment, as on the command line; the command checks the values."""
    chosen: list[tuple[str, ET.Element]] = []
    for assignment in doc.items(item, "ip_address_assignments"):
        method = doc.value(assignment, "assignment_method") or "none"
        ip = assignment.find("ip")
        version = doc.value(ip, "version") or "v4"
        if method == "none":
            continue
        if method not in ("static", "dhcp") or (method == "dhcp" and version != "v4"):
            raise bad_request(
                f"ip_address_assignments: assignment_method {method!r} for {version} is not "
                f"supported by engine-client; expected static (v4 or v6), dhcp (v4) or none"
            )
        chosen.append((method, assignment))
    if len(chosen) > 1:
        raise bad_request(
            "ip_address_assignments: engine-client gives an attachment one address (IPv4 or "
            f"IPv6, static or DHCP), got {len(chosen)} assignments"
        )
    if not chosen:
        return []
    method, assignment = chosen[0]
    if method == "dhcp":
        return ["--dhcp"]
    ip = assignment.find("ip")
    address, netmask = doc.value(ip, "address"), doc.value(ip, "netmask")
    if not address or not netmask:
        raise bad_request(
            "ip_address_assignments: a static assignment needs ip.address and ip.netmask "
            f"(a netmask or a prefix length), got address {address!r}, netmask {netmask!r}"
        )
    gateway = doc.value(ip, "gateway")
    return ["--ip", f"{address}/{netmask}", *(["--gateway", gateway] if gateway else [])]


def _attachment_network(fleet: Fleet, h: Host, item: ET.Element) -> LogicalNetwork:
    ident = doc.value(item, "id")
    if ident:
        return fleet.net_named(_attachment(fleet, h, ident).network)  # type: ignore[return-value]
    net_el = item.find("network")
    name, net_id = doc.value(net_el, "name"), doc.value(net_el, "id")
    net = fleet.network(net_id) if net_id else (fleet.net_named(name) if name else None)
    if net is None:
        raise (
            not_found(f"network {net_id or name}")
            if (net_id or name)
            else bad_request("network_attachment: expected a network (id or name)")
        )
    return net


async def add_attachment(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    body = await _body(request, "network_attachment")
    ip = _ip_options(body)
    net = _attachment_network(fleet, h, body)
    if "nic" in request.match_info and body.find("host_nic") is None:
        # POST under nics/{nic}: the attachment goes on that NIC or bond.
        dev, _, bond = _nic(fleet, h, request.match_info["nic"])
        where = ["--bond" if bond else "--nic", dev, *ip]
    else:
        where = [*_where(fleet, h, body), *ip]
    srv = server(request)
    await _done(
        request, await srv.commands.attach(net.name, h.name, where, correlation_id(request))
    )
    fleet = await _fleet(request)
    att = next(a for a in fleet.attachments_of(h.name) if a.network == net.name)
    return answer(request, view.network_attachment(fleet, att), 201)


def _place(att: Attachment) -> list[str]:
    if att.nic is not None:
        return ["--nic", att.nic]
    if att.bond is not None:
        return ["--bond", att.bond]
    return ["--isolated"]


def _current_ip(att: Attachment) -> list[str]:
    ip = att.ip
    if ip.method == "dhcp":
        return ["--dhcp"]
    if ip.method == "static" and ip.address is not None:
        return ["--ip", ip.address, *(["--gateway", ip.gateway] if ip.gateway else [])]
    return []


async def update_attachment(request: web.Request) -> web.Response:
    """PUT of one attachment (the SDK's ``attachment_service(id).update``, what ovirt.ovirt's
    ``ovirt_host_network`` sends to change an attached network's address): ``network attach``
    again on that host. As any oVirt update, what the body leaves out is kept: the place (unless
    ``host_nic`` names another NIC or bond) and the IP settings (unless the body has
    ``ip_address_assignments``)."""
    fleet = await _fleet(request)
    h = _host(fleet, request)
    att = _request_attachment(fleet, h, request)
    body = await _body(request, "network_attachment")
    where = _place(att) if body.find("host_nic") is None else _where(fleet, h, body)
    ip = _current_ip(att) if body.find("ip_address_assignments") is None else _ip_options(body)
    srv = server(request)
    await _done(
        request,
        await srv.commands.attach(att.network, h.name, [*where, *ip], correlation_id(request)),
    )
    fleet = await _fleet(request)
    now = next(a for a in fleet.attachments_of(h.name) if a.network == att.network)
    return answer(request, view.network_attachment(fleet, now))


async def remove_attachment(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    att = _request_attachment(fleet, h, request)
    await _done(
        request, await server(request).commands.detach(att.network, h.name, correlation_id(request))
    )
    return web.Response(status=200)


# -- host actions --------------------------------------------------------------------------


def _action(status: str = "complete") -> doc.Node:
    return doc.el("action", doc.leaf("status", status))


async def setup_networks(request: web.Request) -> web.Response:
    """oVirt's ``setupnetworks`` as a sequence of engine-client commands on this host, all
    with one correlation id: detaches, attaches (modified_network_attachments; one without
    ``host_nic`` is an isolated network), label changes, then syncs. Every item is resolved
    before anything runs; the first command that fails ends the action with a fault."""
    fleet = await _fleet(request)
    h = _host(fleet, request)
    body = await _body(request, "action")
    for unsupported in ("modified_bonds", "removed_bonds"):
        if doc.items(body, unsupported):
            raise bad_request(
                f"{unsupported}: bonds are not changed by engine-client; "
                f"attach networks to a bond the host already has"
            )
    steps: list[tuple[str, tuple[Any, ...]]] = []
    for item in doc.items(body, "removed_network_attachments"):
        att = _attachment(fleet, h, doc.value(item, "id") or "")
        steps.append(("detach", (att.network, h.name)))
    for item in doc.items(body, "modified_network_attachments"):
        ip = _ip_options(item)
        net = _attachment_network(fleet, h, item)
        steps.append(("attach", (net.name, h.name, [*_attachment_where(fleet, h, item), *ip])))
    for item in doc.items(body, "removed_labels"):
        label = doc.value(item, "id") or doc.value(item, "name") or ""
        nic_el = item.find("host_nic")
        on = [nl.nic for nl in fleet.nic_labels if nl.host == h.name and nl.label == label]
        nic = _where(fleet, h, item)[1] if nic_el is not None else (on[0] if on else None)
        steps.append(("label_remove", (h.name, label, nic)))
    for item in doc.items(body, "modified_labels"):
        label = doc.value(item, "id") or doc.value(item, "name") or ""
        nic = _where(fleet, h, item)[1] if item.find("host_nic") is not None else None
        steps.append(("label_add", (h.name, label, nic)))
    for item in doc.items(body, "synchronized_network_attachments"):
        att = _attachment(fleet, h, doc.value(item, "id") or "")
        steps.append(("sync", (h.name, att.network)))
    cid = correlation_id(request)
    commands = server(request).commands
    options = []
    timeout = doc.integer(body, "connectivity_timeout")
    if timeout is not None:
        options = ["--timeout", str(timeout)]
    for name, args in steps:
        if name == "attach" and options:
            outcome = await commands.run(
                "network", "attach", args[0], args[1], *args[2], *options, correlation_id=cid
            )
        else:
            outcome = await getattr(commands, name)(*args, cid)
        await _done(request, outcome)
    return answer(request, _action())


async def sync_all_networks(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    await _done(request, await server(request).commands.sync(h.name, None, correlation_id(request)))
    return answer(request, _action())


async def commit_net_config(request: web.Request) -> web.Response:
    """Asks the host's agent to save its running configuration (``Host.setSafeNetworkConfig``;
    engine-client's changes are already saved on success with ``commitOnSuccess``)."""
    fleet = await _fleet(request)
    h = _host(fleet, request)
    await server(request).agent_call(h, "Host.setSafeNetworkConfig", correlation_id(request))
    return answer(request, _action())


async def refresh_host(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    await server(request).refresh((h.name,))
    return answer(request, _action())


# -- networks ------------------------------------------------------------------------------


async def list_networks(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    terms = _search(request, {"name": "name", "datacenter": "dc", "datacenter.name": "dc"})
    nodes = [
        view.network(n)
        for n in fleet.networks
        if search.matches(terms, {"name": n.name, "dc": n.dc})
    ]
    return answer(request, many("networks", _limit(request, nodes)))


async def get_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    return answer(request, view.network(_network(fleet, request)))


def _usages_vm(body: ET.Element) -> bool | None:
    usages = body.find("usages")
    if usages is None:
        return None
    return any((u.text or "").strip() == "vm" for u in usages)


def _vlan(body: ET.Element) -> tuple[bool, int | None]:
    """(given, id): ``<vlan id="N"/>`` sets a tag, ``<vlan/>`` removes it."""
    vlan = body.find("vlan")
    if vlan is None:
        return False, None
    return True, doc.integer(vlan, "id")


async def add_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    body = await _body(request, "network")
    name = doc.value(body, "name")
    if not name:
        raise bad_request("network: name is required")
    dc_el = body.find("data_center")
    dc_id, dc_name = doc.value(dc_el, "id"), doc.value(dc_el, "name")
    dc = fleet.dc(dc_id) if dc_id else next((d for d in fleet.dcs if d.name == dc_name), None)
    if dc is None:
        if dc_id or dc_name:
            raise not_found(f"data center {dc_id or dc_name}")
        raise bad_request("network: data_center (id or name) is required")
    _, vlan = _vlan(body)
    vm = _usages_vm(body)
    mtu = doc.integer(body, "mtu")
    outcome = await server(request).commands.network_add(
        name, dc.name, vlan, mtu or None, True if vm is None else vm, correlation_id(request)
    )
    await _done(request, outcome)
    fleet = await _fleet(request)
    net = fleet.net_named(name)
    assert net is not None
    return answer(request, view.network(net), 201)


async def update_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    net = _network(fleet, request)
    body = await _body(request, "network")
    changes: list[str] = []
    name = doc.value(body, "name")
    if name and name != net.name:
        changes += ["--rename", name]
    given, vlan = _vlan(body)
    if given and vlan != net.vlan:
        changes += ["--no-vlan"] if vlan is None else ["--vlan", str(vlan)]
    mtu = doc.integer(body, "mtu")
    if mtu and mtu != net.mtu:  # oVirt's 0 is "the default": no change here
        changes += ["--mtu", str(mtu)]
    vm = _usages_vm(body)
    if vm is not None and vm != net.vm:
        changes.append("--vm" if vm else "--no-vm")
    cmds = server(request).commands
    await _done(request, await cmds.network_update(net.name, changes, correlation_id(request)))
    fleet = await _fleet(request)
    now = fleet.net_named(name or net.name)
    assert now is not None
    return answer(request, view.network(now))


async def remove_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    net = _network(fleet, request)
    await _done(
        request, await server(request).commands.network_remove(net.name, correlation_id(request))
    )
    return web.Response(status=200)


# -- labels --------------------------------------------------------------------------------


def _label_of(body: ET.Element) -> str:
    label = doc.value(body, "id") or doc.value(body, "name")
    if not label:
        raise bad_request("network_label: expected an id (the label)")
    return label


async def list_network_labels(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    net = _network(fleet, request)
    href = view.network_href(net.name)
    labels = [net.label] if net.label else []
    nodes = [view.network_label(lb, view.network_ref(net.name), href) for lb in labels]
    return answer(request, many("network_labels", nodes))


async def get_network_label(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    net = _network(fleet, request)
    label = request.match_info["label"]
    if net.label != label:
        raise not_found(f"label {label} of network {net.name}")
    href = view.network_href(net.name)
    return answer(request, view.network_label(label, view.network_ref(net.name), href))


async def add_network_label(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    net = _network(fleet, request)
    label = _label_of(await _body(request, "network_label"))
    cmds = server(request).commands
    await _done(
        request, await cmds.network_update(net.name, ["--label", label], correlation_id(request))
    )
    href = view.network_href(net.name)
    return answer(request, view.network_label(label, view.network_ref(net.name), href), 201)


async def remove_network_label(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    net = _network(fleet, request)
    label = request.match_info["label"]
    if net.label != label:
        raise not_found(f"label {label} of network {net.name}")
    cmds = server(request).commands
    await _done(
        request, await cmds.network_update(net.name, ["--no-label"], correlation_id(request))
    )
    return web.Response(status=200)


def _label_owner(fleet: Fleet, request: web.Request) -> tuple[Host, str | None]:
    h = _host(fleet, request)
    if "nic" not in request.match_info:
        return h, None
    dev, _, _ = _nic(fleet, h, request.match_info["nic"])
    return h, dev


def _labels(fleet: Fleet, h: Host, nic: str | None) -> list[str]:
    if nic is None:
        return [hl.label for hl in fleet.host_labels if hl.host == h.name]
    return [nl.label for nl in fleet.nic_labels if nl.host == h.name and nl.nic == nic]


def _label_node(h: Host, nic: str | None, label: str) -> doc.Node:
    if nic is None:
        return view.network_label(label, view.host_ref(h.name), view.host_href(h.name))
    return view.network_label(label, view.nic_ref(h.name, nic), view.nic_href(h.name, nic))


async def list_unmanaged_networks(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    nodes = view.unmanaged_networks(fleet, _host(fleet, request))
    return answer(request, many("unmanaged_networks", nodes))


async def get_unmanaged_network(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h = _host(fleet, request)
    wanted = request.match_info["unmanaged"]
    for node in view.unmanaged_networks(fleet, h):
        if node.attrs["id"] == wanted:
            return answer(request, node)
    raise not_found(f"unmanaged network {wanted} of host {h.name}")


async def list_host_labels(request: web.Request) -> web.Response:
    """``hosts/{id}/networklabels`` (host labels, the "Isolated Networks" design) and
    ``hosts/{id}/nics/{id}/networklabels`` (NIC labels)."""
    fleet = await _fleet(request)
    h, nic = _label_owner(fleet, request)
    nodes = [_label_node(h, nic, lb) for lb in _labels(fleet, h, nic)]
    return answer(request, many("network_labels", nodes))


async def get_host_label(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h, nic = _label_owner(fleet, request)
    label = request.match_info["label"]
    if label not in _labels(fleet, h, nic):
        raise not_found(f"label {label} of {'host ' + h.name if nic is None else 'nic ' + nic}")
    return answer(request, _label_node(h, nic, label))


async def add_host_label(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h, nic = _label_owner(fleet, request)
    label = _label_of(await _body(request, "network_label"))
    await _done(
        request,
        await server(request).commands.label_add(h.name, label, nic, correlation_id(request)),
    )
    return answer(request, _label_node(h, nic, label), 201)


async def remove_host_label(request: web.Request) -> web.Response:
    fleet = await _fleet(request)
    h, nic = _label_owner(fleet, request)
    label = request.match_info["label"]
    if label not in _labels(fleet, h, nic):
        raise not_found(f"label {label} of {'host ' + h.name if nic is None else 'nic ' + nic}")
    cmds = server(request).commands
    await _done(request, await cmds.label_remove(h.name, label, nic, correlation_id(request)))
    return web.Response(status=200)


# -- events --------------------------------------------------------------------------------


async def list_events(request: web.Request) -> web.Response:
    """Newest first, as oVirt answers; ``max=N`` the latest N, ``from=ID`` those after ID."""
    text = request.query.get("max")
    limit = None
    if text is not None:
        try:
            limit = int(text)
        except ValueError:
            raise bad_request(f"max: expected an integer, got {text!r}") from None
    after = request.query.get("from")
    if after is not None and not after.isdigit():
        raise bad_request(f"from: expected an event id, got {after!r}")
    srv = server(request)
    events = await srv.reader.read(lambda s: s.list_events())
    hosts = {h.name: h for h in (await _fleet(request)).hosts}
    chosen = [e for e in reversed(events) if after is None or e.id > int(after)]
    if limit is not None and limit >= 0:
        chosen = chosen[:limit]
    return answer(request, many("events", [view.event(e, hosts) for e in chosen]))


async def get_event(request: web.Request) -> web.Response:
    ident = request.match_info["event"]
    events = await server(request).reader.read(lambda s: s.list_events())
    found = next((e for e in events if str(e.id) == ident), None)
    if found is None:
        raise not_found(f"event {ident}")
    hosts = {h.name: h for h in (await _fleet(request)).hosts}
    return answer(request, view.event(found, hosts))


def add_routes(router: web.UrlDispatcher) -> None:
    h = f"{R}/hosts/{{host}}"
    nic = f"{h}/nics/{{nic}}"
    att = f"{h}/networkattachments"
    net = f"{R}/networks/{{network}}"
    table = [
        ("GET", R, get_api),
        ("GET", f"{R}/", get_api),
        ("GET", f"{R}/datacenters", list_dcs),
        ("GET", f"{R}/datacenters/{{dc}}", get_dc),
        ("GET", f"{R}/datacenters/{{dc}}/networks", list_dc_networks),
        ("GET", f"{R}/clusters", list_clusters),
        ("GET", f"{R}/clusters/{{cluster}}", get_cluster),
        ("GET", f"{R}/clusters/{{cluster}}/networks", list_cluster_networks),
        ("POST", f"{R}/clusters/{{cluster}}/networks", add_cluster_network),
        ("GET", f"{R}/clusters/{{cluster}}/networks/{{network}}", get_cluster_network),
        ("PUT", f"{R}/clusters/{{cluster}}/networks/{{network}}", update_cluster_network),
        ("DELETE", f"{R}/clusters/{{cluster}}/networks/{{network}}", remove_cluster_network),
        ("GET", f"{R}/hosts", list_hosts),
        ("GET", h, get_host),
        ("GET", f"{h}/nics", list_nics),
        ("GET", nic, get_nic),
        ("GET", f"{nic}/statistics", nic_statistics),
        ("GET", f"{nic}/networkattachments", list_attachments),
        ("POST", f"{nic}/networkattachments", add_attachment),
        ("GET", f"{nic}/networkattachments/{{attachment}}", get_attachment),
        ("PUT", f"{nic}/networkattachments/{{attachment}}", update_attachment),
        ("DELETE", f"{nic}/networkattachments/{{attachment}}", remove_attachment),
        ("GET", f"{nic}/networklabels", list_host_labels),
        ("POST", f"{nic}/networklabels", add_host_label),
        ("GET", f"{nic}/networklabels/{{label}}", get_host_label),
        ("DELETE", f"{nic}/networklabels/{{label}}", remove_host_label),
        ("GET", att, list_attachments),
        ("POST", att, add_attachment),
        ("GET", f"{att}/{{attachment}}", get_attachment),
        ("PUT", f"{att}/{{attachment}}", update_attachment),
        ("DELETE", f"{att}/{{attachment}}", remove_attachment),
        ("GET", f"{att}/{{attachment}}/statistics", attachment_statistics),
        ("GET", f"{h}/networklabels", list_host_labels),
        ("POST", f"{h}/networklabels", add_host_label),
        ("GET", f"{h}/networklabels/{{label}}", get_host_label),
        ("DELETE", f"{h}/networklabels/{{label}}", remove_host_label),
        ("GET", f"{h}/unmanagednetworks", list_unmanaged_networks),
        ("GET", f"{h}/unmanagednetworks/{{unmanaged}}", get_unmanaged_network),
        ("POST", f"{h}/setupnetworks", setup_networks),
        ("POST", f"{h}/syncallnetworks", sync_all_networks),
        ("POST", f"{h}/commitnetconfig", commit_net_config),
        ("POST", f"{h}/refresh", refresh_host),
        ("GET", f"{R}/networks", list_networks),
        ("POST", f"{R}/networks", add_network),
        ("GET", net, get_network),
        ("PUT", net, update_network),
        ("DELETE", net, remove_network),
        ("GET", f"{net}/networklabels", list_network_labels),
        ("POST", f"{net}/networklabels", add_network_label),
        ("GET", f"{net}/networklabels/{{label}}", get_network_label),
        ("DELETE", f"{net}/networklabels/{{label}}", remove_network_label),
        ("GET", f"{R}/events", list_events),
        ("GET", f"{R}/events/{{event}}", get_event),
    ]
    for method, path, handler in table:
        router.add_route(method, path, handler)
