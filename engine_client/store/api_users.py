"""The REST API's accounts (the ``api_user`` table, docs/rest.md): a name and a password hash
only; hashing and checking passwords is ``engine_client/rest/passwords.py``."""

from __future__ import annotations

import time

from engine_client.models import ApiUser
from engine_client.store import rows
from engine_client.store.session import Session
from engine_client.store_backend import StoreError


class ApiUserTable:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_user(self, name: str, password_hash: str) -> ApiUser:
        user = ApiUser(name=name, password_hash=password_hash, created=time.time())
        with self._s.transaction():
            if self.find_user(name) is not None:
                raise StoreError(f"user {name!r} already exists")
            self._s.execute(
                "INSERT INTO api_user (name, password_hash, created) VALUES (?, ?, ?)",
                (user.name, user.password_hash, user.created),
            )
        return user

    def find_user(self, name: str) -> ApiUser | None:
        row = self._s.one("SELECT * FROM api_user WHERE name = ?", (name,))
        return None if row is None else rows.api_user(row)

    def list_users(self) -> list[ApiUser]:
        return [rows.api_user(r) for r in self._s.all("SELECT * FROM api_user ORDER BY name")]

    def remove_user(self, name: str) -> None:
        with self._s.transaction():
            if self._s.execute("DELETE FROM api_user WHERE name = ?", (name,)).rowcount == 0:
                raise StoreError(f"no user {name!r}")
