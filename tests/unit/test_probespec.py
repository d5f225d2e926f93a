"""``options.probes`` entries (docs/api.md, connectivity probes): what is accepted, and the
error (21, naming ``options.probes[i]`` and the value) for what is not."""

from __future__ import annotations

import ipaddress

import pytest

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.probes import echo_request, is_echo_reply
from vdsm_net.probespec import MAX_PROBES, Probe, parse_probes
from vdsm_net.request import parse_setup_request


def probes(raw: object) -> tuple[Probe, ...]:
    return parse_setup_request({"options": {"probes": raw}}).options.probes


def test_ping_and_tcp_over_ipv4_and_ipv6() -> None:
    got = probes([
        {"ping": "192.0.2.1"}, {"ping": "2001:db8::1"},
        {"tcp": "192.0.2.5:3260"}, {"tcp": "[2001:db8::5]:22"},
    ])
    assert [str(p) for p in got] == [
        "ping:192.0.2.1", "ping:2001:db8::1", "tcp:192.0.2.5:3260", "tcp:[2001:db8::5]:22",
    ]
    assert got[3] == Probe("tcp", ipaddress.ip_address("2001:db8::5"), 22)
    assert [p.to_json() for p in got][2] == {"tcp": "192.0.2.5:3260"}


def test_no_probes_by_default() -> None:
    assert parse_setup_request({}).options.probes == ()
    assert probes([]) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ping": "1.2.3.4"}, 'options.probes: expected a list, got object'),
        ("ping:1.2.3.4", 'options.probes: expected a list, got string'),
        ([{"http": "1.2.3.4"}], 'options.probes[0]: unknown probe "http" (expected ping or tcp)'),
        ([{}], "options.probes[0]: expected one of ping or tcp, got none"),
        ([{"ping": "1.2.3.4", "tcp": "1.2.3.4:1"}],
         "options.probes[0]: expected one of ping or tcp, got ping, tcp"),
        (["1.2.3.4"], 'options.probes[0]: expected {"ping": "ADDR"} or {"tcp": "ADDR:PORT"}, '
                      "got string"),
        ([{"ping": "gw"}], 'options.probes[0].ping: expected an IPv4 or IPv6 address, got "gw"'),
        ([{"ping": 7}], "options.probes[0].ping: expected a string, got number"),
        ([{"ping": "192.0.2.1"}, {"ping": "0.0.0.0"}],
         'options.probes[1].ping: expected a unicast address, got "0.0.0.0"'),
        ([{"ping": "ff02::1"}],
         'options.probes[0].ping: expected a unicast address, got "ff02::1"'),
        ([{"ping": "fe80::1%eth0"}],
         'options.probes[0].ping: expected an address without a zone, got "fe80::1%eth0"'),
        ([{"tcp": "192.0.2.1"}], 'options.probes[0].tcp: expected ADDR:PORT, got "192.0.2.1"'),
        ([{"tcp": "192.0.2.1:0"}], 'options.probes[0].tcp: port: expected 1-65535, got "0"'),
        ([{"tcp": "192.0.2.1:65536"}],
         'options.probes[0].tcp: port: expected 1-65535, got "65536"'),
        ([{"tcp": "192.0.2.1:http"}],
         'options.probes[0].tcp: port: expected 1-65535, got "http"'),
        ([{"tcp": "2001:db8::1:22"}], "options.probes[0].tcp: an IPv6 address takes brackets: "
                                       '[ADDR]:PORT, got "2001:db8::1:22"'),
        ([{"tcp": "[2001:db8::1]22"}],
         'options.probes[0].tcp: expected [IPV6]:PORT, got "[2001:db8::1]22"'),
        ([{"tcp": "[192.0.2.1]:22"}],
         'options.probes[0].tcp: brackets are for an IPv6 address, got "[192.0.2.1]:22"'),
        ([{"tcp": "host.example:22"}],
         'options.probes[0].tcp: expected an IPv4 or IPv6 address, got "host.example"'),
    ],
)
def test_bad_probes_are_error_21_naming_the_entry(raw: object, message: str) -> None:
    with pytest.raises(NetError) as err:
        probes(raw)
    assert err.value.kind == ErrorKind.BAD_PARAMS
    assert err.value.message == message


def test_at_most_max_probes() -> None:
    assert len(parse_probes("p", [{"ping": "192.0.2.1"}] * MAX_PROBES)) == MAX_PROBES
    with pytest.raises(NetError, match=f"p: expected at most {MAX_PROBES} probes, got 33"):
        parse_probes("p", [{"ping": "192.0.2.1"}] * (MAX_PROBES + 1))


def test_echo_request_checksum_and_reply_matching() -> None:
    request = echo_request(4, 0x1234, 1, b"abcd")
    # The Internet checksum of a packet that carries its own checksum is 0.
    words = sum(int.from_bytes(request[i:i + 2], "big") for i in range(0, len(request), 2))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    assert words == 0xFFFF
    reply = bytes([0, 0]) + request[2:]  # type 0: echo reply (checksum not checked on receipt)
    ip_header = bytes([0x45]) + bytes(19)
    assert is_echo_reply(4, ip_header + reply, 0x1234, b"abcd")
    assert not is_echo_reply(4, ip_header + reply, 0x4321, b"abcd")  # another pinger's
    assert not is_echo_reply(4, ip_header + request, 0x1234, b"abcd")  # our own request
    assert not is_echo_reply(4, ip_header + reply, 0x1234, b"abce")
    v6_reply = bytes([129, 0]) + echo_request(6, 7, 1, b"x")[2:]
    assert is_echo_reply(6, v6_reply, 7, b"x")
    assert not is_echo_reply(6, v6_reply[:5], 7, b"x")
