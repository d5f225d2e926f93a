"""The undo journal: the kernel state before a change, written before the change touches the
kernel, removed once the change is committed or rolled back. The state is in the form of
``vdsm_net.state_json``.

If the agent dies in between (kill -9, power loss, an unconfirmed connectivity check), the next
start finds the journal and reverts the kernel to the recorded state with the same differ as a
normal rollback.

A scoped change (``vdsm_net.scope``) records only the devices of its scope, and the scope
itself: its revert reads back those devices, and only those, and plans against the snapshot
(a device the change created is in the scope, absent from the snapshot: deleted). A journal
without a scope (a full change, or one written before scoping existed) holds every device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.persist import atomic_write, remove_durably
from vdsm_net.scope import ReadScope
from vdsm_net.state import KernelState
from vdsm_net.state_json import state_from_json, state_to_json

JOURNAL_FILE = "journal.json"
_VERSION = 1


@dataclass(frozen=True)
class PendingChange:
    before: KernelState
    scope: ReadScope | None  # None: ``before`` holds every device


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / JOURNAL_FILE

    def record(
        self, before: KernelState, correlation_id: str | None, scope: ReadScope | None = None
    ) -> None:
        doc = {"version": _VERSION, "correlation_id": correlation_id,
               "before": state_to_json(before),
               "scope": scope.to_json() if scope is not None else None}
        atomic_write(self.path, json.dumps(doc, sort_keys=True).encode())

    def exists(self) -> bool:
        return self.path.exists()

    def pending(self) -> KernelState | None:
        change = self.pending_change()
        return change.before if change is not None else None

    def pending_change(self) -> PendingChange | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            scope = doc.get("scope")
            return PendingChange(
                state_from_json(doc["before"]),
                ReadScope.from_json(scope) if scope is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NetError(
                ErrorKind.KERNEL, f"{self.path}: unreadable undo journal: {exc}"
            ) from exc

    def clear(self) -> None:
        remove_durably(self.path)
