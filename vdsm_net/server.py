"""The agent's HTTP shell: JSON-RPC over a Unix socket and over TCP with TLS (docs/api.md).

The JSON-RPC semantics live in the handler (``vdsm_net.rpc``); this module only moves
request text in and response text out, listens, tells systemd, and stops on a signal.
Listening sockets are created here rather than by aiohttp so that the Unix socket gets its
mode before ``listen()`` (no window where it is connectable with the umask's mode), a port 0
reports the port the kernel chose, and systemd socket activation is the same code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import signal
import socket
import ssl
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from vdsm_net import sdnotify
from vdsm_net.authz import ClientPolicy
from vdsm_net.config import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, AgentConfig, ConfigError
from vdsm_net.guarded_site import ConnectionLimits, FirstRequests, GuardedSite
from vdsm_net.tls import server_context

log = logging.getLogger(__name__)

Handler = Callable[[str, Mapping[str, str]], Awaitable[str | None]]


# Request storage: the JSON-RPC methods of a request, for the access log.
_METHODS_KEY = web.RequestKey("vdsm_net.methods", list[str])
_SHOWN_METHODS = 3


def rpc_methods(body: str) -> list[str]:
    """The ``method`` of each request of a JSON-RPC request or batch (for the access log);
    [] for a body that is not JSON-RPC (the handler answers it with its error)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return []
    requests = doc if isinstance(doc, list) else [doc]
    return [str(r["method"]) for r in requests if isinstance(r, dict) and "method" in r]


def _methods_text(methods: list[str]) -> str:
    if len(methods) <= _SHOWN_METHODS:
        return ", ".join(methods)
    return ", ".join(methods[:_SHOWN_METHODS]) + f", ... ({len(methods)} requests)"


class AccessLogger(AbstractAccessLogger):
    """One line a request: ``POST /jsonrpc Host.setupNetworks 200 (210 bytes sent) in 1.2 ms
    from 10.0.0.5 [correlation id 4f1c...]``; the peer only on TCP, the id when the engine
    sent one."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        peer = f" from {request.remote}" if request.remote else ""
        cid = request.headers.get("X-Correlation-Id")
        methods = request.get(_METHODS_KEY)
        self.logger.info(
            "%s %s%s %d (%d bytes sent) in %.1f ms%s%s",
            request.method, request.path, f" {_methods_text(methods)}" if methods else "",
            response.status, response.body_length, time * 1000,
            peer, f" [correlation id {cid}]" if cid else "",
        )
Lifecycle = Callable[[web.Application], AsyncIterator[None]]
OnReady = Callable[[tuple[str, ...]], None]

MAX_BODY = DEFAULT_MAX_BODY
# In-flight requests get this long after SIGTERM: the whole stop stays within 10 s (docs/config.md),
# the unit's TimeoutStopSec is above it.
SHUTDOWN_TIMEOUT = 8.0
SOCKET_MODE = 0o660
SD_LISTEN_FDS_START = 3
_JSON = "application/json"


class ServerError(Exception):
    """The agent cannot listen where it was told to (the message says where and why)."""


def _rpc_error(code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": None})


def _too_large(max_body: int) -> web.Response:
    return web.Response(
        status=413,
        text=_rpc_error(-32600, f"request body exceeds {max_body} bytes ([rpc] max_body)"),
        content_type=_JSON, headers={"Connection": "close"},
    )


def make_app(
    handler: Handler,
    lifecycle: Lifecycle | None = None,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    first_requests: FirstRequests | None = None,
) -> web.Application:
    async def jsonrpc(request: web.Request) -> web.StreamResponse:
        # A Content-Length over the cap is refused before reading; a body that does not come
        # (a 1 GiB Content-Length never sent, a trickle) is cut off after body_timeout.
        if request.content_length is not None and request.content_length > max_body:
            return _too_large(max_body)
        try:
            raw = await asyncio.wait_for(request.read(), body_timeout)
        except web.HTTPRequestEntityTooLarge:
            return _too_large(max_body)
        except TimeoutError:
            log.info("request body from %s not received within %g s: closing the connection",
                     request.remote or "a local client", body_timeout)
            return web.Response(
                status=408,
                text=_rpc_error(-32600, f"request body not received within {body_timeout:g} s"),
                content_type=_JSON, headers={"Connection": "close"},
            )
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return web.Response(
                status=400, text=_rpc_error(-32700, f"body is not UTF-8: {exc}"), content_type=_JSON
            )
        request[_METHODS_KEY] = rpc_methods(body)
        try:
            answer = await handler(body, request.headers)
        except Exception:
            # The handler is supposed to turn every failure into a JSON-RPC error; if one
            # escapes, the client still gets a well-formed answer and the agent keeps serving.
            log.exception("JSON-RPC handler failed")
            return web.Response(
                status=500, text=_rpc_error(-32603, "internal error"), content_type=_JSON
            )
        if answer is None:
            return web.Response(status=204)
        return web.Response(text=answer, content_type=_JSON)

    async def healthz(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    middlewares = [first_requests.middleware()] if first_requests is not None else []
    app = web.Application(client_max_size=max_body, middlewares=middlewares)
    app.router.add_post("/jsonrpc", jsonrpc)
    app.router.add_get("/healthz", healthz)
    if lifecycle is not None:
        app.cleanup_ctx.append(lifecycle)
    return app


# ---- listeners ---------------------------------------------------------------------------


@dataclass
class Listener:
    sock: socket.socket
    ssl_context: ssl.SSLContext | None
    url: str  # for logs and on_ready: "unix:/path", "https://host:port"
    owned_path: Path | None = None  # a Unix socket file to remove at exit


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ServerError(f"socket {str(path)!r}: exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)  # left over by an agent that did not stop cleanly
        return
    except OSError as exc:
        raise ServerError(f"socket {str(path)!r}: cannot probe it: {exc}") from None
    finally:
        probe.close()
    raise ServerError(f"socket {str(path)!r}: another process is listening on it")


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"[rpc] socket_group: no such group {name!r} "
                          f"(create it: groupadd --system {name})") from None


def unix_listener(path: Path, group: str | None = None) -> Listener:
    gid = _group_id(group) if group is not None else -1
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(str(path))
        # Connecting to a bound socket that does not listen yet is refused, so setting the
        # mode (and group) between bind and listen leaves no window with the umask's mode.
        os.chmod(path, SOCKET_MODE)
        if gid != -1:
            os.chown(path, -1, gid)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServerError(f"socket {str(path)!r}: {exc.strerror}") from None
    sock.setblocking(False)
    return Listener(sock, None, f"unix:{path}", owned_path=path)


def _tcp_context(cfg: AgentConfig, where: str) -> ssl.SSLContext | None:
    if cfg.tls_cert is not None and cfg.tls_key is not None and cfg.tls_ca is not None:
        return server_context(cfg.tls_cert, cfg.tls_key, cfg.tls_ca)
    if cfg.insecure:
        log.warning("%s: TLS disabled by --insecure: clients are NOT authenticated", where)
        return None
    raise ConfigError(f"[tls] cert: required to listen on {where} (or --insecure for tests)")


def _tcp_url(ctx: ssl.SSLContext | None, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{'https' if ctx else 'http'}://{host}:{port}"


def tcp_listener(cfg: AgentConfig, host: str, port: int) -> Listener:
    where = f"{host}:{port}"
    ctx = _tcp_context(cfg, where)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ServerError(f"listen {where}: {exc.strerror}") from None
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServerError(f"listen {where}: {exc.strerror}") from None
    sock.setblocking(False)
    return Listener(sock, ctx, _tcp_url(ctx, sock))


def activated_listeners(cfg: AgentConfig) -> list[Listener] | None:
    """Sockets passed by systemd (sd_listen_fds(3)), or None when not socket-activated."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    if count <= 0:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # children must not believe the sockets are theirs
    listeners = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        if sock.family == socket.AF_UNIX:
            listeners.append(Listener(sock, None, f"unix:{sock.getsockname()}"))
        else:
            ctx = _tcp_context(cfg, f"socket-activated fd {fd}")
            listeners.append(Listener(sock, ctx, _tcp_url(ctx, sock)))
    return listeners


def open_listeners(cfg: AgentConfig) -> list[Listener]:
    activated = activated_listeners(cfg)
    if activated is not None:
        return activated
    listeners = [unix_listener(cfg.socket, cfg.socket_group)]
    if cfg.listen is not None:
        try:
            listeners.append(tcp_listener(cfg, *cfg.listen))
        except BaseException:
            close_listeners(listeners)
            raise
    return listeners


def close_listeners(listeners: list[Listener]) -> None:
    for listener in listeners:
        listener.sock.close()
        if listener.owned_path is not None:
            listener.owned_path.unlink(missing_ok=True)


# ---- the daemon --------------------------------------------------------------------------


async def serve(
    cfg: AgentConfig,
    handler: Handler,
    *,
    on_ready: OnReady | None = None,
    lifecycle: Lifecycle | None = None,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    stop: asyncio.Event | None = None,
    policy: ClientPolicy | None = None,
    on_stop: Callable[[], None] | None = None,
    on_reload: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or until ``stop`` is set, for embedding). ``lifecycle``
    runs (up to its yield) before the agent serves and after it stopped serving; READY=1 is
    sent once every listener is open. ``on_stop`` runs when the stop begins (the agent ends
    a wait for a confirmation there), before in-flight requests get ``shutdown_timeout`` to
    finish; ``on_reload`` runs on SIGHUP. ``policy`` decides which TLS clients may call."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    policy = policy or ClientPolicy(cfg.allowed_clients)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    # Without a handler SIGHUP's default action would kill the daemon and leave its socket.
    loop.add_signal_handler(signal.SIGHUP, on_reload or _ignore_reload)
    interval = sdnotify.watchdog_interval()
    # Started before the lifecycle's start-up (which may replay an undo journal) so that a
    # slow start is not mistaken for a hang.
    pinger = asyncio.create_task(sdnotify.watchdog(interval)) if interval else None
    first_requests = FirstRequests()
    runner = web.AppRunner(
        make_app(handler, lifecycle, max_body=cfg.max_body, body_timeout=cfg.body_timeout,
                 first_requests=first_requests),
        handle_signals=False,
        # aiohttp closes a connection with no request in progress after this long; that
        # includes one whose request headers are still arriving (docs/limits.md).
        keepalive_timeout=cfg.idle_timeout,
        access_log=logging.getLogger("vdsm_net.access"),
        access_log_class=AccessLogger,
        shutdown_timeout=shutdown_timeout,
    )
    listeners: list[Listener] = []
    try:
        # Listening sockets first: if another agent owns the socket, fail before the
        # lifecycle's start-up touches the kernel. Early clients wait in the backlog.
        listeners = open_listeners(cfg)
        await runner.setup()
        for listener in listeners:
            local = listener.sock.family == socket.AF_UNIX
            limits = ConnectionLimits(
                max_connections=cfg.max_unix_connections if local else cfg.max_tcp_connections,
                handshake_timeout=cfg.handshake_timeout,
            )
            await GuardedSite(runner, listener.sock, url=listener.url, limits=limits,
                              first_requests=first_requests,
                              ssl_context=listener.ssl_context, policy=policy).start()
            log.info("listening on %s (at most %d connections)", listener.url,
                     limits.max_connections)
        urls = tuple(listener.url for listener in listeners)
        sdnotify.notify("READY=1")
        log.info("ready")
        if on_ready is not None:
            on_ready(urls)
        await stop.wait()
        sdnotify.notify("STOPPING=1")
        if on_stop is not None:
            on_stop()
    finally:
        await runner.cleanup()
        close_listeners(listeners)
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        log.info("stopped")


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    log.info("stopping on %s", signal.Signals(signum).name)
    stop.set()


def _ignore_reload() -> None:
    log.warning("SIGHUP: nothing to reload in this server")

