"""A real TLS listener on 127.0.0.1 with certificates made in the test."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.pki_helpers import CA, Issued, issue, make_ca
from tests.serve_helpers import EchoAgent, local_config, running
from vdsm_net.config import AgentConfig, ConfigError
from vdsm_net.tls import client_context, server_context

REQUEST = {"jsonrpc": "2.0", "id": 1, "method": "echo"}


@dataclass(frozen=True)
class PKI:
    ca: CA
    server: Issued
    client: Issued
    other_ca: CA
    foreign_client: Issued  # signed by other_ca
    expired_client: Issued
    foreign_server: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "ca")
    other = make_ca(d, "other-ca")
    return PKI(
        ca=ca,
        server=issue(ca, "agent", server=True),
        client=issue(ca, "engine"),
        other_ca=other,
        foreign_client=issue(other, "intruder"),
        expired_client=issue(ca, "old-engine", expired=True),
        foreign_server=issue(other, "fake-agent", server=True),
    )


def tls_config(tmp_path: Path, pki: PKI, server: Issued | None = None) -> AgentConfig:
    cert = server or pki.server
    return local_config(tmp_path, listen=("127.0.0.1", 0), tls_cert=cert.cert,
                        tls_key=cert.key, tls_ca=pki.ca.cert)


async def call(url: str, ctx: ssl.SSLContext) -> int:
    async with aiohttp.ClientSession() as session, session.post(
        url + "/jsonrpc", json=REQUEST, ssl=ctx
    ) as resp:
        await resp.read()
        return resp.status


async def test_client_with_certificate_from_the_ca(tmp_path: Path, pki: PKI) -> None:
    agent = EchoAgent()
    async with running(tls_config(tmp_path, pki), agent.handle) as urls:
        url = urls[1]
        assert url.startswith("https://127.0.0.1:")
        ctx = client_context(pki.client.cert, pki.client.key, pki.ca.cert)
        assert await call(url, ctx) == 200
        # The SAN also names localhost.
        assert await call(url.replace("127.0.0.1", "localhost"), ctx) == 200
    assert agent.calls == ["echo", "echo"]


def raw_answer(url: str, ctx: ssl.SSLContext) -> bytes:
    """What a plain TLS socket gets back for an HTTP request: b"" when the server dropped the
    connection. With TLS 1.3 the client's half of the handshake ends before the server has
    checked the client certificate, so the refusal shows on the first read; asyncio's server
    closes without flushing its alert, hence EOF or a reset rather than an alert."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as raw, ctx.wrap_socket(
        raw, server_hostname=host
    ) as tls:
        try:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
            return tls.recv(4096)
        except (ssl.SSLError, ConnectionResetError):
            return b""


@pytest.mark.parametrize("who", ["no certificate", "foreign CA", "expired"])
async def test_server_refuses_client_at_handshake(tmp_path: Path, pki: PKI, who: str) -> None:
    client = {"no certificate": None, "foreign CA": pki.foreign_client,
              "expired": pki.expired_client}[who]
    ctx = client_context(client.cert if client else None, client.key if client else None,
                         pki.ca.cert)
    agent = EchoAgent()
    async with running(tls_config(tmp_path, pki), agent.handle) as urls:
        with pytest.raises(aiohttp.ClientError):
            await call(urls[1], ctx)
        assert await asyncio.to_thread(raw_answer, urls[1], ctx) == b""
        # The same request with a good certificate is answered.
        good = client_context(pki.client.cert, pki.client.key, pki.ca.cert)
        assert (await asyncio.to_thread(raw_answer, urls[1], good)).startswith(b"HTTP/1.1 200")
    assert agent.calls == []  # nothing reached the handler


async def test_client_refuses_server_of_another_ca(tmp_path: Path, pki: PKI) -> None:
    agent = EchoAgent()
    ctx = client_context(pki.client.cert, pki.client.key, pki.ca.cert)
    cfg = tls_config(tmp_path, pki, server=pki.foreign_server)
    async with running(cfg, agent.handle) as urls:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await call(urls[1], ctx)
    assert agent.calls == []


async def test_tls_below_1_2_is_refused(tmp_path: Path, pki: PKI) -> None:
    ctx = client_context(pki.client.cert, pki.client.key, pki.ca.cert)
    with pytest.warns(DeprecationWarning):  # Python deprecates TLS 1.1: that is the point
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    async with running(tls_config(tmp_path, pki), EchoAgent().handle) as urls:
        with pytest.raises(aiohttp.ClientError):
            await call(urls[1], ctx)


def test_server_context_settings(pki: PKI) -> None:
    ctx = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_unloadable_files_are_config_errors(tmp_path: Path, pki: PKI) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"\[tls\] cert/key: cannot load .*garbage\.pem"):
        server_context(garbage, pki.server.key, pki.ca.cert)
    with pytest.raises(ConfigError, match=r"\[tls\] ca: cannot load .*garbage\.pem"):
        server_context(pki.server.cert, pki.server.key, garbage)
    with pytest.raises(ConfigError, match=r"\[tls\] cert/key: cannot load"):
        server_context(pki.server.cert, pki.client.key, pki.ca.cert)  # key does not match
