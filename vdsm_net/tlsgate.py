"""The TLS listener's front door: the handshake, logged, then authorization, then HTTP.

aiohttp (through asyncio) would do the handshake itself, but asyncio drops a failed handshake
without a word (``SSLProtocol._fatal_error`` logs OSErrors in debug mode only), and an
operator must see who knocked and why they were turned away (SPEC §1.1). So the listener
accepts plain TCP, runs ``loop.start_tls`` per connection, logs a refusal with the peer's
address and the reason, asks the ``ClientPolicy`` about the certificate, and only then hands
the TLS transport to aiohttp's protocol.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from aiohttp import web

from vdsm_net.authz import ClientPolicy

log = logging.getLogger("vdsm_net.tls")

HANDSHAKE_TIMEOUT = 10.0


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:g} s"
    return str(exc) or type(exc).__name__


class _Gate(asyncio.Protocol):
    """Owns a fresh connection until its TLS handshake and authorization are done."""

    def __init__(self, site: GatedSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Nothing may be read before start_tls owns the transport: the ClientHello is its.
        transport.pause_reading()
        self._site.track(asyncio.get_running_loop().create_task(self._admit(transport)))

    async def _admit(self, transport: asyncio.Transport) -> None:
        peer = _peer(transport)
        app = self._site.protocol_factory()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, app, self._site.ssl_context, server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.warning("TLS handshake with %s refused: %s", peer, _reason(exc))
            transport.abort()
            return
        if tls is None:  # the peer went away during the handshake
            transport.abort()
            return
        ssl_object = tls.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        refusal = self._site.policy.refusal(der)
        if refusal is not None:
            log.warning("client %s refused: %s", peer, refusal)
            tls.abort()
            return
        app.connection_made(tls)


class GatedSite(web.BaseSite):
    """A listening socket served over TLS, with each connection admitted by ``_Gate``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        ssl_context: ssl.SSLContext,
        policy: ClientPolicy,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock = sock
        self.ssl_context = ssl_context
        self.policy = policy
        self._admissions: set[asyncio.Task[None]] = set()
        host, port = sock.getsockname()[:2]
        self._name = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    def protocol_factory(self) -> asyncio.Protocol:
        server: Callable[[], asyncio.Protocol] | None = self._runner.server
        assert server is not None, "runner.setup() comes first"
        return server()

    def track(self, task: asyncio.Task[None]) -> None:
        self._admissions.add(task)
        task.add_done_callback(self._admissions.discard)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(self), sock=self._sock, backlog=self._backlog
        )

    async def stop(self) -> None:
        for task in list(self._admissions):
            task.cancel()  # a handshake in progress at shutdown is dropped
        await super().stop()
