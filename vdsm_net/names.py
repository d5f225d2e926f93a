"""Name rules for devices and networks, and safe rendering of any value into a message.

Pure helpers shared by the request parser and the merge rules. A ``*_problem`` function
returns None for a good name, else a short reason that the caller puts into a NetError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

IFNAMSIZ = 16  # the kernel's buffer, NUL included: 15 usable characters
IFNAME_MAX = IFNAMSIZ - 1

_BOND_NAME = re.compile(r"bond\w+", re.ASCII)
_SHOW_MAX = 40


def ifname_problem(name: str) -> str | None:
    """The kernel's own rule (dev_valid_name) plus printable ASCII, which VDSM assumes."""
    if not name:
        return "empty name"
    if len(name) > IFNAME_MAX:
        return f"longer than {IFNAME_MAX} characters"
    if name in (".", ".."):
        return "reserved name"
    if any(not (0x21 <= ord(c) <= 0x7E) for c in name):
        return "only printable ASCII without white space is allowed"
    if "/" in name or ":" in name:
        return "contains '/' or ':'"
    return None


def network_name_problem(name: str) -> str | None:
    """Network names also become bridge names and VDSM forbids '.' (VLAN syntax) and '-'."""
    problem = ifname_problem(name)
    if problem is not None:
        return problem
    if "." in name:
        return "contains '.'"
    if name.startswith("-"):
        return "starts with '-'"
    return None


def bond_name_problem(name: str) -> str | None:
    if _BOND_NAME.fullmatch(name) is None:
        return r"must match bond\w+"
    if len(name) > IFNAME_MAX:
        return f"longer than {IFNAME_MAX} characters"
    return None


def vlan_device_name(southbound: str, vlan: int) -> str:
    return f"{southbound}.{vlan}"


def _show_int(value: int) -> str:
    # str() of an int beyond ~4300 digits raises ValueError on Python >= 3.11.
    return str(value) if value.bit_length() <= 64 else "a huge integer"


def _show_str(value: str) -> str:
    text = json.dumps(value[:_SHOW_MAX], ensure_ascii=True)
    return text if len(value) <= _SHOW_MAX else text[:-1] + '..."'


_SHOWERS: dict[type, Callable[[Any], str]] = {
    type(None): json.dumps,
    bool: json.dumps,
    int: _show_int,
    float: repr,
    str: _show_str,
}
_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
}


def show(value: object) -> str:
    """A value as JSON would spell it, truncated, never raising (huge ints, odd objects)."""
    shower = _SHOWERS.get(type(value))
    if shower is not None:
        return shower(value)
    kind = json_type(value)
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def json_type(value: object) -> str:
    """The JSON name of a value's type, for "expected X, got Y" messages."""
    return _JSON_TYPES.get(type(value), type(value).__name__)
