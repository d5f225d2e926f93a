"""The agent client: strict JSON-RPC parsing, and the real transport against small aiohttp
JSON-RPC servers on 127.0.0.1 with real mutual TLS (certificates from tests/pki_helpers.py),
and on a Unix socket."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine_client.agent_client import (
    BAD_RESPONSE,
    TIMEOUT,
    TLS,
    UNREACHABLE,
    AgentClient,
    AgentError,
    Endpoint,
    parse_response,
)
from engine_client.transport import HttpTransport
from tests.pki_helpers import issue, make_ca

# ---------------------------------------------------------------- strict response parsing


def test_parse_result() -> None:
    assert parse_response(b'{"jsonrpc": "2.0", "id": 7, "result": {"a": 1}}', 7, "u") == {"a": 1}
    assert parse_response(b'{"jsonrpc": "2.0", "id": 7, "result": null}', 7, "u") is None


def test_parse_agent_error_keeps_code_and_message() -> None:
    body = (
        b'{"jsonrpc": "2.0", "id": 7, "error": {"code": 26, '
        b'"message": "networks.red.vlan: expected 0-4094, got 5000"}}'
    )
    with pytest.raises(AgentError) as err:
        parse_response(body, 7, "u")
    assert err.value.code == 26
    assert err.value.message == "networks.red.vlan: expected 0-4094, got 5000"
    assert str(err.value) == "networks.red.vlan: expected 0-4094, got 5000 (code 26)"


def test_parse_error_with_null_id_is_accepted() -> None:
    body = b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}'
    with pytest.raises(AgentError) as err:
        parse_response(body, 7, "u")
    assert err.value.code == -32700


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "expected a JSON object, got list"),
        (b'{"id": 7, "result": 1}', "jsonrpc: expected '2.0', got None"),
        (b'{"jsonrpc": "2.0", "id": 8, "result": 1}', "id: expected 7, got 8"),
        (b'{"jsonrpc": "2.0", "result": 1}', "id: expected 7, got None"),
        (b'{"jsonrpc": "2.0", "id": 7}', "neither result nor error"),
        (b'{"jsonrpc": "2.0", "id": 7, "error": "x"}', "error: not an object"),
        (
            b'{"jsonrpc": "2.0", "id": 7, "error": {"code": "21", "message": "m"}}',
            "expected integer code",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 9, "error": {"code": 21, "message": "m"}}',
            "id: expected 7, got 9",
        ),
    ],
)
def test_parse_rejects_malformed(body: bytes, fragment: str) -> None:
    with pytest.raises(AgentError) as err:
        parse_response(body, 7, "https://h:54321")
    assert err.value.code == BAD_RESPONSE
    assert err.value.message.startswith("https://h:54321: bad response: ")
    assert fragment in err.value.message


class Echo:
    """A transport that answers every request with its own id, recording what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], dict[str, str], float]] = []

    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        req = json.loads(body)
        self.sent.append((req, dict(headers), timeout))
        return json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": req["params"]}).encode()


async def test_call_sends_jsonrpc_request_and_correlation_id() -> None:
    echo = Echo()
    client = AgentClient(Endpoint("https://h:54321"), echo, timeout=7)
    assert await client.call("Host.ping2") == {}
    assert await client.call("Host.x", {"a": 1}, correlation_id="c-1", timeout=3) == {"a": 1}
    (r1, h1, t1), (r2, h2, t2) = echo.sent
    assert r1["jsonrpc"] == "2.0" and r1["method"] == "Host.ping2" and r1["params"] == {}
    assert "X-Correlation-Id" not in h1 and t1 == 7
    assert h2["X-Correlation-Id"] == "c-1" and t2 == 3
    assert h2["Content-Type"] == "application/json"
    assert r1["id"] != r2["id"]


class Silent:
    async def post(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_call_bounds_a_transport_that_ignores_its_timeout() -> None:
    client = AgentClient(Endpoint("https://h:54321"), Silent())
    with pytest.raises(AgentError) as err:
        await client.call("Host.ping2", timeout=0.2)
    assert err.value.code == TIMEOUT
    assert err.value.message == "https://h:54321: Host.ping2 timed out after 0.2 s"


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    ca: str
    other_ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str  # a client certificate signed by the other CA
    stranger_key: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other = make_ca(d, "test CA"), make_ca(d, "other CA")
    server = issue(ca, "127.0.0.1", server=True)
    client = issue(ca, "engine")
    stranger = issue(other, "stranger")
    return Pki(
        ca=str(ca.cert),
        other_ca=str(other.cert),
        server_cert=str(server.cert),
        server_key=str(server.key),
        client_cert=str(client.cert),
        client_key=str(client.key),
        stranger_cert=str(stranger.cert),
        stranger_key=str(stranger.key),
    )


# ---------------------------------------------------------------- a small JSON-RPC server


class Server:
    """Answers by method: Host.ping2 → {} (recording the correlation id), Test.hang never,
    Test.garbage → HTML, Test.cutoff → half a body then a closed connection, Test.error → an
    agent error, Test.notfound → HTTP 404 text."""

    def __init__(self) -> None:
        self.correlation_ids: list[str | None] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        req = json.loads(await request.read())
        method = req["method"]
        self.correlation_ids.append(request.headers.get("X-Correlation-Id"))
        if method == "Test.hang":
            await self.release.wait()
        if method == "Test.garbage":
            return web.Response(body=b"<html>oops</html>", content_type="text/html")
        if method == "Test.huge":  # announces more than any agent answer can be
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 1 << 40
            await resp.prepare(request)
            await resp.write(b"{" * 1024)
            await self.release.wait()
            return resp
        if method == "Test.endless":  # a chunked answer that never ends
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            while True:
                await resp.write(b" " * (1 << 20))
        if method == "Test.notfound":
            return web.Response(status=404, text="no such thing")
        if method == "Test.cutoff":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 1000
            await resp.prepare(request)
            await resp.write(b'{"jsonrpc": "2.0", "id": ')
            assert request.transport is not None
            request.transport.close()
            return resp
        if method == "Test.error":
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": req["id"],
                    "error": {"code": 21, "message": "networks.red.mtu: expected 68-65535, got 10"},
                }
            )
        return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": {}})


def _server_tls(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@dataclass
class Running:
    server: Server
    url: str


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[Running]:
    server = Server()
    app = web.Application()
    app.router.add_post("/jsonrpc", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_server_tls(pki))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Running(server, f"https://127.0.0.1:{port}")
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    t = HttpTransport(connect_timeout=2)
    try:
        yield t
    finally:
        await t.close()


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _endpoint(url: str, pki: Pki, **over: str | None) -> Endpoint:
    files: dict[str, str | None] = {
        "cert": pki.client_cert,
        "key": pki.client_key,
        "ca": pki.ca,
        **over,
    }
    return Endpoint(url, cert=files["cert"], key=files["key"], ca=files["ca"])


async def _fail(
    transport: HttpTransport,
    endpoint: Endpoint,
    method: str = "Host.ping2",
    timeout: float = 5,
) -> AgentError:
    client = AgentClient(endpoint, transport, timeout=timeout)
    with pytest.raises(AgentError) as err:
        await client.call(method)
    return err.value


# ---------------------------------------------------------------- real HTTPS


async def test_https_success_with_mutual_tls(
    https: Running, pki: Pki, transport: HttpTransport
) -> None:
    client = AgentClient(_endpoint(https.url, pki), transport)
    for _ in range(3):
        assert await client.call("Host.ping2", correlation_id="cid-9") == {}
    assert https.server.correlation_ids == ["cid-9"] * 3


async def test_https_agent_error_passes_through(
    https: Running, pki: Pki, transport: HttpTransport
) -> None:
    err = await _fail(transport, _endpoint(https.url, pki), "Test.error")
    assert (err.code, err.message) == (21, "networks.red.mtu: expected 68-65535, got 10")


async def test_https_wrong_ca(https: Running, pki: Pki, transport: HttpTransport) -> None:
    err = await _fail(transport, _endpoint(https.url, pki, ca=pki.other_ca))
    assert err.code == TLS
    assert err.message.startswith(f"{https.url}: TLS: certificate verify failed")
    assert https.server.correlation_ids == []


async def test_https_without_client_certificate(
    https: Running, pki: Pki, transport: HttpTransport
) -> None:
    err = await _fail(transport, _endpoint(https.url, pki, cert=None, key=None))
    assert err.code == TLS, err
    assert err.message == (
        f"{https.url}: TLS: the agent closed the connection after the handshake "
        "(client certificate missing or not signed by the agent's CA)"
    )
    assert https.server.correlation_ids == []


async def test_https_client_certificate_from_another_ca(
    https: Running, pki: Pki, transport: HttpTransport
) -> None:
    err = await _fail(
        transport, _endpoint(https.url, pki, cert=pki.stranger_cert, key=pki.stranger_key)
    )
    assert err.code == TLS, err
    assert https.server.correlation_ids == []


async def test_missing_certificate_file(
    https: Running, pki: Pki, transport: HttpTransport, tmp_path: Path
) -> None:
    err = await _fail(transport, _endpoint(https.url, pki, cert=str(tmp_path / "none.pem")))
    assert err.code == TLS
    assert "none.pem" in err.message and "No such file or directory" in err.message


async def test_connection_refused(pki: Pki, transport: HttpTransport, free_port: int) -> None:
    url = f"https://127.0.0.1:{free_port}"
    err = await _fail(transport, _endpoint(url, pki))
    assert (err.code, err.message) == (UNREACHABLE, f"cannot connect to {url}: Connection refused")


async def test_hang_times_out(https: Running, pki: Pki, transport: HttpTransport) -> None:
    err = await _fail(transport, _endpoint(https.url, pki), "Test.hang", timeout=0.5)
    assert err.code == TIMEOUT
    assert err.message.endswith("timed out after 0.5 s")


async def test_garbage_response(https: Running, pki: Pki, transport: HttpTransport) -> None:
    err = await _fail(transport, _endpoint(https.url, pki), "Test.garbage")
    assert err.code == BAD_RESPONSE
    assert err.message == f"{https.url}: bad response: not JSON: '<html>oops</html>'"


async def test_an_oversized_answer_is_refused(
    https: Running, pki: Pki, transport: HttpTransport
) -> None:
    err = await _fail(transport, _endpoint(https.url, pki), "Test.huge")
    assert err.code == BAD_RESPONSE
    assert f"Content-Length {1 << 40} is over" in err.message
    err = await _fail(transport, _endpoint(https.url, pki), "Test.endless", timeout=30)
    assert err.code == BAD_RESPONSE
    assert "answer longer than" in err.message


async def test_http_error_status(https: Running, pki: Pki, transport: HttpTransport) -> None:
    err = await _fail(transport, _endpoint(https.url, pki), "Test.notfound")
    assert err.code == BAD_RESPONSE
    assert err.message == f"{https.url}: bad response: HTTP 404 Not Found"


async def test_connection_closed_mid_response(
    https: Running, pki: Pki, transport: HttpTransport
) -> None:
    err = await _fail(transport, _endpoint(https.url, pki), "Test.cutoff")
    assert err.code == BAD_RESPONSE, err
    assert err.message.startswith(f"{https.url}: bad response: connection closed")
    # The pool recovers: the next call on the same transport works.
    assert await AgentClient(_endpoint(https.url, pki), transport).call("Host.ping2") == {}


async def test_unsupported_scheme(transport: HttpTransport) -> None:
    err = await _fail(transport, Endpoint("ftp://h"))
    assert err.message == "endpoint.url: expected https://, http:// or unix://, got 'ftp://h'"


async def test_unix_socket(tmp_path: Path, transport: HttpTransport) -> None:
    server = Server()
    app = web.Application()
    app.router.add_post("/jsonrpc", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    path = tmp_path / "agent.sock"
    await web.UnixSite(runner, str(path)).start()
    try:
        client = AgentClient(Endpoint(f"unix://{path}"), transport)
        assert await client.call("Host.ping2", correlation_id="u-1") == {}
        assert server.correlation_ids == ["u-1"]
    finally:
        await runner.cleanup()
    err = await _fail(transport, Endpoint(f"unix://{tmp_path}/gone.sock"))
    assert err.code == UNREACHABLE
    assert err.message.startswith(f"cannot connect to unix://{tmp_path}/gone.sock: ")
