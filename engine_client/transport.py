"""The wire to the agents: JSON-RPC POSTs through aiohttp's HTTP client, over TLS with client
certificates (``https://``), plain HTTP (``http://``) or a Unix socket (``unix://``).

Each agent (endpoint URL) gets a ``ClientSession`` of its own whose connector keeps at most
``limit_per_host`` keep-alive connections to it: the connection a host's capabilities were read
on carries its setupNetworks, the confirmations get a second one, and ``release(endpoint)``
closes that agent's connections when its work is done (each idle TLS connection holds ~0.27 MiB
of asyncio buffers; a rollout to 1000 hosts would otherwise end with 2000 of them). Past
``limit`` agents the least recently used idle ones are closed.

A host's second connection resumes the TLS session of its first (``tls_sessions``: a session
is kept only from a connection whose handshake is over, after an answer came on it, and is
only offered to the agent it came from).

aiohttp is imported on first use: it costs ~0.1 s of start (and loads the default certificate
store) that commands which never talk to an agent (``--help``, ``dc add``) do not pay.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from engine_client.agent_client import (
    BAD_RESPONSE,
    JSONRPC_PATH,
    TIMEOUT,
    TLS,
    UNREACHABLE,
    AgentError,
    Endpoint,
    tls_context,
)
from engine_client.tls_sessions import ResumingContext, connecting_to

if TYPE_CHECKING:
    import aiohttp

PROBE_SECONDS: Final = 1.0
# An agent's largest answer, capabilities of a host with thousands of networks, is a few MiB;
# past this the answer is refused rather than buffered without end.
MAX_BODY: Final = 64 * 1024 * 1024
# Idle connections are closed after this (a long rollout reuses a host's capabilities read
# connection for its setupNetworks); the agent closes them after its `[rpc] idle_timeout`
# (30 s by default), so the engine gives up first and never sends a request on a connection
# the agent is closing at that moment.
KEEPALIVE_SECONDS: Final = 20.0
READ_CHUNK: Final = 1 << 16

SCHEMES: Final = ("https", "http", "unix")


@dataclass
class _Agent:
    """One agent's session and how many requests are using it."""

    session: aiohttp.ClientSession
    url: str  # where the JSON-RPC POSTs go
    tls: ResumingContext | None  # https: the context its connections are made with
    busy: int = 0


class HttpTransport:
    """The real transport (``agent_client.Transport``). ``limit``: agents whose idle
    connections are kept; ``limit_per_host``: connections to one agent at once (a rollout
    needs two: setupNetworks and the confirmations); ``connect_timeout``: seconds to set up a
    connection, TLS handshake included (bounded by the request's own timeout too)."""

    def __init__(
        self, *, limit: int = 100, limit_per_host: int = 4, connect_timeout: float = 10.0
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._connect_timeout = connect_timeout
        self._agents: dict[str, _Agent] = {}  # least recently used first
        self._contexts: dict[tuple[str | None, str | None, str | None], ResumingContext] = {}
        self._closing: set[asyncio.Task[None]] = set()  # evicted agents' sessions

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

    def _agent(self, endpoint: Endpoint) -> _Agent:
        import aiohttp

        agent = self._agents.pop(endpoint.url, None)
        if agent is None:
            connector: aiohttp.BaseConnector
            per_host = self._limit_per_host
            if endpoint.scheme == "unix":
                connector = aiohttp.UnixConnector(
                    path=endpoint.socket_path,
                    limit=per_host,
                    limit_per_host=per_host,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                )
                # The host is ignored on a Unix socket, but HTTP/1.1 requires one.
                url = f"http://localhost{JSONRPC_PATH}"
                tls = None
            else:
                tls = self._context(endpoint) if endpoint.scheme == "https" else None
                connector = aiohttp.TCPConnector(
                    ssl=tls if tls is not None else False,
                    limit=per_host,
                    limit_per_host=per_host,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                )
                parts = urlsplit(endpoint.url)
                url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}{JSONRPC_PATH}"
            session = aiohttp.ClientSession(
                connector=connector,
                # Bounds of our own (asyncio.timeout around each request) say which host and
                # how long; aiohttp's are only the connection's set-up.
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            agent = _Agent(session, url, tls)
        self._agents[endpoint.url] = agent  # most recently used last
        evicted = []
        excess = len(self._agents) - self._limit
        for other_url in list(self._agents):
            if excess <= 0:
                break
            other = self._agents[other_url]
            if other.busy == 0 and other is not agent:
                excess -= 1
                del self._agents[other_url]
                evicted.append(other.session)
        for session in evicted:
            # Closed without making the request that evicted it wait.
            task = asyncio.get_running_loop().create_task(session.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return agent

    async def release(self, endpoint: Endpoint) -> None:
        """Close this agent's connections (its work is done)."""
        agent = self._agents.get(endpoint.url)
        if agent is not None and agent.busy == 0:
            del self._agents[endpoint.url]
            if agent.tls is not None:
                agent.tls.closing(endpoint.url)
            await agent.session.close()

    async def close(self) -> None:
        agents = list(self._agents.values())
        self._agents.clear()
        for agent in agents:
            await agent.session.close()
        await asyncio.gather(*self._closing)

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        if endpoint.scheme not in SCHEMES:
            raise AgentError(
                UNREACHABLE,
                f"endpoint.url: expected https://, http:// or unix://, got {endpoint.url!r}",
            )
        if endpoint.scheme != "unix" and endpoint.hostname is None:
            raise AgentError(UNREACHABLE, f"{endpoint.url}: no host name in the URL")
        agent = self._agent(endpoint)
        agent.busy += 1
        # Which agent a connection made for this request is to (the TLS session it may
        # resume); reset before returning, the caller's context is its own.
        token = connecting_to.set(endpoint.url if agent.tls is not None else None)
        try:
            async with asyncio.timeout(timeout):
                data = await self._exchange(agent, endpoint, body, headers)
            if agent.tls is not None:
                agent.tls.answered(endpoint.url)
            return data
        except TimeoutError as exc:
            raise AgentError(TIMEOUT, f"{endpoint.url}: timed out after {timeout:g} s") from exc
        except AgentError as exc:
            if agent.tls is not None and exc.code == TLS:
                agent.tls.forget(endpoint.url)
            raise
        finally:
            connecting_to.reset(token)
            agent.busy -= 1

    async def _exchange(
        self, agent: _Agent, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> bytes:
        import aiohttp

        where = endpoint.url
        try:
            async with agent.session.post(agent.url, data=body, headers=headers) as resp:
                data = await _read_capped(resp, where)
                status, reason = resp.status, resp.reason
        except AgentError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise AgentError(TLS, f"{where}: TLS: {_tls_reason(exc.certificate_error)}") from exc
        except aiohttp.ClientConnectorSSLError as exc:
            raise AgentError(TLS, f"{where}: TLS: {_tls_reason(exc.os_error)}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise AgentError(
                UNREACHABLE, f"cannot connect to {where}: {_os_reason(exc.os_error)}"
            ) from exc
        except aiohttp.ClientResponseError as exc:  # not HTTP as aiohttp reads it
            raise AgentError(BAD_RESPONSE, f"{where}: bad response: {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Closed or reset after the connection was made: the answer did not come whole.
            err = _closed_or_tls(where, exc)
            if (
                err.code == BAD_RESPONSE
                and agent.tls is not None
                and (await _rejects_tls(endpoint, agent.tls))
            ):
                err = AgentError(
                    TLS,
                    f"{where}: TLS: the agent closed the connection after the handshake "
                    "(client certificate missing or not signed by the agent's CA)",
                )
            raise err from exc
        if status != 200 and not _looks_like_jsonrpc(data):
            raise AgentError(BAD_RESPONSE, f"{where}: bad response: HTTP {status} {reason}")
        return data


async def _read_capped(resp: aiohttp.ClientResponse, where: str) -> bytes:
    """The whole body, refused past ``MAX_BODY`` (the connection is then closed: the rest of
    the answer is still on its way)."""
    length = resp.content_length
    if length is not None and length > MAX_BODY:
        resp.close()
        raise AgentError(
            BAD_RESPONSE, f"{where}: bad response: Content-Length {length} is over {MAX_BODY} bytes"
        )
    if length is not None:
        return await resp.read()
    data = bytearray()
    async for chunk in resp.content.iter_chunked(READ_CHUNK):
        data += chunk
        if len(data) > MAX_BODY:
            resp.close()
            raise AgentError(
                BAD_RESPONSE, f"{where}: bad response: answer longer than {MAX_BODY} bytes"
            )
    return bytes(data)


async def _rejects_tls(endpoint: Endpoint, ssl_ctx: ssl.SSLContext) -> bool:
    """Whether the agent drops a fresh TLS connection on which nothing was sent yet.

    With TLS 1.3 the server verifies the client certificate after the client has finished its
    handshake, and an asyncio server aborts without an alert: the client only sees a closed or
    reset connection on its first request. A healthy server instead waits for the request, so
    a quiet connection that stays open means the failure was not TLS.
    """
    parts = urlsplit(endpoint.url)
    if parts.hostname is None:
        return False
    # A full handshake: a resumed one would not show the agent our certificate again.
    token = connecting_to.set(None)
    try:
        return await _quiet_after_handshake(parts.hostname, parts.port or 443, ssl_ctx)
    finally:
        connecting_to.reset(token)


async def _quiet_after_handshake(host: str, port: int, ssl_ctx: ssl.SSLContext) -> bool:
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl_ctx, server_hostname=host
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
