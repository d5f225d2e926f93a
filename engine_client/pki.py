"""A small certificate authority for agents and the engine client (docs/engine-cli.md).

``init DIR`` makes DIR/ca.pem and DIR/ca-key.pem; ``issue DIR NAME`` makes DIR/NAME.pem and
DIR/NAME-key.pem signed by that CA, with the given IPs and DNS names as subjectAltName. A
certificate has one role: ``host`` (the default) is for a TLS server only (extended key usage
serverAuth), ``engine`` for a TLS client only (clientAuth). An agent accepts only clientAuth
certificates (docs/config.md), so a host's certificate, stolen from a compromised hypervisor,
cannot reconfigure any other host. Keys are ECDSA P-256, written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.persist import atomic_write

CA_DAYS: Final = 3650
CERT_DAYS: Final = 1825
CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca-key.pem"
# Role -> extended key usage. Separate roles, not one certificate for both ends
# (docs/engine-cli.md).
ROLES: Final = {
    "host": ExtendedKeyUsageOID.SERVER_AUTH,
    "engine": ExtendedKeyUsageOID.CLIENT_AUTH,
}
DEFAULT_ROLE: Final = "host"
# Backdate notBefore a little: hosts whose clocks lag the CA's would otherwise reject a fresh
# certificate as "not yet valid".
_SKEW: Final = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _bad(field: str, expected: str, value: object) -> NetError:
    return NetError(ErrorKind.BAD_PARAMS, f"{field}: expected {expected}, got {value!r}")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def init_ca(directory: str | os.PathLike[str], *, name: str = "engine-client CA") -> Issued:
    """Create the CA in ``directory`` (created if missing); refuses to replace an existing CA."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = base / CA_CERT, base / CA_KEY
    for existing in (cert_path, key_path):
        if existing.exists():
            raise _bad("pki init", "a directory without a CA", str(existing))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(key_path, _key_pem(key), 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert=cert_path, key=key_path)


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or "\0" in name or len(name) > 64:
        raise _bad(
            "name", "a file name of 1-64 characters without '/', not starting with '.'", name
        )


def _san(name: str, ips: Sequence[str], dns: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise _bad("ip", "an IPv4 or IPv6 address", ip) from None
    for host in dns:
        if not host or any(c.isspace() for c in host):
            raise _bad("dns", "a DNS name", host)
        names.append(x509.DNSName(host))
    if not names:
        names.append(x509.DNSName(name))
    return names


def _load_ca(base: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        ca_cert = x509.load_pem_x509_certificate((base / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((base / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise _bad("pki issue", "a directory made by 'pki init'", str(exc.filename)) from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise _bad("pki issue", "an ECDSA CA key", str(base / CA_KEY))
    return ca_cert, ca_key


def issue(
    directory: str | os.PathLike[str],
    name: str,
    *,
    ips: Sequence[str] = (),
    dns: Sequence[str] = (),
    days: int = CERT_DAYS,
    role: str = DEFAULT_ROLE,
) -> Issued:
    """Issue (or re-issue) DIR/NAME.pem and DIR/NAME-key.pem, signed by DIR's CA, for
    ``role`` ("host": TLS server only, "engine": TLS client only). Without ``ips`` and
    ``dns`` the subjectAltName is NAME as a DNS name."""
    usage = ROLES.get(role)
    if usage is None:
        raise _bad("role", " or ".join(sorted(ROLES)), role)
    _check_name(name)
    if name in ("ca", "ca-key"):
        raise _bad("name", "a name other than the CA's files", name)
    base = Path(directory)
    san = _san(name, ips, dns)
    ca_cert, ca_key = _load_ca(base)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([usage]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_path, cert_path = base / f"{name}-key.pem", base / f"{name}.pem"
    atomic_write(key_path, _key_pem(key), 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert=cert_path, key=key_path)
