"""The reference under ``docs/`` keeps up with the code: every command, option, RPC method,
configuration key and error code the code has is documented, and every relative link in the
project's Markdown pages leads to a file (and heading) that exists.

Adding an option, a method, a key or an error code without documenting it makes this test
fail, naming what is missing and where it belongs.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine_client.cli import build_parser
from engine_client.lab import cli as lab_cli
from vdsm_net import cli as agent_cli
from vdsm_net import client as local_client
from vdsm_net import config
from vdsm_net.errors import ErrorKind
from vdsm_net.rpc import METHODS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINKED_PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *PAGES]

# Pages that other work in progress writes (operations by the daemon issue, limits by the
# hardening issue). The index links them already; once a page exists, remove it from here
# (test_pending_pages_are_still_missing says so).
PENDING_PAGES: frozenset[str] = frozenset()

HELP = frozenset({"-h", "--help"})
# argparse's option strings for a flag: --name or -n
_WORD_EDGE = r"(?<![\w-]){}(?![\w-])"


def _mentions(text: str, word: str) -> bool:
    return re.search(_WORD_EDGE.format(re.escape(word)), text) is not None


# ---- Markdown sections -------------------------------------------------------------------


_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Section:
    level: int
    title: str
    text: str  # the heading line and everything up to the next heading of its level or above


def _lines_outside_code(text: str) -> Iterator[tuple[str, bool]]:
    """Each line, with whether it lies in a fenced code block."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            yield line, True
            continue
        yield line, fenced


def sections(text: str) -> list[Section]:
    lines = list(_lines_outside_code(text))
    heads = [
        (i, len(m.group(1)), m.group(2))
        for i, (line, fenced) in enumerate(lines)
        if not fenced and (m := _HEADING.match(line))
    ]
    out = []
    for n, (start, level, title) in enumerate(heads):
        end = next((i for i, lvl, _ in heads[n + 1 :] if lvl <= level), len(lines))
        out.append(Section(level, title, "\n".join(line for line, _ in lines[start:end])))
    return out


def section_for(page: Path, pattern: str) -> Section | None:
    """The first section of ``page`` whose heading matches ``pattern`` (a regex)."""
    return next((s for s in sections(page.read_text()) if re.search(pattern, s.title)), None)


# ---- argparse ----------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = _subparsers(parser)
    if not subs:
        yield path, parser
    for name, sub in subs.items():
        yield from leaf_commands(sub, (*path, name))


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for sub in _subparsers(parser).values():
        yield from all_parsers(sub)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {
        opt
        for action in parser._actions
        for opt in action.option_strings
        if opt not in HELP
    }


def positional_names(parser: argparse.ArgumentParser) -> list[str]:
    """How a usage line spells each positional: its metavar, else its dest in capitals."""
    names = []
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.choices is not None and action.metavar is None:
            continue  # a fixed word (``restore``), checked on its own
        metavar = action.metavar if isinstance(action.metavar, str) else None
        names.append(metavar or action.dest.upper())
    return names


ENGINE = build_parser()
GLOBAL_OPTIONS = option_strings(ENGINE)
ENGINE_COMMANDS = sorted(leaf_commands(ENGINE))
ENGINE_CLI = DOCS / "engine-cli.md"


def test_docs_has_an_index_and_the_pages_it_names() -> None:
    index = (DOCS / "README.md").read_text()
    for page in PAGES:
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not link {page.name}"


def test_engine_global_options_are_documented() -> None:
    section = section_for(ENGINE_CLI, r"(?i)global options")
    assert section is not None, "docs/engine-cli.md needs a 'Global options' section"
    missing = sorted(o for o in GLOBAL_OPTIONS if not _mentions(section.text, o))
    assert not missing, f"docs/engine-cli.md, Global options: document {missing}"


@pytest.mark.parametrize(
    ("path", "parser"), ENGINE_COMMANDS, ids=[" ".join(p) for p, _ in ENGINE_COMMANDS]
)
def test_engine_command_is_documented(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    command = " ".join(path)
    section = section_for(ENGINE_CLI, rf"`engine-client {re.escape(command)}(\s[^`]*)?`")
    assert section is not None, (
        f"docs/engine-cli.md needs a heading with `engine-client {command} ...`"
    )
    missing = sorted(o for o in option_strings(parser) - GLOBAL_OPTIONS
                     if not _mentions(section.text, o))
    missing += [p for p in positional_names(parser) if not _mentions(section.text, p)]
    assert not missing, f"docs/engine-cli.md, `engine-client {command}`: document {missing}"


@pytest.mark.parametrize(
    ("program", "parser", "page"),
    [
        ("vdsm-net-agent", agent_cli._parser(), "config.md"),
        ("vdsm-net-client", local_client._parser(), "api.md"),
        ("vdsm-net-lab", lab_cli.build_parser(), "lab.md"),
    ],
)
def test_agent_programs_options_are_documented(
    program: str, parser: argparse.ArgumentParser, page: str
) -> None:
    section = section_for(DOCS / page, rf"`{program}")
    assert section is not None, f"docs/{page} needs a heading naming `{program}`"
    every = list(all_parsers(parser))  # a command may be a subparser with options of its own
    options = set().union(*(option_strings(p) for p in every))
    missing = sorted(o for o in options if not _mentions(section.text, o))
    missing += [n for p in every for n in positional_names(p) if not _mentions(section.text, n)]
    for action in parser._actions:
        # A fixed word (``restore``) or a command of its own (``up``): each named in full.
        if not action.option_strings and action.choices is not None:
            missing += [f"{program} {c}" for c in action.choices
                        if not _mentions(section.text, f"{program} {c}")]
    assert not missing, f"docs/{page}, `{program}`: document {missing}"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_rpc_method_is_documented(method: str) -> None:
    section = section_for(DOCS / "api.md", rf"`{re.escape(method)}`")
    assert section is not None, f"docs/api.md needs a heading with `{method}`"


@pytest.mark.parametrize(
    ("section_name", "key"),
    sorted(config._KEYS),
    ids=[f"[{s}] {k}" for s, k in sorted(config._KEYS)],
)
def test_config_key_is_documented(section_name: str, key: str) -> None:
    text = (DOCS / "config.md").read_text()
    assert f"`[{section_name}] {key}`" in text, (
        f"docs/config.md: document the key `[{section_name}] {key}`"
    )


@pytest.mark.parametrize("kind", list(ErrorKind), ids=[k.name for k in ErrorKind])
def test_error_code_is_documented(kind: ErrorKind) -> None:
    rows = (DOCS / "errors.md").read_text().splitlines()
    assert any(re.match(rf"\|\s*{int(kind)}\s*\|", row) for row in rows), (
        f"docs/errors.md: add a table row for error {int(kind)} ({kind.name})"
    )


# ---- links -------------------------------------------------------------------------------


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`]*`")


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = title.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def links(page: Path) -> Iterator[str]:
    for line, fenced in _lines_outside_code(page.read_text()):
        if not fenced:
            yield from _LINK.findall(_INLINE_CODE.sub("", line))


def _anchors(page: Path) -> set[str]:
    return {slug(s.title) for s in sections(page.read_text())}


def _relative_links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in LINKED_PAGES
        for target in links(page)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:, file:
    ]


@pytest.mark.parametrize(
    ("page", "target"),
    _relative_links(),
    ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in _relative_links()],
)
def test_relative_link_leads_somewhere(page: Path, target: str) -> None:
    path_part, _, anchor = target.partition("#")
    dest = (page.parent / path_part).resolve() if path_part else page
    if dest.parent == DOCS and dest.name in PENDING_PAGES and not dest.exists():
        return  # being written elsewhere (see PENDING_PAGES)
    assert dest.exists(), f"{page.relative_to(ROOT)}: link {target!r}: no such file {dest}"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), (
            f"{page.relative_to(ROOT)}: link {target!r}: {dest.name} has no heading #{anchor}"
        )


def test_pending_pages_are_still_missing() -> None:
    """Once a pending page exists, its links must be checked like any other."""
    written = sorted(p for p in PENDING_PAGES if (DOCS / p).exists())
    assert not written, f"docs/{written}: written now; remove it from PENDING_PAGES"


def test_docs_do_not_point_outside_the_repository() -> None:
    """The repository stands on its own: no page sends the reader to ``../shared``."""
    offenders = [
        str(page.relative_to(ROOT))
        for page in LINKED_PAGES
        if "../shared" in page.read_text() or "SPEC.md" in page.read_text()
    ]
    assert not offenders, f"these pages still refer to the shared SPEC.md: {offenders}"
