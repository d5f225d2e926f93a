"""Test certificates. Ordinary ones come from the product's own CA (``engine_client.pki``): each
``make_ca`` is a CA directory of its own (a second one is an unrelated CA), and ``issue`` signs
with it. The one kind the product never makes, an expired certificate, is built here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine_client import pki
from engine_client.pki import Issued

__all__ = ["CA", "Issued", "issue", "make_ca"]


@dataclass(frozen=True)
class CA:
    directory: Path  # the CA's files and every certificate it issued

    @property
    def cert(self) -> Path:
        return self.directory / pki.CA_CERT

    @property
    def key(self) -> Path:
        return self.directory / pki.CA_KEY


def make_ca(directory: Path, name: str = "test-ca") -> CA:
    """A CA with common name ``name`` in ``directory/name``."""
    ca = CA(directory / name)
    pki.init_ca(ca.directory, name=name)
    return ca


def issue(ca: CA, name: str, *, server: bool = False, expired: bool = False) -> Issued:
    """A certificate signed by ``ca``, its files ``NAME.pem`` and ``NAME-key.pem`` beside the
    CA's: server ones are the product's "host" role with SAN localhost and 127.0.0.1, others
    its "engine" role (client only) with SAN ``name``."""
    if server:
        issued = pki.issue(ca.directory, name, ips=["127.0.0.1"], dns=["localhost"], role="host")
    else:
        issued = pki.issue(ca.directory, name, role="engine")
    if expired:
        _expire(ca, issued)
    return issued


def _expire(ca: CA, issued: Issued) -> None:
    """Re-sign ``issued`` (same key, names and extensions) with a validity that ended a day ago."""
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # init_ca makes P-256 keys
    now = dt.datetime.now(dt.UTC)
    old = x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=now - dt.timedelta(days=10),
        not_valid_after=now - dt.timedelta(days=1),
        extensions=list(cert.extensions),
    ).sign(ca_key, hashes.SHA256())
    issued.cert.write_bytes(old.public_bytes(serialization.Encoding.PEM))
