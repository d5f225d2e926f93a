"""The options of every command that changes hosts (docs/engine-cli.md, rollout control):
``--dry-run``, ``--max-failures N|P%``, ``--canary N``, ``--probe ping:ADDR|tcp:ADDR:PORT``.
``add_options`` puts them on a subcommand's parser; ``control`` reads them back."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from engine_client.rollout_policy import MaxFailures, RolloutControl, RolloutPolicy
from vdsm_net.errors import NetError
from vdsm_net.probespec import parse_probe


def _max_failures(text: str) -> MaxFailures:
    try:
        return MaxFailures.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _canary(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of hosts >= 1, got {text!r}")
    return int(text)


def probe(text: str) -> Mapping[str, str]:
    """``ping:ADDR`` or ``tcp:ADDR:PORT`` (``tcp:[V6ADDR]:PORT``) as the agent's
    ``options.probes`` entry, checked as the agent checks it."""
    kind, sep, target = text.partition(":")
    if not sep or kind not in ("ping", "tcp"):
        raise argparse.ArgumentTypeError(
            f"expected ping:ADDR or tcp:ADDR:PORT (tcp:[IPV6]:PORT), got {text!r}"
        )
    try:
        return parse_probe(text, {kind: target}).to_json()
    except NetError as exc:
        # The agent's message names its path (here the value itself): "tcp:x:1.tcp: ...".
        raise argparse.ArgumentTypeError(exc.message.replace(f"{text}.{kind}: ", "", 1)
                                         + f" (in {text!r})") from None


def add_options(p: argparse.ArgumentParser) -> None:
    """The rollout-control options, on the parser of a command that changes hosts."""
    group = p.add_argument_group("rollout control")
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and ask every host concerned for its plan; print each host's "
        "operations or the error it foresees; store nothing and change no host (exit 0 "
        "only if every host could apply)",
    )
    group.add_argument(
        "--max-failures",
        type=_max_failures,
        metavar="N|P%",
        help="once more hosts than N (or than P%% of the hosts) have failed, hosts not yet "
        "sent are skipped (reported, out of sync) and the command exits 1",
    )
    group.add_argument(
        "--canary",
        type=_canary,
        metavar="N",
        help="the first N hosts (in host-name order) go alone; the others follow only if "
        "all of those succeeded, else they are skipped",
    )
    group.add_argument(
        "--probe",
        type=probe,
        action="append",
        metavar="ping:ADDR|tcp:ADDR:PORT",
        help="repeatable: after the change each host must still answer an ICMP echo from "
        "ADDR or reach a TCP listener at ADDR:PORT ([IPV6]:PORT) within the connectivity "
        "timeout, or it rolls the change back (error 10)",
    )


def control(a: argparse.Namespace) -> RolloutControl:
    """The options as given (defaults for a command that has none of them)."""
    return RolloutControl(
        dry_run=bool(getattr(a, "dry_run", False)),
        policy=RolloutPolicy(
            max_failures=getattr(a, "max_failures", None), canary=getattr(a, "canary", None) or 0
        ),
        probes=tuple(getattr(a, "probe", None) or ()),
    )
