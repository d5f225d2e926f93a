"""Every option of every program has help text (an operator's tool: ``--help`` explains each)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import pytest

from engine_client import cli as engine_cli
from engine_client.lab import cli as lab_cli
from vdsm_net import cli as agent_cli
from vdsm_net import client as agent_client

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "engine-client": engine_cli.build_parser,
    "vdsm-net-lab": lab_cli.build_parser,
    "vdsm-net-agent": agent_cli._parser,
    "vdsm-net-client": agent_client._parser,
}


def options_without_help(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from options_without_help(child, f"{path} {name}")
        elif action.option_strings and not action.help:
            yield f"{path} {'/'.join(action.option_strings)}"


@pytest.mark.parametrize("program", sorted(PARSERS))
def test_every_option_has_help(program: str) -> None:
    assert list(options_without_help(PARSERS[program](), program)) == []
