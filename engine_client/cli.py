"""``engine-client``: the command line of the engine client (docs/engine-cli.md).

Exit codes: 0 success; 1 a host failed (unreachable, error, timeout, refused); 2 usage or
validation error (nothing was written or sent); 3 another engine-client is changing the same
network, or changed it since this command read it (nothing was written or sent).
``--json`` (before or after the subcommand) prints one JSON document on stdout; events then
go to the store only, not to stderr.

This module holds the options every command takes, ``build_parser`` and ``main``; the commands
are in the module of their concept: ``cli_hosts`` (dc, host, stats), ``cli_networks`` (network,
sync), ``cli_labels``, ``cli_status``, ``cli_events``, ``cli_vms``, ``rest.commands`` (user,
serve) and ``cli_pki``; ``cli_rollout`` has the rollout-control options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from engine_client import (
    cli_events,
    cli_hosts,
    cli_labels,
    cli_networks,
    cli_pki,
    cli_rollout,
    cli_status,
    cli_vms,
)
from engine_client.agent_client import Transport
from engine_client.operations import EXIT_CONFLICT, EXIT_USAGE, Ctx
from engine_client.rest.commands import add_commands as add_rest_commands
from engine_client.store import Conflict, StoreError, default_location
from vdsm_net import __version__
from vdsm_net.errors import NetError

Handler = Callable[[Ctx, argparse.Namespace], int]


def _common() -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand. On subparsers their defaults are
    SUPPRESS, so a value given before the subcommand is not reset by the subparser."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output (JSON on stdout)",
    )
    p.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        help="the store: an SQLite file path, or a postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        "URL (default $ENGINE_CLIENT_DB or ~/.local/share/engine-client/engine.db)",
    )
    p.add_argument(
        "--parallel", type=int, default=argparse.SUPPRESS, help="hosts updated at once (default 50)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="per-host connectivity timeout in seconds (default 120)",
    )
    p.add_argument(
        "--call-timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds for one request to an agent, apart from the connectivity timeout that "
        "setupNetworks may also wait (default 5 for capability reads, 30 for the others)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    # Two instances: parents share action objects, and set_defaults on the top parser would
    # otherwise turn the subparsers' SUPPRESS defaults into values that overwrite the top's.
    common = _common()
    parser = argparse.ArgumentParser(
        prog="engine-client",
        parents=[_common()],
        description="Keep logical networks of data centers and push them to hosts' agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(json=False, db=None, parallel=50, timeout=120.0, call_timeout=None)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def sub(parent: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_text)
        p.set_defaults(handler=handler)
        return p

    def group(name: str, help_text: str) -> Any:
        p = groups.add_parser(name, parents=[common], help=help_text)
        return p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # In the order that --help lists them.
    cli_hosts.add_commands(group, sub)  # dc, host
    cli_networks.add_commands(group, sub)  # network
    cli_labels.add_commands(group, sub)  # label
    cli_networks.add_sync_command(groups, sub)
    cli_status.add_command(groups, sub)
    cli_hosts.add_stats_command(groups, sub)
    cli_events.add_command(groups, sub)
    cli_vms.add_commands(group, sub)  # vm
    add_rest_commands(groups, group, sub)  # user, serve
    cli_pki.add_commands(group, sub)  # pki
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: Transport | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code. ``transport`` replaces the real HTTPS/Unix
    transport (tests)."""
    err = stderr if stderr is not None else sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.parallel < 1:
        print(f"error: parallel: expected >= 1, got {args.parallel}", file=err)
        return EXIT_USAGE
    if args.timeout <= 0:
        print(f"error: timeout: expected > 0, got {args.timeout:g}", file=err)
        return EXIT_USAGE
    if args.call_timeout is not None and args.call_timeout <= 0:
        print(f"error: call-timeout: expected > 0, got {args.call_timeout:g}", file=err)
        return EXIT_USAGE
    ctx = Ctx(
        db=default_location(args.db),
        json=args.json,
        parallel=args.parallel,
        timeout=args.timeout,
        call_timeout=args.call_timeout,
        transport=transport,
        out=stdout if stdout is not None else sys.stdout,
        err=err,
        control=cli_rollout.control(args),
    )
    handler: Handler = args.handler
    try:
        return handler(ctx, args)
    except Conflict as exc:
        print(f"error: {exc}", file=err)
        return EXIT_CONFLICT
    except (NetError, StoreError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    finally:
        ctx.close()
