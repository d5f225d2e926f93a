"""The aiohttp application of ``engine-client serve``: the SSO endpoints, Bearer-token
authentication, oVirt's faults, content negotiation, and the lifecycle of what the routes
share (``Server``). The API's routes are in ``api.py``, the web page's in ``page.py``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine_client.agent_client import AgentClient, AgentError
from engine_client.models import Host
from engine_client.operations import endpoint
from engine_client.rest import doc, passwords
from engine_client.rest.actions import EXIT_BUSY, EXIT_HOST_FAILED, Commands, Outcome
from engine_client.rest.reads import StoreReader
from engine_client.rest.tokens import Tokens
from engine_client.rest.view import Fleet, Reach
from engine_client.store import Store
from engine_client.transport import HttpTransport

log = logging.getLogger("engine_client.rest")

API_PREFIX = "/ovirt-engine/api"
TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
# Served without a login: the login itself, and the page's static shell (a login form; it
# shows nothing of the fleet until it has a token).
OPEN_PATHS = frozenset({TOKEN_PATH, LOGOUT_PATH, "/", "/ui/app.js", "/ui/style.css"})
MAX_BODY = 1 << 20
AGENT_TIMEOUT = 10.0


class Fault(Exception):
    """An oVirt fault: ``<fault><reason/><detail/></fault>`` with an HTTP status."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def not_found(what: str) -> Fault:
    return Fault(404, "Not Found", f"{what} not found")


def bad_request(detail: str) -> Fault:
    return Fault(400, "Operation Failed", detail)


def command_fault(outcome: Outcome) -> Fault:
    """A command that did not succeed, as oVirt would answer it."""
    detail = f"[{outcome.detail()}]"
    if outcome.code == EXIT_BUSY:
        return Fault(409, "Operation Failed", detail)
    if outcome.code == EXIT_HOST_FAILED:
        return Fault(400, "Operation Failed", detail)
    if "already exists" in outcome.error:
        return Fault(409, "Operation Failed", detail)
    return Fault(400, "Operation Failed", detail)


@dataclass
class Settings:
    db: str  # a store path or a postgresql:// URL
    options: tuple[str, ...] = ()  # global engine-client options for the commands
    token_lifetime: float = 3600.0
    refresh_interval: float = 30.0  # seconds between capability reads of every host; 0: never


@dataclass
class Server:
    """What every route shares; made and closed by the application's cleanup context."""

    settings: Settings
    reader: StoreReader
    commands: Commands
    tokens: Tokens
    transport: HttpTransport = field(default_factory=HttpTransport)
    reach: dict[str, Reach] = field(default_factory=dict)
    refreshed: asyncio.Event = field(default_factory=asyncio.Event)

    async def fleet(self) -> Fleet:
        def read(store: Store) -> Fleet:
            with store.transaction():
                return Fleet(
                    dcs=store.list_dcs(),
                    hosts=store.list_hosts(),
                    networks=store.list_networks(),
                    attachments=store.list_attachments(),
                    host_labels=store.list_host_labels(),
                    nic_labels=store.list_nic_labels(),
                )

        snapshot = await self.reader.read(read)
        return Fleet(**{**snapshot.__dict__, "reach": dict(self.reach)})

    async def agent_call(self, host: Host, method: str, cid: str | None = None) -> Any:
        client = AgentClient(endpoint(host), self.transport, timeout=AGENT_TIMEOUT)
        try:
            return await client.call(method, correlation_id=cid)
        except AgentError as exc:
            raise Fault(400, "Operation Failed", f"[host {host.name}: {exc}]") from None

    async def refresh(self, hosts: tuple[str, ...] = ()) -> None:
        """Read every host's capabilities through ``engine-client host refresh``: the stored
        capabilities (what in-sync is judged from) and who is reachable."""
        outcome = await self.commands.refresh(hosts)
        rows = outcome.doc if isinstance(outcome.doc, list) else []
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                self.reach[row["name"]] = Reach(bool(row.get("reachable")), row.get("error"))
        self.refreshed.set()


SERVER = web.AppKey("server", Server)


def server(request: web.Request) -> Server:
    return request.app[SERVER]


def wants(request: web.Request) -> str:
    return doc.JSON if doc.JSON in request.headers.get("Accept", "") else doc.XML


def answer(request: web.Request, node: doc.Node, status: int = 200) -> web.Response:
    kind = wants(request)
    return web.Response(
        status=status, text=doc.render(node, kind), content_type=kind, charset="utf-8"
    )


def fault_response(request: web.Request, fault: Fault) -> web.Response:
    node = doc.el("fault", doc.leaf("detail", fault.detail), doc.leaf("reason", fault.reason))
    return answer(request, node, fault.status)


def correlation_id(request: web.Request) -> str:
    """The ``Correlation-Id`` header (or oVirt's ``correlation_id`` query parameter), else a
    new one: every command of one request carries the same."""
    given = request.headers.get("Correlation-Id") or request.query.get("correlation_id")
    return given or str(uuid.uuid4())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Fault as fault:
        if fault.status >= 500:
            log.error("%s %s: %s", request.method, request.path, fault.detail)
        return fault_response(request, fault)
    except doc.BadDocument as exc:
        return fault_response(request, bad_request(str(exc)))
    except web.HTTPNotFound:
        return fault_response(request, not_found(f"{request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        return fault_response(
            request,
            Fault(
                405,
                "Method Not Allowed",
                f"{request.method} {request.path}: "
                f"allowed {', '.join(sorted(exc.allowed_methods))}",
            ),
        )
    except web.HTTPRequestEntityTooLarge:
        return fault_response(
            request, Fault(413, "Request Entity Too Large", f"body over {MAX_BODY} bytes")
        )


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@web.middleware
async def authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    token = bearer(request)
    session = server(request).tokens.check(token) if token is not None else None
    if session is None:
        fault = Fault(
            401,
            "Unauthorized",
            "a valid Bearer token is required: get one from "
            f"POST {TOKEN_PATH} (grant_type=password)",
        )
        refused = fault_response(request, fault)
        refused.headers["WWW-Authenticate"] = 'Bearer realm="engine-client"'
        return refused
    request["user"] = session.user
    return await handler(request)


# -- SSO -----------------------------------------------------------------------------------


def _sso_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


async def sso_token(request: web.Request) -> web.Response:
    """oVirt's SSO password grant, as ``ovirtsdk4`` sends it (a form: grant_type=password,
    scope, username, password); the answer is JSON with ``access_token``."""
    form = await request.post()
    if form.get("grant_type") != "password":
        return _sso_error(
            400,
            "unsupported_grant_type",
            f"grant_type: expected password, got {form.get('grant_type')!r}",
        )
    user, password = form.get("username"), form.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        return _sso_error(400, "invalid_request", "username and password are required")
    # oVirt's user names carry a profile ("admin@internal"); the accounts here have none.
    name = user.split("@", 1)[0]
    srv = server(request)
    account = await srv.reader.read(lambda s: s.find_user(name))
    stored = account.password_hash if account is not None else passwords.DUMMY_HASH
    ok = await asyncio.to_thread(passwords.verify_password, password, stored)
    if account is None or not ok:
        log.warning("login refused for user %r from %s", name, request.remote)
        return _sso_error(
            401, "access_denied", "Cannot authenticate user: wrong user name or password"
        )
    token, session = srv.tokens.issue(account.name)
    log.info("user %s logged in from %s", account.name, request.remote)
    return web.json_response(
        {
            "access_token": token,
            "token_type": "bearer",
            "scope": str(form.get("scope") or "ovirt-app-api"),
            "expires_in": int(srv.tokens.lifetime),
            "exp": str(int(session.expires * 1000)),
        }
    )


async def sso_logout(request: web.Request) -> web.Response:
    """Revokes the token of the form (what ``ovirtsdk4`` sends on close) or of the header."""
    form = await request.post()
    token = form.get("token")
    srv = server(request)
    if isinstance(token, str) and token:
        srv.tokens.revoke(token)
    caller = bearer(request)
    if caller is not None:
        srv.tokens.revoke(caller)
    return web.json_response({})


# -- the application -----------------------------------------------------------------------


def make_app(settings: Settings) -> web.Application:
    from engine_client.rest import api, page

    app = web.Application(middlewares=[faults, authenticated], client_max_size=MAX_BODY)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        srv = Server(
            settings=settings,
            reader=StoreReader(settings.db),
            commands=Commands(settings.db, settings.options),
            tokens=Tokens(settings.token_lifetime),
        )
        # The store is opened (and migrated) before the first request.
        await srv.reader.read(lambda s: s.schema_version)
        app[SERVER] = srv
        task = asyncio.create_task(_refresh_loop(srv))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await srv.transport.close()
            await srv.reader.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post(TOKEN_PATH, sso_token)
    app.router.add_post(LOGOUT_PATH, sso_logout)
    api.add_routes(app.router)
    page.add_routes(app)
    return app


async def _refresh_loop(srv: Server) -> None:
    interval = srv.settings.refresh_interval
    while True:
        try:
            await srv.refresh()
        except Exception:  # the next round tries again; the page shows the last answer
            log.exception("refreshing the hosts' capabilities failed")
        if interval <= 0:
            return
        await asyncio.sleep(interval)
