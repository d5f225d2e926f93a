"""The rollout-control options of the commands that change hosts (docs/engine-cli.md):
usage errors, and a dry run that leaves the store (SQLite and PostgreSQL) as it was. The real
agents' plans and the kernels are tests/kernel/test_rollout_control.py's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.unit.engine.fakeagent import FakeTransport
from tests.unit.engine.test_cli import H1, H2, Cli, agent, setup_calls

# Every table of the store, in full: what a dry run must leave as it was.
TABLES = ("schema_version", "dc", "host", "network", "attachment", "host_label", "nic_label",
          "vm", "vm_network", "event", "network_lease", "rollout", "api_user")


def snapshot(location: str) -> object:
    if location.startswith("postgresql://"):
        with psycopg.connect(location) as conn:
            names = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
            return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in names}
    # An SQLite store: the file, byte for byte (and no journal or WAL file left beside it).
    path = Path(location)
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--probe", "icmp:192.0.2.1"], "argument --probe: expected ping:ADDR or tcp:ADDR:PORT"),
        (["--probe", "tcp:192.0.2.1:0"], 'argument --probe: port: expected 1-65535, got "0"'),
        (["--probe", "ping:router"], "argument --probe: expected an IPv4 or IPv6 address, "
                                     "got \"router\" (in 'ping:router')"),
        (["--max-failures", "x"], "argument --max-failures: expected N"),
        (["--max-failures", "150%"], "argument --max-failures: expected N"),
        (["--max-failures", "-1"], "argument --max-failures: expected N"),
        (["--canary", "0"], "argument --canary: expected a number of hosts >= 1, got '0'"),
    ],
)
def test_bad_rollout_options_exit_2_and_send_nothing(
    attached: Cli, argv: list[str], message: str
) -> None:
    before = snapshot(str(attached.db))
    calls = len(attached.transport.calls)
    assert attached("network", "update", "red", "--mtu", "9000", *argv) == 2
    assert message in attached.err
    assert len(attached.transport.calls) == calls
    assert snapshot(str(attached.db)) == before


def test_every_command_that_changes_hosts_takes_them(attached: Cli) -> None:
    for argv in (
        ["network", "update", "red", "--mtu", "9000"],
        ["network", "remove", "red"],
        ["network", "detach", "red", "h1"],
        ["network", "attach", "red", "h1", "--nic", "eth2"],
        ["network", "add", "blue", "--dc", "dc1", "--label", "lab"],
        ["label", "add", "h1", "lab"],
        ["label", "remove", "h1", "lab"],
        ["sync"],
    ):
        assert attached(*argv, "--canary", "0") == 2, argv
        assert "argument --canary" in attached.err


def test_dry_run_stores_nothing_and_changes_no_host(attached: Cli) -> None:
    agent(attached, H2).nics = ("eth0", "eth1")  # eth2 is gone: h2 cannot apply
    before = snapshot(str(attached.db))
    sent = {url: len(setup_calls(attached, url)) for url in (H1, H2)}
    confirmed = {url: len(agent(attached, url).methods("Host.confirmConnectivity"))
                 for url in (H1, H2)}
    code, doc = attached.json("network", "update", "red", "--mtu", "9000", "--dry-run",
                              "--probe", "ping:192.0.2.1")
    assert code == 1  # one host could not apply
    assert doc["dry_run"] is True and doc["events"] == []
    by_host = {h["host"]: h for h in doc["hosts"]}
    assert by_host["h1"]["ok"] is True and by_host["h1"]["plan"][0]["mtu"] == 9000
    assert by_host["h2"]["ok"] is False and by_host["h2"]["code"] == 23
    assert (doc["planned"], doc["can_apply"], doc["failed"]) == (2, 1, 1)
    for url in (H1, H2):
        calls = agent(attached, url).methods("Host.setupNetworks")
        assert len(calls) == sent[url] + 1
        assert calls[-1].params["options"]["dryRun"] is True
        assert calls[-1].params["options"]["probes"] == [{"ping": "192.0.2.1"}]
        # Nothing but the plan: no confirmation, no save.
        assert len(agent(attached, url).methods("Host.confirmConnectivity")) == confirmed[url]
    assert agent(attached, H1).networks["red"]["mtu"] == 1500
    assert snapshot(str(attached.db)) == before
    with attached.store() as s:
        assert s.get_network("red").mtu == 1500


def test_dry_run_of_a_new_labelled_network_and_a_label(attached: Cli) -> None:
    before = snapshot(str(attached.db))
    assert attached("label", "add", "h1", "lab", "--nic", "eth2", "--dry-run") == 0
    assert "label lab would be added to nic eth2 of host h1" in attached.out
    assert snapshot(str(attached.db)) == before
    code, doc = attached.json("network", "add", "blue", "--dc", "dc1", "--label", "lab",
                              "--dry-run")
    assert code == 0 and doc["networks"] == [] and doc["dry_run"] is True
    assert snapshot(str(attached.db)) == before
    with attached.store() as s:
        assert s.find_network("blue") is None


def test_dry_run_that_asks_no_host_has_the_dry_run_shape(attached: Cli) -> None:
    """docs/engine-cli.md: a dry run's document is {network, correlation_id, dry_run,
    planned, can_apply, failed, unsupported_dc, hosts}, also when no host is to be asked."""
    assert attached("network", "add", "lone", "--dc", "dc1") == 0
    for argv in (("network", "update", "red"),  # in sync on both hosts: nothing to send
                 ("network", "update", "lone", "--mtu", "9000")):  # attached nowhere
        code, doc = attached.json(*argv, "--dry-run")
        assert code == 0 and doc["dry_run"] is True, argv
        assert (doc["planned"], doc["can_apply"], doc["failed"], doc["hosts"]) == (0, 0, 0, [])
        assert "updated" not in doc and "skipped" not in doc, doc


def test_dry_run_table(attached: Cli) -> None:
    assert attached("network", "update", "red", "--mtu", "9000", "--dry-run") == 0
    assert "dry run: update network red" in attached.out
    assert "2 of 2 hosts could apply; nothing was stored or changed" in attached.out


def test_sqlite_dry_run_of_a_missing_store_creates_no_file(tmp_path: Path) -> None:
    from engine_client.cli import main

    db = tmp_path / "none" / "engine.db"
    assert main(["--db", str(db), "sync", "--dry-run"]) == 0
    assert not db.exists() and not db.parent.exists()


def test_sqlite_dry_run_runs_beside_a_writer(
    tmp_path: Path, transport: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run only reads the file: another engine-client in the middle of a write
    transaction (holding SQLite's write lock) does not stop it, nor is it stopped by it.
    (PostgreSQL: the scratch transaction takes no write lock; the tests above cover it.)"""
    cli = Cli(tmp_path / "engine.db", transport, capsys)
    assert cli("dc", "add", "dc1", "--version", "4.7") == 0
    assert cli("host", "add", "h1", H1, "--dc", "dc1") == 0
    assert cli("network", "add", "red", "--dc", "dc1") == 0
    assert cli("network", "attach", "red", "h1", "--nic", "eth1") == 0
    writer = sqlite3.connect(str(cli.db), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE network SET mtu = 1600 WHERE name = 'red'")
        assert cli("network", "update", "red", "--mtu", "9000", "--dry-run") == 0
        assert "1 of 1 hosts could apply" in cli.out
        writer.execute("COMMIT")
    finally:
        writer.close()
    with cli.store() as s:
        assert s.get_network("red").mtu == 1600  # the writer's, not the dry run's
