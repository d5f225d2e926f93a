"""The one JSON form of a KernelState (vdsm_net.state_json): what the undo journal records
and the planner's golden cases spell."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

import pytest

from vdsm_net.state import Device, Route, make_state
from vdsm_net.state_json import state_from_json, state_to_json

GOLDEN = Path(__file__).parent / "golden" / "state" / "bond_vlan_bridge.json"

STATE = make_state(
    [
        Device("eth1", "", 9000, True, master="bond0", mac="52:54:00:00:00:01"),
        Device("eth2", "", 9000, False, master="bond0"),
        Device("bond0", "bond", 9000, True, owned=True,
               bond_options={"mode": "802.3ad", "miimon": "100"}, mac="02:00:00:00:00:01"),
        Device("bond0.7", "vlan", 9000, True, master="red", owned=True, vlan_base="bond0",
               vlan_id=7),
        # bridge_opts: only the settable options are written; "hello_timer" (a
        # timer the kernel reports) is not written.
        Device("red", "bridge", 9000, True, owned=True, stp=True,
               bridge_opts={"forward_delay": "1500", "multicast_snooping": "0",
                            "hello_timer": "17"},
               ipv4=frozenset({IPv4Interface("192.0.2.1/24"), IPv4Interface("10.0.0.9/8")}),
               ipv6=frozenset({IPv6Interface("2001:db8::1/64")})),
    ],
    {
        Route(4, IPv4Address("192.0.2.254"), "red"),
        Route(6, IPv6Address("2001:db8::fe"), "red", table=0x10000001),
        Route(4, IPv4Address("10.0.0.1"), "red", table=0x10000002),
    },
)


def test_the_writer_writes_the_golden_document() -> None:
    # Every field, devices by name, addresses and routes in the order of their text.
    assert state_to_json(STATE) == json.loads(GOLDEN.read_text())


def test_the_reader_reads_the_golden_document_into_ipaddress_values() -> None:
    state = state_from_json(json.loads(GOLDEN.read_text()))
    assert state == STATE
    red = state.devices["red"]
    assert dict(red.bridge_opts) == {"forward_delay": "1500", "multicast_snooping": "0"}
    assert red.ipv4 == {IPv4Interface("10.0.0.9/8"), IPv4Interface("192.0.2.1/24")}
    assert red.ipv6 == {IPv6Interface("2001:db8::1/64")}
    assert {r.gateway for r in state.routes} == {
        IPv4Address("192.0.2.254"), IPv6Address("2001:db8::fe"), IPv4Address("10.0.0.1")
    }


def test_write_then_read_round_trips_through_json_text() -> None:
    text = json.dumps(state_to_json(STATE), sort_keys=True)
    assert state_from_json(json.loads(text)) == STATE
    assert state_to_json(state_from_json(json.loads(text))) == state_to_json(STATE)


def test_omitted_fields_read_as_their_defaults() -> None:
    state = state_from_json({"devices": [{"name": "eth0"}],
                             "routes": [{"family": 6, "gateway": "fe80::1", "device": "eth0"}]})
    assert state == make_state([Device("eth0", "", 1500, True)],
                               {Route(6, IPv6Address("fe80::1"), "eth0", 254)})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "state: expected an object, got list"),
        ({"devices": [{"kind": "bridge"}]}, "state.devices[0].name: missing"),
        ({"devices": [{"name": "a", "mtu": "1500"}]},
         "state.devices[0].mtu: expected int, got '1500'"),
        ({"devices": [{"name": "a", "mtu": True}]}, "state.devices[0].mtu: expected int, got True"),
        ({"devices": [{"name": "a"}, {"name": "b", "ipv4": ["10.0.0.300/24"]}]},
         "state.devices[1].ipv4[0]: Octet 300 (> 255) not permitted in '10.0.0.300'"),
        ({"devices": [{"name": "a", "ipv6": ["192.0.2.1/24"]}]},
         "state.devices[0].ipv6[0]: At least 3 parts expected in '192.0.2.1'"),
        ({"devices": [{"name": "a", "bond_options": {"miimon": 100}}]},
         "state.devices[0].bond_options: expected strings, got {'miimon': 100}"),
        ({"routes": [{"family": 4, "gateway": "2001:db8::1", "device": "a"}]},
         "state.routes[0].gateway: Expected 4 octets in '2001:db8::1'"),
        ({"routes": [{"family": 5, "gateway": "x", "device": "a"}]},
         "state.routes[0].family: expected 4 or 6, got 5"),
    ],
)
def test_a_bad_document_is_an_error_naming_the_field(doc: Any, message: str) -> None:
    with pytest.raises(ValueError) as err:
        state_from_json(doc)
    assert str(err.value) == message
