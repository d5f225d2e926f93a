"""JSON-RPC 2.0 client for the agent (SPEC §1), over HTTPS with client certificates or a Unix
socket. The transport is injectable (a Protocol) so the rollout can be tested in-process.

Every failure surfaces as one exception type, ``AgentError``: either the agent's own JSON-RPC
error (its VDSM code and message), or a transport failure with a negative code.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import itertools
import json
import os
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp

UNREACHABLE: Final = -1
TIMEOUT: Final = -2
BAD_RESPONSE: Final = -3
TLS: Final = -4

DEFAULT_TIMEOUT: Final = 30.0
JSONRPC_PATH: Final = "/jsonrpc"
CORRELATION_HEADER: Final = "X-Correlation-Id"
PROBE_SECONDS: Final = 1.0


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

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

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


# The agent (URL) a connection is being made to, set around each request: asyncio starts a
# connection's TLS handshake (``SSLContext.wrap_bio``) from the requesting task, whose context
# this is. Were that ever not the case, connections would just not resume.
_AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("agent", default=None)


class _ResumingContext(ssl.SSLContext):
    """A client context that offers an agent the TLS session of an earlier connection to the
    same agent (URL), so that its second connection (the confirmations' while setupNetworks
    holds the first) resumes instead of doing a full mutual-TLS handshake: 0.2 instead of
    1.0 ms of the engine's CPU, 0.5 instead of 1.5 ms of the agent's (OpenSSL 3.0, P-256). A
    session is only ever offered to the agent it came from: OpenSSL leaves that to the
    application, and a resumed session is not verified again."""

    def __init__(self, protocol: ssl._SSLMethod) -> None:
        self._sessions: dict[str, ssl.SSLSession] = {}
        self._latest: dict[str, weakref.ref[ssl.SSLObject]] = {}

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        agent = _AGENT.get()
        if agent is not None and session is None and not server_side:
            session = self._session(agent)
        obj = super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        if agent is not None:
            self._latest[agent] = weakref.ref(obj)
        return obj

    def _session(self, agent: str) -> ssl.SSLSession | None:
        ref = self._latest.get(agent)
        obj = ref() if ref is not None else None
        # TLS 1.3 tickets come after the handshake, read with the first response.
        fresh = obj.session if obj is not None else None
        if fresh is not None and fresh.has_ticket:
            self._sessions[agent] = fresh
        return self._sessions.get(agent)

    def forget(self, agent: str) -> None:
        self._sessions.pop(agent, None)
        self._latest.pop(agent, None)


def _tls_context(cert: str | None, key: str | None, ca: str | None) -> _ResumingContext:
    # Agents' certificates carry IP SANs, so hostname checking stays on even for bare addresses.
    ctx = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.load_verify_locations(cafile=ca)
    ctx.check_hostname = True
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _os_reason(exc: BaseException) -> str:
    """The plain reason of an OS-level failure ("Connection refused"), without aiohttp's
    wrapping text, which repeats the address."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        # asyncio words a refused connect as "Connect call failed ('10.0.0.2', 54321)":
        # the errno's own text says why.
        if isinstance(cur, OSError) and cur.errno:
            return os.strerror(cur.errno)
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror
        cur = cur.__cause__ or cur.__context__
    return str(exc) or type(exc).__name__


def _find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        # aiohttp's certificate error subclasses ssl.CertificateError without its attributes;
        # the real one is its cause.
        if isinstance(cur, ssl.SSLError) and not isinstance(cur, aiohttp.ClientError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _tls_reason(err: BaseException) -> str:
    found = _find_ssl_error(err)
    if isinstance(found, ssl.SSLCertVerificationError) and found.verify_message:
        return f"certificate verify failed: {found.verify_message}"
    if found is not None and found.reason:
        return found.reason.replace("_", " ").lower()
    return str(err)


class AiohttpTransport:
    """The real transport. One session (connection pool of at most ``limit_per_host``) per
    agent URL or Unix socket path, with an SSL context per (cert, key, ca) built once; callers
    bound how many agents they talk to at once (``limit`` is kept for compatibility).
    ``release(endpoint)`` closes one agent's connections, ``close()`` all."""

    def __init__(
        self, *, limit: int = 100, limit_per_host: int = 4, connect_timeout: float = 10.0
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._connect_timeout = connect_timeout
        self._hosts: dict[str, aiohttp.ClientSession] = {}
        self._busy: dict[str, int] = {}  # requests in flight per agent URL
        self._unix: dict[str, aiohttp.ClientSession] = {}
        self._contexts: dict[tuple[str | None, str | None, str | None], _ResumingContext] = {}

    def _context(self, endpoint: Endpoint) -> _ResumingContext:
        key = (endpoint.cert, endpoint.key, endpoint.ca)
        ctx = self._contexts.get(key)
        if ctx is None:
            try:
                ctx = _tls_context(endpoint.cert, endpoint.key, endpoint.ca)
            except (OSError, ssl.SSLError) as exc:
                raise AgentError(
                    TLS,
                    f"TLS: cannot load cert={endpoint.cert} key={endpoint.key} "
                    f"ca={endpoint.ca}: {_os_reason(exc)}",
                ) from exc
            self._contexts[key] = ctx
        return ctx

    async def release(self, endpoint: Endpoint) -> None:
        """Close the idle connections to this endpoint (its work is done)."""
        for ctx in self._contexts.values():
            ctx.forget(endpoint.url)
        session = self._hosts.pop(endpoint.url, None)
        if session is not None:
            await session.close()

    def _session_for(self, endpoint: Endpoint) -> tuple[aiohttp.ClientSession, str]:
        scheme = endpoint.scheme
        if scheme == "unix":
            path = endpoint.socket_path
            session = self._unix.get(path)
            if session is None:
                unix = aiohttp.UnixConnector(path=path, limit=self._limit_per_host)
                session = aiohttp.ClientSession(connector=unix)
                self._unix[path] = session
            # The host part is ignored on a Unix socket but must be a valid URL.
            return session, f"http://localhost{JSONRPC_PATH}"
        if scheme not in ("https", "http"):
            raise AgentError(
                UNREACHABLE,
                f"endpoint.url: expected https://, http:// or unix://, got {endpoint.url!r}",
            )
        # One session (connection pool) per agent, so that ``release`` can close exactly its
        # connections; the caller bounds how many agents are talked to at once.
        session = self._hosts.pop(endpoint.url, None)
        if session is None:
            tcp = aiohttp.TCPConnector(limit=self._limit_per_host,
                                       limit_per_host=self._limit_per_host)
            session = aiohttp.ClientSession(connector=tcp)
        self._hosts[endpoint.url] = session  # most recently used last
        return session, endpoint.url.rstrip("/") + JSONRPC_PATH

    async def _evict(self) -> None:
        """Past ``limit`` agents, close the least recently used idle ones (a capabilities
        probe of every host never calls ``release``)."""
        excess = len(self._hosts) - self._limit
        victims = []
        for url in list(self._hosts):
            if excess <= 0:
                break
            if self._busy.get(url, 0) == 0:
                excess -= 1
                victims.append(self._hosts.pop(url))  # before any await: others evict too
        for session in victims:
            await session.close()

    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        await self._evict()
        session, url = self._session_for(endpoint)
        self._busy[endpoint.url] = self._busy.get(endpoint.url, 0) + 1
        token = _AGENT.set(endpoint.url)
        try:
            return await self._post(session, url, endpoint, body, headers, timeout)
        finally:
            _AGENT.reset(token)
            left = self._busy.pop(endpoint.url) - 1
            if left:
                self._busy[endpoint.url] = left

    async def _post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        endpoint: Endpoint,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> bytes:
        ssl_arg: ssl.SSLContext | bool = (
            self._context(endpoint) if endpoint.scheme == "https" else True
        )
        client_timeout = aiohttp.ClientTimeout(
            total=timeout, connect=min(timeout, self._connect_timeout), sock_read=timeout
        )
        where = endpoint.url
        try:
            async with session.post(
                url, data=body, headers=dict(headers), timeout=client_timeout, ssl=ssl_arg
            ) as resp:
                data = await resp.read()
                status = resp.status
                reason = resp.reason or ""
        except AgentError:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise AgentError(TIMEOUT, f"{where}: timed out after {_fmt_seconds(timeout)}") from exc
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise AgentError(TLS, f"{where}: TLS: {_tls_reason(exc)}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise AgentError(UNREACHABLE, f"cannot connect to {where}: {_os_reason(exc)}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise _closed_or_tls(where, exc) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            err = _closed_or_tls(where, exc)
            if (
                err.code == BAD_RESPONSE
                and endpoint.scheme == "https"
                and (await self._rejects_tls(endpoint))
            ):
                err = AgentError(
                    TLS,
                    f"{where}: TLS: the agent closed the connection after the handshake "
                    "(client certificate missing or not signed by the agent's CA)",
                )
            raise err from exc
        except aiohttp.ClientResponseError as exc:
            raise AgentError(BAD_RESPONSE, f"{where}: bad response: {exc.message}") from exc
        except aiohttp.ClientError as exc:
            raise AgentError(UNREACHABLE, f"{where}: {type(exc).__name__}: {exc}") from exc
        if status != 200 and not _looks_like_jsonrpc(data):
            raise AgentError(BAD_RESPONSE, f"{where}: bad response: HTTP {status} {reason}")
        return data

    async def _rejects_tls(self, endpoint: Endpoint) -> bool:
        """Whether the agent drops a fresh TLS connection on which nothing was sent yet.

        With TLS 1.3 the server verifies the client certificate after the client has finished
        its handshake, and an asyncio server aborts without an alert: the client only sees a
        closed or reset connection on its first request. A healthy server instead waits for
        the request, so a quiet connection that stays open means the failure was not TLS.
        """
        parts = urlsplit(endpoint.url)
        if parts.hostname is None:
            return False
        # A full handshake: a resumed one would not ask for the client certificate again.
        _AGENT.set(None)
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                reader, writer = await asyncio.open_connection(
                    parts.hostname,
                    parts.port or 443,
                    ssl=self._context(endpoint),
                    server_hostname=parts.hostname,
                )
        except (OSError, TimeoutError, AgentError):
            return False
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                return await reader.read(1) == b""
        except TimeoutError:
            return False
        except OSError:  # reset, or an alert surfacing as ssl.SSLError
            return True
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        sessions = [*self._unix.values(), *self._hosts.values()]
        self._unix.clear()
        self._hosts.clear()
        for session in sessions:
            await session.close()

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _closed_or_tls(where: str, exc: BaseException) -> AgentError:
    # With TLS 1.3 the server checks the client certificate after the client considers the
    # handshake done, so a rejected client certificate shows up as an alert (or a reset) on the
    # first read, not as a handshake error.
    if _find_ssl_error(exc) is not None:
        return AgentError(TLS, f"{where}: TLS: {_tls_reason(exc)}")
    reason = _os_reason(exc)
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, OSError) and cur.errno == errno.ECONNREFUSED:
            return AgentError(UNREACHABLE, f"cannot connect to {where}: {reason}")
        cur = cur.__cause__
    return AgentError(BAD_RESPONSE, f"{where}: bad response: connection closed ({reason})")


def _looks_like_jsonrpc(data: bytes) -> bool:
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("jsonrpc") == "2.0"


_ids = itertools.count(1)


def parse_response(data: bytes, request_id: int, where: str) -> Any:
    """The result of a JSON-RPC 2.0 response, strictly checked; AgentError otherwise."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        snippet = data[:80].decode("utf-8", "replace")
        raise AgentError(BAD_RESPONSE, f"{where}: bad response: not JSON: {snippet!r}") from exc
    if not isinstance(doc, dict):
        raise AgentError(
            BAD_RESPONSE, f"{where}: bad response: expected a JSON object, got {type(doc).__name__}"
        )
    if doc.get("jsonrpc") != "2.0":
        raise AgentError(
            BAD_RESPONSE,
            f"{where}: bad response: jsonrpc: expected '2.0', got {doc.get('jsonrpc')!r}",
        )
    error = doc.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise AgentError(BAD_RESPONSE, f"{where}: bad response: error: not an object")
        code = error.get("code")
        message = error.get("message")
        if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
            raise AgentError(
                BAD_RESPONSE,
                f"{where}: bad response: error: expected integer code and "
                f"string message, got {error!r}",
            )
        # An error for an unparsable request carries id null; any other id must be ours.
        if doc.get("id") not in (request_id, None):
            raise AgentError(
                BAD_RESPONSE,
                f"{where}: bad response: id: expected {request_id}, got {doc.get('id')!r}",
            )
        raise AgentError(code, message, error.get("data"))
    if doc.get("id") != request_id:
        raise AgentError(
            BAD_RESPONSE, f"{where}: bad response: id: expected {request_id}, got {doc.get('id')!r}"
        )
    if "result" not in doc:
        raise AgentError(BAD_RESPONSE, f"{where}: bad response: neither result nor error")
    return doc["result"]


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
        request_id = next(_ids)
        request = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": method,
            "params": dict(params) if params is not None else {},
        }
        body = json.dumps(request).encode()
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
