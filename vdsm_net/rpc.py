"""JSON-RPC 2.0 methods (VDSM's ``Host.*`` names and named parameters) over an ``Agent``.

Methods take keyword-only parameters, so positional ``params`` (a list) fail the signature
check and get -32602, as do unknown parameter names. A ``NetError`` becomes a JSON-RPC error
whose code is its kind (docs/errors.md), from every method.

Every answer is JSON: the body is parsed once, strictly (``NaN``, ``Infinity`` and a number too
large for a float, such as ``1e309``, are a parse error answered with id null: Python's json
would take them and write ``Infinity`` back), and a batch longer than ``[rpc] max_batch`` is
refused whole (-32600) before any of it runs. Each member of a batch that is not a request
object gets its own error; the valid members run.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonrpcserver import Error, Result, Success, async_dispatch, async_dispatch_to_serializable
from jsonrpcserver.main import default_validator

from vdsm_net.errors import NetError
from vdsm_net.pipeline import Agent
from vdsm_net.server import Handler

log = logging.getLogger("vdsm_net.rpc")


CORRELATION_HEADER = "X-Correlation-Id"


@dataclass(frozen=True)
class CallContext:
    agent: Agent
    correlation_id: str | None


def _ok(value: Any) -> Result:
    return Success(value)


def _error(exc: NetError) -> Result:
    return Error(exc.code, exc.message)


_Method = Callable[..., Awaitable[Result]]


def _answers_errors(method: _Method) -> _Method:
    """A NetError raised by ``method`` (a state file unreadable, ...) is its JSON-RPC error."""

    @functools.wraps(method)
    async def call(ctx: CallContext, **params: Any) -> Result:
        try:
            return await method(ctx, **params)
        except NetError as exc:
            return _error(exc)

    return call


def _object_or_empty(name: str, value: Any) -> Any:
    return {} if value is None else value


async def setup_networks(
    ctx: CallContext,
    *,
    networks: Any = None,
    bondings: Any = None,
    options: Any = None,
) -> Result:
    params = {
        "networks": _object_or_empty("networks", networks),
        "bondings": _object_or_empty("bondings", bondings),
        "options": _object_or_empty("options", options),
    }
    try:
        return _ok(await ctx.agent.setup_networks(params, correlation_id=ctx.correlation_id))
    except NetError as exc:
        log.warning("[%s] setupNetworks failed: error %d: %s", ctx.correlation_id or "-",
                    exc.code, exc.message)
        return _error(exc)


@_answers_errors
async def confirm_connectivity(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.confirm_connectivity())


@_answers_errors
async def set_safe_network_config(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.set_safe_network_config())


@_answers_errors
async def get_network_capabilities(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.network_capabilities())


@_answers_errors
async def get_capabilities(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.capabilities())


@_answers_errors
async def get_network_statistics(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.network_statistics())


async def ping2(ctx: CallContext) -> Result:
    return _ok({})


METHODS: dict[str, _Method] = {
    "Host.setupNetworks": setup_networks,
    "Host.confirmConnectivity": confirm_connectivity,
    "Host.setSafeNetworkConfig": set_safe_network_config,
    "Host.getNetworkCapabilities": get_network_capabilities,
    "Host.getCapabilities": get_capabilities,
    "Host.getNetworkStatistics": get_network_statistics,
    "Host.ping2": ping2,
}


class _NotJson(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def parse_body(body: str) -> Any:
    """The request document; raises ValueError (with a reason) when the body is not JSON a
    response could echo: malformed, NaN/Infinity, a non-finite number, too deeply nested."""
    try:
        return json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        # Nesting deeper than the interpreter's recursion limit ("[[[[...]]]]" fits in a small
        # body): a parse error, not an internal one.
        raise ValueError("JSON nested too deeply") from None


def _params_not_object(doc: Any) -> str | None:
    """JSON-RPC allows positional params; VDSM's API does not. Answer -32602 for a request
    whose params is present but not an object (jsonrpcserver would bind a list positionally)."""
    if isinstance(doc, list) or not isinstance(doc, dict):
        return None  # in a batch, the signature check rejects list params per request
    if "params" not in doc or isinstance(doc["params"], dict):
        return None
    return _encode({
        "jsonrpc": "2.0",
        "error": {"code": -32602, "message": "Invalid params: params must be an object"},
        "id": doc.get("id"),
    })


def _batch_too_long(doc: Any, limit: int) -> str | None:
    if not isinstance(doc, list) or len(doc) <= limit:
        return None
    return _encode({
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": f"Invalid request: a batch of {len(doc)} requests "
                  f"exceeds the limit of {limit} ([rpc] max_batch); send it in parts"},
        "id": None,
    })


def _member_problem(member: Any) -> dict[str, Any] | None:
    """The error answer for a batch member that is not a valid request object, else None.

    JSON-RPC 2.0 answers each invalid member of a batch with its own error and runs the
    valid ones (``[1, 2, 3]`` gets three -32600 answers); jsonrpcserver refuses the whole
    batch when one member fails its schema."""
    try:
        default_validator(member)
        return None
    except Exception:  # the schema validator's own error type; any of them means invalid
        pass
    if isinstance(member, dict) and "params" in member and not isinstance(
            member["params"], (dict, list)):
        error = {"code": -32602, "message": "Invalid params: params must be an object"}
        ident = member.get("id")
        return {"jsonrpc": "2.0", "error": error,
                "id": ident if type(ident) in (str, int, float) else None}
    return {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request",
                                        "data": "The request failed schema validation"},
            "id": None}


async def _dispatch_batch_with_invalid_members(
        batch: list[Any], problems: list[dict[str, Any] | None], ctx: CallContext) -> str | None:
    valid = [member for member, problem in zip(batch, problems, strict=True) if problem is None]
    answers: list[Any] = []
    if valid:
        answered = await async_dispatch_to_serializable(
            "", methods=METHODS, context=ctx, deserializer=lambda _: valid)
        answers = list(answered or [])  # None: the valid members were all notifications
    answers += [problem for problem in problems if problem is not None]
    return _encode(answers)


def _parse_error(reason: str) -> str:
    return _encode({
        "jsonrpc": "2.0", "error": {"code": -32700, "message": f"Parse error: {reason}"},
        "id": None,
    })


def _encode(doc: Any) -> str:
    # allow_nan=False: an answer that is not JSON fails here (the server answers -32603)
    # rather than reaching a client as "Infinity".
    return json.dumps(doc, allow_nan=False)


def make_handler(agent: Agent) -> Handler:
    max_batch = agent.cfg.max_batch

    async def handle(body: str, headers: Mapping[str, str]) -> str | None:
        try:
            doc = parse_body(body)
        except ValueError as exc:
            return _parse_error(str(exc))
        early = _params_not_object(doc) or _batch_too_long(doc, max_batch)
        if early is not None:
            return early
        ctx = CallContext(agent, headers.get(CORRELATION_HEADER))
        if isinstance(doc, list) and doc:
            # Each member is validated once here; jsonrpcserver would refuse the whole batch.
            problems = [_member_problem(member) for member in doc]
            if any(problem is not None for problem in problems):
                return await _dispatch_batch_with_invalid_members(doc, problems, ctx)
        response = await async_dispatch(
            body, methods=METHODS, context=ctx, deserializer=lambda _: doc, serializer=_encode
        )
        return response or None

    return handle
