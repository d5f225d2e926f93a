"""The record of each rollout (the ``rollout`` table): when it started, how many hosts it
planned, and how it ended (what ``engine-client status`` shows)."""

from __future__ import annotations

import time

from engine_client.models import Rollout
from engine_client.store import rows
from engine_client.store.session import Session


class RolloutTable:
    def __init__(self, session: Session) -> None:
        self._s = session

    def start_rollout(self, correlation_id: str, network: str, action: str, planned: int) -> int:
        row = self._s.one(
            "INSERT INTO rollout (correlation_id, network, action, started, planned)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (correlation_id, network, action, time.time(), planned),
        )
        assert row is not None
        return int(row["id"])

    def end_rollout(self, rollout_id: int, *, updated: int, failed: int) -> None:
        self._s.execute(
            "UPDATE rollout SET ended = ?, updated = ?, failed = ? WHERE id = ?",
            (time.time(), updated, failed, rollout_id),
        )

    def list_rollouts(self, *, limit: int = 10) -> list[Rollout]:
        found = self._s.all(
            "SELECT * FROM (SELECT * FROM rollout ORDER BY id DESC LIMIT ?) AS recent ORDER BY id",
            (limit,),
        )
        return [rows.rollout(r) for r in found]
