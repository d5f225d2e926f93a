"""Lint is part of the suite: ruff over the repository (the agent's no-spawn rule included),
mypy --strict over the code, the tests and contrib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "--no-cache", "--output-format=concise", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    # Packages and strictness come from [tool.mypy] in pyproject.toml.
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# One line a way of starting a process; each must be refused in the agent's package.
_SPAWNING = (
    "import subprocess",
    "from os import execv",
    "os.system('ip link')",
    "os.posix_spawn('/bin/ip', [], {})",
    "asyncio.create_subprocess_exec('ip')",
    "ctypes.util.find_library('c')",
)


def test_ruff_refuses_process_spawns_in_the_agent() -> None:
    source = "import asyncio\nimport ctypes.util\nimport os\n" + "\n".join(_SPAWNING) + "\n"

    def banned(filename: str) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise",
             "--select=TID251", "--stdin-filename", filename, "-"],
            cwd=ROOT, input=source, capture_output=True, text=True, timeout=120,
        )
        return [line for line in proc.stdout.splitlines() if "TID251" in line]

    # Lines 4.. of the source are the spawning ones, each reported once.
    hits = banned("vdsm_net/_probe.py")
    assert sorted({int(line.split(":")[1]) for line in hits}) == list(
        range(4, 4 + len(_SPAWNING))), hits
    # The engine client may run programs (vdsm-net-lab does).
    assert banned("engine_client/_probe.py") == []
