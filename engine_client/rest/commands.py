"""``engine-client serve`` and ``engine-client user add|remove|list`` (docs/engine-cli.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import ipaddress
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine_client.events import local_time
from engine_client.operations import EXIT_OK, Ctx, table
from engine_client.rest import passwords
from engine_client.store_backend import is_url
from vdsm_net.errors import ErrorKind, NetError

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]

DEFAULT_LISTEN = "127.0.0.1:8443"
MIN_PASSWORD = 8


def _read_password(ctx: Ctx, a: argparse.Namespace) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {a.name}: ")
        if getpass.getpass("again: ") != first:
            raise NetError(ErrorKind.BAD_PARAMS, "password: the two entries differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_user_add(ctx: Ctx, a: argparse.Namespace) -> int:
    if not a.name or "@" in a.name or ":" in a.name:
        raise NetError(
            ErrorKind.BAD_PARAMS, f"name: expected a name without @ or :, got {a.name!r}"
        )
    password = _read_password(ctx, a)
    if len(password) < MIN_PASSWORD:
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"password: expected at least {MIN_PASSWORD} characters, got {len(password)}",
        )
    user = ctx.store.add_user(a.name, passwords.hash_password(password))
    ctx.print_json({"name": user.name}) if ctx.json else ctx.print(f"user {user.name} added")
    return EXIT_OK


def cmd_user_remove(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.store.remove_user(a.name)
    ctx.print_json({"removed": a.name}) if ctx.json else ctx.print(f"user {a.name} removed")
    return EXIT_OK


def cmd_user_list(ctx: Ctx, a: argparse.Namespace) -> int:
    users = ctx.store.list_users()
    if ctx.json:
        ctx.print_json([{"name": u.name, "created": local_time(u.created, "seconds")}
                        for u in users])
        return EXIT_OK
    table(
        ctx,
        ["name", "created"],
        [
            [
                u.name,
                local_time(u.created, "seconds"),
            ]
            for u in users
        ],
    )
    return EXIT_OK


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise NetError(ErrorKind.BAD_PARAMS, f"listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise NetError(
            ErrorKind.BAD_PARAMS, f"cert/key: cannot load {cert}, {key}: {exc}"
        ) from None
    return context


def cmd_serve(ctx: Ctx, a: argparse.Namespace) -> int:
    from aiohttp import web

    from engine_client.rest.app import Settings, make_app

    host, port = _listen(a.listen)
    if (a.cert is None) != (a.key is None):
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"cert/key: expected both or neither, got cert={a.cert!r} key={a.key!r}",
        )
    if a.token_lifetime <= 0:
        raise NetError(
            ErrorKind.BAD_PARAMS, f"token-lifetime: expected > 0, got {a.token_lifetime:g}"
        )
    context = _tls(a.cert, a.key) if a.cert is not None else None
    if context is None and not _loopback(host):
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"listen: plain HTTP is served on a loopback address only, got {host}; give "
            f"--cert and --key (engine-client pki issue DIR NAME --ip ADDR) for HTTPS",
        )
    ctx.store.list_users()  # the store opens (and migrates) before the port is taken
    logging.basicConfig(
        level=logging.INFO, stream=ctx.err, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if context is None:
        logging.getLogger("engine_client.rest").warning(
            "serving plain HTTP on %s:%d: passwords and tokens are not encrypted; use "
            "--cert/--key beyond this machine",
            host,
            port,
        )
    options: tuple[str, ...] = ("--parallel", str(ctx.parallel), "--timeout", f"{ctx.timeout:g}")
    if ctx.call_timeout is not None:
        options += ("--call-timeout", f"{ctx.call_timeout:g}")
    settings = Settings(
        # Commands run in other threads, from any directory: a path is made absolute.
        db=ctx.db if is_url(ctx.db) or ctx.db == ":memory:" else str(Path(ctx.db).resolve()),
        options=options,
        token_lifetime=a.token_lifetime,
        refresh_interval=a.refresh_interval,
    )
    scheme = "https" if context else "http"

    async def run() -> None:
        runner = web.AppRunner(
            make_app(settings),
            access_log_format=('%a "%r" %s %b %Tfs correlation=%{Correlation-Id}i'),
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=context)
        await site.start()
        print(
            f"serving {scheme}://{a.listen}/ (API at /ovirt-engine/api)", file=ctx.err, flush=True
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return EXIT_OK


def add_commands(groups: Any, group: Group, sub: Sub) -> None:
    user = group("user", "accounts of the REST API and the web page")
    p = sub(
        user,
        "add",
        cmd_user_add,
        "add an account; the password is read from the terminal (twice) or standard input",
    )
    p.add_argument("name")
    p = sub(user, "remove", cmd_user_remove, "remove an account")
    p.add_argument("name")
    sub(user, "list", cmd_user_list, "list accounts (never their passwords)")

    p = sub(groups, "serve", cmd_serve, "serve the oVirt REST API (networking) and the web page")
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address and port (default {DEFAULT_LISTEN}; plain HTTP only on a loopback address)",
    )
    p.add_argument("--cert", metavar="PEM", help="server certificate for HTTPS (from pki issue)")
    p.add_argument("--key", metavar="PEM", help="its private key")
    p.add_argument(
        "--token-lifetime",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long a login's Bearer token is valid (default 3600)",
    )
    p.add_argument(
        "--refresh-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="read every host's capabilities this often, for reachability and "
        "in-sync state (default 30; 0: once at start)",
    )
