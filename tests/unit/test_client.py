"""vdsm-net-client end to end against the real server with a real (small) handler."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.pki_helpers import issue, make_ca
from tests.serve_helpers import EchoAgent, local_config, running
from vdsm_net import client
from vdsm_net.client import UsageError, parse_params


async def run_client(*argv: str) -> int:
    # main() runs its own event loop, so it runs in a thread beside the server's loop.
    return await asyncio.to_thread(client.main, list(argv))


def test_parse_params() -> None:
    assert parse_params(['networks={"red": {"nic": "eth1"}}', "n=5", 's="x"']) == {
        "networks": {"red": {"nic": "eth1"}}, "n": 5, "s": "x"}


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("networks={bad", r"argument networks: value is not JSON .*'\{bad'"),
        ("noequals", r"argument 'noequals': expected NAME=JSON"),
        ("=5", r"argument '=5': expected NAME=JSON"),
        ("s=text", r"argument s: value is not JSON"),
        ("mtu=NaN", r"argument mtu: value is not JSON \(NaN is not JSON\)"),
        ('n={"x": -Infinity}', r"argument n: value is not JSON \(-Infinity is not JSON\)"),
    ],
)
def test_bad_params_name_the_argument(arg: str, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        parse_params([arg])


def test_duplicate_param() -> None:
    with pytest.raises(UsageError, match="parameter 'a' given twice"):
        parse_params(["a=1", "a=2"])


async def test_result_is_printed_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    cfg = local_config(tmp_path)
    async with running(cfg, EchoAgent().handle):
        code = await run_client("--socket", str(cfg.socket), "--correlation-id", "c-42",
                                "echo", 'networks={"red": {"vlan": 100}}')
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == {"method": "echo", "params": {"networks": {"red": {"vlan": 100}}},
                               "correlation": "c-42"}


async def test_error_is_printed_with_code_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = local_config(tmp_path)
    async with running(cfg, EchoAgent().handle):
        code = await run_client("--socket", str(cfg.socket), "fail")
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.strip() == "error 21: networks.red.vlan: expected 0-4094, got 5000"


async def test_setup_networks_is_confirmed_while_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = local_config(tmp_path)
    agent = EchoAgent(confirm_timeout=30)
    async with running(cfg, agent.handle):
        code = await run_client("--socket", str(cfg.socket), "Host.setupNetworks", "networks={}")
    assert code == 0, capsys.readouterr().err
    assert "Host.confirmConnectivity" in agent.calls


async def test_no_confirm_lets_the_connectivity_check_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = local_config(tmp_path)
    agent = EchoAgent(confirm_timeout=0.5)
    async with running(cfg, agent.handle):
        code = await run_client("--socket", str(cfg.socket), "--no-confirm",
                                "Host.setupNetworks")
    assert code == 1
    assert capsys.readouterr().err.strip() == "error 10: connectivity check failed"
    assert agent.calls == ["Host.setupNetworks"]


async def test_unreachable_agent_exits_3(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_client("--socket", str(tmp_path / "nobody.sock"), "Host.ping2")
    assert code == 3
    assert "cannot reach the agent at unix:" in capsys.readouterr().err


async def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_client("Host.setupNetworks", "networks={") == 2
    assert "argument networks: value is not JSON" in capsys.readouterr().err
    assert await run_client("--cert", "/x.pem", "Host.ping2") == 2
    assert "--cert/--key/--ca apply to --url only" in capsys.readouterr().err
    assert await run_client("--url", "ftp://h", "Host.ping2") == 2
    assert "--url: expected http(s)://" in capsys.readouterr().err


async def test_https_with_client_certificate(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ca = make_ca(tmp_path, "ca")
    server = issue(ca, "agent", server=True)
    engine = issue(ca, "engine")
    cfg = local_config(tmp_path, listen=("127.0.0.1", 0), tls_cert=server.cert,
                       tls_key=server.key, tls_ca=ca.cert)
    async with running(cfg, EchoAgent().handle) as urls:
        url = urls[1]
        ok = await run_client("--url", url, "--cert", str(engine.cert), "--key",
                              str(engine.key), "--ca", str(ca.cert), "Host.ping2")
        assert ok == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["method"] == "Host.ping2"
        refused = await run_client("--url", url, "--ca", str(ca.cert), "Host.ping2")
    assert refused == 3
    assert f"cannot reach the agent at {url}/jsonrpc" in capsys.readouterr().err


async def test_plain_http_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = local_config(tmp_path, listen=("127.0.0.1", 0), insecure=True)
    async with running(cfg, EchoAgent().handle) as urls:
        code = await run_client("--url", urls[1] + "/jsonrpc", "Host.ping2")
    assert code == 0
    assert json.loads(capsys.readouterr().out)["method"] == "Host.ping2"
