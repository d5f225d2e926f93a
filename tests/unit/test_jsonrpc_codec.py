"""The JSON-RPC 2.0 client codec both callers share (vdsm-net-client and the engine)."""

from __future__ import annotations

import json
import math

import pytest

from vdsm_net.jsonrpc_codec import (
    ErrorObject,
    Ids,
    MalformedResponse,
    NotJson,
    Request,
    Response,
    decode_batch,
    decode_response,
    dumps,
    encode_batch,
    loads,
)


def test_request_encodes_as_json_rpc_2() -> None:
    body = Request(7, "Host.setupNetworks", {"networks": {"red": {"vlan": 5}}}).encode()
    assert body == (b'{"jsonrpc": "2.0", "id": 7, "method": "Host.setupNetworks", '
                    b'"params": {"networks": {"red": {"vlan": 5}}}}')
    assert Request(8, "Host.ping2").encode() == (
        b'{"jsonrpc": "2.0", "id": 8, "method": "Host.ping2", "params": {}}'
    )


def test_ids_count_from_one_per_source() -> None:
    a, b = Ids(), Ids()
    assert [a.next(), a.next(), a.next()] == [1, 2, 3]
    assert b.next() == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_request_holding_nan_or_infinity_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        Request(1, "Host.x", {"mtu": value}).encode()
    with pytest.raises(ValueError):
        dumps([value])


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_an_answer_holding_nan_or_infinity_is_not_json(constant: str) -> None:
    body = f'{{"jsonrpc": "2.0", "id": 1, "result": {{"speed": {constant}}}}}'
    assert json.loads(body)["result"]  # Python's own json would take it
    with pytest.raises(NotJson, match="not JSON"):
        decode_response(body, 1)
    with pytest.raises(ValueError, match=f"{constant} is not JSON"):
        loads(constant)


def test_result_and_error_decode() -> None:
    assert decode_response(b'{"jsonrpc": "2.0", "id": 3, "result": [1, "a"]}', 3) == Response(
        3, result=[1, "a"]
    )
    body = (b'{"jsonrpc": "2.0", "id": 3, "error": {"code": 25, "message": "bad nic", '
            b'"data": {"field": "networks.red.nic"}}}')
    assert decode_response(body, 3) == Response(
        3, error=ErrorObject(25, "bad nic", {"field": "networks.red.nic"})
    )
    # An unparsable request is answered with id null; its error is still the answer.
    null_id = b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse"}}'
    assert decode_response(null_id, 3) == Response(None, error=ErrorObject(-32700, "Parse"))


def test_string_ids_round_trip() -> None:
    request = Request("c-9", "Host.ping2")
    sent = json.loads(request.encode())
    answer = json.dumps({"jsonrpc": "2.0", "id": sent["id"], "result": True})
    assert decode_response(answer, request.id) == Response("c-9", result=True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not JSON: '<html>'"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": true, "message": "m"}}',
         "error: expected integer code and string message, got {'code': True, 'message': 'm'}"),
        (b'{"jsonrpc": "1.0", "id": 1, "result": 1}', "jsonrpc: expected '2.0', got '1.0'"),
        (b'{"jsonrpc": "2.0", "id": null, "result": 1}', "id: expected 1, got None"),
    ],
)
def test_malformed_answers_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedResponse) as err:
        decode_response(body, 1)
    assert str(err.value) == reason


def test_batch_encodes_as_one_array_and_refuses_an_empty_one() -> None:
    body = encode_batch([Request(1, "Host.ping2"), Request(2, "Host.getStats")])
    assert [r["method"] for r in json.loads(body)] == ["Host.ping2", "Host.getStats"]
    with pytest.raises(ValueError, match="at least one request"):
        encode_batch([])


def test_batch_answers_come_back_in_request_order() -> None:
    body = json.dumps([
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "Method not found"}},
        {"jsonrpc": "2.0", "id": 1, "result": "pong"},
    ])
    assert decode_batch(body, [1, 2]) == [
        Response(1, result="pong"),
        Response(2, error=ErrorObject(-32601, "Method not found")),
    ]


def test_a_batch_the_server_could_not_read_is_one_error_for_every_request() -> None:
    body = b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid"}}'
    assert decode_batch(body, [1, 2]) == [Response(None, error=ErrorObject(-32600, "Invalid"))] * 2


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([{"jsonrpc": "2.0", "id": 1, "result": 1}], "batch: no answer for id 2"),
        ([{"jsonrpc": "2.0", "id": 1, "result": 1}, {"jsonrpc": "2.0", "id": 1, "result": 2}],
         "batch: id 1 answered twice"),
        ([{"jsonrpc": "2.0", "id": 3, "result": 1}], "id: expected [1, 2], got 3"),
        ({"jsonrpc": "2.0", "id": 1, "result": 1},
         "expected a JSON array for a batch, got an object"),
        ("x", "expected a JSON array for a batch, got str"),
    ],
)
def test_batch_answers_are_checked(answers: object, reason: str) -> None:
    with pytest.raises(MalformedResponse) as err:
        decode_batch(json.dumps(answers), [1, 2])
    assert str(err.value) == reason
