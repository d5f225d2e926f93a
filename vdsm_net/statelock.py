"""One owner of a state directory at a time (docs/config.md).

The daemon, and ``restore``, hold an exclusive ``flock`` on ``STATE_DIR/agent.lock`` for as
long as they run; the kernel drops it when the process dies, however it dies, so a stale lock
cannot outlive its owner. The holder writes its pid into the file so that the one refused can
name it (``flock`` itself does not tell who holds a lock).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILE = "agent.lock"


class StateLockError(Exception):
    """Another process owns the state directory (``pid`` when known)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class StateLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """Lock ``state_dir`` (which must exist) or raise StateLockError naming the holder;
        OSError when the lock file cannot be made (e.g. a read-only directory)."""
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            pid = _holder(path)
            who = f"process {pid}" if pid is not None else "another process"
            raise StateLockError(
                f"state directory {str(state_dir)!r} is in use by {who} (lock {str(path)!r}): "
                "a vdsm-net-agent daemon or restore already runs on it; stop it first",
                pid,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1


def _holder(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    # Empty when the holder has locked but not yet written its pid.
    return int(text) if text.isdigit() else None
