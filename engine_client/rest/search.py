"""The ``search=`` queries of oVirt's API that scripts send for networks and hosts:
``name=X``, ``name="X" and datacenter="Y"`` (what ``ovirt.ovirt`` sends), with ``*`` as a
wildcard, as oVirt's search engine takes it."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

# key=value, the value quoted or a bare word; terms joined by "and".
_TERM = re.compile(r'\s*([A-Za-z_.]+)\s*=\s*(?:"([^"]*)"|(\S+))\s*')


class BadSearch(ValueError):
    pass


def parse(query: str, keys: Mapping[str, str]) -> dict[str, str]:
    """``{field: pattern}``; ``keys`` maps a search key (``datacenter``, ``name``) to the
    field it filters. Raises BadSearch naming what is not understood."""
    terms: dict[str, str] = {}
    parts = re.split(r"\s+and\s+", query.strip(), flags=re.IGNORECASE) if query.strip() else []
    for part in parts:
        m = _TERM.fullmatch(part)
        if m is None:
            raise BadSearch(f"search: expected key=value terms joined by 'and', got {part!r}")
        key = m.group(1).lower()
        if key not in keys:
            raise BadSearch(f"search: unknown key {m.group(1)!r}; known: {', '.join(keys)}")
        terms[keys[key]] = m.group(2) if m.group(2) is not None else m.group(3)
    return terms


def matches(terms: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    """Case-insensitive, as oVirt's search is by default."""
    return all(
        fnmatch.fnmatchcase(fields.get(f, "").lower(), pattern.lower())
        for f, pattern in terms.items()
    )
