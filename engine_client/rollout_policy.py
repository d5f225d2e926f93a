"""How a command that changes hosts may stop early (docs/engine-cli.md, rollout control):
``--max-failures N`` or ``--max-failures P%`` (once more hosts than that have failed, hosts
not yet sent are not sent) and ``--canary N`` (the first N hosts, in host-name order, go
alone; the others follow only if all of those succeeded). A host not sent is reported
``SKIPPED``, counted in the summary and left out of sync.

Pure: ``rollout`` asks ``Budget.may_send`` before each host and tells it each outcome.
Without a policy every host is sent whatever fails, as oVirt does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

SKIPPED: Final = "skipped: failure budget spent"

T = TypeVar("T")

_COUNT = re.compile(r"[0-9]+", re.ASCII)
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%", re.ASCII)


@dataclass(frozen=True)
class MaxFailures:
    """Either a number of hosts or a percentage of the hosts of one rollout."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> MaxFailures:
        """``N`` (0 or more) or ``P%`` (0 to 100); ValueError says what is expected."""
        if _COUNT.fullmatch(text):
            return cls(count=int(text))
        match = _PERCENT.fullmatch(text)
        if match is not None and float(match[1]) <= 100:
            return cls(percent=float(match[1]))
        raise ValueError(f"expected N (a number of hosts, 0 or more) or P% (0-100%), got {text!r}")

    def exceeded(self, failed: int, planned: int) -> bool:
        """More hosts than allowed have failed (exact: no rounding of P% of the hosts)."""
        if self.count is not None:
            return failed > self.count
        assert self.percent is not None
        return failed * 100 > self.percent * planned

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True)
class RolloutPolicy:
    max_failures: MaxFailures | None = None
    canary: int = 0  # 0: no canary

    @property
    def stops_early(self) -> bool:
        return self.max_failures is not None or self.canary > 0

    def waves(self, items: Sequence[T]) -> list[list[T]]:
        """The hosts, in the order given (the commands give host-name order), in the waves
        they go in: the canaries alone, then the others (one wave without a canary)."""
        ordered = list(items)
        if self.canary <= 0 or self.canary >= len(ordered):
            return [ordered] if ordered else []
        return [ordered[: self.canary], ordered[self.canary :]]

    def budget(self, planned: int) -> Budget:
        return Budget(self, planned)


class Budget:
    """The failures of one rollout so far, against its policy."""

    def __init__(self, policy: RolloutPolicy, planned: int) -> None:
        self._policy = policy
        self._planned = planned
        self.failed = 0
        self._canary_failed = False

    def may_send(self) -> bool:
        """Whether the next host is sent (asked right before it would be)."""
        if self._canary_failed:
            return False
        limit = self._policy.max_failures
        return limit is None or not limit.exceeded(self.failed, self._planned)

    def record(self, ok: bool, *, canary: bool) -> None:
        if not ok:
            self.failed += 1
            if canary:
                self._canary_failed = True


@dataclass(frozen=True)
class RolloutControl:
    """What the operator asked of one command's rollouts (the options of every command that
    changes hosts): a dry run, the policy, and the probes every host is sent."""

    dry_run: bool = False
    policy: RolloutPolicy = RolloutPolicy()
    probes: tuple[Mapping[str, str], ...] = ()
