"""TLS contexts for the engine listener: mutual authentication against one CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from vdsm_net.config import ConfigError


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"[tls] cert/key: cannot load {str(cert)!r} / {str(key)!r}: {exc}"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[tls] ca: cannot load {str(ca)!r}: {exc}") from None


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """Server side: present cert/key, require a client certificate signed by ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_chain(ctx, cert, key)
    _load_ca(ctx, ca)
    return ctx


def client_context(cert: Path | None, key: Path | None, ca: Path) -> ssl.SSLContext:
    """Client side: verify the server against ``ca`` (host name included), and present
    cert/key when given (the agent refuses clients without one)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_ca(ctx, ca)
    if cert is not None:
        _load_chain(ctx, cert, key or cert)
    return ctx
