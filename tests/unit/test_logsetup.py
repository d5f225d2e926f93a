"""Log lines for the journal (priority prefix, no timestamp) and for anything else."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vdsm_net import logsetup


def _emit(stream_path: Path, environ_stream: bool) -> list[str]:
    with open(stream_path, "w") as stream:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"} if environ_stream else {}
        handler = logging.StreamHandler(stream)
        journal = logsetup.stderr_is_journal(stream, env)
        handler.setFormatter(logsetup.JournalFormatter() if journal
                             else logging.Formatter(logsetup.TEXT_FORMAT))
        logger = logging.getLogger("t.logsetup")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        try:
            for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                          logging.CRITICAL):
                logger.log(level, "line at %s", logging.getLevelName(level))
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("failed")
        finally:
            logger.removeHandler(handler)
    return stream_path.read_text().splitlines()


def test_journal_lines_start_with_their_priority(tmp_path: Path) -> None:
    lines = _emit(tmp_path / "out", environ_stream=True)
    assert lines[:5] == ["<7>t.logsetup: line at DEBUG", "<6>t.logsetup: line at INFO",
                         "<4>t.logsetup: line at WARNING", "<3>t.logsetup: line at ERROR",
                         "<3>t.logsetup: line at CRITICAL"]
    # A traceback: every line an error of its own, not info lines in the journal.
    assert all(line.startswith("<3>") for line in lines[5:]) and len(lines) > 7, lines


def test_another_stream_is_timestamped(tmp_path: Path) -> None:
    lines = _emit(tmp_path / "out", environ_stream=False)
    assert lines[1].split(" ", 2)[2] == "INFO t.logsetup: line at INFO"
    assert lines[1][:4].isdigit()


def test_journal_stream_naming_another_file_is_not_the_journal(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("")
    st = other.stat()
    with open(tmp_path / "out", "w") as stream:
        elsewhere = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert not logsetup.stderr_is_journal(stream, elsewhere)
        assert not logsetup.stderr_is_journal(stream, {"JOURNAL_STREAM": "garbage"})
