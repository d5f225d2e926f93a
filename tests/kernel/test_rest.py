"""``engine-client serve`` driven by the real oVirt Python SDK (``ovirtsdk4``) against real
agents in network namespaces (tests/cluster.py): every change is checked in what the hosts'
kernels report (``ip -d -j link``), every answer through the SDK's own readers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as t
import pytest

from tests.cluster import DC, Cluster, kind, ports_of, running_cluster
from tests.rest_helpers import Served, add_user, serving


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(("h1", "h2"), nics=("eth1", "eth2")) as c:
        add_user(c)
        yield c


def _bridge(cluster: Cluster, host: str, name: str) -> dict[str, Any] | None:
    return cluster.node(host).links().get(name)


def _ipv4(cluster: Cluster, host: str, dev: str) -> list[str]:
    # `ip -4 addr show dev X` lists no link at all when X has no IPv4 address.
    links = cluster.node(host).ns.ip_json("-4", "addr", "show", "dev", dev)
    return [f"{a['local']}/{a['prefixlen']}" for link in links
            for a in link.get("addr_info", []) if a.get("scope") == "global"]


def test_sdk_reads_changes_and_kernels_follow(cluster: Cluster) -> None:
    with serving(cluster) as served:
        served.ns.run(_sdk_tour, cluster, served)


def _sdk_tour(cluster: Cluster, served: Served) -> None:
    cluster.cli("network", "add", "red", "--dc", DC)
    for host in ("h1", "h2"):
        cluster.cli("network", "attach", "red", host, "--nic", "eth1")
    conn = served.connection()
    system = conn.system_service()
    assert system.get().product_info.version.major == 4
    assert [d.name for d in system.data_centers_service().list()] == [DC]
    [cluster_] = system.clusters_service().list()
    assert cluster_.name == DC
    hosts = system.hosts_service()
    assert sorted(h.name for h in hosts.list()) == ["h1", "h2"]
    [h1] = hosts.list(search="name=h1")
    h1_service = hosts.host_service(h1.id)
    assert h1_service.get().address == cluster.node("h1").addr

    nets = system.networks_service()
    [red] = nets.list(search="name=red")
    assert red.mtu == 1500 and red.vlan is None and red.usages == [t.NetworkUsage.VM]
    assert [n.id for n in nets.list(search=f'name="red" and datacenter="{DC}"')] == [red.id]
    assert nets.list(search='name="red" and datacenter="elsewhere"') == []
    cluster_nets = system.clusters_service().cluster_service(cluster_.id).networks_service()
    assert [n.name for n in cluster_nets.list()] == ["red"]
    # ovirt.ovirt's ovirt_network with clusters: a PUT of the cluster network's role. Not
    # required, no display role: what is already so is answered; a role is refused, named.
    cluster_net = cluster_nets.network_service(red.id)
    same = cluster_net.update(t.Network(id=red.id, name="red", required=False))
    assert same.name == "red" and same.required is False
    for asked, named in ((t.Network(required=True), "required"),
                         (t.Network(usages=[t.NetworkUsage.MIGRATION]), "migration")):
        with pytest.raises(sdk.Error) as refused:
            cluster_net.update(asked)
        assert refused.value.code == 400 and named in str(refused.value), refused.value
    with pytest.raises(sdk.Error) as refused:
        cluster_net.remove()
    assert refused.value.code == 400 and "DELETE networks/" in str(refused.value)
    assert [n.name for n in cluster_nets.list()] == ["red"]

    # The SDK's update runs `network update`: every attached host's kernel follows.
    updated = nets.network_service(red.id).update(t.Network(mtu=1400),
                                                  headers={"Correlation-Id": "sdk-mtu-1"})
    assert updated.mtu == 1400
    for host in ("h1", "h2"):
        bridge = _bridge(cluster, host, "red")
        assert bridge is not None and bridge["mtu"] == 1400, (host, bridge)
        assert cluster.node(host).links()["eth1"]["mtu"] == 1400
    messages = cluster.events("sdk-mtu-1")
    assert "1/2 applying network red on host h1" in messages or any(
        "applying network red" in m for m in messages), messages
    events = system.events_service().list(max=50)
    assert any(e.correlation_id == "sdk-mtu-1" and "were updated on host" in e.description
               for e in events)

    # Attachments, with in_sync and what the host reports.
    atts = h1_service.network_attachments_service().list()
    [att] = atts
    assert att.network.id == red.id and att.host_nic.name == "eth1" and att.in_sync is True
    reported = {r.name: r for r in att.reported_configurations}
    assert reported["mtu"].expected_value == "1400" and reported["mtu"].actual_value == "1400"
    assert all(r.in_sync for r in reported.values())
    # A PUT of the attachment as read, its IPv4 assignment changed (what ovirt.ovirt's
    # ovirt_host_network sends to change an address): h1 gets it, on the same NIC.
    att_service = h1_service.network_attachments_service().attachment_service(att.id)
    for assignment in att.ip_address_assignments:
        if assignment.ip.version == t.IpVersion.V4:
            assignment.assignment_method = t.BootProtocol.STATIC
            assignment.ip.address, assignment.ip.netmask = "10.66.0.2", "255.255.255.0"
    changed = att_service.update(att)
    assert changed.host_nic.name == "eth1" and changed.in_sync is True
    assert _ipv4(cluster, "h1", "red") == ["10.66.0.2/24"]
    # A body without ip_address_assignments keeps them (an oVirt update changes what it names).
    kept = att_service.update(t.NetworkAttachment(properties=[]))
    assert [a.ip.address for a in kept.ip_address_assignments if a.ip.version == t.IpVersion.V4] \
        == ["10.66.0.2"]
    att_service.update(t.NetworkAttachment(ip_address_assignments=[t.IpAddressAssignment(
        assignment_method=t.BootProtocol.NONE, ip=t.Ip(version=t.IpVersion.V4))]))
    assert _ipv4(cluster, "h1", "red") == []
    assert att_service.get().in_sync is True

    # NICs, their statistics, their labels.
    nics = h1_service.nics_service()
    eth1 = next(n for n in nics.list() if n.name == "eth1")
    assert eth1.mtu == 1400 and eth1.network is not None and eth1.network.id == red.id
    stats = {s.name: s for s in nics.nic_service(eth1.id).statistics_service().list()}
    kernel_rx = cluster.node("h1").ns.ip_json("-s", "link", "show", "dev", "eth1")[0]
    assert stats["data.total.rx"].values[0].datum <= kernel_rx["stats64"]["rx"]["bytes"]
    assert stats["data.total.rx"].unit == t.StatisticUnit.BYTES
    eth2 = next(n for n in nics.list() if n.name == "eth2")
    labels = nics.nic_service(eth2.id).network_labels_service()
    labels.add(t.NetworkLabel(id="storage"))
    assert [lb.id for lb in labels.list()] == ["storage"]
    # A network with that label goes to the labelled NIC (docs/engine-cli.md), set through the API.
    blue = nets.add(t.Network(name="blue", data_center=t.DataCenter(name=DC), usages=[],
                              mtu=1400))
    assert blue.usages == []
    nets.network_service(blue.id).network_labels_service().add(t.NetworkLabel(id="storage"))
    assert [lb.id for lb in nets.network_service(blue.id).network_labels_service().list()] == [
        "storage"]
    # A non-VM network is no bridge: the labelled NIC itself carries it, at its MTU.
    assert cluster.node("h1").links()["eth2"]["mtu"] == 1400
    assert cluster.node("h2").links()["eth2"]["mtu"] == 1500
    [on_eth2] = nics.nic_service(eth2.id).network_attachments_service().list()
    assert on_eth2.network.id == blue.id and on_eth2.in_sync is True
    labels.label_service("storage").remove()
    assert labels.list() == []
    assert all(a.network.id != blue.id
               for a in h1_service.network_attachments_service().list())
    assert cluster.node("h1").links()["eth2"]["mtu"] == 1500
    nets.network_service(blue.id).remove()

    # setupnetworks on one host: take red off h2 only.
    h2 = hosts.list(search="name=h2")[0]
    h2_service = hosts.host_service(h2.id)
    [h2_att] = h2_service.network_attachments_service().list()
    h2_service.setup_networks(removed_network_attachments=[t.NetworkAttachment(id=h2_att.id)],
                              check_connectivity=True, commit_on_success=True)
    assert _bridge(cluster, "h2", "red") is None
    assert _bridge(cluster, "h1", "red") is not None
    # The attachments under one NIC (SPEC 2.6 "and under nics/{id}"): add there, get, remove.
    h2_nics = h2_service.nics_service()
    h2_eth1 = next(n for n in h2_nics.list() if n.name == "eth1")
    h2_eth2 = next(n for n in h2_nics.list() if n.name == "eth2")
    on_nic = h2_nics.nic_service(h2_eth1.id).network_attachments_service()
    added = on_nic.add(t.NetworkAttachment(network=t.Network(id=red.id)))
    assert added.host_nic.name == "eth1" and added.in_sync is True
    assert ports_of(cluster.node("h2").links(), "red") == ["eth1"]
    assert on_nic.attachment_service(added.id).get().network.id == red.id
    with pytest.raises(sdk.NotFoundError):
        h2_nics.nic_service(h2_eth2.id).network_attachments_service().attachment_service(
            added.id).get()
    on_nic.attachment_service(added.id).remove()
    assert _bridge(cluster, "h2", "red") is None
    h2_service.setup_networks(modified_network_attachments=[
        t.NetworkAttachment(network=t.Network(id=red.id), host_nic=t.HostNic(name="eth1"))])
    assert ports_of(cluster.node("h2").links(), "red") == ["eth1"]
    h2_service.commit_net_config()
    h2_service.sync_all_networks()

    # A bad value is refused with oVirt's fault; nothing changes on the hosts.
    with pytest.raises(sdk.Error) as refused:
        nets.network_service(red.id).update(t.Network(mtu=10))
    assert refused.value.code == 400 and "mtu" in str(refused.value)
    assert _bridge(cluster, "h1", "red")["mtu"] == 1400  # type: ignore[index]
    with pytest.raises(sdk.NotFoundError):
        nets.network_service("0" * 8).get()

    # Removal takes it off every host, then out of the store.
    nets.network_service(red.id).remove()
    for host in ("h1", "h2"):
        assert _bridge(cluster, host, "red") is None
    assert nets.list() == []
    conn.close()


def _post(url: str, body: bytes, headers: dict[str, str], ca: str | None = None) -> Any:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, resp.read()


def test_logins_and_tokens_are_checked(cluster: Cluster) -> None:
    with serving(cluster, tls=False, port=18081) as served:
        served.ns.run(_auth, served)


def _auth(served: Served) -> None:
    with pytest.raises(sdk.AuthError):
        served.connection(password="wrong password").system_service().get()
    with pytest.raises(sdk.AuthError):
        served.connection(user="nobody").system_service().get()
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eA=="}):
        req = urllib.request.Request(f"{served.api}/networks", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(req, timeout=30)
        assert denied.value.code == 401
        assert b"<fault>" in denied.value.read()
    # The page's data needs the same login; its static shell is the login form.
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{served.url}/ui/fleet", timeout=30)
    assert denied.value.code == 401
    # A token works until logout, then gets 401.
    conn = served.connection()
    assert conn.system_service().data_centers_service().list()
    token = conn.authenticate()
    conn.close()  # the SDK's logout
    req = urllib.request.Request(f"{served.api}/networks",
                                 headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(req, timeout=30)
    assert denied.value.code == 401


def _api(served: Served, token: str, method: str, path: str, body: str | None = None,
         accept: str = "application/xml") -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"{served.api}{path}", data=None if body is None else body.encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Accept": accept,
                 "Content-Type": "application/xml"})
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_seed_resources_over_plain_http(cluster: Cluster) -> None:
    """Host network labels, an attachment without host_nic (an isolated network) and an
    attachment's statistics: the "Isolated Networks" design's resources."""
    cluster.cli("network", "add", "iso", "--dc", DC, "--label", "lonely")
    with serving(cluster, tls=False, port=18082) as served:
        served.ns.run(_seed, cluster, served)


def _seed(cluster: Cluster, served: Served) -> None:
    conn = served.connection()
    token = conn.authenticate()
    system = conn.system_service()
    h1 = system.hosts_service().list(search="name=h1")[0]
    base = f"/hosts/{h1.id}"
    # POST a host label: the labelled VM network becomes an isolated bridge on h1.
    status, body = _api(served, token, "POST", f"{base}/networklabels",
                        '<network_label id="lonely"/>')
    assert status == 201, body
    bridge = _bridge(cluster, "h1", "iso")
    assert bridge is not None and kind(bridge) == "bridge"
    assert ports_of(cluster.node("h1").links(), "iso") == []
    assert _bridge(cluster, "h2", "iso") is None
    status, body = _api(served, token, "GET", f"{base}/networklabels")
    assert status == 200 and b'<network_label id="lonely"' in body, body
    status, body = _api(served, token, "GET", f"{base}/networklabels/lonely",
                        accept="application/json")
    doc = json.loads(body)
    assert status == 200 and doc["id"] == "lonely" and doc["host"]["id"] == h1.id, doc
    # The isolated attachment, without host_nic, and its statistics from the agent.
    [att] = system.hosts_service().host_service(h1.id).network_attachments_service().list()
    assert att.host_nic is None and att.in_sync is True
    status, body = _api(served, token, "GET", f"{base}/networkattachments/{att.id}/statistics")
    assert status == 200, body
    assert b"<name>data.total.rx</name>" in body and b"<network_attachment id=" in body
    # DELETE the host label: the network leaves h1.
    status, _ = _api(served, token, "DELETE", f"{base}/networklabels/lonely")
    assert status == 200
    assert _bridge(cluster, "h1", "iso") is None
    status, _ = _api(served, token, "GET", f"{base}/networklabels/lonely")
    assert status == 404
    # POST an attachment without host_nic: an isolated network on h2.
    cluster.cli("network", "add", "quiet", "--dc", DC)
    h2 = system.hosts_service().list(search="name=h2")[0]
    status, body = _api(served, token, "POST", f"/hosts/{h2.id}/networkattachments",
                        "<network_attachment><network><name>quiet</name></network>"
                        "</network_attachment>")
    assert status == 201, body
    bridge = _bridge(cluster, "h2", "quiet")
    assert bridge is not None and kind(bridge) == "bridge"
    assert ports_of(cluster.node("h2").links(), "quiet") == []
    assert b"<host_nic" not in body and b"<in_sync>true</in_sync>" in body
    # Unmanaged networks (ovirt.ovirt's ovirt_host_network lists them on state=absent): what a
    # host reports and the store does not attach there. h2 forgotten and added again: its
    # "quiet" bridge is one.
    h2_service = system.hosts_service().host_service(h2.id)
    assert h2_service.unmanaged_networks_service().list() == []
    [added] = [a for a in cluster.cli("host", "list") if a["name"] == "h2"]
    cluster.cli("host", "remove", "h2")
    pki_dir = cluster.pki_dir
    cluster.cli("host", "add", "h2", added["url"], "--dc", DC,
                "--cert", str(pki_dir / "engine.pem"), "--key", str(pki_dir / "engine-key.pem"),
                "--ca", str(pki_dir / "ca.pem"))
    cluster.cli("host", "refresh", "h2")
    assert _bridge(cluster, "h2", "quiet") is not None
    [unmanaged] = h2_service.unmanaged_networks_service().list()
    assert unmanaged.name == "quiet" and unmanaged.host.id == h2.id and unmanaged.host_nic is None
    one = h2_service.unmanaged_networks_service().unmanaged_network_service(unmanaged.id).get()
    assert one.name == "quiet"
    conn.close()
