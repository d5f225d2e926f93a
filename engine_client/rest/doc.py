"""oVirt's documents: written as XML (the default) or JSON (``Accept: application/json``), and
read from either.

A resource is built once as a tree of ``Node``s and rendered in the format asked for, so the
two never disagree. The shapes follow oVirt's API model: attributes ``id`` and ``href``, one
element per property, a collection as a plural element holding singular ones
(``<networks><network .../></networks>``). oVirt's JSON carries every value as a string, and a
collection as an object whose singular name holds the list (``{"network": [...]}``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

XML = "application/xml"
JSON = "application/json"


@dataclass(frozen=True)
class Node:
    tag: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    children: tuple[Node, ...] = ()
    many: bool = False  # a collection: the children are its items


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def el(tag: str, *children: Node | None, value: object = None, **attrs: object) -> Node:
    """An element; ``None`` children and ``None`` attributes are left out."""
    return Node(
        tag,
        {k: _text(v) for k, v in attrs.items() if v is not None},
        None if value is None else _text(value),
        tuple(c for c in children if c is not None),
    )


def leaf(tag: str, value: object) -> Node | None:
    """``<tag>value</tag>``, or nothing when the value is None."""
    return None if value is None else Node(tag, {}, _text(value))


def many(tag: str, items: Iterable[Node], **attrs: object) -> Node:
    return Node(
        tag, {k: _text(v) for k, v in attrs.items() if v is not None}, None, tuple(items), many=True
    )


def _to_element(node: Node) -> ET.Element:
    elem = ET.Element(node.tag, dict(node.attrs))
    elem.text = node.text
    elem.extend(_to_element(c) for c in node.children)
    return elem


def to_xml(node: Node) -> str:
    elem = _to_element(node)
    ET.indent(elem)
    return '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(
        elem, encoding="unicode"
    )


def _json_value(node: Node) -> Any:
    if node.text is not None and not node.children and not node.attrs:
        return node.text
    out: dict[str, Any] = dict(node.attrs)
    tags = [c.tag for c in node.children]
    for child in node.children:
        # oVirt writes a resource's links as one array, "link": [{"href", "rel"}, ...], even
        # a single one; any other repeated element is kept whole the same way.
        if node.many or child.tag == "link" or tags.count(child.tag) > 1:
            out.setdefault(child.tag, []).append(_json_value(child))
        else:
            out[child.tag] = _json_value(child)
    return out


def to_json(node: Node) -> str:
    return json.dumps(_json_value(node), indent=2)


def render(node: Node, content_type: str) -> str:
    return to_json(node) if content_type == JSON else to_xml(node)


# -- reading requests ---------------------------------------------------------------------


class BadDocument(ValueError):
    """The request body is not a document of the expected kind; the message says why."""


def _from_json(tag: str, value: Any) -> ET.Element:
    elem = ET.Element(tag)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, list):
                # {"network_attachment": [...]}: the items of the collection ``elem``.
                elem.extend(_from_json(key, i) for i in item)
            else:
                elem.append(_from_json(key, item))
    elif value is not None:
        elem.text = _text(value)
    return elem


def parse(body: bytes, content_type: str, root: str) -> ET.Element:
    """The body as an element named ``root`` (XML as sent; JSON turned into the same tree)."""
    if not body.strip():
        raise BadDocument(f"expected a <{root}> document, got an empty body")
    if content_type == JSON:
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise BadDocument(f"body: not JSON: {exc}") from None
        if not isinstance(value, Mapping):
            raise BadDocument(f"body: expected a JSON object, got {type(value).__name__}")
        return _from_json(root, value)
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise BadDocument("body: document type declarations are not accepted")
    try:
        elem = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadDocument(f"body: not XML: {exc}") from None
    if elem.tag != root:
        raise BadDocument(f"body: expected a <{root}> document, got <{elem.tag}>")
    return elem


def value(elem: ET.Element | None, name: str) -> str | None:
    """An attribute or a child element's text (XML puts ``id`` in an attribute, JSON in a
    member; both are read the same)."""
    if elem is None:
        return None
    if name in elem.attrib:
        return elem.attrib[name]
    child = elem.find(name)
    if child is None:
        return None
    return (child.text or "").strip()


def integer(elem: ET.Element | None, name: str) -> int | None:
    text = value(elem, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadDocument(f"{name}: expected an integer, got {text!r}") from None


def boolean(elem: ET.Element | None, name: str) -> bool | None:
    text = value(elem, name)
    if text is None:
        return None
    if text.lower() not in ("true", "false"):
        raise BadDocument(f"{name}: expected true or false, got {text!r}")
    return text.lower() == "true"


def items(elem: ET.Element | None, plural: str) -> list[ET.Element]:
    """The items of collection ``plural`` under ``elem`` (empty when absent)."""
    if elem is None:
        return []
    coll = elem.find(plural)
    return [] if coll is None else list(coll)
