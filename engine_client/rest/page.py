"""The web page at ``/`` (docs/rest.md): a static shell (HTML, JS, CSS; no build step) that logs
in through the SSO endpoint and then reads ``/ui/fleet`` (hosts, networks, per-host sync state
and what differs, recent events) and ``/ui/events``, a Server-Sent Events stream of the event
log as it grows, so that a rollout run from anywhere (the CLI, the API) shows on the open
page as it happens. Both need the Bearer token; the page sends it on every request (no
cookies, so no cross-site request can act with a person's login)."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any

from aiohttp import web

from engine_client.insync import judge
from engine_client.models import Event
from engine_client.rest.app import server
from engine_client.store import Store

POLL = 0.25  # seconds between reads of the event log for the stream
BATCH = 200
KEEPALIVE = 15.0


def _static(name: str) -> str:
    return resources.files("engine_client.rest").joinpath("static", name).read_text()


def _event(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": e.time,
        "severity": e.severity,
        "host": e.host,
        "correlation_id": e.correlation_id,
        "message": e.message,
    }


async def index(request: web.Request) -> web.Response:
    return web.Response(text=_static("index.html"), content_type="text/html", charset="utf-8")


async def script(request: web.Request) -> web.Response:
    return web.Response(text=_static("app.js"), content_type="text/javascript", charset="utf-8")


async def style(request: web.Request) -> web.Response:
    return web.Response(text=_static("style.css"), content_type="text/css", charset="utf-8")


async def fleet(request: web.Request) -> web.Response:
    srv = server(request)
    f = await srv.fleet()
    events = await srv.reader.read(lambda s: s.list_events(limit=50))
    nets = {n.name: n for n in f.networks}
    hosts = {h.name: h for h in f.hosts}
    rows = []
    for h in f.hosts:
        reach = f.reach.get(h.name)
        rows.append(
            {
                "name": h.name,
                "dc": h.dc,
                "url": h.url,
                "agent_version": h.agent_version,
                "reachable": None if reach is None else reach.reachable,
                "error": None if reach is None else reach.error,
                "caps_time": h.caps_time,
                "labels": [hl.label for hl in f.host_labels if hl.host == h.name],
            }
        )
    networks = []
    for n in f.networks:
        per_host = []
        for att in (a for a in f.attachments if a.network == n.name):
            verdict = judge(nets[att.network], att, hosts[att.host].caps)
            diff = {d.key: (d.expected, d.found) for d in verdict.differences}
            per_host.append(
                {
                    "host": att.host,
                    "attached": att.describe(),
                    "via_label": att.via_label,
                    "in_sync": verdict.in_sync,
                    "diff": {k: {"expected": e, "actual": a} for k, (e, a) in diff.items()},
                    "last_error": att.last_error,
                }
            )
        networks.append(
            {
                "name": n.name,
                "dc": n.dc,
                "vlan": n.vlan,
                "mtu": n.mtu,
                "vm": n.vm,
                "label": n.label,
                "hosts": per_host,
            }
        )
    return web.json_response(
        {
            "user": request["user"],
            "hosts": rows,
            "networks": networks,
            "events": [_event(e) for e in events],
        }
    )


def _after(last: int) -> Any:
    def read(store: Store) -> list[Event]:
        limit = BATCH
        while True:
            events = store.list_events(limit=limit)
            if len(events) < limit or events[0].id <= last + 1:
                return [e for e in events if e.id > last]
            limit *= 2

    return read


async def stream(request: web.Request) -> web.StreamResponse:
    srv = server(request)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    newest = await srv.reader.read(lambda s: s.list_events(limit=1))
    last = newest[-1].id if newest else 0
    since_write = 0.0
    await resp.write(b": stream open\n\n")
    while True:
        events = await srv.reader.read(_after(last))
        for e in events:
            await resp.write(f"id: {e.id}\ndata: {json.dumps(_event(e))}\n\n".encode())
            last = e.id
        since_write = 0.0 if events else since_write + POLL
        if since_write >= KEEPALIVE:  # a dead peer is noticed by the failing write
            await resp.write(b": keep-alive\n\n")
            since_write = 0.0
        await asyncio.sleep(POLL)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/ui/app.js", script)
    app.router.add_get("/ui/style.css", style)
    app.router.add_get("/ui/fleet", fleet)
    app.router.add_get("/ui/events", stream)
