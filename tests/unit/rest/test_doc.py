"""oVirt documents: rendered as the SDK reads them, read from XML and JSON alike; searches."""

from __future__ import annotations

import json

import ovirtsdk4.types as t
import pytest
from ovirtsdk4.reader import Reader
from ovirtsdk4.writer import Writer

from engine_client.models import LogicalNetwork
from engine_client.rest import doc, ids, search, view


def test_network_is_read_by_the_sdk() -> None:
    node = view.network(LogicalNetwork("dc1", "red", vlan=10, mtu=9000, vm=True))
    net = Reader.read(doc.to_xml(node).encode())
    assert isinstance(net, t.Network)
    assert (net.id, net.name, net.vlan.id, net.mtu) == (ids.network("red"), "red", 10, 9000)
    assert net.usages == [t.NetworkUsage.VM] and net.data_center.id == ids.dc("dc1")
    coll = Reader.read(doc.to_xml(doc.many("networks", [node])).encode())
    assert [n.name for n in coll] == ["red"]
    as_json = json.loads(doc.to_json(doc.many("networks", [node])))
    assert as_json["network"][0]["vlan"] == {"id": "10"}
    assert as_json["network"][0]["usages"] == {"usage": ["vm"]}


def test_json_keeps_every_link_as_one_array() -> None:
    """oVirt's JSON: "link": [{"href", "rel"}, ...]; a host has several, none may be lost."""
    host = doc.el(
        "host",
        doc.el("link", href="/h/nics", rel="nics"),
        doc.el("link", href="/h/networklabels", rel="networklabels"),
        doc.leaf("name", "h1"),
        id="1",
    )
    as_json = json.loads(doc.to_json(host))
    assert as_json["link"] == [
        {"href": "/h/nics", "rel": "nics"},
        {"href": "/h/networklabels", "rel": "networklabels"},
    ]
    assert as_json["name"] == "h1"
    one = json.loads(doc.to_json(view.network(LogicalNetwork("dc1", "red"))))
    assert isinstance(one["link"], list) and one["link"][0]["rel"] == "networklabels"


def test_sdk_bodies_and_json_bodies_read_the_same() -> None:
    body = Writer.write(t.Network(name="red", vlan=t.Vlan(id=20), mtu=1400, usages=[]))
    from_xml = doc.parse(body.encode(), doc.XML, "network")
    from_json = doc.parse(
        json.dumps({"name": "red", "vlan": {"id": 20}, "mtu": 1400, "usages": {}}).encode(),
        doc.JSON, "network")
    for elem in (from_xml, from_json):
        assert doc.value(elem, "name") == "red"
        assert doc.integer(elem.find("vlan"), "id") == 20
        assert doc.integer(elem, "mtu") == 1400
        assert elem.find("usages") is not None and list(elem.find("usages") or []) == []
    action = Writer.write(t.Action(removed_network_attachments=[t.NetworkAttachment(id="a1")]))
    items = doc.items(doc.parse(action.encode(), doc.XML, "action"),
                      "removed_network_attachments")
    assert [doc.value(i, "id") for i in items] == ["a1"]


def test_bad_bodies_are_refused_with_the_reason() -> None:
    with pytest.raises(doc.BadDocument, match="expected a <network> document, got <host>"):
        doc.parse(b"<host/>", doc.XML, "network")
    with pytest.raises(doc.BadDocument, match="document type declarations"):
        doc.parse(b'<!DOCTYPE x [<!ENTITY a "b">]><network/>', doc.XML, "network")
    with pytest.raises(doc.BadDocument, match="mtu: expected an integer, got 'big'"):
        doc.integer(doc.parse(b"<network><mtu>big</mtu></network>", doc.XML, "network"), "mtu")


def test_search_terms() -> None:
    keys = {"name": "name", "datacenter": "dc"}
    terms = search.parse('name="red" and datacenter="dc1"', keys)
    assert terms == {"name": "red", "dc": "dc1"}
    assert search.matches(terms, {"name": "RED", "dc": "dc1"})
    assert not search.matches(terms, {"name": "red", "dc": "dc2"})
    assert search.matches(search.parse("name=re*", keys), {"name": "red"})
    assert search.parse("", keys) == {}
    with pytest.raises(search.BadSearch, match="unknown key 'vlan'"):
        search.parse("vlan=10", keys)
    with pytest.raises(search.BadSearch, match="key=value"):
        search.parse("name", keys)
