"""Each host's own address on a shared network (docs/engine-cli.md "Addresses"), end to end:
real agents in namespaces over mutual TLS (tests/cluster.py), driven through the real
``engine-client`` CLI. Every assertion about a host is what its kernel reports (``ip -j addr``,
``ip -j route``) or what ``network show`` says after reading the host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4 as sdk
import ovirtsdk4.types as t
import pytest

from tests.cluster import DC, Cluster, Node, running_cluster
from tests.kernel.dhcp_server import POOL, SERVER_ADDR, Dnsmasq
from tests.netns import NetNS
from tests.rest_helpers import Served, add_user, serving

NET = "red"
GW4 = "10.88.0.1"
ADDR = {"h1": "10.88.0.11/24", "h2": "10.88.0.12/24"}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(("h1", "h2")) as c:
        yield c


def addresses_on(node: Node, dev: str, family: str) -> list[str]:
    """The global addresses of ``family`` ("inet", "inet6") on ``dev``, as the host's kernel
    reports them."""
    (entry,) = node.ns.ip_json("addr", "show", "dev", dev)
    return sorted(
        f"{a['local']}/{a['prefixlen']}"
        for a in entry["addr_info"]
        if a["family"] == family and a.get("scope") == "global"
    )


def addresses(node: Node, family: str) -> list[str]:
    """On the network's bridge."""
    return addresses_on(node, NET, family)


def gateways_on(node: Node, dev: str, version: int) -> list[str]:
    """The gateways of default routes through ``dev``, in any routing table."""
    routes = node.ns.ip_json(f"-{version}", "route", "show", "table", "all", "dev", dev)
    return sorted(r["gateway"] for r in routes if r.get("dst") == "default" and "gateway" in r)


def default_gateways(node: Node, version: int) -> list[str]:
    """Through the network's bridge."""
    return gateways_on(node, NET, version)


def show(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {r["host"]: r for r in cluster.cli("network", "show", NET)["hosts"]}


def test_each_host_keeps_its_own_address_through_update_drift_and_sync(cluster: Cluster) -> None:
    cluster.cli("network", "add", NET, "--dc", DC)
    for node in cluster.nodes:
        cluster.cli(
            "network", "attach", NET, node.name, "--nic", "eth1",
            "--ip", ADDR[node.name], "--gateway", GW4,
        )  # fmt: skip
    for node in cluster.nodes:
        assert addresses(node, "inet") == [ADDR[node.name]], node.name
        assert default_gateways(node, 4) == [GW4], node.name
    rows = show(cluster)
    assert all(r["in_sync"] for r in rows.values()), rows
    assert rows["h1"]["attached"] == f"nic eth1, {ADDR['h1']} gateway {GW4}"

    # A change of the network's definition goes to every host with that host's own address.
    cluster.cli("network", "update", NET, "--mtu", "1400")
    for node in cluster.nodes:
        assert node.ns.link(NET)["mtu"] == 1400
        assert addresses(node, "inet") == [ADDR[node.name]], node.name
        assert default_gateways(node, 4) == [GW4], node.name
    assert all(r["in_sync"] for r in show(cluster).values())

    # Someone removes h1's address behind the agent's back: out of sync, naming the address.
    h1 = cluster.node("h1")
    h1.ns.ip("addr", "del", ADDR["h1"], "dev", NET)
    assert addresses(h1, "inet") == []
    rows = show(cluster)
    assert not rows["h1"]["in_sync"]
    assert {
        "key": "ipv4_address", "expected": ADDR["h1"], "found": None
    } in rows["h1"]["differences"]  # fmt: skip
    assert f"ipv4_address: expected {ADDR['h1']}, found none" in rows["h1"]["differs"]
    assert rows["h2"]["in_sync"], rows["h2"]

    # sync restores it (and h2 is left alone: it was in sync).
    doc = cluster.cli("sync")
    (pushed,) = doc["networks"]
    assert [h["host"] for h in pushed["hosts"]] == ["h1"]
    assert addresses(h1, "inet") == [ADDR["h1"]]
    assert default_gateways(h1, 4) == [GW4]
    assert all(r["in_sync"] for r in show(cluster).values())


def test_reattach_changes_the_address_to_ipv6_then_removes_it(cluster: Cluster) -> None:
    cluster.cli("network", "add", NET, "--dc", DC, "--no-vm")
    h1 = cluster.node("h1")
    cluster.cli("network", "attach", NET, "h1", "--nic", "eth1", "--ip", ADDR["h1"])
    # A bridgeless network: the address is on the NIC itself.
    assert addresses_on(h1, "eth1", "inet") == [ADDR["h1"]]

    cluster.cli(
        "network", "attach", NET, "h1", "--nic", "eth1",
        "--ip", "2001:DB8:88::11/64", "--gateway", "2001:db8:88::1",
    )  # fmt: skip
    assert addresses_on(h1, "eth1", "inet") == []
    assert addresses_on(h1, "eth1", "inet6") == ["2001:db8:88::11/64"]
    assert gateways_on(h1, "eth1", 6) == ["2001:db8:88::1"]
    (row,) = show(cluster).values()
    assert row["in_sync"], row

    # An IPv6 router named by its link-local address.
    cluster.cli(
        "network", "attach", NET, "h1", "--nic", "eth1",
        "--ip", "2001:db8:88::11/64", "--gateway", "fe80::1",
    )  # fmt: skip
    assert gateways_on(h1, "eth1", 6) == ["fe80::1"]
    (row,) = show(cluster).values()
    assert row["in_sync"], row

    cluster.cli("network", "attach", NET, "h1", "--nic", "eth1")
    assert addresses_on(h1, "eth1", "inet") == addresses_on(h1, "eth1", "inet6") == []
    (row,) = show(cluster).values()
    assert row["in_sync"], row



def test_rest_ip_address_assignments_through_the_ovirt_sdk(cluster: Cluster) -> None:
    """oVirt's ``ip_address_assignments`` of a network attachment, through ``ovirtsdk4``'s own
    writers and readers: setupnetworks gives h1 its address (kernel checked), the attachment
    reads it back, in sync; a modification by the attachment's id alone changes the address."""
    add_user(cluster)
    cluster.cli("network", "add", NET, "--dc", DC)
    with serving(cluster) as served:
        served.ns.run(_sdk_ip, cluster, served)


def _sdk_ip(cluster: Cluster, served: Served) -> None:
    conn = served.connection()
    system = conn.system_service()
    [red] = system.networks_service().list(search=f"name={NET}")
    [h1] = system.hosts_service().list(search="name=h1")
    h1_service = system.hosts_service().host_service(h1.id)

    def static(address: str, netmask: str, gateway: str, version: Any) -> Any:
        return t.IpAddressAssignment(
            assignment_method=t.BootProtocol.STATIC,
            ip=t.Ip(address=address, netmask=netmask, gateway=gateway, version=version),
        )

    h1_service.setup_networks(modified_network_attachments=[t.NetworkAttachment(
        network=t.Network(id=red.id), host_nic=t.HostNic(name="eth1"),
        ip_address_assignments=[static("10.88.0.11", "255.255.255.0", GW4, t.IpVersion.V4)],
    )])  # fmt: skip
    h1_node = cluster.node("h1")
    assert addresses(h1_node, "inet") == ["10.88.0.11/24"]
    assert default_gateways(h1_node, 4) == [GW4]
    [att] = h1_service.network_attachments_service().list()
    assert att.in_sync is True
    by_version = {a.ip.version: a for a in att.ip_address_assignments}
    v4 = by_version[t.IpVersion.V4]
    assert v4.assignment_method == t.BootProtocol.STATIC
    assert (v4.ip.address, v4.ip.netmask, v4.ip.gateway) == ("10.88.0.11", "255.255.255.0", GW4)
    assert by_version[t.IpVersion.V6].assignment_method == t.BootProtocol.NONE

    # The attachment by its id, no host_nic: only its address changes (a prefix length this
    # time, as the SDK may send it).
    h1_service.setup_networks(modified_network_attachments=[t.NetworkAttachment(
        id=att.id, network=t.Network(id=red.id),
        ip_address_assignments=[static("10.88.0.21", "24", GW4, t.IpVersion.V4)],
    )])  # fmt: skip
    assert addresses(h1_node, "inet") == ["10.88.0.21/24"]
    assert h1_node.links()["eth1"].get("master") == NET

    # What engine-client does not do, or a bad value: oVirt's fault (400), nothing changes.
    autoconf = t.IpAddressAssignment(
        assignment_method=t.BootProtocol.AUTOCONF, ip=t.Ip(version=t.IpVersion.V6)
    )
    bad = static("10.88.0.300", "24", GW4, t.IpVersion.V4)
    for assignment, words in ((autoconf, "autoconf"), (bad, "--ip: expected ADDR/PREFIX")):
        with pytest.raises(sdk.Error) as refused:
            h1_service.setup_networks(modified_network_attachments=[t.NetworkAttachment(
                id=att.id, network=t.Network(id=red.id), ip_address_assignments=[assignment],
            )])  # fmt: skip
        assert refused.value.code == 400 and words in str(refused.value), refused.value
        assert addresses(h1_node, "inet") == ["10.88.0.21/24"]

    # Behind the agent's back: reported_configurations name the address, expected and found.
    h1_node.ns.ip("addr", "del", "10.88.0.21/24", "dev", NET)
    h1_service.refresh()
    [att] = h1_service.network_attachments_service().list()
    assert att.in_sync is False
    reported = {c.name: c for c in att.reported_configurations}
    assert reported["ipv4_address"].expected_value == "10.88.0.21/24"
    assert not reported["ipv4_address"].actual_value  # found none (the SDK reads "" as None)
    assert reported["ipv4_address"].in_sync is False
    conn.close()


def _leased(node: Node) -> list[str]:
    low, high = (int(a.rsplit(".", 1)[1]) for a in POOL)
    return [
        a for a in addresses(node, "inet")
        if a.startswith(SERVER_ADDR.rsplit(".", 1)[0] + ".")
        and low <= int(a.split("/")[0].rsplit(".", 1)[1]) <= high
    ]


def _wait_for_lease(node: Node, timeout: float = 60) -> list[str]:
    # The agent's DHCP client runs in its own process: polling here blocks nothing of it.
    deadline = time.monotonic() + timeout
    while not (found := _leased(node)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{node.name}: no lease on {NET} after {timeout} s")
        time.sleep(0.1)
    return found


def test_dhcp_attachment_gets_a_lease_and_keeps_dhcp_through_an_update(tmp_path: Path) -> None:
    """``--dhcp`` on a real host: a dnsmasq server on the far end of h1's NIC leases the
    bridge an address (the kernel shows it), in sync; ``network update --mtu`` keeps DHCP."""
    with running_cluster(("h1",), dummy=False) as cluster:
        h1 = cluster.node("h1")
        server_ns = NetNS("dhs")
        cluster.extra.append(server_ns)
        # The far end of h1's "cable" (the veth peer of eth1) goes to the server's namespace.
        h1.ns.ip("link", "set", "eth1p", "netns", server_ns.name)
        server_ns.ip("addr", "add", f"{SERVER_ADDR}/24", "dev", "eth1p")
        server_ns.ip("link", "set", "eth1p", "up")
        dnsmasq = Dnsmasq(server_ns, "eth1p", tmp_path)
        asyncio.run(dnsmasq.start())

        cluster.cli("network", "add", NET, "--dc", DC)
        cluster.cli("network", "attach", NET, "h1", "--nic", "eth1", "--dhcp")
        (address,) = _wait_for_lease(h1)
        assert address.split("/")[0] in dnsmasq.leases()
        (row,) = show(cluster).values()
        assert row["in_sync"], row
        assert row["attached"] == "nic eth1, dhcp"

        cluster.cli("network", "update", NET, "--mtu", "1400")
        assert h1.ns.link(NET)["mtu"] == 1400
        assert _wait_for_lease(h1)
        (row,) = show(cluster).values()
        assert row["in_sync"], row
        assert row["ip"] == {"method": "dhcp", "address": None, "gateway": None}
