"""A VLAN change through the REST API (the real ``ovirtsdk4``) reaches every host's kernel.
Needs 8021q: runs in User-Mode Linux on a kernel without it (tests/uml.py); kept to one test,
UML is slow."""

from __future__ import annotations

import ovirtsdk4.types as t
import pytest

from tests.cluster import DC, Cluster, kind, running_cluster
from tests.rest_helpers import Served, add_user, serving


@pytest.mark.needs("vlan")
def test_sdk_vlan_and_mtu_update_reach_every_host() -> None:
    with running_cluster(("h1", "h2")) as cluster:
        add_user(cluster)
        cluster.cli("network", "add", "red", "--dc", DC, "--vlan", "10")
        for host in ("h1", "h2"):
            cluster.cli("network", "attach", "red", host, "--nic", "eth1")
        with serving(cluster) as served:
            served.ns.run(_update, cluster, served)


def _update(cluster: Cluster, served: Served) -> None:
    conn = served.connection()
    nets = conn.system_service().networks_service()
    [red] = nets.list(search=f'name="red" and datacenter="{DC}"')
    assert red.vlan.id == 10
    updated = nets.network_service(red.id).update(t.Network(vlan=t.Vlan(id=20), mtu=1400))
    assert updated.vlan.id == 20 and updated.mtu == 1400
    for node in cluster.nodes:
        links = node.links()
        dev = links.get("eth1.20")
        assert dev is not None and kind(dev) == "vlan", (node.name, sorted(links))
        assert dev["linkinfo"]["info_data"]["id"] == 20
        assert dev["master"] == "red" and dev["mtu"] == 1400
        assert "eth1.10" not in links
        assert links["red"]["mtu"] == 1400
    h1 = conn.system_service().hosts_service().list(search="name=h1")[0]
    atts = conn.system_service().hosts_service().host_service(h1.id)
    [att] = atts.network_attachments_service().list()
    reported = {r.name: r for r in att.reported_configurations}
    assert att.in_sync and reported["vlan"].actual_value == "20"
    conn.close()
