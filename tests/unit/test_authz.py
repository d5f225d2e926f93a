"""Which client certificates may call the agent (vdsm_net.authz): real certificates, made by
the product's CA and, for the one kind it never makes (no extended key usage), by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine_client import pki
from vdsm_net.authz import ClientPolicy


def der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def test_only_client_auth_certificates_pass(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    policy = ClientPolicy()
    engine = der(pki.issue(tmp_path, "engine", role="engine").cert)
    host = der(pki.issue(tmp_path, "host1", ips=["10.0.0.11"]).cert)
    assert policy.refusal(engine) is None
    assert policy.refusal(host) == (
        "certificate 'host1' is not for client authentication (no extended key usage clientAuth)")
    assert policy.refusal(None) == "no client certificate"


def test_a_certificate_without_extended_key_usage_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anything")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    refusal = ClientPolicy().refusal(cert.public_bytes(serialization.Encoding.DER))
    assert refusal is not None and "no extended key usage clientAuth" in refusal


def test_allowed_clients_match_common_name_or_alternative_name(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    by_cn = der(pki.issue(tmp_path, "engine", role="engine").cert)
    by_ip = der(pki.issue(tmp_path, "e2", ips=["192.0.2.7"], role="engine").cert)
    other = der(pki.issue(tmp_path, "tool", role="engine").cert)
    policy = ClientPolicy(["engine", "192.0.2.7"])
    assert policy.refusal(by_cn) is None
    assert policy.refusal(by_ip) is None
    assert policy.refusal(other) == (
        "certificate 'tool' (names tool, tool) is not in [tls] allowed_clients "
        "(192.0.2.7, engine)")
    policy.allowed = frozenset()  # SIGHUP emptied the list: any clientAuth certificate
    assert policy.refusal(other) is None
