"""The shape of the request-parsing tables (tests/unit/test_request*.py): a request of one
network or one bond, and the check that a request is refused with an exact kind and message."""

from __future__ import annotations

from typing import Any

import pytest

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.request import parse_setup_request

# (setupNetworks params, the error kind, its exact message)
RefusedCase = tuple[Any, ErrorKind, str]


def net(attrs: Any, name: str = "red") -> dict[str, Any]:
    return {"networks": {name: attrs}}


def bond(attrs: Any, name: str = "bond0") -> dict[str, Any]:
    return {"bondings": {name: attrs}}


def case_ids(cases: list[RefusedCase]) -> list[str]:
    return [message for _, _, message in cases]


def assert_refused(params: Any, kind: ErrorKind, message: str) -> None:
    with pytest.raises(NetError) as info:
        parse_setup_request(params)
    assert (info.value.kind, info.value.message) == (kind, message)
