"""Build, inspect and remove a lab (docs/lab.md): ``up``, ``status``, ``down``.

``up`` records its plan before making anything and, when it fails, removes what it made
before reporting the error; ``down`` removes everything the plan names that exists, so it
also cleans a lab whose ``up`` was killed. Both hold an exclusive lock on the lab's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from engine_client import cli as engine_cli
from engine_client import pki
from engine_client.lab import agents, kernel, layout
from engine_client.lab.layout import DC, DC_VERSION, DUMMY_NIC, MGMT, NICS, Lab, LabHost
from vdsm_net.errors import ErrorKind, NetError

ENGINE_CERT: Final = "engine"  # the engine's certificate name, the agents' only allowed client
SWITCH_MTU: Final = 9216  # the switch's ports take jumbo frames, as a data center switch does
DB_FILES: Final = ("", "-wal", "-shm", "-journal")

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NetError(
                ErrorKind.IN_PROGRESS,
                f"{directory}: another vdsm-net-lab is building or removing this lab; wait for it",
            ) from None
        yield
    finally:
        os.close(fd)


def _existing(directory: Path) -> bool:
    """Whether ``directory`` exists; refuses a lab already there and any other content."""
    lab = layout.load(directory) if directory.is_dir() else None
    if lab is not None:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"dir: a lab already exists in {directory} ({len(lab.hosts)} hosts, {lab.state}); "
            f"remove it with 'vdsm-net-lab down --dir {directory}' or choose another --dir",
        )
    if directory.exists() and not directory.is_dir():
        raise NetError(ErrorKind.BAD_PARAMS, f"dir: expected a directory, got file {directory}")
    if directory.is_dir() and any(directory.iterdir()):
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"dir: expected an empty or new directory (the lab removes what it puts there), "
            f"got {directory} with files in it",
        )
    return directory.is_dir()


def up(directory: Path, count: int, say: Say = _quiet) -> Lab:
    if not 1 <= count <= layout.MAX_HOSTS:
        raise NetError(ErrorKind.BAD_PARAMS, f"N: expected 1-{layout.MAX_HOSTS}, got {count}")
    existed = _existing(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        if layout.load(directory) is not None:  # made while we waited for the directory
            _existing(directory)
        subnet = layout.pick_subnet(kernel.networks_in_use())
        lab = layout.plan(directory, count, subnet, not existed)
        layout.save(lab)
        try:
            lab = _build(lab, say)
        except BaseException:
            say("up failed: removing what it made")
            with contextlib.suppress(Exception):
                _teardown(lab, _quiet)
                if lab.made_directory:
                    directory.rmdir()
            raise
    return lab


def _build(lab: Lab, say: Say) -> Lab:
    kinds = kernel.probe_kinds(lab.probe_netns)
    lab = lab.with_state("building", kinds)
    layout.save(lab)
    say(f"kernel: {', '.join(kinds) or 'no vlan, bond or dummy'} devices available")
    kernel.add_netns(lab.switch_netns)
    for nic in NICS:
        kernel.ip("-n", lab.switch_netns, "link", "add", nic, "type", "bridge")
        kernel.up(nic, netns=lab.switch_netns)
    pki.init_ca(lab.pki, name=f"vdsm-net-lab {lab.lab_id} CA")
    engine = pki.issue(lab.pki, ENGINE_CERT, role="engine")
    for host in lab.hosts:
        _build_host(lab, host)
        say(f"{host.name}: namespace {host.netns}, agent address {host.addr}")
    procs = {host.name: agents.start(host, agents.files(lab, host)) for host in lab.hosts}
    asyncio.run(agents.wait_all(lab, procs))
    say(f"{len(lab.hosts)} agents answer over mutual TLS")
    _engine(lab, "dc", "add", DC, "--version", DC_VERSION)
    ca = lab.pki / pki.CA_CERT
    for host in lab.hosts:
        _engine(
            lab, "host", "add", host.name, host.url, "--dc", DC,
            "--cert", str(engine.cert), "--key", str(engine.key), "--ca", str(ca),
        )  # fmt: skip
    _engine(lab, "host", "refresh")
    lab = lab.with_state("up")
    layout.save(lab)
    return lab


def _build_host(lab: Lab, host: LabHost) -> None:
    kernel.add_netns(host.netns)
    kernel.add_veth(host.root_link, MGMT, netns=None, peer_netns=host.netns)
    kernel.add_addr(host.root_addr, host.root_link)
    kernel.up(host.root_link)
    kernel.add_addr(f"{host.addr}/{host.prefix}", MGMT, netns=host.netns)
    kernel.up(MGMT, netns=host.netns)
    for nic in NICS:
        port = f"{host.name}-{nic}"
        kernel.add_veth(nic, port, netns=host.netns, peer_netns=lab.switch_netns)
        kernel.ip("-n", lab.switch_netns, "link", "set", port, "mtu", str(SWITCH_MTU),
                  "master", nic, "up")
        kernel.up(nic, netns=host.netns)
    if "dummy" in lab.kinds:
        kernel.ip("-n", host.netns, "link", "add", DUMMY_NIC, "type", "dummy")
        kernel.up(DUMMY_NIC, netns=host.netns)
    where = agents.files(lab, host)
    where.root.mkdir(parents=True)
    issued = pki.issue(lab.pki, host.name, ips=[host.addr])
    listen = f"{host.addr}:{layout.PORT}"
    config = agents.agent_config(
        issued.cert, issued.key, lab.pki / pki.CA_CERT, listen, [ENGINE_CERT]
    )
    where.config.write_text(config)


def _engine(lab: Lab, *args: str) -> None:
    """One ``engine-client`` command, in process, on the lab's store."""
    out, err = io.StringIO(), io.StringIO()
    code = engine_cli.main([*args, "--db", str(lab.db)], stdout=out, stderr=err)
    if code != 0:
        # Not the user's input (that was checked before anything was made): a failed step.
        raise NetError(
            ErrorKind.KERNEL,
            f"engine-client {' '.join(args)}: exit {code}: {err.getvalue().strip()}",
        )


# -- down ---------------------------------------------------------------------------------


def down(directory: Path, say: Say = _quiet) -> Lab | None:
    """Remove the lab in ``directory``; None when there was none."""
    if not directory.is_dir():
        return None
    with _locked(directory):
        lab = layout.load(directory)
        if lab is None:
            return None
        _teardown(lab, say)
    if lab.made_directory:
        with contextlib.suppress(OSError):
            directory.rmdir()
    return lab


def _teardown(lab: Lab, say: Say) -> None:
    stopped = agents.stop_all(lab)
    if stopped:
        say(f"stopped {len(stopped)} agents")
    for host in lab.hosts:
        kernel.del_link(host.root_link)
    for name in lab.netns_names:
        kernel.del_netns(name)
    _wait_links_gone(lab)
    for host in lab.hosts:
        shutil.rmtree(lab.host_dir(host), ignore_errors=True)
    with contextlib.suppress(OSError):
        (lab.directory / layout.HOSTS).rmdir()
    shutil.rmtree(lab.pki, ignore_errors=True)
    for suffix in DB_FILES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{lab.db}{suffix}").unlink()
    for name in (layout.MANIFEST, f".{layout.MANIFEST}.tmp"):
        with contextlib.suppress(FileNotFoundError):
            (lab.directory / name).unlink()
    say(f"removed {len(lab.hosts)} hosts' namespaces, links and files from {lab.directory}")


def _wait_links_gone(lab: Lab, seconds: float = 10.0) -> None:
    """A namespace's devices are unregistered after ``ip netns del`` returns (the kernel
    cleans a namespace up asynchronously): the root ends of the lab's links must be gone."""
    deadline = time.monotonic() + seconds
    left = [h.root_link for h in lab.hosts if kernel.link_exists(h.root_link)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [name for name in left if kernel.link_exists(name)]
    if left:
        raise NetError(ErrorKind.KERNEL, f"links {left}: still present after removal")


# -- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostStatus:
    name: str
    netns: str
    addr: str
    netns_present: bool
    pid: int | None
    pid_alive: bool
    answering: bool
    error: str | None
    nics: list[dict[str, Any]]

    @property
    def healthy(self) -> bool:
        return self.netns_present and self.pid_alive and self.answering


def _nics(lab: Lab, host: LabHost) -> list[dict[str, Any]]:
    if not kernel.netns_exists(host.netns):
        return []
    names = (*NICS, DUMMY_NIC)
    return [
        {
            "name": dev["ifname"],
            "kind": (dev.get("linkinfo") or {}).get("info_kind"),
            "state": dev.get("operstate"),
            "mtu": dev.get("mtu"),
            "master": dev.get("master"),
        }
        for dev in kernel.links_of(host.netns)
        if dev["ifname"] in names
    ]


def status(lab: Lab) -> list[HostStatus]:
    answers = asyncio.run(agents.ping_all(lab))
    out = []
    for host in lab.hosts:
        pid = agents.read_pid(agents.files(lab, host))
        alive = pid is not None and agents.is_lab_agent(pid, lab)
        present = kernel.netns_exists(host.netns)
        error = answers[host.name]
        out.append(
            HostStatus(host.name, host.netns, host.addr, present, pid, alive, error is None,
                       error, _nics(lab, host))
        )
    return out
