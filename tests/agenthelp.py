"""An in-process agent bound to a test namespace, driven through its JSON-RPC handler.

The agent runs for real (pipeline, pyroute2 backend, kernel); only the HTTP layer is skipped.
Daemon-level tests start ``vdsm-net-agent`` itself (tests/kernel/test_daemon.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.netns import NetNS
from vdsm_net import jsonrpc_codec
from vdsm_net.config import AgentConfig
from vdsm_net.dhcp import DhcpTiming
from vdsm_net.kernel.backend import Backend
from vdsm_net.ops import Op
from vdsm_net.persist import StateStore
from vdsm_net.pipeline import Agent, KernelBackend
from vdsm_net.qos.change import QosBackend
from vdsm_net.qos.kernel import QosKernel
from vdsm_net.rpc import make_handler

_ids = jsonrpc_codec.Ids()


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


ApplyHook = Callable[[int, Sequence[Op]], None]


def _no_hook(_calls: int, _ops: Sequence[Op]) -> None:
    return None


class InjectingBackend:
    """The real backend, with hooks that run before and after the n-th ``apply`` call: tests
    use them to change the kernel between plan and apply (e.g. create a device with a planned
    name, so the kernel itself refuses an operation mid-plan), or between apply and the
    verification's read-back (delete a NIC the change uses, fill the state directory)."""

    def __init__(
        self, real: Backend, before_apply: ApplyHook = _no_hook, after_apply: ApplyHook = _no_hook
    ) -> None:
        self.real = real
        self.before_apply = before_apply
        self.after_apply = after_apply
        self.calls = 0

    def read_state(self, scope=None):  # type: ignore[no-untyped-def]
        return self.real.read_state(scope)

    def read_stats(self):  # type: ignore[no-untyped-def]
        return self.real.read_stats()

    def apply(self, ops: Sequence[Op]) -> None:
        self.calls += 1
        self.before_apply(self.calls, ops)
        self.real.apply(ops)
        self.after_apply(self.calls, ops)

    def close(self) -> None:
        self.real.close()


class AgentInNs:
    def __init__(
        self,
        ns: NetNS,
        state_dir: Path,
        *,
        connectivity_timeout: float = 120.0,
        backend_factory: Callable[[], KernelBackend] | None = None,
        dhcp_timing: DhcpTiming | None = None,
        qos_factory: Callable[[], QosBackend] | None = None,
    ) -> None:
        self.ns = ns
        cfg = AgentConfig(
            state_dir=state_dir,
            socket=state_dir / "agent.sock",
            listen=None,
            tls_cert=None,
            tls_key=None,
            tls_ca=None,
            insecure=False,
            connectivity_timeout=connectivity_timeout,
            resolv_conf=state_dir / "resolv.conf",  # never the host's own
        )
        factory = backend_factory or (lambda: Backend(netns=ns.name))
        self.agent = Agent(cfg, StateStore(state_dir), backend_factory=factory,
                           dhcp_timing=dhcp_timing,
                           qos_factory=qos_factory or (lambda: QosKernel(netns=ns.name)))
        self.handler = make_handler(self.agent)

    async def call(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        request = jsonrpc_codec.Request(_ids.next(), method, params or {})
        raw = await self.handler(request.encode().decode(), headers)
        assert raw is not None
        response = jsonrpc_codec.decode_response(raw, request.id)
        if response.error is not None:
            raise RpcError(response.error.code, response.error.message)
        return response.result

    async def setup(
        self,
        networks: dict[str, Any] | None = None,
        bondings: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        opts = {"connectivityCheck": False, **options}
        return await self.call(
            "Host.setupNetworks",
            {"networks": networks or {}, "bondings": bondings or {}, "options": opts},
        )

    async def caps(self) -> Any:
        return await self.call("Host.getNetworkCapabilities")

    def close(self) -> None:
        self.agent.close()
