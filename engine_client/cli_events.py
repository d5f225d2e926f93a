"""``engine-client events`` (docs/engine-cli.md): the event log, oldest first, filtered by
command, host or network, and followed as any engine-client stores new events (``--follow``);
one line per event, or with ``--json`` one JSON document (one object per line when following).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from engine_client.events import event_json, local_time
from engine_client.models import Event
from engine_client.operations import EXIT_OK, Ctx

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]


def cmd_events(ctx: Ctx, a: argparse.Namespace) -> int:
    if a.host is not None:
        ctx.store.get_host(a.host)
    if a.network is not None:
        ctx.store.get_network(a.network)
    filters = {"correlation_id": a.correlation_id, "host": a.host, "network": a.network}
    if a.follow:
        # Every event as any engine-client stores it (PostgreSQL: LISTEN/NOTIFY; SQLite:
        # polled), flushed line by line: the reader is often a pipe (| grep, a script).
        try:
            for e in ctx.store.follow_events(**filters, limit=a.limit):
                show_events(ctx, [e])
        except KeyboardInterrupt:  # the way to stop following
            pass
        return EXIT_OK
    events = ctx.store.list_events(**filters, limit=a.limit)
    if ctx.json:
        ctx.print_json([_event_doc(e) for e in events])
        return EXIT_OK
    show_events(ctx, events)
    return EXIT_OK


def _event_doc(e: Event) -> dict[str, Any]:
    return event_json(e) | {"id": e.id}


def show_events(ctx: Ctx, events: Sequence[Event]) -> None:
    """One line per event (with --json and --follow one JSON object per line, so that the
    output can be read as it comes)."""
    for e in events:
        if ctx.json:
            print(json.dumps(_event_doc(e), sort_keys=True), file=ctx.out)
        else:
            who = e.host or "-"
            print(
                f"{local_time(e.time)} {e.severity:<7} {e.correlation_id or '-'} {who} "
                f"{e.message}",
                file=ctx.out,
            )
    ctx.out.flush()


def add_command(groups: Any, sub: Sub) -> None:
    p = sub(groups, "events", cmd_events, "the event log, oldest first (times with their zone)")
    p.add_argument("--correlation-id", help="only the events of this command")
    p.add_argument("--host", help="only the events about this host")
    p.add_argument("--network", help="only the events about this logical network")
    p.add_argument("--limit", type=int, help="only the last N events")
    p.add_argument(
        "--follow",
        action="store_true",
        help="then print new events as they are stored, until interrupted (Ctrl-C)",
    )
