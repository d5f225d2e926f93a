from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.netns import NetNS


@pytest.fixture
def netns() -> Iterator[NetNS]:
    if os.geteuid() != 0:
        pytest.fail("kernel tests need root (they create network namespaces)")
    ns = NetNS()
    try:
        yield ns
    finally:
        ns.close()
