"""The JSON-RPC 2.0 client codec (docs/api.md): requests to bytes, answers from bytes.

One module for both callers of an agent, ``vdsm-net-client`` (``vdsm_net.client``) and the
engine (``engine_client.agent_client``); each keeps its own transport and its own error type,
and turns ``MalformedResponse`` and ``ErrorObject`` into it.

JSON is strict both ways: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259),
although Python's ``json`` writes and reads them by default; a request holding one is refused
before it is sent, an answer holding one is malformed. Standard library only: the engine
imports this module too.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

VERSION: Final = "2.0"
RequestId = int | str | None  # None only in an error answer to an unparsable request


class MalformedResponse(ValueError):
    """The answer is not a JSON-RPC 2.0 response to the request; ``str`` says why."""


class NotJson(MalformedResponse):
    """The answer is not JSON at all (an HTTP error page, a proxy's answer...)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str) -> Any:
    """Strict JSON: ``ValueError`` (``UnicodeDecodeError`` is one) also for NaN/Infinity."""
    return json.loads(data, parse_constant=_refuse_constant)


def dumps(doc: Any) -> str:
    """Strict JSON: ``ValueError`` for a float NaN or infinity."""
    return json.dumps(doc, allow_nan=False)


class Ids:
    """Request ids: 1, 2, 3... (one source per caller, so that an answer names its request).
    Safe to share between threads: ``next`` of an ``itertools.count`` is one atomic step."""

    def __init__(self) -> None:
        self._counter: Iterator[int] = itertools.count(1)

    def next(self) -> int:
        return next(self._counter)


@dataclass(frozen=True)
class Request:
    id: int | str
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"jsonrpc": VERSION, "id": self.id, "method": self.method,
                "params": dict(self.params)}

    def encode(self) -> bytes:
        """``ValueError`` when a parameter holds a float NaN or infinity."""
        return dumps(self.to_json()).encode()


def encode_batch(requests: Sequence[Request]) -> bytes:
    """A batch: one JSON array of requests (JSON-RPC forbids an empty one)."""
    if not requests:
        raise ValueError("a JSON-RPC batch holds at least one request")
    return dumps([r.to_json() for r in requests]).encode()


@dataclass(frozen=True)
class ErrorObject:
    """An answer's ``error``: its code (VDSM's, or JSON-RPC's -32xxx), message and details."""

    code: int
    message: str
    data: Any = None


@dataclass(frozen=True)
class Response:
    """Exactly one of ``result`` and ``error`` was sent; ``result`` is None when ``error`` is."""

    id: RequestId
    result: Any = None
    error: ErrorObject | None = None


def _snippet(data: bytes | str) -> str:
    text = data if isinstance(data, str) else data[:80].decode("utf-8", "replace")
    return repr(text[:80])


def _parse(data: bytes | str) -> Any:
    try:
        return loads(data)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise NotJson(f"not JSON: {_snippet(data)}") from exc


def _error_object(error: object) -> ErrorObject:
    if not isinstance(error, dict):
        raise MalformedResponse("error: not an object")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise MalformedResponse(
            f"error: expected integer code and string message, got {error!r}"
        )
    return ErrorObject(code, message, error.get("data"))


def _response(doc: object, expected: Sequence[RequestId]) -> Response:
    """One response object whose id is one of ``expected`` (or null, for an error)."""
    if not isinstance(doc, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("jsonrpc") != VERSION:
        raise MalformedResponse(f"jsonrpc: expected '2.0', got {doc.get('jsonrpc')!r}")
    request_id = doc.get("id")
    wanted = expected[0] if len(expected) == 1 else list(expected)
    error = doc.get("error")
    if error is not None:
        error_object = _error_object(error)
        # An error for an unparsable request carries id null; any other id must be ours.
        if request_id is not None and request_id not in expected:
            raise MalformedResponse(f"id: expected {wanted}, got {request_id!r}")
        return Response(request_id, error=error_object)
    if request_id is None or request_id not in expected:
        raise MalformedResponse(f"id: expected {wanted}, got {request_id!r}")
    if "result" not in doc:
        raise MalformedResponse("neither result nor error")
    return Response(request_id, result=doc["result"])


def decode_response(data: bytes | str, request_id: int | str) -> Response:
    """The answer to the request ``request_id``, strictly checked; ``MalformedResponse``
    otherwise. An error answer is a ``Response`` with ``error`` set, not an exception."""
    return _response(_parse(data), (request_id,))


def decode_batch(data: bytes | str, request_ids: Sequence[int | str]) -> list[Response]:
    """The answers to a batch, in the order of ``request_ids``; ``MalformedResponse`` unless
    every request is answered exactly once. A server that could not read the batch at all
    answers one error object (id null): it is every request's answer."""
    doc = _parse(data)
    if isinstance(doc, dict):
        single = _response(doc, request_ids)
        if single.error is None or single.id is not None:
            raise MalformedResponse("expected a JSON array for a batch, got an object")
        return [single] * len(request_ids)
    if not isinstance(doc, list):
        raise MalformedResponse(f"expected a JSON array for a batch, got {type(doc).__name__}")
    answers: dict[RequestId, Response] = {}
    for item in doc:
        response = _response(item, request_ids)
        if response.id is None:
            # Its request cannot be told apart from the others: no answer is trustworthy.
            raise MalformedResponse(
                f"batch: an error without an id: {response.error}"
            )
        if response.id in answers:
            raise MalformedResponse(f"batch: id {response.id!r} answered twice")
        answers[response.id] = response
    missing = [i for i in request_ids if i not in answers]
    if missing:
        raise MalformedResponse(f"batch: no answer for id {', '.join(map(repr, missing))}")
    return [answers[i] for i in request_ids]
