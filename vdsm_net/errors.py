"""The one error type of the agent. Its kind is VDSM's error code (docs/errors.md)."""

from __future__ import annotations

from enum import IntEnum


class ErrorKind(IntEnum):
    CONNECTIVITY = 10  # connectivity check failed, change rolled back
    # The state directory cannot be read or written (full, read-only, failing disk); a change
    # that could not be saved was rolled back. VDSM answers such failures with its generic
    # code 16; this agent names the file and the cause (docs/errors.md).
    STATE = 16
    BAD_PARAMS = 21
    BAD_ADDR = 22
    BAD_NIC = 23
    USED_NIC = 24
    BAD_BONDING = 25
    BAD_VLAN = 26
    BAD_BRIDGE = 27  # bad network/bridge name, unknown network, foreign device with that name
    USED_BOND = 31
    IN_PROGRESS = 40
    KERNEL = 41  # the kernel refused an operation; change rolled back


class NetError(Exception):
    """An error with a kind (mapped to a JSON-RPC code) and a message naming field and value.

    Example: ``NetError(ErrorKind.BAD_VLAN, "networks.red.vlan: expected 0-4094, got 5000")``.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def extend(self, text: str) -> None:
        """Append what happened after the failure (``; the change was rolled back``)."""
        self.message += text
        self.args = (self.message,)

    @property
    def code(self) -> int:
        return int(self.kind)

    def __repr__(self) -> str:
        return f"NetError({self.kind.name}, {self.message!r})"
