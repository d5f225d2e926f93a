"""Run one command inside a User-Mode Linux guest and give back its output.

The boot is the test suite's (``tests/uml.py``): the host's file system is the guest's root,
``/run`` and ``/dev/shm`` are the guest's own, the UML kernel's modules are loaded from
``/usr/lib/uml/modules``. The command's stdout and stderr go to a file in a scratch
directory on the host, read back when the guest has powered off.

    from contrib.bench.uml_run import run_in_uml
    result = run_in_uml([sys.executable, "-m", "contrib.bench.agent"], cwd=ROOT)
    print(result.output)
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.uml import (
    BASE_MODULES,
    INSTALL_HINT,
    UML_BINARY,
    UML_MODULES,
    _kernel_version,
    _shell_env,
)


@dataclass(frozen=True)
class UmlResult:
    returncode: int  # the command's; -1 if the guest ended without running it to the end
    output: str  # the command's stdout and stderr
    console: Path  # the guest's console log, for when it did not boot
    seconds: float  # boot to power-off


class UmlRunError(Exception):
    pass


def _init_script(argv: Sequence[str], cwd: Path, work: Path, modules: Sequence[str]) -> str:
    kver = _kernel_version()
    q = shlex.quote
    out = q(str(work / "out"))
    return f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
grep -q ' /dev devtmpfs' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/mods/lib/modules /run/netns
ln -s {UML_MODULES}/{kver} /run/mods/lib/modules/{kver}
for m in {" ".join(modules)}; do
    modprobe -d /run/mods "$m" || echo "modprobe $m failed: {INSTALL_HINT}" >> {out}
done
ip link set lo up
ulimit -n 65536
{_shell_env({})}
cd {q(str(cwd))}
{shlex.join(argv)} >> {out} 2>&1
echo $? > {q(str(work / "rc"))}
poweroff -f
"""


def run_in_uml(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float = 3600,
    mem: str = "2G",
    modules: Sequence[str] = BASE_MODULES,
) -> UmlResult:
    """Boot a guest, run ``argv`` in ``cwd`` there, power off; raise UmlRunError if the guest
    cannot be started or overruns ``timeout`` (it is killed)."""
    binary = shutil.which(UML_BINARY)
    if binary is None:
        raise UmlRunError(f"{UML_BINARY} not found: {INSTALL_HINT}")
    work = Path(tempfile.mkdtemp(prefix="vdsm-net-bench-uml-"))
    init = work / "init.sh"
    init.write_text(_init_script(argv, cwd, work, modules))
    init.chmod(0o755)
    console = work / "console.log"
    started = time.monotonic()
    cmd = [binary, f"mem={mem}", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw",
           f"init={init}", "con=null", "con0=null,fd:1", f"uml_dir={work}"]
    with console.open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise UmlRunError(f"UML guest killed after {timeout:.0f} s; console: {console}") from e
    out = work / "out"
    rc = work / "rc"
    return UmlResult(
        returncode=int(rc.read_text().strip() or -1) if rc.exists() else -1,
        output=out.read_text(errors="replace") if out.exists() else "",
        console=console,
        seconds=time.monotonic() - started,
    )
