"""The decoders on real kernel answers: datagrams recorded from a netns and from UML by
``tests/record_kernel_dumps.py`` (``golden/kernel/*.json``), decoded here and compared with
what the kernel reported of the same devices through ``ip -d -j`` at the same moment."""

from __future__ import annotations

import errno
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scripted_socket import ScriptedSocket, ack
from vdsm_net.kernel import bond_options, view
from vdsm_net.kernel import constants as c
from vdsm_net.kernel import route_socket as rs
from vdsm_net.kernel.decode import Link, parse_address, parse_link

CASES = sorted((Path(__file__).parent / "golden" / "kernel").glob("*.json"))
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host"}
_HDR = struct.Struct("=IHHII")


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _messages(datagrams: list[str], msg_type: int) -> Iterator[tuple[bytes, int, int]]:
    """(data, offset, length) of each message of ``msg_type``, as RouteSocket hands them."""
    for text in datagrams:
        data = bytes.fromhex(text)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind, _, _, _ = _HDR.unpack_from(data, offset)
            if kind == msg_type:
                yield data, offset, length
            offset += (length + 3) & ~3


def _links(golden: dict[str, Any]) -> list[Link]:
    return [parse_link(*m) for m in _messages(golden["links"], c.RTM_NEWLINK)]


def _as_ip_reports_it(link: Link, names: dict[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": link.index,
        "name": link.name,
        "up": bool(link.flags & c.IFF_UP),
        "mtu": link.mtu,
        "link": link.link,
        "master": link.master,
        "group": link.group,
        "address": link.address,
        "operstate": link.operstate,
        "kind": link.kind,
        "slave_kind": link.slave_kind,
        "vlan_id": link.vlan_id,
        "stp_state": link.stp_state,
    }
    if link.kind == "bond":
        out["bond"] = {
            name: names.get(value, "") if name == bond_options.PRIMARY
            else bond_options.from_number(name, value)
            for name, value in link.bond.items()
        } | dict(link.bond_text)
        out["active_slave"] = link.active_slave
    return out


@pytest.fixture(params=CASES, ids=[p.stem for p in CASES])
def golden(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def test_the_recordings_hold_the_device_kinds_they_are_for() -> None:
    kinds = {link.kind for path in CASES for link in _links(_load(path))}
    assert {"", "bridge", "veth", "vlan", "bond", "dummy"} <= kinds


def test_links_decode_as_the_kernel_reports_them(golden: dict[str, Any]) -> None:
    links = _links(golden)
    names = {link.index: link.name for link in links}
    assert [_as_ip_reports_it(link, names) for link in links] == golden["expected_links"]
    assert all(link.counters is not None for link in links)


def test_link_counters_are_rtnl_link_stats64_in_order(golden: dict[str, Any]) -> None:
    for link in _links(golden):
        assert link.counters is not None
        # Every dump holds up devices that have sent IPv6 router solicitations or more.
        assert link.counters.rx_packets <= link.counters.rx_bytes
        assert link.counters.tx_packets <= link.counters.tx_bytes


def test_addresses_decode_as_the_kernel_reports_them(golden: dict[str, Any]) -> None:
    msgs = [parse_address(*m) for m in _messages(golden["addresses"], c.RTM_NEWADDR)]
    got = sorted([m.index, str(m.interface), SCOPES[m.scope]] for m in msgs if m is not None)
    assert got == golden["expected_addresses"]
    # What the agent keeps: global scope only (those were added static, so permanent).
    wanted = [view.decode_address(*m) for m in _messages(golden["addresses"], c.RTM_NEWADDR)]
    kept = view.addresses([m for m in wanted if m is not None])
    assert sorted(
        [index, str(a), "global"] for (index, _), addrs in kept.items() for a in addrs
    ) == [e for e in golden["expected_addresses"] if e[2] == "global"]


def test_default_routes_decode_as_the_kernel_reports_them(golden: dict[str, Any]) -> None:
    names = {link.index: link.name for link in _links(golden)}
    msgs = [
        view.decode_route(*m)
        for family in golden["routes"]
        for m in _messages(family, c.RTM_NEWROUTE)
    ]
    routes = view.routes([m for m in msgs if m is not None], names)
    got = sorted([r.family, str(r.gateway), r.device, r.table] for r in routes)
    assert got == golden["expected_routes"]


def test_the_kernels_refusals_read_as_ip_says_them(golden: dict[str, Any]) -> None:
    recorded = [bytes.fromhex(d) for d in golden["refusals"]["datagrams"]]
    # The recording socket's first requests had sequence numbers 1 and 2, as this one's.
    sock = ScriptedSocket(lambda sent: [recorded[sent.seq - 1]])
    bridge = "br0" if "br0" in {link.name for link in _links(golden)} else "br7"
    index = next(link.index for link in _links(golden) if link.name == bridge)
    acks = rs.RouteSocket(sock).exchange([
        rs.link_request(index=index, attrs=rs.nla_u32(c.IFLA_MTU, 70000)),
        rs.link_request(create=True, attrs=rs.nla_str(c.IFLA_IFNAME, bridge)
                        + rs.linkinfo("bridge", b"")),
    ])
    mtu_said, exists_said = golden["refusals"]["ip_says"]
    assert acks[0].code == errno.EINVAL
    assert f"Error: {acks[0].message}." == mtu_said
    assert acks[1] == rs.Ack(errno.EEXIST)
    assert exists_said == f"RTNETLINK answers: {acks[1].reason()}"
    # The scripted socket's ACKs are the kernel's, byte for byte but the socket's port id.
    for sent, got, code, message in zip(
        sock.requests, recorded, (errno.EINVAL, errno.EEXIST), (acks[0].message, ""),
        strict=True,
    ):
        assert _without_port_id(ack(sent, code, message)) == _without_port_id(got)


def _without_port_id(data: bytes) -> bytes:
    return data[:12] + data[16:]

