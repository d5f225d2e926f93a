"""pki init/issue: files, modes, extensions, and a real mutual-TLS handshake with them."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine_client import pki
from vdsm_net.errors import NetError


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ten_year_ca(tmp_path: Path) -> None:
    made = pki.init_ca(tmp_path / "pki")
    assert made.cert == tmp_path / "pki" / "ca.pem"
    assert mode(made.key) == 0o600
    ca = load(made.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert life.days >= 3650


def test_init_refuses_existing_ca(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    with pytest.raises(NetError, match="pki init: expected a directory without a CA"):
        pki.init_ca(tmp_path)


def test_issue_with_ip_and_dns(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    made = pki.issue(tmp_path, "host1", ips=["10.1.0.2", "fd00::2"], dns=["host1.lab"])
    assert (made.cert, made.key) == (tmp_path / "host1.pem", tmp_path / "host1-key.pem")
    assert mode(made.key) == 0o600
    cert = load(made.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.0.2"),
        ipaddress.ip_address("fd00::2"),
    ]
    assert san.get_values_for_type(x509.DNSName) == ["host1.lab"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]  # role host: a TLS server only
    assert cert.issuer == load(tmp_path / "ca.pem").subject


def test_engine_role_is_for_tls_clients_only(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    cert = load(pki.issue(tmp_path, "engine", role="engine").cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_unknown_role_is_refused(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    with pytest.raises(NetError, match="role: expected engine or host, got 'admin'"):
        pki.issue(tmp_path, "x", role="admin")
    assert not (tmp_path / "x.pem").exists()


def test_issue_defaults_san_to_name(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    cert = load(pki.issue(tmp_path, "engine").cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["engine"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ips": ["10.1.0.999"]}, "ip: expected an IPv4 or IPv6 address, got '10.1.0.999'"),
        ({"name": "../x"}, "name: expected a file name"),
        ({"name": "ca"}, "name: expected a name other than the CA's files"),
    ],
)
def test_issue_bad_input(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    pki.init_ca(tmp_path)
    name = str(kwargs.pop("name", "h"))
    with pytest.raises(NetError) as exc:
        pki.issue(tmp_path, name, **kwargs)  # type: ignore[arg-type]
    assert exc.value.message.startswith(message)


def test_issue_without_ca(tmp_path: Path) -> None:
    with pytest.raises(NetError, match="pki issue: expected a directory made by 'pki init'"):
        pki.issue(tmp_path, "h")


def test_mutual_tls_handshake(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    server = pki.issue(tmp_path, "agent", ips=["127.0.0.1"])
    client = pki.issue(tmp_path, "engine", role="engine")
    ca = str(tmp_path / "ca.pem")
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_cert_chain(server.cert, server.key)
    cctx = ssl.create_default_context(cafile=ca)
    cctx.load_cert_chain(client.cert, client.key)
    a, b = socket.socketpair()
    seen: list[object] = []

    def serve() -> None:
        with sctx.wrap_socket(a, server_side=True) as s:
            seen.append(s.getpeercert())
            s.sendall(s.recv(5))

    t = threading.Thread(target=serve)
    t.start()
    with cctx.wrap_socket(b, server_hostname="127.0.0.1") as c:
        c.sendall(b"hello")
        assert c.recv(5) == b"hello"
    t.join()
    peer = seen[0]
    assert isinstance(peer, dict)
    assert peer["subject"] == ((("commonName", "engine"),),)
