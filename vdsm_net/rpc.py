"""JSON-RPC 2.0 methods (VDSM's ``Host.*`` names and named parameters) over an ``Agent``.

Methods take keyword-only parameters, so positional ``params`` (a list) fail the signature
check and get -32602, as do unknown parameter names. A ``NetError`` becomes a JSON-RPC error
whose code is its kind (SPEC §1.5).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonrpcserver import Error, Result, Success, async_dispatch

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


async def confirm_connectivity(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.confirm_connectivity())


async def set_safe_network_config(ctx: CallContext) -> Result:
    try:
        return _ok(await ctx.agent.set_safe_network_config())
    except NetError as exc:
        return _error(exc)


async def get_network_capabilities(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.network_capabilities())


async def get_capabilities(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.capabilities())


async def get_network_statistics(ctx: CallContext) -> Result:
    return _ok(await ctx.agent.network_statistics())


async def ping2(ctx: CallContext) -> Result:
    return _ok({})


METHODS: dict[str, Callable[..., Awaitable[Result]]] = {
    "Host.setupNetworks": setup_networks,
    "Host.confirmConnectivity": confirm_connectivity,
    "Host.setSafeNetworkConfig": set_safe_network_config,
    "Host.getNetworkCapabilities": get_network_capabilities,
    "Host.getCapabilities": get_capabilities,
    "Host.getNetworkStatistics": get_network_statistics,
    "Host.ping2": ping2,
}


def _params_not_object(body: str) -> str | None:
    """JSON-RPC allows positional params; VDSM's API does not. Answer -32602 for a request
    whose params is present but not an object (jsonrpcserver would bind a list positionally)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None  # jsonrpcserver answers -32700
    except RecursionError:
        # Nesting deeper than the interpreter's recursion limit ("[[[[...]]]]" fits in a small
        # body): a parse error, not an internal one.
        return _parse_error("JSON nested too deeply")
    requests = doc if isinstance(doc, list) else [doc]
    bad = [r for r in requests if isinstance(r, dict) and "params" in r
           and not isinstance(r["params"], dict)]
    if not bad or isinstance(doc, list):
        return None  # in a batch, the signature check rejects list params per request
    return json.dumps({
        "jsonrpc": "2.0",
        "error": {"code": -32602, "message": "Invalid params: params must be an object"},
        "id": bad[0].get("id"),
    })


def _parse_error(reason: str) -> str:
    return json.dumps({
        "jsonrpc": "2.0", "error": {"code": -32700, "message": f"Parse error: {reason}"},
        "id": None,
    })


def make_handler(agent: Agent) -> Handler:
    async def handle(body: str, headers: Mapping[str, str]) -> str | None:
        early = _params_not_object(body)
        if early is not None:
            return early
        ctx = CallContext(agent, headers.get(CORRELATION_HEADER))
        response = await async_dispatch(body, methods=METHODS, context=ctx)
        return response or None

    return handle
