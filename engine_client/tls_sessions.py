"""TLS session resumption towards the agents, through the ``ssl`` module's public API only.

A rollout opens a second connection to every host (the confirmations', while setupNetworks
holds the first). Resuming the TLS session of the first skips the certificate signatures and
checks of a full mutual-TLS handshake on both ends: with OpenSSL 3.0 and P-256 keys ~0.8 ->
0.25 ms of the engine's CPU and ~1.1 -> 0.6 ms of the agent's per connection.

How, and why it cannot race:

- ``ResumingContext.wrap_bio`` (the documented ``session`` argument of ``SSLContext.wrap_bio``,
  which asyncio calls for every TLS connection it makes) offers a new connection the session
  kept for the agent the connection is made to. Which agent: ``connecting_to``, a context
  variable the transport sets around each request (asyncio builds the connection's TLS
  object inside the requesting task). Where it is not set, nothing is offered.
- The session offered is read (after an answer came from the agent, or when a connection to it
  is made or its connections are closed) from an earlier connection to that agent whose
  handshake is over (``SSLObject.version()`` is ``None`` until then), and only if it carries
  a ticket (TLS 1.3 sends tickets after the handshake, before the first answer; a server that
  refused our certificate sends none). The engine's earlier client read ``SSLObject.session``
  of a connection still handshaking: the session is incomplete then, and CPython's copy of it
  failed at random under load with "i2d() failed" (issue 12).
- A session is only ever offered to the agent (URL) it came from, with the same client
  certificate (one context per certificate, key and CA). A resumed handshake does not check
  the agent's certificate again; it proves the agent holds the session's secret, which only
  the agent that passed that check got. An agent that refuses the session (restarted, its
  ticket expired) gets a full handshake, checked as any other.
"""

from __future__ import annotations

import contextvars
import ssl
import weakref
from dataclasses import dataclass
from typing import Final

# Agents whose session is kept; past this the oldest is dropped (a session holds the agent's
# certificate, ~2 KiB).
MAX_SESSIONS: Final = 10_000

connecting_to: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "connecting_to", default=None
)


class ResumingContext(ssl.SSLContext):
    """A client context that offers each new connection to an agent the TLS session of an
    earlier, finished connection to the same agent."""

    def __init__(self, protocol: ssl._SSLMethod = ssl.PROTOCOL_TLS_CLIENT) -> None:
        # ssl.SSLContext is made by __new__ (which takes the protocol), not __init__.
        super().__init__()
        self._sessions: dict[str, _Kept] = {}  # by agent URL, the newest last
        self._objects: dict[str, list[weakref.ref[ssl.SSLObject]]] = {}

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        agent = connecting_to.get()
        if agent is None or server_side:
            return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        if session is None:
            session = self._session(agent)
        obj = super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        objects = self._objects.setdefault(agent, [])
        objects[:] = [ref for ref in objects if ref() is not None]
        objects.append(weakref.ref(obj))
        return obj

    def _session(self, agent: str) -> ssl.SSLSession | None:
        """The session to offer ``agent``: read from its newest connection whose handshake is
        over, unless that one resumed the kept session or is where it was read from (reading
        a session copies it, certificate included: ~0.13 ms). A full handshake since the kept
        session was read means the agent refused it (restarted, or the ticket expired)."""
        kept = self._sessions.get(agent)
        for ref in reversed(self._objects.get(agent, [])):  # the newest first
            obj = ref()
            if obj is None or obj.version() is None:  # gone, or still handshaking
                continue
            if kept is not None and (obj.session_reused or obj is kept.source()):
                break
            fresh = obj.session
            # TLS 1.3 tickets come after the handshake (before the first answer): a session
            # without one cannot be resumed.
            if fresh is not None and fresh.has_ticket:
                kept = _Kept(fresh, weakref.ref(obj))
                self._keep(agent, kept)
            break
        return kept.session if kept is not None else None

    def forget(self, agent: str) -> None:
        """Offer ``agent`` no session any more."""
        self._sessions.pop(agent, None)
        self._objects.pop(agent, None)

    def answered(self, agent: str) -> None:
        """An answer came from ``agent``: keep a session of its now, if none is kept (or the
        kept one was refused), so that it outlives the connection it came from (closed when
        idle for too long, say, before the rollout reaches this host)."""
        self._session(agent)

    def closing(self, agent: str) -> None:
        """``agent``'s connections are about to be closed: a session is kept for the next ones
        (read now if none was, or the kept one was refused: their TLS objects go with them)."""
        self._session(agent)
        self._objects.pop(agent, None)

    def _keep(self, agent: str, kept: _Kept) -> None:
        self._sessions.pop(agent, None)
        self._sessions[agent] = kept
        while len(self._sessions) > MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]


@dataclass(frozen=True)
class _Kept:
    session: ssl.SSLSession
    source: weakref.ref[ssl.SSLObject]  # the connection it was read from
