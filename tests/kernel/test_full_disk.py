"""A full state directory at each write of a change (docs/transaction.md, §1.7: the commit is
part of the
transaction).

The state directory is a small tmpfs mounted by the test. A filler file takes all its space but
0, 4, 8 or 12 KiB, either before the call (the undo journal's write may fail) or right after the
kernel applied the change (the running config's, or with ``commitOnSuccess`` the safe config's,
write may fail). Each change either succeeds with every file saying so, or fails with error 16
naming the file, and then the kernel (by ``ip -d -j`` dump), both state files and the journal
are exactly as before. The sweep must make each of the three writes fail at least once. After
each case the space comes back and a following change succeeds; at the end a restart of the
agent on that directory finds nothing to undo and the kernel as the running config says.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, InjectingBackend, RpcError
from tests.dump import assert_same_state, dump_state
from tests.netns import NetNS
from vdsm_net.journal import JOURNAL_FILE
from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import Op
from vdsm_net.persist import RUNNING, SAFE

NICS = ("eth1", "eth2")
PAGE = 4096
FREE_KIB = (0, 4, 8, 12)
STATE_ERROR = 16


@pytest.fixture
def small_state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(state)],
                   check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", str(state)], check=True)


class Filler:
    """Takes all the space of a file system but ``leave`` bytes (tmpfs: whole pages)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "filler"

    def fill(self, leave_kib: int) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = b"\0" * 65536
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        finally:
            os.close(fd)
        size = self.path.stat().st_size
        os.truncate(self.path, size - leave_kib * 1024)
        st = os.statvfs(self.directory)
        assert st.f_bavail * st.f_frsize == leave_kib * 1024, (st.f_bavail, leave_kib)

    def empty(self) -> None:
        self.path.unlink(missing_ok=True)


class FillAfterApply:
    """The hook: fills the state directory once the kernel took the change."""

    def __init__(self, filler: Filler) -> None:
        self.filler = filler
        self.leave_kib: int | None = None

    def __call__(self, _calls: int, _ops: Sequence[Op]) -> None:
        if self.leave_kib is not None:
            self.filler.fill(self.leave_kib)
            self.leave_kib = None


def _files(state: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for name in (RUNNING, SAFE, JOURNAL_FILE):
        path = state / name
        out[name] = path.read_bytes() if path.exists() else None
    return out


def _temporaries(state: Path) -> list[str]:
    return sorted(p.name for p in state.iterdir() if p.name.endswith(".tmp"))


async def _change(agent: AgentInNs, networks: dict[str, Any], commit: bool) -> RpcError | None:
    try:
        await agent.setup(networks, commitOnSuccess=commit)
    except RpcError as exc:
        return exc
    return None


async def test_full_state_directory_at_each_write(netns: NetNS, small_state_dir: Path) -> None:
    for nic in NICS:
        netns.add_nic(nic)
    filler = Filler(small_state_dir)
    hook = FillAfterApply(filler)
    agent = AgentInNs(netns, small_state_dir, backend_factory=lambda: InjectingBackend(
        Backend(netns=netns.name), after_apply=hook))
    failed_files: set[str] = set()
    outcomes: list[str] = []
    try:
        # Something to keep: a network saved as safe, which every case must leave alone.
        await agent.setup({"keep": {"nic": "eth2", "mtu": 2000}}, commitOnSuccess=True)
        for moment in ("before the call", "after the apply"):
            for free in FREE_KIB:
                for commit in (False, True):
                    case = f"{moment}, {free} KiB free, commitOnSuccess={commit}"
                    kernel_before = dump_state(netns.name)
                    files_before = _files(small_state_dir)
                    if moment == "before the call":
                        filler.fill(free)
                    else:
                        hook.leave_kib = free
                    error = await _change(agent, {"red": {"nic": "eth1", "mtu": 9000}}, commit)
                    hook.leave_kib = None
                    filler.empty()
                    assert _temporaries(small_state_dir) == [], case
                    if error is None:
                        outcomes.append(f"{case}: applied")
                        files = _files(small_state_dir)
                        assert files[JOURNAL_FILE] is None, case
                        assert b'"red"' in (files[RUNNING] or b""), case
                        assert (b'"red"' in (files[SAFE] or b"")) == commit, case
                        assert netns.link("eth1")["master"] == "red", case
                        # Back to the state before the case, through a normal change.
                        await agent.setup({"red": {"remove": True}}, commitOnSuccess=True)
                        if not commit:
                            assert _files(small_state_dir)[SAFE] == files_before[SAFE]
                        assert_same_state(kernel_before, dump_state(netns.name), case)
                        continue
                    assert error.code == STATE_ERROR, f"{case}: {error.code} {error.message}"
                    named = [n for n in (JOURNAL_FILE, RUNNING, SAFE) if n in error.message]
                    assert len(named) == 1, f"{case}: {error.message}"
                    assert "No space left on device" in error.message, error.message
                    failed_files.update(named)
                    outcomes.append(f"{case}: error 16 on {named[0]}")
                    assert_same_state(kernel_before, dump_state(netns.name), case)
                    assert _files(small_state_dir) == files_before, case
                    caps = await agent.caps()
                    assert "red" not in caps["networks"] and "keep" in caps["networks"], case
                    assert caps["netConfigPending"] is False, case
                    # The space is back: the same change goes through, and is undone.
                    await agent.setup({"red": {"nic": "eth1", "mtu": 9000}})
                    assert netns.link("eth1")["master"] == "red", case
                    await agent.setup({"red": {"remove": True}})
                    assert_same_state(kernel_before, dump_state(netns.name), case)
        print("\n".join(outcomes))
        assert failed_files == {JOURNAL_FILE, RUNNING, SAFE}, outcomes

        # A restart after a failed commit: nothing to undo, the kernel as running.json says.
        hook.leave_kib = 0
        error = await _change(agent, {"red": {"nic": "eth1"}}, False)
        filler.empty()
        assert error is not None and error.code == STATE_ERROR
        kernel_before = dump_state(netns.name)
    finally:
        agent.close()
    restarted = AgentInNs(netns, small_state_dir)
    try:
        assert await restarted.agent.recover() is False
        assert_same_state(kernel_before, dump_state(netns.name), "after the restart")
        caps = await restarted.caps()
        assert sorted(caps["networks"]) == ["keep"]
        assert sorted(restarted.agent.running.networks) == ["keep"]
        assert caps["netConfigDirty"] is False
        await restarted.setup({"red": {"nic": "eth1"}})
        assert netns.link("eth1")["master"] == "red"
    finally:
        restarted.close()
