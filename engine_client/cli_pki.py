"""``engine-client pki init|issue`` (docs/engine-cli.md): a CA, and certificates for agents
(TLS servers) and for the engine client (a TLS client), made by ``pki.py``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from engine_client.operations import EXIT_OK, Ctx

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]


def cmd_pki_init(ctx: Ctx, a: argparse.Namespace) -> int:
    # cryptography costs ~50 ms of every command's start: only pki needs it.
    from engine_client import pki

    made = pki.init_ca(a.dir)
    if ctx.json:
        ctx.print_json({"cert": str(made.cert), "key": str(made.key)})
    else:
        ctx.print(f"CA certificate {made.cert}, key {made.key}")
    return EXIT_OK


def cmd_pki_issue(ctx: Ctx, a: argparse.Namespace) -> int:
    from engine_client import pki

    made = pki.issue(a.dir, a.name, ips=a.ip, dns=a.dns, role=a.role)
    if ctx.json:
        ctx.print_json({"cert": str(made.cert), "key": str(made.key)})
    else:
        ctx.print(f"certificate {made.cert}, key {made.key}")
    return EXIT_OK


def add_commands(group: Group, sub: Sub) -> None:
    """``pki``."""
    ca = group("pki", "a CA and certificates for agents and the engine client")
    p = sub(ca, "init", cmd_pki_init, "create DIR/ca.pem and DIR/ca-key.pem")
    p.add_argument("dir")
    p = sub(ca, "issue", cmd_pki_issue, "issue DIR/NAME.pem and DIR/NAME-key.pem")
    p.add_argument("dir")
    p.add_argument("name")
    p.add_argument("--ip", action="append", default=[], help="IP subjectAltName (repeatable)")
    p.add_argument("--dns", action="append", default=[], help="DNS subjectAltName (repeatable)")
    p.add_argument("--role", choices=("host", "engine"), default="host",
                   help="host (default): an agent's TLS server certificate, refused as a "
                   "client; engine: the engine client's TLS client certificate")
