"""Store records as oVirt API v4 resources (``doc.Node`` trees), pure: one ``Fleet`` read from
the store, no I/O here. Element names follow oVirt's API model (``types/Network.java``,
``NetworkAttachment.java``, ``HostNic.java``, ...) as the SDK's readers expect them."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from engine_client.insync import judge
from engine_client.models import (
    Attachment,
    DataCenter,
    Event,
    Host,
    HostLabel,
    IpSettings,
    LogicalNetwork,
    NicLabel,
)
from engine_client.rest import ids
from engine_client.rest.doc import Node, el, leaf, many

API = "/ovirt-engine/api"
PRODUCT = "vdsm-net engine-client"
API_VERSION = (4, 6, 0)


@dataclass(frozen=True)
class Reach:
    """What the server's last capabilities read of a host found."""

    reachable: bool
    error: str | None = None


@dataclass(frozen=True)
class Fleet:
    """One consistent read of the store."""

    dcs: Sequence[DataCenter]
    hosts: Sequence[Host]
    networks: Sequence[LogicalNetwork]
    attachments: Sequence[Attachment]
    host_labels: Sequence[HostLabel]
    nic_labels: Sequence[NicLabel]
    reach: Mapping[str, Reach] = field(default_factory=dict)

    def host(self, host_id: str) -> Host | None:
        return next((h for h in self.hosts if ids.host(h.name) == host_id), None)

    def network(self, net_id: str) -> LogicalNetwork | None:
        return next((n for n in self.networks if ids.network(n.name) == net_id), None)

    def dc(self, dc_id: str) -> DataCenter | None:
        return next((d for d in self.dcs if ids.dc(d.name) == dc_id), None)

    def cluster(self, cluster_id: str) -> DataCenter | None:
        return next((d for d in self.dcs if ids.cluster(d.name) == cluster_id), None)

    def net_named(self, name: str) -> LogicalNetwork | None:
        return next((n for n in self.networks if n.name == name), None)

    def attachments_of(self, host: str) -> list[Attachment]:
        return [a for a in self.attachments if a.host == host]


# -- hrefs ---------------------------------------------------------------------------------


def dc_href(name: str) -> str:
    return f"{API}/datacenters/{ids.dc(name)}"


def cluster_href(dc: str) -> str:
    return f"{API}/clusters/{ids.cluster(dc)}"


def host_href(name: str) -> str:
    return f"{API}/hosts/{ids.host(name)}"


def network_href(name: str) -> str:
    return f"{API}/networks/{ids.network(name)}"


def nic_href(host: str, dev: str) -> str:
    return f"{host_href(host)}/nics/{ids.nic(host, dev)}"


def attachment_href(host: str, network: str) -> str:
    return f"{host_href(host)}/networkattachments/{ids.attachment(host, network)}"


def _ref(tag: str, ident: str, href: str) -> Node:
    return el(tag, id=ident, href=href)


def dc_ref(name: str) -> Node:
    return _ref("data_center", ids.dc(name), dc_href(name))


def cluster_ref(dc: str) -> Node:
    return _ref("cluster", ids.cluster(dc), cluster_href(dc))


def host_ref(name: str) -> Node:
    return _ref("host", ids.host(name), host_href(name))


def network_ref(name: str) -> Node:
    return _ref("network", ids.network(name), network_href(name))


def nic_ref(host: str, dev: str) -> Node:
    return el("host_nic", leaf("name", dev), id=ids.nic(host, dev), href=nic_href(host, dev))


def link(href: str, rel: str) -> Node:
    return el("link", href=f"{href}/{rel}", rel=rel)


# -- resources ----------------------------------------------------------------------------


def _version(text: str) -> Node:
    parts = [*text.split("."), "0"]
    return el("version", leaf("major", parts[0]), leaf("minor", parts[1]))


def api_root() -> Node:
    major, minor, rev = API_VERSION
    rels = ["clusters", "datacenters", "events", "hosts", "networks"]
    return el(
        "api",
        *(el("link", href=f"{API}/{r}", rel=r) for r in rels),
        el(
            "product_info",
            leaf("instance_id", ids.dc("")),
            leaf("name", PRODUCT),
            leaf("vendor", "vdsm-net"),
            el(
                "version",
                leaf("build", 0),
                leaf("full_version", f"{major}.{minor}.{rev}"),
                leaf("major", major),
                leaf("minor", minor),
                leaf("revision", rev),
            ),
        ),
        leaf("time", dt.datetime.now().astimezone().isoformat(timespec="milliseconds")),
    )


def data_center(dc: DataCenter) -> Node:
    href = dc_href(dc.name)
    return el(
        "data_center",
        link(href, "clusters"),
        link(href, "networks"),
        leaf("name", dc.name),
        leaf("local", False),
        leaf("status", "up"),
        _version(dc.version),
        id=ids.dc(dc.name),
        href=href,
    )


def cluster(dc: DataCenter) -> Node:
    """Each data center has one cluster of the same name holding all its hosts."""
    href = cluster_href(dc.name)
    return el(
        "cluster",
        link(href, "networks"),
        leaf("name", dc.name),
        _version(dc.version),
        dc_ref(dc.name),
        id=ids.cluster(dc.name),
        href=href,
    )


def host_status(fleet: Fleet, host: Host) -> str:
    reach = fleet.reach.get(host.name)
    if reach is not None:
        return "up" if reach.reachable else "non_responsive"
    return "up" if host.caps else "unassigned"


def host(fleet: Fleet, h: Host) -> Node:
    href = host_href(h.name)
    address = urlsplit(h.url).hostname if not h.url.startswith("unix:") else "localhost"
    return el(
        "host",
        *(link(href, r) for r in ("networkattachments", "networklabels", "nics")),
        leaf("address", address),
        leaf("name", h.name),
        leaf("status", host_status(fleet, h)),
        leaf("status_detail", (fleet.reach.get(h.name) or Reach(True)).error),
        el("version", leaf("full_version", h.agent_version)) if h.agent_version else None,
        cluster_ref(h.dc),
        id=ids.host(h.name),
        href=href,
    )


def _usages(net: LogicalNetwork) -> Node:
    return many("usages", [Node("usage", {}, "vm")] if net.vm else [])


def network(net: LogicalNetwork, *, in_cluster: bool = False) -> Node:
    href = network_href(net.name)
    return el(
        "network",
        link(href, "networklabels"),
        leaf("name", net.name),
        leaf("mtu", net.mtu),
        leaf("required", False) if in_cluster else None,
        leaf("status", "operational"),
        leaf("stp", False),
        _usages(net),
        el("vlan", id=net.vlan) if net.vlan is not None else None,
        cluster_ref(net.dc) if in_cluster else None,
        dc_ref(net.dc),
        id=ids.network(net.name),
        href=href,
    )


def nic_devices(h: Host) -> list[tuple[str, Mapping[str, Any], bool]]:
    """(name, capabilities entry, is a bond) for every NIC and bond the host reports."""
    caps = h.caps
    nics = caps.get("nics") or {}
    bonds = caps.get("bondings") or {}
    out = [(n, e, False) for n, e in sorted(nics.items()) if isinstance(e, Mapping)]
    return out + [(n, e, True) for n, e in sorted(bonds.items()) if isinstance(e, Mapping)]


def host_nic(fleet: Fleet, h: Host, dev: str, entry: Mapping[str, Any], bond: bool) -> Node:
    href = nic_href(h.name, dev)
    untagged = [
        a
        for a in fleet.attachments_of(h.name)
        if a.southbound == dev and (n := fleet.net_named(a.network)) is not None and n.vlan is None
    ]
    speed = entry.get("speed")
    bonding = None
    if bond:
        slaves = entry.get("slaves") or []
        opts = entry.get("opts") or {}
        bonding = el(
            "bonding",
            many(
                "options",
                [el("option", leaf("name", k), leaf("value", v)) for k, v in sorted(opts.items())],
            ),
            many("slaves", [nic_ref(h.name, s) for s in slaves]),
        )
    state = entry.get("operstate")
    return el(
        "host_nic",
        link(href, "networkattachments"),
        link(href, "networklabels"),
        link(href, "statistics"),
        bonding,
        el("mac", leaf("address", entry.get("hwaddr"))) if entry.get("hwaddr") else None,
        leaf("mtu", entry.get("mtu")),
        leaf("name", dev),
        # oVirt's speed is in bits per second; the agent reports the kernel's Mbit/s.
        leaf("speed", speed * 1_000_000) if isinstance(speed, int) and speed > 0 else None,
        leaf("status", "down" if state == "down" else "up") if state is not None or bond else None,
        host_ref(h.name),
        network_ref(untagged[0].network) if untagged else None,
        id=ids.nic(h.name, dev),
        href=href,
    )


REPORTED = ("mtu", "bridged", "vlan", "nic", "ipv4_boot_protocol", "ipv6_boot_protocol")


def ip_address_assignments(ip: IpSettings) -> Node:
    """oVirt's ``ip_address_assignments`` of an attachment: one for IPv4, one for IPv6; a
    static address as ``ip`` with ``address``, ``netmask`` (dotted for IPv4, the prefix length
    for IPv6, as oVirt writes them), ``gateway`` and ``version``."""
    nodes = []
    for version, method in zip(("v4", "v6"), ip.boot_protocols, strict=True):
        if method == "static" and ip.address is not None:
            iface = ipaddress.ip_interface(ip.address)
            netmask = iface.netmask if iface.version == 4 else iface.network.prefixlen
            addr = el(
                "ip",
                leaf("address", iface.ip.compressed),
                leaf("gateway", ip.gateway),
                leaf("netmask", netmask),
                leaf("version", version),
            )
        else:
            addr = el("ip", leaf("version", version))
        nodes.append(el("ip_address_assignment", leaf("assignment_method", method), addr))
    return many("ip_address_assignments", nodes)


def reported(net: LogicalNetwork, att: Attachment, caps: Mapping[str, Any]) -> tuple[bool, Node]:
    """(in sync, ``reported_configurations``): each value the host must have, expected and
    found (what differs comes from ``insync.judge``, the one meaning of in sync)."""
    verdict = judge(net, att, caps)
    diff = {d.key: (d.expected, d.found) for d in verdict.differences}
    expected: dict[str, Any] = {
        "mtu": net.mtu,
        "bridged": net.vm,
        "vlan": net.vlan if att.southbound else None,
        "nic": att.southbound,
    }
    expected["ipv4_boot_protocol"], expected["ipv6_boot_protocol"] = att.ip.boot_protocols
    configs = []
    for key in (*REPORTED, *(k for k in diff if k not in REPORTED)):
        want, got = diff.get(key, (expected.get(key), expected.get(key)))
        configs.append(
            el(
                "reported_configuration",
                leaf("actual_value", "" if got is None else got),
                leaf("expected_value", "" if want is None else want),
                leaf("in_sync", key not in diff),
                leaf("name", key),
            )
        )
    return verdict.in_sync, many("reported_configurations", configs)


def network_attachment(fleet: Fleet, att: Attachment) -> Node:
    h = next(x for x in fleet.hosts if x.name == att.host)
    net = fleet.net_named(att.network)
    assert net is not None  # an attachment's network is in the store (foreign key)
    sync, configs = reported(net, att, h.caps)
    href = attachment_href(att.host, att.network)
    return el(
        "network_attachment",
        link(href, "statistics"),
        leaf("in_sync", sync),
        ip_address_assignments(att.ip),
        configs,
        leaf("comment", f"attached by label {att.via_label}") if att.via_label else None,
        leaf("description", att.last_error) if att.last_error else None,
        host_ref(att.host),
        nic_ref(att.host, att.southbound) if att.southbound else None,
        network_ref(att.network),
        id=ids.attachment(att.host, att.network),
        href=href,
    )


def unmanaged_networks(fleet: Fleet, h: Host) -> list[Node]:
    """oVirt's unmanaged networks of a host: the networks its latest capabilities report that
    the store does not attach there (made behind the engine's back, or left by a host that
    was forgotten and added again), with the NIC or bond under each when the host has it."""
    attached = {a.network for a in fleet.attachments_of(h.name)}
    devices = {dev for dev, _, _ in nic_devices(h)}
    nodes = []
    for name, entry in sorted((h.caps.get("networks") or {}).items()):
        if name in attached or not isinstance(entry, Mapping):
            continue
        south = entry.get("southbound") or ""
        base = south if south in devices else south.rpartition(".")[0]
        href = f"{host_href(h.name)}/unmanagednetworks/{ids.unmanaged_network(h.name, name)}"
        nodes.append(
            el(
                "unmanaged_network",
                leaf("name", name),
                host_ref(h.name),
                nic_ref(h.name, base) if base in devices else None,
                id=ids.unmanaged_network(h.name, name),
                href=href,
            )
        )
    return nodes


def network_label(label: str, owner: Node, href: str) -> Node:
    return el("network_label", owner, id=label, href=f"{href}/networklabels/{label}")


def statistics(owner: Node, owner_id: str, href: str, counters: Mapping[str, Any]) -> Node:
    """oVirt's NIC statistics (``types/HostNic.java``): totals as counters."""
    rows = (
        ("data.total.rx", "Total received data", "rx", "bytes"),
        ("data.total.tx", "Total transmitted data", "tx", "bytes"),
        ("errors.total.rx", "Total errors from receiving data", "rxErrors", "none"),
        ("errors.total.tx", "Total errors from transmitting data", "txErrors", "none"),
        ("dropped.total.rx", "Total received packets dropped", "rxDropped", "none"),
        ("dropped.total.tx", "Total transmitted packets dropped", "txDropped", "none"),
    )
    out = []
    for name, text, key, unit in rows:
        if key not in counters:
            continue
        sid = ids.statistic(owner_id, name)
        out.append(
            el(
                "statistic",
                leaf("name", name),
                leaf("description", text),
                leaf("kind", "counter"),
                leaf("type", "integer"),
                leaf("unit", unit),
                many("values", [el("value", leaf("datum", counters[key]))]),
                owner,
                id=sid,
                href=f"{href}/statistics/{sid}",
            )
        )
    return many("statistics", out)


SEVERITY = {"info": "normal", "warning": "warning", "error": "error"}


def event(e: Event, hosts: Mapping[str, Host]) -> Node:
    when = dt.datetime.fromtimestamp(e.time).astimezone().isoformat(timespec="milliseconds")
    return el(
        "event",
        leaf("description", e.message),
        leaf("code", 0),
        leaf("correlation_id", e.correlation_id),
        leaf("origin", "engine-client"),
        leaf("severity", SEVERITY.get(e.severity, "normal")),
        leaf("time", when),
        host_ref(e.host) if e.host is not None and e.host in hosts else None,
        id=e.id,
        href=f"{API}/events/{e.id}",
    )
