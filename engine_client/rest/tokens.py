"""Bearer tokens of the REST API: random, expiring, kept in the serving process's memory only
(a restart logs everyone out). Only a SHA-256 of each token is kept."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LIFETIME = 3600.0  # seconds


@dataclass(frozen=True)
class Session:
    user: str
    expires: float  # time.time() seconds


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(
        self, lifetime: float = DEFAULT_LIFETIME, clock: Callable[[], float] = time.time
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def issue(self, user: str) -> tuple[str, Session]:
        self._expire()
        token = secrets.token_urlsafe(32)
        session = Session(user, self._clock() + self.lifetime)
        self._sessions[_digest(token)] = session
        return token, session

    def check(self, token: str) -> Session | None:
        """The token's session, or None when it is unknown, revoked or expired."""
        session = self._sessions.get(_digest(token))
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._sessions[_digest(token)]
            return None
        return session

    def revoke(self, token: str) -> bool:
        return self._sessions.pop(_digest(token), None) is not None

    def revoke_user(self, user: str) -> None:
        for key in [k for k, s in self._sessions.items() if s.user == user]:
            del self._sessions[key]

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
