"""JSON-RPC 2.0 client for the agent (docs/api.md), over HTTPS with client certificates or a Unix
socket. The transport is injectable (a Protocol) so the rollout can be tested in-process; the
real one is ``engine_client.transport.HttpTransport``.

Every failure surfaces as one exception type, ``AgentError``: either the agent's own JSON-RPC
error (its VDSM code and message), or a transport failure with a negative code.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from engine_client.tls_sessions import ResumingContext
from vdsm_net import jsonrpc_codec

UNREACHABLE: Final = -1
TIMEOUT: Final = -2
BAD_RESPONSE: Final = -3
TLS: Final = -4

DEFAULT_TIMEOUT: Final = 30.0
JSONRPC_PATH: Final = "/jsonrpc"
CORRELATION_HEADER: Final = "X-Correlation-Id"


class AgentError(Exception):
    """A JSON-RPC error from the agent (its code, e.g. 21), or a transport failure:
    -1 unreachable, -2 timeout, -3 bad response, -4 TLS."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"

    def __repr__(self) -> str:
        return f"AgentError({self.code}, {self.message!r})"


@dataclass(frozen=True)
class Endpoint:
    """Where an agent listens: ``https://10.1.0.2:54321`` (with the client's cert/key and the
    CA that signed the agent's certificate), ``http://`` (agent run with --insecure) or
    ``unix:///run/vdsm-net/vdsm-net.sock``."""

    url: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    @functools.cached_property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @functools.cached_property
    def hostname(self) -> str | None:
        return urlsplit(self.url).hostname

    @property
    def socket_path(self) -> str:
        """For unix:// endpoints: the socket's file path (``unix:///a/b.sock`` → ``/a/b.sock``)."""
        return self.url[len("unix://") :]


class Transport(Protocol):
    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes: ...


def _fmt_seconds(timeout: float) -> str:
    return f"{timeout:g} s"


def tls_context(cert: str | None, key: str | None, ca: str | None) -> ResumingContext:
    """The client side of mutual TLS with agents, resuming sessions (``tls_sessions``)."""
    # Agents' certificates carry IP SANs, so hostname checking stays on even for bare addresses.
    ctx = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.load_verify_locations(cafile=ca)
    ctx.check_hostname = True
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


_ids = jsonrpc_codec.Ids()


def parse_response(data: bytes, request_id: int, where: str) -> Any:
    """The result of a JSON-RPC 2.0 response, strictly checked; AgentError otherwise."""
    try:
        response = jsonrpc_codec.decode_response(data, request_id)
    except jsonrpc_codec.MalformedResponse as exc:
        raise AgentError(BAD_RESPONSE, f"{where}: bad response: {exc}") from exc
    if response.error is not None:
        raise AgentError(response.error.code, response.error.message, response.error.data)
    return response.result


class AgentClient:
    """Calls ``Host.*`` methods of one agent."""

    def __init__(
        self, endpoint: Endpoint, transport: Transport, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.timeout = timeout

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        request_id = _ids.next()
        body = jsonrpc_codec.Request(request_id, method, params or {}).encode()
        headers = {"Content-Type": "application/json"}
        if correlation_id is not None:
            headers[CORRELATION_HEADER] = correlation_id
        limit = self.timeout if timeout is None else timeout
        try:
            # The outer bound also covers transports that do not enforce the timeout themselves.
            async with asyncio.timeout(limit):
                data = await self.transport.post(self.endpoint, body, headers, limit)
        except TimeoutError as exc:
            raise AgentError(
                TIMEOUT, f"{self.endpoint.url}: {method} timed out after {_fmt_seconds(limit)}"
            ) from exc
        return parse_response(data, request_id, self.endpoint.url)
