"""The TLS files of a host (``host add --cert --key --ca``): made absolute, so that the store
works from any directory, and loaded once before they are stored, so that a typo, a key of
another certificate or a file that is no PEM is refused at once, naming the option and the
path, instead of failing every later command on that host."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from vdsm_net.errors import ErrorKind, NetError


@dataclass(frozen=True)
class TlsFiles:
    cert: str | None
    key: str | None
    ca: str | None


def _absolute(option: str, path: str | None) -> str | None:
    if path is None:
        return None
    # Not resolve(): a symlink (a certificate rotated by replacing the link) stays a link.
    full = Path(os.path.abspath(Path(path).expanduser()))
    if not full.is_file():
        reason = "no such file" if not full.exists() else "not a regular file"
        raise NetError(ErrorKind.BAD_PARAMS, f"{option}: {reason}: {full}")
    return str(full)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def checked(cert: str | None, key: str | None, ca: str | None) -> TlsFiles:
    """The files as absolute paths, after loading them: the certificate with its key (they
    must match), the CA as trust anchors. NetError (bad params) naming the option otherwise."""
    if (cert is None) != (key is None):
        raise NetError(
            ErrorKind.BAD_PARAMS,
            f"cert/key: expected both or neither, got cert={cert!r} key={key!r}",
        )
    files = TlsFiles(_absolute("cert", cert), _absolute("key", key), _absolute("ca", ca))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if files.cert is not None:
        try:
            ctx.load_cert_chain(files.cert, files.key)
        except (OSError, ssl.SSLError) as exc:
            raise NetError(
                ErrorKind.BAD_PARAMS,
                f"cert/key: cannot load the certificate {files.cert} with the key {files.key}: "
                f"{_reason(exc)} (are both PEM, and is the key this certificate's?)",
            ) from exc
    if files.ca is not None:
        try:
            ctx.load_verify_locations(cafile=files.ca)
        except (OSError, ssl.SSLError) as exc:
            raise NetError(
                ErrorKind.BAD_PARAMS,
                f"ca: cannot load CA certificates from {files.ca}: {_reason(exc)} "
                "(expected PEM certificates)",
            ) from exc
    return files
