"""The capabilities document's one typed definition (``vdsm_net.capsdoc``) and its checker.

``VDSM_DOCUMENT`` is a document as VDSM 4.50 reports it, derived from VDSM's API schema
(``vdsm-api.yml``: NetInfoBridgedNetwork, NetInfoNic, NetInfoBond, the bridges map,
VdsmNetworkCapabilities) and the capabilities example of VDSM's schema test, with the SPEC's
deliberate differences (ints for ``mtu``, a boolean ``netConfigDirty``) and the project's
fields. Each broken variant must be reported at its exact field path.

``golden/vdsm_caps/*.json``: what VDSM would report for each kind of network, to be compared
one day with a document read from a real kernel. Each file holds ``description``; ``host``
(the NICs the test provides, all up with their peers, and the resolver file's nameservers
before the requests); ``requests`` (``Host.setupNetworks`` params, applied in order);
``capabilities`` (the whole document); ``volatile`` (paths, as key lists, whose values the
kernel chooses: MACs, speeds, aggregator ids; compare their type only); ``subset`` (paths of
maps compared by inclusion: a bridge's ``opts`` lists only options whose defaults are the same
on every kernel the tests run on). Lists of names and addresses compare as sorted.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from vdsm_net import capsdoc
from vdsm_net.capsdoc import (
    HostCapabilities,
    NetInfoBond,
    NetInfoBridgedNetwork,
    NetInfoNic,
    check_document,
)

GOLDEN = Path(__file__).parent / "golden" / "vdsm_caps"
GOLDEN_CASES = sorted(GOLDEN.glob("*.json"))
KINDS = {
    "bridged", "bridgeless", "tagged", "bond", "bond_arp_tagged", "isolated",
    "static_default_route", "default_route_moved",
}


def _ip(**facts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "addr": "", "netmask": "", "gateway": "", "ipv4addrs": [], "ipv6addrs": [],
        "ipv6gateway": "::", "ipv4defaultroute": False, "dhcpv4": False, "dhcpv6": False,
        "ipv6autoconf": False,
    }
    return {**base, **facts}


MGMT_IP = _ip(
    addr="192.168.1.102", netmask="255.255.255.0", gateway="192.168.1.1",
    ipv4addrs=["192.168.1.102/24"], ipv4defaultroute=True,
)

VDSM_DOCUMENT: dict[str, Any] = {
    "networks": {
        "ovirtmgmt": {
            "iface": "ovirtmgmt", "bridged": True, "southbound": "eno1", "ports": ["eno1"],
            "stp": "off", "mtu": 1500, "switch": "legacy", "isolated": False,
            "defaultRoute": True, "nameservers": ["192.168.1.1"], **MGMT_IP,
        },
        "storage": {
            "iface": "bond0.20", "interface": "bond0.20", "bridged": False,
            "southbound": "bond0.20", "vlanid": 20, "mtu": 9000, "switch": "legacy",
            "isolated": False, "defaultRoute": False,
            "hostQos": {"out": {"ls": {"m1": 0, "d": 0, "m2": 4000000},
                                "ul": {"m1": 0, "d": 0, "m2": 8000000}}},
            **_ip(),
        },
    },
    "bridges": {
        "ovirtmgmt": {
            "ports": ["eno1", "vnet0"], "stp": "off", "mtu": 1500,
            "opts": {"forward_delay": "1500", "stp_state": "0", "multicast_snooping": "1"},
            **MGMT_IP,
        },
    },
    "nics": {
        "eno1": {"hwaddr": "b8:ca:3a:a9:77:e2", "speed": 1000, "operstate": "up", "mtu": 1500,
                 **_ip()},
        "eno2": {"hwaddr": "3a:02:ff:17:ac:74", "permhwaddr": "b8:ca:3a:a9:77:e3",
                 "ad_aggregator_id": "1", "speed": 10000, "operstate": "up", "mtu": 9000,
                 **_ip()},
    },
    "vlans": {"bond0.20": {"iface": "bond0", "vlanid": 20, "mtu": 9000, **_ip()}},
    "bondings": {
        "bond0": {
            "hwaddr": "3a:02:ff:17:ac:74", "slaves": ["eno2"], "active_slave": "",
            "opts": {"mode": "4", "xmit_hash_policy": "2"}, "switch": "legacy",
            "speed": 10000, "mtu": 9000, "ad_aggregator_id": "1",
            "ad_partner_mac": "00:1b:21:aa:bb:cc",
            "qos": [{"hostQos": {"out": {"ls": {"m1": 0, "d": 0, "m2": 4000000}}},
                     "vlan": 20}],
            **_ip(),
        },
    },
    "nameservers": ["192.168.1.1"],
    "supportsIPv6": True,
    "netConfigDirty": False,
    "netConfigPending": False,
}


def _doc() -> dict[str, Any]:
    return copy.deepcopy(VDSM_DOCUMENT)


def test_a_vdsm_shaped_document_conforms() -> None:
    assert check_document(VDSM_DOCUMENT, extra_keys=True) == []


def test_host_capabilities_add_the_version() -> None:
    doc: dict[str, Any] = {**_doc(), "software_version": "0.9", "api_version": 1}
    assert check_document(doc, HostCapabilities, extra_keys=True) == []
    del doc["api_version"]
    assert check_document(doc, HostCapabilities) == ["api_version: missing (HostCapabilities)"]


@pytest.mark.parametrize(
    ("section", "name", "kind"),
    [
        ("networks", "ovirtmgmt", NetInfoBridgedNetwork),
        ("nics", "eno1", NetInfoNic),
        ("bondings", "bond0", NetInfoBond),
    ],
)
def test_every_required_field_is_required(section: str, name: str, kind: type) -> None:
    required = sorted(kind.__required_keys__)  # type: ignore[attr-defined]
    assert required  # the loop below must run
    for field in required:
        doc = _doc()
        del doc[section][name][field]
        assert check_document(doc) == [f"{section}.{name}.{field}: missing ({kind.__name__})"]


def test_a_bridgeless_network_needs_interface_not_ports() -> None:
    doc = _doc()
    del doc["networks"]["storage"]["interface"]
    assert check_document(doc) == [
        "networks.storage.interface: missing (NetInfoBridgelessNetwork)"
    ]


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        # Our old shapes, which a VDSM client cannot read.
        (["networks", "ovirtmgmt", "stp"], True,
         "networks.ovirtmgmt.stp: expected 'on' | 'off', got true"),
        (["networks", "ovirtmgmt", "southbound"], 5,
         "networks.ovirtmgmt.southbound: expected str | null, got 5"),
        (["networks", "ovirtmgmt", "switch"], "ovs",
         "networks.ovirtmgmt.switch: expected 'legacy', got 'ovs'"),
        # VDSM's own wire forms that the SPEC replaces (ints, a JSON boolean).
        (["networks", "ovirtmgmt", "mtu"], "1500",
         "networks.ovirtmgmt.mtu: expected int, got '1500'"),
        (["netConfigDirty"], "False", "netConfigDirty: expected bool, got 'False'"),
        # Wrong scalar types, bool passing for int, nested lists and maps.
        (["networks", "storage", "vlanid"], True,
         "networks.storage.vlanid: expected int, got true"),
        (["nics", "eno1", "speed"], 1.5, "nics.eno1.speed: expected int, got 1.5"),
        (["nics", "eno1", "ipv4addrs"], ["10.0.0.1/24", 7],
         "nics.eno1.ipv4addrs[1]: expected str, got 7"),
        (["bondings", "bond0", "opts"], {"mode": 4},
         "bondings.bond0.opts.mode: expected str, got 4"),
        (["bondings", "bond0", "qos"], [{"hostQos": {"out": {}}, "vlan": "20"}],
         "bondings.bond0.qos[0].vlan: expected int, got '20'"),
        (["networks", "storage", "hostQos"], {"out": {"ul": {"m1": 0, "d": 0}}},
         "networks.storage.hostQos.out.ul.m2: missing (BandwidthCurve)"),
        (["bridges", "ovirtmgmt", "ports"], "eno1",
         "bridges.ovirtmgmt.ports: expected a list, got 'eno1'"),
        (["vlans"], [], "vlans: expected an object, got a list"),
        (["nameservers"], None, "nameservers: expected a list, got null"),
    ],
)
def test_a_wrong_field_is_named(path: list[str], value: object, problem: str) -> None:
    doc = _doc()
    where: Any = doc
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = value
    assert check_document(doc) == [problem]


def test_bridged_must_be_a_boolean_tag() -> None:
    doc = _doc()
    doc["networks"]["ovirtmgmt"]["bridged"] = "true"
    problems = check_document(doc)
    assert "networks.ovirtmgmt.bridged: expected True, got 'true'" in problems


def test_a_network_of_the_wrong_shape_reports_its_own_type() -> None:
    """A bridged network's problems are those of NetInfoBridgedNetwork (its ``bridged`` tag
    says so), not of the bridgeless type it matches even less."""
    doc = _doc()
    del doc["networks"]["ovirtmgmt"]["ports"]
    doc["networks"]["ovirtmgmt"]["stp"] = "yes"
    assert check_document(doc) == [
        "networks.ovirtmgmt.ports: missing (NetInfoBridgedNetwork)",
        "networks.ovirtmgmt.stp: expected 'on' | 'off', got 'yes'",
    ]


def test_extra_keys_are_reported_only_when_asked() -> None:
    doc = _doc()
    doc["nics"]["eno1"]["hwadr"] = "b8:ca:3a:a9:77:e2"
    assert check_document(doc) == []
    assert check_document(doc, extra_keys=True) == [
        "nics.eno1.hwadr: not a field of NetInfoNic"
    ]


@pytest.mark.parametrize("doc", [None, [], "caps", 1])
def test_not_an_object(doc: object) -> None:
    problems = check_document(doc)
    assert len(problems) == 1 and problems[0].startswith("document: expected an object")


def test_stp_state_spelling() -> None:
    assert (capsdoc.stp_state(True), capsdoc.stp_state(False)) == ("on", "off")


# ---- golden documents --------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def _at(doc: Any, path: list[str]) -> Any:
    for key in path:
        assert isinstance(doc, dict) and key in doc, f"no {'.'.join(path)}"
        doc = doc[key]
    return doc


def test_every_kind_of_network_has_a_golden_document() -> None:
    assert {p.stem for p in GOLDEN_CASES} == KINDS


@pytest.mark.parametrize("path", GOLDEN_CASES, ids=lambda p: p.stem)
def test_golden_document_conforms(path: Path) -> None:
    golden = _load(path)
    assert set(golden) == {
        "description", "host", "requests", "volatile", "subset", "capabilities"
    }
    caps = golden["capabilities"]
    assert check_document(caps, extra_keys=True) == []
    for where in golden["volatile"] + golden["subset"]:
        _at(caps, where)
    for where in golden["subset"]:
        assert isinstance(_at(caps, where), dict)
    # Every network's devices are in the document, and its nics are the host's.
    nics = set(golden["host"]["nics"])
    assert set(caps["nics"]) == nics
    for name, net in caps["networks"].items():
        if net["bridged"]:
            assert caps["bridges"][name]["ports"] == net["ports"]
            assert net["iface"] == name
            assert net["isolated"] is (net["southbound"] is None)
        else:
            assert net["iface"] == net["interface"] == net["southbound"]
        south = net["southbound"]
        if south is not None:
            assert south in caps["nics"] or south in caps["bondings"] or south in caps["vlans"]
        if "vlanid" in net:
            assert caps["vlans"][south]["vlanid"] == net["vlanid"]
        assert ("nameservers" in net) is net["defaultRoute"]


@pytest.mark.parametrize("path", GOLDEN_CASES, ids=lambda p: p.stem)
def test_golden_ip_facts_agree_with_themselves(path: Path) -> None:
    """``addr``/``netmask`` are the first address of ``ipv4addrs``, and a device with no IPv6
    gateway says "::" (VDSM), in every entry of every section."""
    caps = _load(path)["capabilities"]
    for section in ("networks", "bridges", "nics", "vlans", "bondings"):
        for entry in caps[section].values():
            if entry["ipv4addrs"]:
                first = entry["ipv4addrs"][0]
                assert entry["addr"] == first.split("/")[0]
            else:
                assert entry["addr"] == entry["netmask"] == ""
            assert entry["ipv6gateway"] != ""
            assert not entry["ipv4defaultroute"] or entry["gateway"]
