"""The wire to the agents: JSON-RPC POSTs over HTTP/1.1 keep-alive connections, TLS with
client certificates (``https://``), plain (``http://``) or a Unix socket (``unix://``).

A small client of its own rather than aiohttp's: the engine client only ever POSTs one small
JSON body and reads one Content-Length (or chunked) answer, and at hundreds of hosts the
general client was the largest cost after the TLS handshakes: ~0.2 ms of CPU more per request
(one ``network update`` makes 2-3 per host) and ~0.16 s of every command's start (importing
it, and the default certificate store it loads at import).

Every failure is an ``AgentError``: -1 unreachable, -2 timeout, -3 bad response, -4 TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from engine_client.agent_client import (
    BAD_RESPONSE,
    CURRENT_AGENT,
    JSONRPC_PATH,
    TIMEOUT,
    TLS,
    UNREACHABLE,
    AgentError,
    Endpoint,
    ResumingContext,
    tls_context,
)

PROBE_SECONDS: Final = 1.0
MAX_HEAD: Final = 64 * 1024  # bytes of status line and headers before the answer is refused
# An agent's largest answer, capabilities of a host with thousands of networks, is a few MiB;
# past this the answer is refused rather than buffered without end.
MAX_BODY: Final = 64 * 1024 * 1024


class _Closed(Exception):
    """The connection ended before the whole answer came."""


class _BadHttp(Exception):
    """The answer is not HTTP/1.x as we speak it."""


@dataclass
class _Response:
    status: int
    reason: str
    body: bytes
    keep_alive: bool


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[_Response] | None = None
        self._head: tuple[int, str, dict[str, str]] | None = None
        self._head_len = 0

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Nothing asked for: a server talking out of turn; the connection is not reusable.
            self.close()
            return
        self._buf += data
        try:
            response = self._parse()
        except _BadHttp as exc:
            self._waiter.set_exception(exc)
            self.close()
            return
        if response is not None:
            self._waiter.set_result(response)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._head is not None and self._until_close():
                self._waiter.set_result(self._response(bytes(self._buf[self._head_len :]), False))
            else:
                closed = _Closed("connection closed before the end of the answer")
                closed.__cause__ = exc
                self._waiter.set_exception(closed)

    # -- requests -----------------------------------------------------------------------

    async def request(self, data: bytes) -> _Response:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buf.clear()
        self._head = None
        try:
            self.transport.write(data)
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- parsing ------------------------------------------------------------------------

    def _parse(self) -> _Response | None:
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise _BadHttp(f"headers longer than {MAX_HEAD} bytes")
                return None
            self._head = _parse_head(bytes(self._buf[:end]))
            self._head_len = end + 4
        headers = self._head[2]
        if len(self._buf) > self._head_len + MAX_BODY + MAX_HEAD:  # chunk framing included
            raise _BadHttp(f"answer longer than {MAX_BODY} bytes")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = _dechunk(self._buf, self._head_len)
            return None if body is None else self._response(body, self._keep_alive())
        length = headers.get("content-length")
        if length is None:
            return None  # until the server closes (connection_lost)
        if not length.isdigit():
            raise _BadHttp(f"Content-Length: {length!r}")
        if int(length) > MAX_BODY:
            raise _BadHttp(f"Content-Length {length} is over {MAX_BODY} bytes")
        end = self._head_len + int(length)
        if len(self._buf) < end:
            return None
        return self._response(bytes(self._buf[self._head_len : end]), self._keep_alive())

    def _until_close(self) -> bool:
        assert self._head is not None
        headers = self._head[2]
        return "content-length" not in headers and "transfer-encoding" not in headers

    def _keep_alive(self) -> bool:
        assert self._head is not None
        return self._head[2].get("connection", "").lower() != "close"

    def _response(self, body: bytes, keep_alive: bool) -> _Response:
        assert self._head is not None
        status, reason, _ = self._head
        return _Response(status, reason, body, keep_alive)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise _BadHttp(f"status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadHttp(f"header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(code), reason, headers


def _dechunk(buf: bytearray, start: int) -> bytes | None:
    """The body of a complete chunked answer in ``buf[start:]``, or None while incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadHttp(f"chunk size {size_text[:20]!r}") from None
        if size == 0:
            # Trailers (none expected) end with an empty line.
            return bytes(out) if buf.find(b"\r\n\r\n", eol) >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        out += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


@dataclass
class _Agent:
    """One agent's connections: idle ones (most recent last) and how many are in use."""

    first: str  # the request line and Host header
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)
    busy: int = 0


class HttpTransport:
    """The real transport: per agent (URL or Unix socket path) up to ``limit_per_host``
    keep-alive connections; past ``limit`` agents the least recently used idle ones are
    closed. ``release(endpoint)`` closes one agent's connections, ``close()`` all."""

    def __init__(
        self, *, limit: int = 100, limit_per_host: int = 4, connect_timeout: float = 10.0
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._connect_timeout = connect_timeout
        self._agents: dict[str, _Agent] = {}  # least recently used first
        self._contexts: dict[tuple[str | None, str | None, str | None], ResumingContext] = {}

    def _context(self, endpoint: Endpoint) -> ResumingContext:
        key = (endpoint.cert, endpoint.key, endpoint.ca)
        ctx = self._contexts.get(key)
        if ctx is None:
            try:
                ctx = tls_context(endpoint.cert, endpoint.key, endpoint.ca)
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
        agent = self._agents.pop(endpoint.url, None)
        if agent is not None:
            _close_all(agent.idle)

    async def preconnect(self, endpoint: Endpoint, timeout: float) -> None:
        """Open one more idle connection to this agent, for a request about to need it (the
        confirmations, while setupNetworks holds the first one): its TLS handshake then
        overlaps the agent's apply instead of delaying the first confirmation, and at
        --parallel 500 the 500 handshakes are not all made at the moment of confirming."""
        if endpoint.scheme not in ("https", "http"):
            return
        ssl_ctx = self._context(endpoint) if endpoint.scheme == "https" else None
        agent = self._agent(endpoint)
        if agent.idle or agent.busy >= self._limit_per_host:
            return
        agent.busy += 1
        token = CURRENT_AGENT.set(endpoint.url)
        try:
            conn = await self._connect(endpoint, ssl_ctx, min(timeout, self._connect_timeout))
        finally:
            CURRENT_AGENT.reset(token)
            agent.busy -= 1
        if self._agents.get(endpoint.url) is agent and not conn.closed:
            agent.idle.append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        agents = list(self._agents.values())
        self._agents.clear()
        for agent in agents:
            _close_all(agent.idle)
        # Let the transports run their close callbacks (and TLS close_notify) before the
        # loop goes away.
        await asyncio.sleep(0)

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _agent(self, endpoint: Endpoint) -> _Agent:
        url = endpoint.url
        agent = self._agents.pop(url, None)
        if agent is None:
            agent = _Agent(_request_line(endpoint), asyncio.Semaphore(self._limit_per_host))
        self._agents[url] = agent  # most recently used last
        excess = len(self._agents) - self._limit
        for other_url in list(self._agents):
            if excess <= 0:
                break
            other = self._agents[other_url]
            if other.busy == 0 and other is not agent:
                excess -= 1
                del self._agents[other_url]
                _close_all(other.idle)
        return agent

    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        scheme = endpoint.scheme
        if scheme not in ("https", "http", "unix"):
            raise AgentError(
                UNREACHABLE,
                f"endpoint.url: expected https://, http:// or unix://, got {endpoint.url!r}",
            )
        ssl_ctx = self._context(endpoint) if scheme == "https" else None
        agent = self._agent(endpoint)
        where = endpoint.url
        agent.busy += 1
        token = CURRENT_AGENT.set(endpoint.url)
        try:
            async with asyncio.timeout(timeout), agent.slots:
                response = await self._exchange(agent, endpoint, ssl_ctx, body, headers, timeout)
        except TimeoutError as exc:
            raise AgentError(TIMEOUT, f"{where}: timed out after {timeout:g} s") from exc
        finally:
            CURRENT_AGENT.reset(token)
            agent.busy -= 1
        if response.status != 200 and not _looks_like_jsonrpc(response.body):
            raise AgentError(
                BAD_RESPONSE, f"{where}: bad response: HTTP {response.status} {response.reason}"
            )
        return response.body

    async def _exchange(
        self,
        agent: _Agent,
        endpoint: Endpoint,
        ssl_ctx: ResumingContext | None,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> _Response:
        where = endpoint.url
        while agent.idle and agent.idle[-1].closed:
            agent.idle.pop()
        conn = agent.idle.pop() if agent.idle else None
        if conn is None:
            conn = await self._connect(endpoint, ssl_ctx, min(timeout, self._connect_timeout))
        done = False
        try:
            response = await conn.request(_request_bytes(agent.first, body, headers))
            done = True
        except _BadHttp as exc:
            raise AgentError(BAD_RESPONSE, f"{where}: bad response: {exc}") from exc
        except _Closed as exc:
            err = _closed_or_tls(where, exc)
            if (
                err.code == BAD_RESPONSE
                and ssl_ctx is not None
                and (await self._rejects_tls(endpoint, ssl_ctx))
            ):
                err = AgentError(
                    TLS,
                    f"{where}: TLS: the agent closed the connection after the handshake "
                    "(client certificate missing or not signed by the agent's CA)",
                )
            raise err from exc
        finally:
            # A request cut short (timeout, cancellation, error) leaves an answer on the way:
            # that connection cannot carry another request.
            if not done:
                conn.close()
        # Kept unless the agent was released meanwhile (its work is done).
        if response.keep_alive and not conn.closed and self._agents.get(where) is agent:
            agent.idle.append(conn)
        else:
            conn.close()
        return response

    async def _connect(
        self, endpoint: Endpoint, ssl_ctx: ResumingContext | None, timeout: float
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        where = endpoint.url
        try:
            async with asyncio.timeout(timeout):
                if endpoint.scheme == "unix":
                    _, conn = await loop.create_unix_connection(_Connection, endpoint.socket_path)
                else:
                    parts = urlsplit(endpoint.url)
                    if parts.hostname is None:
                        raise AgentError(UNREACHABLE, f"{where}: no host name in the URL")
                    port = parts.port or (443 if ssl_ctx is not None else 80)
                    _, conn = await loop.create_connection(
                        _Connection,
                        parts.hostname,
                        port,
                        ssl=ssl_ctx,
                        server_hostname=parts.hostname if ssl_ctx is not None else None,
                    )
        except TimeoutError as exc:
            raise AgentError(TIMEOUT, f"{where}: timed out after {timeout:g} s") from exc
        except ssl.SSLError as exc:
            raise AgentError(TLS, f"{where}: TLS: {_tls_reason(exc)}") from exc
        except (OSError, ValueError) as exc:
            if _find_ssl_error(exc) is not None:
                raise AgentError(TLS, f"{where}: TLS: {_tls_reason(exc)}") from exc
            raise AgentError(UNREACHABLE, f"cannot connect to {where}: {_os_reason(exc)}") from exc
        return conn

    async def _rejects_tls(self, endpoint: Endpoint, ssl_ctx: ResumingContext) -> bool:
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
        CURRENT_AGENT.set(None)
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                reader, writer = await asyncio.open_connection(
                    parts.hostname,
                    parts.port or 443,
                    ssl=ssl_ctx,
                    server_hostname=parts.hostname,
                )
        except (OSError, TimeoutError):
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


def _close_all(conns: list[_Connection]) -> None:
    for conn in conns:
        conn.close()
    conns.clear()


def _request_line(endpoint: Endpoint) -> str:
    if endpoint.scheme == "unix":
        # The host is ignored on a Unix socket, but HTTP/1.1 requires one.
        return f"POST {JSONRPC_PATH} HTTP/1.1\r\nHost: localhost\r\n"
    parts = urlsplit(endpoint.url)
    return f"POST {parts.path.rstrip('/')}{JSONRPC_PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\n"


def _request_bytes(first: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"{first}Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _os_reason(exc: BaseException) -> str:
    """The plain reason of an OS-level failure ("Connection refused"), without the wrapping
    text, which repeats the address."""
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
        if isinstance(cur, ssl.SSLError):
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


def _closed_or_tls(where: str, exc: BaseException) -> AgentError:
    # With TLS 1.3 the server checks the client certificate after the client considers the
    # handshake done, so a rejected client certificate shows up as an alert (or a reset) on the
    # first read, not as a handshake error.
    if _find_ssl_error(exc) is not None:
        return AgentError(TLS, f"{where}: TLS: {_tls_reason(exc)}")
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, OSError) and cur.errno == errno.ECONNREFUSED:
            return AgentError(UNREACHABLE, f"cannot connect to {where}: {_os_reason(exc)}")
        cur = cur.__cause__
    return AgentError(BAD_RESPONSE, f"{where}: bad response: connection closed ({_os_reason(exc)})")


def _looks_like_jsonrpc(data: bytes) -> bool:
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("jsonrpc") == "2.0"
