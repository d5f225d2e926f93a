"""Every change the REST API makes runs an ``engine-client`` command: the very code path of the
command line (validation, the store, the concurrent push to every host, events, one correlation
id, the one-change-at-a-time rule), in a worker thread so that the server's event loop never
waits for it. The command's ``--json`` document is its answer.

This module is the only place that knows how a REST change maps to a command line.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engine_client import cli
from engine_client.operations import CORRELATION_ID

EXIT_OK, EXIT_HOST_FAILED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    code: int
    doc: Any  # the command's JSON output (None when it printed none)
    error: str  # what it printed on stderr ("error: ..." lines)

    @property
    def ok(self) -> bool:
        return self.code == EXIT_OK

    def hosts(self) -> list[dict[str, Any]]:
        """The per-host outcomes of the command's JSON summaries."""
        return list(_hosts(self.doc))

    def failures(self) -> list[str]:
        """``host: why`` for every host that failed, from the command's JSON summary."""
        return [f"{h['host']}: {h['failure']}" for h in _hosts(self.doc) if not h.get("ok")]

    def detail(self) -> str:
        """What went wrong, in the words of the command."""
        lines = [
            ln.removeprefix("error: ") for ln in self.error.splitlines() if ln.startswith("error: ")
        ]
        return "; ".join(lines + self.failures()) or f"engine-client exited {self.code}"


def _hosts(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, dict):
        hosts = doc.get("hosts")
        if isinstance(hosts, list) and all(isinstance(h, dict) and "ok" in h for h in hosts):
            yield from hosts
        for value in doc.values():
            if isinstance(value, list | dict):
                yield from _hosts(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _hosts(item)


@dataclass(frozen=True)
class Commands:
    """Runs commands on one store, with the options ``serve`` was given."""

    db: str  # a store path or a postgresql:// URL
    options: tuple[str, ...] = ()  # e.g. ("--parallel", "50")

    def _run(self, argv: Sequence[str], correlation_id: str | None) -> Outcome:
        token = CORRELATION_ID.set(correlation_id)
        try:
            out, err = io.StringIO(), io.StringIO()
            full = [*argv, *self.options, "--db", str(self.db), "--json"]
            code = cli.main(full, stdout=out, stderr=err)
        finally:
            CORRELATION_ID.reset(token)
        text = out.getvalue().strip()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return Outcome(tuple(argv), code, doc, err.getvalue())

    async def run(self, *argv: str, correlation_id: str | None = None) -> Outcome:
        # to_thread copies the context: the correlation id is set in the thread's copy only.
        return await asyncio.to_thread(self._run, argv, correlation_id)

    # -- the commands the API uses ----------------------------------------------------

    async def network_add(
        self, name: str, dc: str, vlan: int | None, mtu: int | None, vm: bool, cid: str | None
    ) -> Outcome:
        argv = ["network", "add", name, "--dc", dc, "--vm" if vm else "--no-vm"]
        if vlan is not None:
            argv += ["--vlan", str(vlan)]
        if mtu is not None:
            argv += ["--mtu", str(mtu)]
        return await self.run(*argv, correlation_id=cid)

    async def network_update(self, name: str, changes: Sequence[str], cid: str | None) -> Outcome:
        return await self.run("network", "update", name, *changes, correlation_id=cid)

    async def network_remove(self, name: str, cid: str | None) -> Outcome:
        return await self.run("network", "remove", name, correlation_id=cid)

    async def attach(
        self, network: str, host: str, where: Sequence[str], cid: str | None
    ) -> Outcome:
        return await self.run("network", "attach", network, host, *where, correlation_id=cid)

    async def detach(self, network: str, host: str, cid: str | None) -> Outcome:
        return await self.run("network", "detach", network, host, correlation_id=cid)

    async def label_add(self, host: str, label: str, nic: str | None, cid: str | None) -> Outcome:
        on = [] if nic is None else ["--nic", nic]
        return await self.run("label", "add", host, label, *on, correlation_id=cid)

    async def label_remove(
        self, host: str, label: str, nic: str | None, cid: str | None
    ) -> Outcome:
        on = [] if nic is None else ["--nic", nic]
        return await self.run("label", "remove", host, label, *on, correlation_id=cid)

    async def sync(self, host: str | None, network: str | None, cid: str | None = None) -> Outcome:
        argv = ["sync"]
        if host is not None:
            argv += ["--host", host]
        if network is not None:
            argv += ["--network", network]
        return await self.run(*argv, correlation_id=cid)

    async def refresh(self, hosts: Sequence[str] = ()) -> Outcome:
        return await self.run("host", "refresh", *hosts)

    async def stats(self, host: str) -> Outcome:
        return await self.run("stats", host)
