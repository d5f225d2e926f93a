"""A listening site for aiohttp that accepts connections itself, so that it can bound them.

aiohttp's ``SockSite`` lets asyncio accept every connection, and a TLS connection then holds
a descriptor and asyncio's 256 KiB TLS buffer until its handshake ends, which a client that
never starts one delays for a minute: a few thousand such clients, who need no certificate,
exhausted the agent's descriptors (the Unix socket's clients failed too) and its memory.

Here each listener has its own cap on concurrent connections (the TCP one apart from the Unix
one, so a flood on TCP cannot lock out the local operator). A connection over the cap is
closed as soon as it is accepted. Each accepted connection must finish its TLS handshake and
send the headers of its first request within ``handshake_timeout`` of its accept, or it is
closed. After that aiohttp's keep-alive timeout (``idle_timeout``) closes a connection that
has no request in progress, one whose next request's headers are still arriving included.
The body timeout is the request handler's (``vdsm_net.server``). docs/limits.md explains the
numbers.

On TLS it is also the front door: asyncio drops a failed handshake without a word (it logs
them in debug mode only), and an operator must see who knocked and why they were turned away,
so a refused handshake is logged with the peer's address and the reason; and once the
handshake is done the ``ClientPolicy`` judges the client's certificate (extended key usage
clientAuth, ``[tls] allowed_clients``) before aiohttp sees a byte.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from vdsm_net.authz import ClientPolicy
from vdsm_net.memory import release_freed_memory

log = logging.getLogger(__name__)
tls_log = logging.getLogger("vdsm_net.tls")

# After an accept failure (EMFILE, ENFILE, ENOBUFS): the pause before the next try, so that a
# descriptor shortage is not a busy loop.
_ACCEPT_RETRY = 0.1
# Connections at once that make a burst, and how few are left when it is over (then memory
# is released: vdsm_net.memory).
_BURST = 64
_AFTER_BURST = 4
# Refusals are logged at most this often per listener, with the count since the last line.
_REFUSAL_LOG_INTERVAL = 10.0


def _refusal_reason(exc: BaseException, handshake_timeout: float) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return f"no handshake within {handshake_timeout:g} s"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    handshake_timeout: float  # accept -> TLS handshake done and first request's headers read


class FirstRequests:
    """Which connections have had a request reach the application (shared by the sites of one
    app; the app's middleware reports each request, keyed by aiohttp's protocol object)."""

    def __init__(self) -> None:
        self._waiting: dict[RequestHandler, _GuardedConnection] = {}

    def _expect(self, handler: RequestHandler, conn: _GuardedConnection) -> None:
        self._waiting[handler] = conn

    def _forget(self, handler: RequestHandler) -> None:
        self._waiting.pop(handler, None)

    def arrived(self, handler: object) -> None:
        conn = self._waiting.pop(handler, None)  # type: ignore[call-overload]
        if conn is not None:
            conn.first_request_arrived()

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def first_request(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            self.arrived(request.protocol)
            return await handler(request)

        return first_request


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, wrapped: counts the connection until it is
    lost and closes it if its first request's headers are late."""

    def __init__(self, site: GuardedSite, inner: RequestHandler, peer: str) -> None:
        self._site = site
        self._inner = inner
        self.peer = peer
        self._transport: asyncio.Transport | None = None
        self._released = False
        self._refused = False  # by the ClientPolicy: aiohttp never saw the connection
        loop = asyncio.get_running_loop()
        self._deadline: asyncio.TimerHandle | None = loop.call_later(
            site.limits.handshake_timeout, self._late
        )
        site.first_requests._expect(inner, self)

    def first_request_arrived(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if self._transport is not None:
            log.info("%s: closing the connection from %s: no request within %g s of its accept",
                     self._site.url, self.peer, self._site.limits.handshake_timeout)
            self._transport.abort()
        # Otherwise the TLS handshake is still running: asyncio's handshake timeout (the same
        # number) ends it.

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.first_request_arrived()
        self._site.first_requests._forget(self._inner)
        self._site._release()

    # asyncio.Protocol, forwarded to aiohttp's handler.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream connection, always
        self._transport = transport
        policy = self._site.policy
        ssl_object = transport.get_extra_info("ssl_object")
        if policy is not None and ssl_object is not None:
            refusal = policy.refusal(ssl_object.getpeercert(binary_form=True))
            if refusal is not None:
                tls_log.warning("client %s refused: %s", self.peer, refusal)
                self._refused = True
                transport.abort()
                return
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            if not self._refused:
                self._inner.connection_lost(exc)
        finally:
            self.release()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            self._inner.data_received(data)

    def eof_received(self) -> None:
        # aiohttp's answer is None: the transport closes itself at EOF.
        if not self._refused:
            self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """Serves ``runner``'s application on a listening socket, within ``limits``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        *,
        url: str,
        limits: ConnectionLimits,
        first_requests: FirstRequests,
        ssl_context: ssl.SSLContext | None = None,
        policy: ClientPolicy | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.policy = policy  # TLS only: who may call, once the handshake is done
        self._sock = sock
        self.url = url
        self.limits = limits
        self.first_requests = first_requests
        self.active = 0
        self._peak = 0  # the most connections at once since memory was last released
        self._refused = 0
        self._refusals_logged_at = 0.0
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.url

    async def start(self) -> None:
        await super().start()
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._accepting, *self._handshakes) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._accepting = None
        await super().stop()

    @staticmethod
    def _peer(address: object) -> str:
        if isinstance(address, tuple) and len(address) >= 2:
            host = str(address[0])
            return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
        return "a local client"

    def _release(self) -> None:
        self.active -= 1
        # A burst is over when its connections are (nearly) all gone: an engine may keep one
        # or two kept-alive connections open for good.
        if self._peak >= _BURST and self.active <= _AFTER_BURST:
            self._peak = self.active
            asyncio.get_running_loop().call_soon(release_freed_memory)

    def _refuse(self, raw: socket.socket) -> None:
        raw.close()
        self._refused += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= _REFUSAL_LOG_INTERVAL:
            log.warning("%s: %d connections at the limit of %d: refused %d new connection(s) "
                        "since the last report", self.url, self.active,
                        self.limits.max_connections, self._refused)
            self._refused = 0
            self._refusals_logged_at = now

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                raw, address = await loop.sock_accept(self._sock)
            except OSError as exc:
                log.warning("%s: cannot accept a connection: %s", self.url, exc.strerror or exc)
                await asyncio.sleep(_ACCEPT_RETRY)
                continue
            if self.active >= self.limits.max_connections:
                self._refuse(raw)
                continue
            self.active += 1
            self._peak = max(self._peak, self.active)
            task = loop.create_task(self._connect(raw, self._peer(address)))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _connect(self, raw: socket.socket, peer: str) -> None:
        server = self._runner.server
        assert server is not None
        conn = _GuardedConnection(self, server(), peer)
        loop = asyncio.get_running_loop()
        try:
            if self._ssl_context is None:
                await loop.connect_accepted_socket(lambda: conn, raw)
            else:
                await loop.connect_accepted_socket(
                    lambda: conn, raw, ssl=self._ssl_context,
                    ssl_handshake_timeout=self.limits.handshake_timeout,
                )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            # aiohttp never saw this connection (asyncio closed the socket).
            tls_log.warning("%s: TLS handshake with %s refused: %s", self.url, peer,
                            _refusal_reason(exc, self.limits.handshake_timeout))
            raw.close()
            conn.release()
        except asyncio.CancelledError:
            raw.close()
            conn.release()
            raise
