"""``vdsm-net-lab``: the lab's command line.

Exit codes: 0 success (``status``: every host answers); 1 a host of the lab is not healthy
(``status``) or building or removing the lab failed; 2 usage error, not root, or no lab /
already a lab in the directory; 3 another ``vdsm-net-lab`` holds the directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Final, TextIO

from engine_client.lab import agents, kernel, layout
from engine_client.lab.lab import HostStatus, down, status, up
from engine_client.lab.layout import Lab
from vdsm_net import __version__
from vdsm_net.errors import ErrorKind, NetError

DEFAULT_DIR: Final = Path("/run/vdsm-net-lab")
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_BUSY: Final = 3
EXIT_CODES: Final = {ErrorKind.BAD_PARAMS: EXIT_USAGE, ErrorKind.IN_PROGRESS: EXIT_BUSY}


def engine_client_program() -> str:
    """``engine-client`` when that name runs the one installed beside this program, else
    its full path (a virtualenv that is not activated)."""
    ours = agents.BIN / "engine-client"
    found = shutil.which("engine-client")
    if found is not None and os.path.realpath(found) == os.path.realpath(ours):
        return "engine-client"
    return str(ours)


def command_line(lab: Lab) -> str:
    return f"{engine_client_program()} --db {lab.db}"


def _print_up(lab: Lab, out: TextIO) -> None:
    kinds = ", ".join(lab.kinds) or "none"
    print(f"lab up in {lab.directory}: {len(lab.hosts)} hosts in data center {layout.DC}", file=out)
    print(f"  NICs on every host: {', '.join(_host_nics(lab))} (device kinds this kernel "
          f"has beyond veth and bridge: {kinds})", file=out)
    for host in lab.hosts:
        print(f"  {host.name}: {host.url}  (namespace {host.netns})", file=out)
    print("use it with:", file=out)
    print(f"  export ENGINE_CLIENT_DB={lab.db}", file=out)
    print("or give every command the store:", file=out)
    print(f"  {command_line(lab)}", file=out)
    print(f"remove it with: vdsm-net-lab down --dir {lab.directory}", file=out)


def _host_nics(lab: Lab) -> list[str]:
    return [*layout.NICS, *([layout.DUMMY_NIC] if "dummy" in lab.kinds else [])]


def _status_doc(lab: Lab, hosts: Sequence[HostStatus]) -> dict[str, object]:
    return {
        "directory": str(lab.directory),
        "state": lab.state,
        "subnet": lab.subnet,
        "kinds": list(lab.kinds),
        "db": str(lab.db),
        "command": command_line(lab),
        "hosts": [asdict(h) for h in hosts],
    }


def _print_status(lab: Lab, hosts: Sequence[HostStatus], out: TextIO) -> None:
    print(f"lab in {lab.directory} ({lab.state}): {len(hosts)} hosts, store {lab.db}", file=out)
    rows = [["host", "namespace", "address", "agent pid", "answering", "NICs"]]
    for h in hosts:
        nics = " ".join(f"{n['name']}:{n['state']}/{n['mtu']}" for n in h.nics)
        rows.append([
            h.name,
            h.netns if h.netns_present else f"{h.netns} (missing)",
            h.addr,
            f"{h.pid}" if h.pid_alive else f"{h.pid or '-'} (not running)",
            "yes" if h.answering else f"no ({h.error})",
            nics or "-",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _need_lab(directory: Path) -> Lab:
    lab = layout.load(directory) if directory.is_dir() else None
    if lab is None:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"dir: no lab in {directory}; make one with 'vdsm-net-lab up N --dir {directory}'",
        )
    return lab


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that a stopped ``up`` removes what it made


def cmd_up(a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    lab = up(a.dir, a.n, say=lambda line: print(line, file=err, flush=True))
    _print_up(lab, out)
    return EXIT_OK


def cmd_status(a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    lab = _need_lab(a.dir)
    hosts = status(lab)
    if a.json:
        print(json.dumps(_status_doc(lab, hosts), indent=2), file=out)
    else:
        _print_status(lab, hosts, out)
    return EXIT_OK if all(h.healthy for h in hosts) and lab.state == "up" else EXIT_FAILED


def cmd_down(a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    lab = down(a.dir, say=lambda line: print(line, file=err, flush=True))
    if lab is None:
        print(f"no lab in {a.dir}: nothing to remove", file=out)
    else:
        print(f"lab in {a.dir} removed", file=out)
    return EXIT_OK


def cmd_exec(a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    host = _need_lab(a.dir).host(a.host)
    if not a.command:
        raise NetError(ErrorKind.BAD_PARAMS, "COMMAND: expected a command to run, got none")
    out.flush()
    os.execvp("ip", ["ip", "netns", "exec", host.netns, *a.command])


def _directory(text: str) -> Path:
    # One spelling of the directory for every command: the agents are recognised by it.
    return Path(text).resolve()


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= layout.MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"expected 1-{layout.MAX_HOSTS} hosts, got {text!r}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vdsm-net-lab",
        description="N hosts on this machine (network namespaces with TLS agents) and an "
        "engine-client store that knows them: the whole project on one machine. Needs root.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=_directory, default=DEFAULT_DIR,
        help=f"the lab's directory: store, certificates, agents' files (default {DEFAULT_DIR})",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    p = commands.add_parser("up", parents=[common], help="build a lab of N hosts")
    p.add_argument("n", type=_count, metavar="N", help=f"number of hosts, 1-{layout.MAX_HOSTS}")
    p.set_defaults(handler=cmd_up)
    p = commands.add_parser("status", parents=[common], help="each host: namespace, agent, NICs")
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON on stdout)")
    p.set_defaults(handler=cmd_status)
    p = commands.add_parser("down", parents=[common], help="stop the agents, remove everything")
    p.set_defaults(handler=cmd_down)
    p = commands.add_parser("exec", parents=[common], help="run a command in a host's namespace")
    p.add_argument("host", metavar="HOST", help="a lab host: host1, host2, ...")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="the command and its arguments, e.g. ip -d link show")
    p.set_defaults(handler=cmd_exec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not kernel.is_root():
        print("vdsm-net-lab: error: needs root (it makes network namespaces and links): "
              "run it with sudo", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args, sys.stdout, sys.stderr)
    except NetError as exc:
        print(f"vdsm-net-lab: error: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(exc.kind, EXIT_FAILED)
    except OSError as exc:  # a file of the lab's directory: disk full, permissions, ...
        print(f"vdsm-net-lab: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vdsm-net-lab: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # ``status --json | head``: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return code
