"""The agent's log: one event a line on stderr, shaped for where stderr goes (docs/config.md).

Under systemd, stderr is a stream to journald (``$JOURNAL_STREAM`` holds its device and inode):
journald stamps each line with its own time, and reads a ``<N>`` prefix as the line's syslog
priority, so lines carry that prefix and no timestamp. Anywhere else (a terminal, a file) lines
are timestamped and name their level.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

# sd-daemon(3): <3> error, <4> warning, <6> info, <7> debug; critical is an error here too.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def _priority(levelno: int) -> int:
    for level in (logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return _PRIORITY[logging.DEBUG]


class JournalFormatter(logging.Formatter):
    """``<6>vdsm_net.agent: ready``; each line of a multi-line record (a traceback) gets the
    prefix, since journald makes each line an entry of its own."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal stream that systemd named in $JOURNAL_STREAM
    ("DEVICE:INODE" of the stream, systemd.exec(5))."""
    env = os.environ if environ is None else environ
    device, sep, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def configure(level: str, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one on ``stream`` (default stderr)."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    if stderr_is_journal(out):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level)
