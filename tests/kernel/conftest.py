from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.dump import Dump, dump_state
from tests.kernel.dhcp_server import inside
from tests.netns import NetNS, kernel_has_cached
from tests.uml import ENV_MODE, needed_kinds


@pytest.fixture
def netns(request: pytest.FixtureRequest) -> Iterator[NetNS]:
    if os.geteuid() != 0:
        pytest.fail("kernel tests need root (they create network namespaces)")
    missing = sorted(k for k in needed_kinds(request.node) if not kernel_has_cached(k))
    if missing:
        # Only reached when the UML plugin did not take the test (VDSM_NET_UML=never).
        pytest.fail(f"needs {', '.join(missing)}, which this kernel lacks; run with "
                    f"{ENV_MODE}=auto (the default) to run it in User-Mode Linux")
    ns = NetNS()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def kernel_dump() -> Callable[[NetNS], Dump]:
    """The normalised kernel state of a namespace (tests/dump.py); compare two with
    tests.dump.assert_same_state."""

    def dump(ns: NetNS) -> Dump:
        return dump_state(ns.name)

    return dump


@pytest.fixture
def peer() -> Iterator[NetNS]:
    """A second namespace (a DHCP server's, say), removed after the test."""
    ns = NetNS("dhs")
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def here(netns: NetNS) -> Iterator[NetNS]:
    """The test's namespace, with this thread inside it for the test's duration."""
    with inside(netns):
        yield netns
