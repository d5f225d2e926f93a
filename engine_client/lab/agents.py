"""The lab's agents: one ``vdsm-net-agent`` per host namespace, started detached (its own
session, output to a log file) so that ``vdsm-net-lab up`` can return, each with a pid file.

A lab's agent is recognised by its command line, which names its state directory under the
lab's directory: ``down`` finds it so even without its pid file (an ``up`` killed between
starting it and writing the file), and never signals a process that merely reused the pid.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from engine_client.agent_client import AgentClient, AgentError, Endpoint
from engine_client.lab import kernel
from engine_client.lab.layout import PORT, Lab, LabHost
from engine_client.transport import HttpTransport
from vdsm_net.errors import ErrorKind, NetError

BIN: Final = Path(sys.executable).parent
PROC: Final = Path("/proc")
STOP_WAIT: Final = 20.0  # seconds between SIGTERM and SIGKILL
START_WAIT: Final = 60.0  # an agent's Python start-up: 1-3 s here, much more on a busy machine


@dataclass(frozen=True)
class HostFiles:
    """Where one host's agent keeps its files, under ``DIR/hosts/NAME``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "agent.toml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def socket(self) -> Path:
        return self.root / "agent.sock"

    @property
    def log(self) -> Path:
        return self.root / "agent.log"

    @property
    def pid(self) -> Path:
        return self.root / "agent.pid"


def files(lab: Lab, host: LabHost) -> HostFiles:
    return HostFiles(lab.host_dir(host))


def agent_config(cert: Path, key: Path, ca: Path, listen: str, clients: Sequence[str]) -> str:
    """The agent's TOML: mutual TLS on ``listen``, callable only by the named clients."""
    allowed = ", ".join(f'"{c}"' for c in clients)
    return (
        f'[rpc]\nlisten = "{listen}"\n'
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\nca = "{ca}"\nallowed_clients = [{allowed}]\n'
    )


def argv(host: LabHost, where: HostFiles) -> list[str]:
    return [
        "ip", "netns", "exec", host.netns, str(BIN / "vdsm-net-agent"),
        "--config", str(where.config), "--state-dir", str(where.state),
        "--socket", str(where.socket),
    ]  # fmt: skip


def start(host: LabHost, where: HostFiles) -> subprocess.Popen[bytes]:
    """Start the host's agent detached, with its pid file (``ip netns exec`` execs the
    agent itself, so the pid is the agent's)."""
    with open(where.log, "ab") as log:
        proc = subprocess.Popen(
            argv(host, where),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    where.pid.write_text(f"{proc.pid}\n")
    return proc


def _cmdline(pid: int, *, settle: bool) -> list[str]:
    # A process's cmdline reads empty for a moment while it execs (measured: hundreds of
    # empty reads in a tight loop around one exec): with ``settle``, read again before
    # believing it. Not for every process of /proc: a kernel thread's is always empty.
    for _ in range(50 if settle else 1):
        try:
            raw = (PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return []
        if raw or not _is_running(pid):
            break
        time.sleep(0.01)
    return raw.decode(errors="replace").split("\0") if raw else []


def _is_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie's cmdline is empty, but check its state too)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def is_lab_agent(pid: int, lab: Lab, *, settle: bool = True) -> bool:
    """Whether ``pid`` runs an agent whose state directory lies in this lab's directory."""
    args = _cmdline(pid, settle=settle)
    hosts = str(lab.directory / "hosts") + "/"
    return _is_running(pid) and any(
        a.startswith(hosts) and prev == "--state-dir" for prev, a in itertools.pairwise(args)
    )


def read_pid(where: HostFiles) -> int | None:
    try:
        text = where.pid.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lab_agents(lab: Lab) -> list[int]:
    """Every running agent of this lab: from pid files, the lab's namespaces and /proc."""
    known: set[int] = set()
    for host in lab.hosts:
        pid = read_pid(files(lab, host))
        if pid is not None:
            known.add(pid)
        known.update(kernel.pids_in(host.netns))
    found = {pid for pid in known if is_lab_agent(pid, lab)}
    # An agent outside every lab namespace (its namespace deleted behind the lab's back) and
    # without a pid file: only its command line says whose it is.
    others = {int(p.name) for p in PROC.iterdir() if p.name.isdigit()} - known
    found.update(pid for pid in others if is_lab_agent(pid, lab, settle=False))
    return sorted(found)


def _wait_gone(pids: Iterable[int], seconds: float) -> list[int]:
    """The pids (of agents of the lab, checked before) still running after ``seconds``."""
    left = list(pids)
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if _is_running(pid)]
    return left


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def stop_all(lab: Lab) -> list[int]:
    """SIGTERM every agent of the lab, wait, SIGKILL the ones still running; the pids."""
    pids = lab_agents(lab)
    _signal(pids, signal.SIGTERM)
    stubborn = _wait_gone(pids, STOP_WAIT)
    _signal(stubborn, signal.SIGKILL)
    still = _wait_gone(stubborn, 5.0)
    if still:
        raise NetError(ErrorKind.KERNEL, f"agents {still}: still running after SIGKILL")
    return pids


def endpoint(lab: Lab, host: LabHost) -> Endpoint:
    return Endpoint(
        url=f"https://{host.addr}:{PORT}",
        cert=str(lab.pki / "engine.pem"),
        key=str(lab.pki / "engine-key.pem"),
        ca=str(lab.pki / "ca.pem"),
    )


async def _ping(
    transport: HttpTransport, lab: Lab, host: LabHost, timeout: float
) -> str | None:
    try:
        await AgentClient(endpoint(lab, host), transport, timeout=timeout).call("Host.ping2")
    except AgentError as exc:
        return str(exc)
    return None


async def ping_all(lab: Lab, timeout: float = 5.0) -> dict[str, str | None]:
    """Host.ping2 over mutual TLS with the engine's certificate: None, or why not."""
    async with HttpTransport() as transport:
        answers = await asyncio.gather(*(_ping(transport, lab, h, timeout) for h in lab.hosts))
    return {h.name: a for h, a in zip(lab.hosts, answers, strict=True)}


async def _until_answers(
    transport: HttpTransport, lab: Lab, host: LabHost, proc: subprocess.Popen[bytes],
    seconds: float,
) -> None:
    deadline = time.monotonic() + seconds
    where = files(lab, host)
    while True:
        # The Unix socket appears just before the TCP listener: until then a TLS attempt
        # would only queue in the listener's backlog and time out.
        ready = where.socket.exists()
        error = await _ping(transport, lab, host, 10.0) if ready else "not listening yet"
        if error is None:
            return
        if proc.poll() is not None:
            raise NetError(
                ErrorKind.KERNEL,
                f"{host.name}: the agent exited with status {proc.returncode}; its log "
                f"{where.log}:\n{_tail(where.log)}",
            )
        if time.monotonic() > deadline:
            raise NetError(
                ErrorKind.KERNEL,
                f"{host.name}: the agent did not answer over TLS within {seconds:g} s "
                f"({error}); its log {where.log}:\n{_tail(where.log)}",
            )
        await asyncio.sleep(0.1)


async def wait_all(
    lab: Lab, procs: dict[str, subprocess.Popen[bytes]], seconds: float = START_WAIT
) -> None:
    async with HttpTransport() as transport:
        await asyncio.gather(
            *(_until_answers(transport, lab, h, procs[h.name], seconds) for h in lab.hosts)
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
