"""``vdsm-net-client``: call one agent method from a shell (docs/api.md).

Exit status: 0 success (the result is printed as JSON on stdout); 1 the agent answered a
JSON-RPC error (``error <code>: <message>`` on stderr, then its ``data`` when it sent one);
2 bad command line; 3 the agent could not be reached or did not answer JSON-RPC (timeout,
refused connection, TLS failure); 141 the reader of stdout went away (``| head``), as for
a program killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from vdsm_net import __version__, jsonrpc_codec
from vdsm_net.config import DEFAULT_SOCKET, ConfigError
from vdsm_net.tls import client_context

EXIT_OK = 0
EXIT_RPC_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a program killed by SIGPIPE
DEFAULT_TIMEOUT = 300.0  # above the agent's default connectivity timeout (120 s)
CONFIRM_INTERVAL = 0.25
CORRELATION_HEADER = "X-Correlation-Id"

EPILOG = """\
arguments after METHOD are NAME=JSON pairs, e.g.
  vdsm-net-client Host.setupNetworks networks='{"red": {"nic": "eth1", "vlan": 100}}'
While Host.setupNetworks is pending the client calls Host.confirmConnectivity every 0.25 s
(as the engine does), unless --no-confirm is given.
exit status: 0 ok; 1 the agent returned an error ("error CODE: MESSAGE" on stderr, and
"data: ..." when the agent sent details); 2 bad command line; 3 agent unreachable, timed out,
or answered something that is not JSON-RPC; 141 stdout was closed by its reader.
"""


class UsageError(Exception):
    pass


class Unreachable(Exception):
    pass


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data  # JSON-RPC's optional details, e.g. which parameter was unexpected

    def describe(self) -> str:
        text = f"error {self.code}: {self.message}"
        if self.data is None:
            return text
        data = self.data if isinstance(self.data, str) else json.dumps(self.data)
        return f"{text}\ndata: {data}"


@dataclass(frozen=True)
class Target:
    url: str
    connector_socket: Path | None  # a Unix socket, or None for TCP
    ssl_context: ssl.SSLContext | bool  # True: aiohttp's default verification


def parse_params(args: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for arg in args:
        name, sep, text = arg.partition("=")
        if not sep or not name:
            raise UsageError(f"argument {arg!r}: expected NAME=JSON")
        if name in params:
            raise UsageError(f"argument {arg!r}: parameter {name!r} given twice")
        try:
            params[name] = jsonrpc_codec.loads(text)
        except ValueError as exc:
            raise UsageError(
                f"argument {name}: value is not JSON ({exc}): {text!r} "
                "(quote strings: name='\"text\"')"
            ) from None
    return params


def _target(args: argparse.Namespace) -> Target:
    if args.url is None:
        if args.cert or args.key or args.ca:
            raise UsageError("--cert/--key/--ca apply to --url only")
        return Target("http://localhost/jsonrpc", Path(args.socket or DEFAULT_SOCKET), False)
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url: expected http(s)://HOST:PORT[/jsonrpc], got {args.url!r}")
    path = parts.path if parts.path not in ("", "/") else "/jsonrpc"
    url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    if parts.scheme == "http":
        return Target(url, None, False)
    if args.ca is None:
        if args.cert is not None:
            raise UsageError("--cert needs --ca (the CA that signed the agent's certificate)")
        return Target(url, None, True)
    try:
        ctx = client_context(args.cert, args.key, args.ca)
    except ConfigError as exc:
        raise UsageError(str(exc).replace("[tls] ", "--")) from None
    return Target(url, None, ctx)


def _text(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace")


class Caller:
    def __init__(self, session: aiohttp.ClientSession, target: Target, headers: dict[str, str]):
        self._session = session
        self._target = target
        self._headers = headers
        self._ids = jsonrpc_codec.Ids()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        request = jsonrpc_codec.Request(self._ids.next(), method, params)
        headers = {**self._headers, "Content-Type": "application/json"}
        try:
            async with self._session.post(
                self._target.url, data=request.encode(), headers=headers,
                ssl=self._target.ssl_context,
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"cannot reach the agent at {self._where()}: {exc}") from None
        try:
            response = jsonrpc_codec.decode_response(body, request.id)
        except jsonrpc_codec.NotJson:
            raise Unreachable(f"HTTP {status} from {self._where()}: {_text(body)!r}") from None
        except jsonrpc_codec.MalformedResponse as exc:
            raise Unreachable(
                f"not a JSON-RPC answer from {self._where()} ({exc}): {_text(body)!r}"
            ) from None
        if response.error is not None:
            raise RpcError(response.error.code, response.error.message, response.error.data)
        return response.result

    def _where(self) -> str:
        sock = self._target.connector_socket
        return f"unix:{sock}" if sock is not None else self._target.url


async def _confirm_forever(caller: Caller) -> None:
    while True:
        await asyncio.sleep(CONFIRM_INTERVAL)
        # Early polls arrive before the change is applied and are ignored by the agent.
        with contextlib.suppress(RpcError, Unreachable):
            await caller.call("Host.confirmConnectivity", {})


async def run(
    target: Target,
    method: str,
    params: dict[str, Any],
    *,
    timeout: float,
    confirm: bool = True,
    correlation_id: str | None = None,
) -> Any:
    """One call; raises RpcError, Unreachable."""
    connector: aiohttp.BaseConnector | None = None
    if target.connector_socket is not None:
        connector = aiohttp.UnixConnector(path=str(target.connector_socket))
    headers = {CORRELATION_HEADER: correlation_id} if correlation_id else {}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        caller = Caller(session, target, headers)
        poller = None
        if confirm and method == "Host.setupNetworks":
            poller = asyncio.create_task(_confirm_forever(caller))
        try:
            return await asyncio.wait_for(caller.call(method, params), timeout)
        except TimeoutError:
            raise Unreachable(f"no answer from the agent within {timeout:g} s") from None
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vdsm-net-client",
        description="Call a vdsm-net agent JSON-RPC method.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help=f"agent Unix socket (default {DEFAULT_SOCKET})")
    where.add_argument("--url", help="agent URL, e.g. https://host:54321")
    p.add_argument("--cert", type=Path, help="client certificate (PEM) for --url https")
    p.add_argument("--key", type=Path, help="client private key (PEM)")
    p.add_argument("--ca", type=Path, help="CA certificate that signed the agent's certificate")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (default 300)")
    p.add_argument("--correlation-id", help="sent as the X-Correlation-Id header")
    p.add_argument("--no-confirm", action="store_true",
                   help="do not call Host.confirmConnectivity while setupNetworks is pending")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("method", metavar="METHOD", help="e.g. Host.getNetworkCapabilities")
    p.add_argument("params", metavar="NAME=JSON", nargs="*")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if not args.timeout > 0:
            raise UsageError(f"--timeout: expected a positive number, got {args.timeout}")
        params = parse_params(args.params)
        target = _target(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"vdsm-net-client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(
            run(target, args.method, params, timeout=args.timeout,
                confirm=not args.no_confirm, correlation_id=args.correlation_id)
        )
    except RpcError as exc:
        print(exc.describe(), file=sys.stderr)
        return EXIT_RPC_ERROR
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        print(json.dumps(result, indent=2), flush=True)
    except BrokenPipeError:
        # The reader (`| head`) has what it wanted. Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not fail again with a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
