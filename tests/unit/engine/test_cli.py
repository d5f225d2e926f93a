"""The engine-client command line, end to end over an in-process transport to fake agents:
store contents, agent calls, exact event texts (docs/engine-cli.md), exit codes, --json output."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine_client.cli import main
from engine_client.models import IpSettings
from engine_client.store import LeaseHolder, Store
from tests.enginecli import in_sync
from tests.pg import PgServer
from tests.pki_helpers import CA, Issued, issue, make_ca
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport

H1, H2 = "https://10.9.0.1:54321", "https://10.9.0.2:54321"


class Cli:
    def __init__(
        self, db: str | Path, transport: FakeTransport, capsys: pytest.CaptureFixture[str]
    ):
        self.db = db
        self.transport = transport
        self.capsys = capsys
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str) -> int:
        code = main(["--db", str(self.db), *argv], transport=self.transport)
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return code

    def json(self, *argv: str) -> tuple[int, Any]:
        code = self("--json", *argv)
        return code, json.loads(self.out)

    def store(self) -> Store:
        return Store.open(self.db)

    def events(self) -> list[str]:
        with self.store() as s:
            return [e.message for e in s.list_events()]


@pytest.fixture
def transport() -> FakeTransport:
    t = FakeTransport()
    t.add(H1, FakeAgent("h1"))
    t.add(H2, FakeAgent("h2"))
    return t


@pytest.fixture
def cli(store_location: str, transport: FakeTransport, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Every CLI test runs on both backends (an SQLite file, a PostgreSQL database)."""
    return Cli(store_location, transport, capsys)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsSet:
    d = tmp_path_factory.mktemp("pki")
    ca, other = make_ca(d, "ca"), make_ca(d, "other")
    return TlsSet(ca, issue(ca, "engine"), issue(other, "stranger"))


@dataclass(frozen=True)
class TlsSet:
    ca: CA
    engine: Issued
    stranger: Issued  # of another CA


@pytest.fixture
def dc(cli: Cli, tls: TlsSet) -> Cli:
    assert cli("dc", "add", "dc1", "--version", "4.7") == 0
    files = ["--cert", str(tls.engine.cert), "--key", str(tls.engine.key), "--ca", str(tls.ca.cert)]
    assert cli("host", "add", "h1", H1, "--dc", "dc1", *files) == 0
    assert cli("host", "add", "h2", H2, "--dc", "dc1") == 0
    assert cli("network", "add", "red", "--dc", "dc1", "--vlan", "100") == 0
    return cli


@pytest.fixture
def attached(dc: Cli) -> Cli:
    assert dc("network", "attach", "red", "h1", "--nic", "eth1") == 0
    assert dc("network", "attach", "red", "h2", "--nic", "eth2") == 0
    return dc


def agent(cli: Cli, url: str) -> FakeAgent:
    return cli.transport.agents[url]


def setup_calls(cli: Cli, url: str) -> list[dict[str, Any]]:
    return [c.params["networks"] for c in agent(cli, url).methods("Host.setupNetworks")]


# -- options and plain records -----------------------------------------------------------


def test_json_before_or_after_subcommand(dc: Cli) -> None:
    for argv in (["--json", "dc", "list"], ["dc", "--json", "list"], ["dc", "list", "--json"]):
        assert dc(*argv) == 0
        assert json.loads(dc.out) == [{"name": "dc1", "version": "4.7"}]


def test_db_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "env" / "e.db"
    monkeypatch.setenv("ENGINE_CLIENT_DB", str(db))
    assert main(["dc", "add", "x", "--version", "4.2"]) == 0
    assert Store.open(db).list_dcs()[0].name == "x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dc", "add", "d", "--version", "four"], "version: expected MAJOR.MINOR"),
        (["host", "add", "h", "ftp://x", "--dc", "dc1"], "url: expected https://, http:// or"),
        (["host", "add", "h", H1, "--dc", "nope"], "no data center 'nope'"),
        (
            ["host", "add", "h", H1, "--dc", "dc1", "--cert", "c.pem"],
            "cert/key: expected both or neither, got cert='c.pem' key=None",
        ),
        (
            ["host", "add", "h", H1, "--dc", "dc1", "--ca", "nope/ca.pem"],
            "ca: no such file: /",
        ),
        (
            ["network", "add", "n", "--dc", "dc1", "--vlan", "5000"],
            "networks.n.vlan: expected 0-4094, got 5000",
        ),
        (
            ["network", "add", "n", "--dc", "dc1", "--mtu", "60"],
            "networks.n.mtu: expected 68-65535, got 60",
        ),
        (
            ["network", "add", "a.b", "--dc", "dc1"],
            "networks: bad network name \"a.b\" (contains '.')",
        ),
        (["network", "add", "red", "--dc", "dc1"], "network 'red' already exists"),
        (
            ["network", "update", "red", "--vlan", "4095"],
            "networks.red.vlan: expected 0-4094, got 4095",
        ),
        (["vm", "add", "v", "--network", "nope"], "no network 'nope'"),
        (["network", "show", "nope"], "no network 'nope'"),
        (["--parallel", "0", "sync"], "parallel: expected >= 1, got 0"),
    ],
)
def test_usage_errors_exit_2(dc: Cli, argv: list[str], message: str) -> None:
    assert dc(*argv) == 2
    assert message in dc.err
    assert not setup_calls(dc, H1)


def test_host_add_stores_absolute_tls_paths(
    cli: Cli, tls: TlsSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("dc", "add", "dc1", "--version", "4.7") == 0
    monkeypatch.chdir(tls.ca.directory)
    code, out = cli.json(
        "host", "add", "h1", H1, "--dc", "dc1",
        "--cert", "engine.pem", "--key", "./engine-key.pem", "--ca", "../ca/ca.pem",
    )  # fmt: skip
    assert code == 0, cli.err
    expected = (str(tls.engine.cert), str(tls.engine.key), str(tls.ca.cert))
    assert (out["cert"], out["key"], out["ca"]) == expected
    with cli.store() as store:
        host = store.get_host("h1")
    assert (host.cert, host.key, host.ca) == expected
    assert all(os.path.isabs(p) for p in expected)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            lambda t, d: ["--cert", "none.pem", "--key", str(t.engine.key)],
            lambda t, d: f"cert: no such file: {d / 'none.pem'}",
        ),
        (
            lambda t, d: ["--cert", str(t.engine.cert), "--key", str(d)],
            lambda t, d: f"key: not a regular file: {d}",
        ),
        (  # a key that is not the certificate's
            lambda t, d: ["--cert", str(t.engine.cert), "--key", str(t.stranger.key)],
            lambda t, d: f"cert/key: cannot load the certificate {t.engine.cert} with the key "
            f"{t.stranger.key}: key values mismatch",
        ),
        (  # a key where the CA should be
            lambda t, d: ["--ca", str(t.engine.key)],
            lambda t, d: f"ca: cannot load CA certificates from {t.engine.key}",
        ),
        (
            lambda t, d: ["--cert", "junk.pem", "--key", str(t.engine.key)],
            lambda t, d: f"cert/key: cannot load the certificate {d / 'junk.pem'}",
        ),
    ],
)
def test_host_add_refuses_tls_files_that_do_not_load(
    cli: Cli, tls: TlsSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    files: Any, message: Any,
) -> None:
    assert cli("dc", "add", "dc1", "--version", "4.7") == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert cli("host", "add", "h1", H1, "--dc", "dc1", *files(tls, tmp_path)) == 2
    assert f"error: {message(tls, tmp_path)}" in cli.err
    with cli.store() as store:
        assert store.list_hosts() == []


def test_argparse_errors_exit_2(dc: Cli) -> None:
    assert dc("frobnicate") == 2
    assert dc("network", "attach", "red", "h1") == 2  # one of --nic/--bond/--isolated


# -- attach, update, events ------------------------------------------------------------


def test_attach_configures_host_with_one_correlation_id(dc: Cli, tls: TlsSet) -> None:
    assert dc("network", "attach", "red", "h1", "--nic", "eth1") == 0
    assert setup_calls(dc, H1) == [
        {"red": {"nic": "eth1", "vlan": 100, "mtu": 1500, "bridged": True}}
    ]
    a = agent(dc, H1)
    setup = a.methods("Host.setupNetworks")[0]
    assert setup.params["options"]["connectivityCheck"] is True
    assert setup.params["options"]["commitOnSuccess"] is True
    assert a.methods("Host.confirmConnectivity")
    assert a.safe == a.networks
    cids = {c.correlation_id for c in a.calls}
    assert len(cids) == 1
    cid = cids.pop()
    assert f"correlation id: {cid}" in dc.out
    assert dc.events() == [
        "1/1 applying network red on host h1",
        "1/1 network red were updated on host h1",
    ]
    assert "1/1 network red were updated on host h1" in dc.err
    with dc.store() as s:
        assert in_sync(s, "h1", "red")
        assert {e.correlation_id for e in s.list_events()} == {cid}
    # the engine's client certificate goes with every call to that host
    endpoint, headers = dc.transport.calls[0].endpoint, dc.transport.calls[0].headers
    assert (endpoint.cert, endpoint.key, endpoint.ca) == (
        str(tls.engine.cert), str(tls.engine.key), str(tls.ca.cert)
    )
    assert headers["X-Correlation-Id"] == cid


def test_attach_isolated_and_slot_conflict(dc: Cli) -> None:
    assert dc("network", "add", "iso", "--dc", "dc1") == 0
    assert dc("network", "attach", "iso", "h1", "--isolated") == 0
    assert setup_calls(dc, H1) == [{"iso": {"mtu": 1500, "bridged": True}}]
    assert dc("network", "attach", "red", "h1", "--nic", "eth1") == 0
    assert dc("network", "add", "red2", "--dc", "dc1", "--vlan", "100") == 0
    assert dc("network", "attach", "red2", "h1", "--nic", "eth1") == 2
    assert "eth1 (vlan 100) on host h1 already carries network red" in dc.err


def test_update_pushes_to_every_host(attached: Cli) -> None:
    code, doc = attached.json("network", "update", "red", "--mtu", "9000", "--vlan", "200")
    assert code == 0
    assert doc["planned"] == 2 and doc["updated"] == 2 and doc["failed"] == 0
    assert {h["host"] for h in doc["hosts"] if h["ok"]} == {"h1", "h2"}
    assert setup_calls(attached, H2)[-1] == {
        "red": {"nic": "eth2", "vlan": 200, "mtu": 9000, "bridged": True}
    }
    events = [e for e in attached.events() if "/2 " in e]
    # --json: the events are on stderr too, one line each, and in the JSON.
    assert sorted(attached.err.splitlines()) == sorted(events)
    assert [e["message"] for e in doc["events"]] == events
    fields = {(e["host"], e["network"], e["severity"], e["correlation_id"]) for e in doc["events"]}
    cid = doc["correlation_id"]
    assert fields == {("h1", "red", "info", cid), ("h2", "red", "info", cid)}
    zoned = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d")
    assert all(zoned.fullmatch(e["time"]) for e in doc["events"])
    # i is the order in which hosts got their turn, which concurrency leaves open.
    for host in ("h1", "h2"):
        (applying,) = [e for e in events if e.endswith(f"applying network red on host {host}")]
        (updated,) = [e for e in events if e.endswith(f"network red were updated on host {host}")]
        i = applying.split(" ", 1)[0]
        assert i in ("1/2", "2/2") and updated == f"{i} network red were updated on host {host}"
    assert len(events) == 4


def test_partial_failure_exit_1_then_sync(attached: Cli) -> None:
    lost = attached.transport.agents.pop(H2)  # h2 becomes unreachable
    assert attached("network", "update", "red", "--mtu", "9000") == 1
    events = attached.events()
    # Not a terminal: the event lines as they are, on stderr, the table on stdout.
    assert attached.err.splitlines() == events[-len(attached.err.splitlines()) :]
    assert events[-1] in attached.err.splitlines()
    failed = [e for e in events if "failed to update red changes on host h2 due to: " in e]
    assert len(failed) == 1 and "Connection refused" in failed[0]
    assert failed[0].split(" ", 1)[0] in ("1/2", "2/2")
    assert events[-1] == "2 are planned to be updated, however only 1 could be updated."
    assert "failed" in attached.out  # the summary table
    with attached.store() as s:
        assert in_sync(s, "h1", "red")
        h2 = s.get_attachment("h2", "red")
        assert not in_sync(s, "h2", "red") and "Connection refused" in (h2.last_error or "")
        assert s.get_network("red").mtu == 9000  # the store has the new definition
    code, doc = attached.json("network", "show", "red")
    assert {h["host"]: h["in_sync"] for h in doc["hosts"]} == {"h1": True, "h2": False}

    attached.transport.add(H2, lost)
    before = len(setup_calls(attached, H1))
    code, doc = attached.json("sync")
    assert code == 0
    assert [n["network"] for n in doc["networks"]] == ["red"]
    assert [h["host"] for h in doc["networks"][0]["hosts"]] == ["h2"]
    assert len(setup_calls(attached, H1)) == before  # h1 was in sync: left alone
    assert setup_calls(attached, H2)[-1]["red"]["mtu"] == 9000
    with attached.store() as s:
        assert in_sync(s, "h2", "red")


def test_a_change_goes_to_a_host_that_already_shows_it(attached: Cli) -> None:
    agent(attached, H1).networks["red"]["mtu"] = 9000  # changed by hand on h1
    before = len(setup_calls(attached, H1))
    code, doc = attached.json("network", "update", "red", "--mtu", "9000")
    assert code == 0 and doc["planned"] == 2
    assert len(setup_calls(attached, H1)) == before + 1
    assert setup_calls(attached, H1)[-1]["red"]["mtu"] == 9000


def test_a_change_back_reaches_the_host_that_missed_the_first(attached: Cli) -> None:
    lost = attached.transport.agents.pop(H2)
    assert attached("network", "update", "red", "--mtu", "9000") == 1
    # h2's last capabilities (1500) happen to match the next definition; it is still asked.
    code, doc = attached.json("network", "update", "red", "--mtu", "1500")
    assert code == 1 and doc["planned"] == 2
    assert {h["host"]: h["ok"] for h in doc["hosts"]} == {"h1": True, "h2": False}
    attached.transport.add(H2, lost)
    # Back, h2 reports 1500 itself: in sync, nothing left to send.
    code, doc = attached.json("network", "update", "red", "--mtu", "1500")
    assert code == 0 and doc["hosts"] == []


def test_agent_error_is_a_failed_host(attached: Cli) -> None:
    agent(attached, H1).fail_setup = (41, "kernel refused: RTM_NEWLINK: Operation not supported")
    code, doc = attached.json("network", "update", "red", "--mtu", "1400")
    assert code == 1
    (h1,) = [h for h in doc["hosts"] if h["host"] == "h1"]
    assert not h1["ok"] and "kernel refused" in h1["failure"]
    assert any(
        "failed to update red changes on host h1 due to: kernel refused" in e
        for e in attached.events()
    )


def test_connectivity_loss_is_rolled_back_and_failed(attached: Cli) -> None:
    agent(attached, H1).drop_confirm = True
    assert attached("--timeout", "1", "network", "update", "red", "--mtu", "1400") == 1
    assert agent(attached, H1).networks["red"]["mtu"] == 1500  # rolled back
    assert agent(attached, H2).networks["red"]["mtu"] == 1400


def test_sync_repairs_drift_seen_on_host(attached: Cli) -> None:
    agent(attached, H1).networks["red"]["mtu"] = 1280  # someone changed the host
    _, doc = attached.json("host", "list")
    rows = {r["name"]: r for r in doc}
    # The shape docs/engine-cli.md gives for `host list --json`.
    assert set(rows["h1"]) == {
        "name", "url", "dc", "reachable", "error", "agent_version", "out_of_sync"}
    assert set(rows["h1"]["out_of_sync"][0]) == {
        "network", "differences", "differs", "last_error"}
    assert rows["h1"]["reachable"] and rows["h1"]["agent_version"] == "0.1.0"
    assert rows["h1"]["out_of_sync"][0]["network"] == "red"
    assert rows["h1"]["out_of_sync"][0]["differences"] == [
        {"key": "mtu", "expected": 1500, "found": 1280}
    ]
    assert rows["h1"]["out_of_sync"][0]["differs"] == "mtu: expected 1500, found 1280"
    assert rows["h2"]["out_of_sync"] == []
    assert attached("sync", "--network", "red") == 0
    assert agent(attached, H1).networks["red"]["mtu"] == 1500
    _code, doc = attached.json("host", "list")
    assert all(r["out_of_sync"] == [] for r in doc)


def test_host_list_unreachable(attached: Cli) -> None:
    attached.transport.agents.pop(H2)
    agent(attached, H1).networks["red"]["mtu"] = 1280  # drift on h1
    assert attached("host", "list") == 0
    lines = attached.out.splitlines()
    # Readable at 80 columns: the table's cells are short, the reasons below it, wrapped.
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["name", "dc", "url", "reachable", "version", "out", "of", "sync"]
    assert lines[1].split() == ["h1", "dc1", H1, "yes", "0.1.0", "1"]
    assert lines[2].split() == ["h2", "dc1", H2, "no", "-", "-"]
    notes = " ".join(line.strip() for line in lines[3:] if line)
    assert "h1: out of sync: red" in notes
    assert f"h2: unreachable: cannot connect to {H2}" in notes
    assert attached("host", "refresh", "h2") == 1


def test_host_list_counts_what_an_unreachable_host_missed(attached: Cli) -> None:
    attached.transport.agents.pop(H2)
    assert attached("network", "update", "red", "--mtu", "9000") == 1  # h2 missed it
    assert attached("host", "list") == 0
    lines = attached.out.splitlines()
    # The table and the note below it agree: one network out of sync on h2.
    assert lines[2].split() == ["h2", "dc1", H2, "no", "-", "1"]
    notes = " ".join(line.strip() for line in lines[3:] if line)
    assert "h2: out of sync: red" in notes


# -- DC version gate -----------------------------------------------------------------------


def test_old_dc_gets_event_and_no_host_calls(cli: Cli) -> None:
    assert cli("dc", "add", "old", "--version", "3.0") == 0
    assert cli("host", "add", "h1", H1, "--dc", "old") == 0
    assert cli("network", "add", "blue", "--dc", "old") == 0
    assert cli("network", "attach", "blue", "h1", "--nic", "eth1") == 0
    assert cli("network", "update", "blue", "--mtu", "9000") == 0
    expected = (
        "blue network changes will not be applied to data center: old due to "
        "unsupported data center version."
    )
    assert cli.events() == [expected, expected]
    assert expected in cli.err
    # The JSON says why nothing was sent, not that every host is in sync (SPEC 2.3).
    code, doc = cli.json("network", "update", "blue", "--mtu", "1400")
    assert code == 0 and doc["unsupported_dc"] == "old" and "message" not in doc, doc
    assert [e["message"] for e in doc["events"]] == [expected]
    assert setup_calls(cli, H1) == []
    with cli.store() as s:
        assert not in_sync(s, "h1", "blue")  # never read from the host


# -- §2.4 refusals through the CLI ----------------------------------------------------------


def test_rename_attached_refused(attached: Cli) -> None:
    assert attached("network", "update", "red", "--rename", "blue") == 2
    assert "Renaming a network which is configured on hosts is not supported." in attached.err
    with attached.store() as s:
        assert s.find_network("red") is not None


def test_rename_unattached_allowed(dc: Cli) -> None:
    assert dc("network", "update", "red", "--rename", "blue") == 0
    assert dc.json("network", "list")[1][0]["name"] == "blue"


def test_vm_to_non_vm_refused(attached: Cli) -> None:
    assert attached("vm", "add", "tmpl", "--network", "red", "--template") == 0
    assert attached("network", "update", "red", "--no-vm") == 2
    assert (
        "Changing a VM network to a non-VM network is not permitted while VMs or templates "
        "are using it."
    ) in attached.err
    assert attached("vm", "remove", "tmpl") == 0
    assert attached("network", "update", "red", "--no-vm") == 0
    assert setup_calls(attached, H1)[-1]["red"]["bridged"] is False


def test_running_vm_in_store_refused(attached: Cli) -> None:
    assert attached("vm", "add", "vm1", "--network", "red", "--running") == 0
    calls = len(setup_calls(attached, H1))
    assert attached("network", "update", "red", "--mtu", "9000") == 2
    assert (
        "Changing a VM network's properties while running VMs are using it is not permitted."
    ) in attached.err
    assert len(setup_calls(attached, H1)) == calls
    with attached.store() as s:
        assert s.get_network("red").mtu == 1500


def test_tap_on_host_bridge_refused(attached: Cli) -> None:
    agent(attached, H2).add_tap("red", "vnet7")
    assert attached("network", "update", "red", "--vlan", "300") == 2
    assert "running VMs are using it" in attached.err


# -- detach, remove ---------------------------------------------------------------------------


def test_detach(attached: Cli) -> None:
    assert attached("network", "detach", "red", "h1") == 0
    assert setup_calls(attached, H1)[-1] == {"red": {"remove": True}}
    assert "red" not in agent(attached, H1).networks
    with attached.store() as s:
        assert [a.host for a in s.list_attachments(network="red")] == ["h2"]


def test_remove_everywhere_then_store(attached: Cli) -> None:
    lost = attached.transport.agents.pop(H2)
    assert attached("network", "remove", "red") == 1
    with attached.store() as s:  # kept while a host still has it
        assert [a.host for a in s.list_attachments(network="red")] == ["h2"]
        assert s.find_network("red") is not None
    # Listed with the hosts that still carry it by network list and status (SPEC 2.3).
    assert attached("network", "list") == 0 and "removing, still on h2" in attached.out
    code, doc = attached.json("status")
    [red] = doc["networks"]
    assert (red["state"], red["being_removed"], red["hosts"]) == ("removing", 1, ["h2"])
    assert attached("status") == 0
    [row] = [line for line in attached.out.splitlines() if line.startswith("red ")]
    assert row.split()[1:] == ["removing", "1", "0", "1", "(h2)"], row
    attached.transport.add(H2, lost)
    code, doc = attached.json("network", "remove", "red")
    assert code == 0 and doc["updated"] == 1
    assert "red" not in lost.networks
    with attached.store() as s:
        assert s.find_network("red") is None


def test_remove_used_by_vm_refused(attached: Cli) -> None:
    assert attached("vm", "add", "vm1", "--network", "red") == 0
    assert attached("network", "remove", "red") == 2
    assert "used by vm1" in attached.err


# -- stats, events, pki ----------------------------------------------------------------------


def test_stats(attached: Cli) -> None:
    code, doc = attached.json("stats", "h1", "red")
    assert code == 0
    assert set(doc["networks"]) == {"red"} and isinstance(doc["networks"]["red"]["rx"], int)
    assert attached("stats", "h1") == 0 and "red" in attached.out
    attached.transport.agents.pop(H1)
    assert attached("stats", "h1") == 1


def test_events_by_correlation_id(attached: Cli) -> None:
    _, doc = attached.json("events")
    cids = {e["correlation_id"] for e in doc}
    assert len(cids) == 2
    one = sorted(cids)[0]
    _code, doc = attached.json("events", "--correlation-id", one)
    assert {e["correlation_id"] for e in doc} == {one} and len(doc) == 2
    assert attached("events") == 0 and "applying network red" in attached.out


def test_pki_commands(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert cli("pki", "init", str(d)) == 0
    code, doc = cli.json("pki", "issue", str(d), "agent1", "--ip", "10.9.0.1", "--dns", "h1")
    assert code == 0 and doc["cert"] == str(d / "agent1.pem")
    assert cli("pki", "issue", str(d), "x", "--ip", "nope") == 2
    assert "ip: expected an IPv4 or IPv6 address, got 'nope'" in cli.err
    if not str(cli.db).startswith("postgresql://"):
        assert not Path(cli.db).exists()  # pki needs no store


def test_db_after_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "after.db"
    assert main(["dc", "add", "x", "--version", "4.2", "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["dc", "list", "--json", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "x", "version": "4.2"}]


# -- status (docs/engine-cli.md) -------------------------------------------------------------------


def test_status_counts_unreachable_hosts_out_of_sync_and_rollouts(attached: Cli) -> None:
    agent(attached, H1).networks["red"]["mtu"] = 1280  # drift on h1
    lost = attached.transport.agents.pop(H2)
    code, doc = attached.json("status")
    assert code == 0
    assert doc["hosts"]["total"] == 2 and doc["hosts"]["reachable"] == ["h1"]
    [down] = doc["hosts"]["unreachable"]
    assert down["name"] == "h2" and "cannot connect" in down["error"]
    [red] = doc["networks"]
    # h1 drifted; h2 is judged from what it last reported (in sync).
    assert (red["state"], red["attachments"], red["out_of_sync"], red["hosts"]) == (
        "defined",
        2,
        1,
        ["h1"],
    )
    assert [(r["network"], r["action"], r["result"]) for r in doc["rollouts"]] == [
        ("red", "apply", "done"),
        ("red", "apply", "done"),
    ]
    assert attached("network", "update", "red", "--mtu", "9000") == 1
    _, doc = attached.json("status")
    assert doc["rollouts"][-1]["result"] == "partial"
    assert doc["rollouts"][-1]["updated"] == 1 and doc["rollouts"][-1]["planned"] == 2
    attached.transport.add(H2, lost)
    assert attached("status") == 0
    assert "hosts: 2 of 2 reachable" in attached.out
    assert "partial" in attached.out


def test_a_network_held_by_another_engine_client_is_left_alone_exit_3(attached: Cli) -> None:
    # The other engine-client stays connected (on PostgreSQL, a holder whose session ended
    # holds nothing).
    other = Store.open(attached.db)
    other.acquire_leases(["red"], LeaseHolder("cid-other", machine="elsewhere", pid=1), ttl=60)
    before = len(setup_calls(attached, H1)) + len(setup_calls(attached, H2))
    for argv in (
        ("network", "update", "red", "--mtu", "9000"),
        ("network", "remove", "red"),
        ("network", "detach", "red", "h1"),
        ("sync",),
    ):
        assert attached(*argv) == 3, argv
        assert attached.err.startswith(
            "error: network red is being changed by another engine-client "
            "(correlation id cid-other, since "
        ), attached.err
    assert len(setup_calls(attached, H1)) + len(setup_calls(attached, H2)) == before
    with attached.store() as s:
        assert s.get_network("red").mtu == 1500 and not s.get_network("red").removing
        assert len(s.list_attachments(network="red")) == 2
    other.release_leases("cid-other")
    other.close()
    assert attached("network", "update", "red", "--mtu", "9000") == 0


def test_postgresql_errors_say_what_to_do(
    pg_server: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that is down, a wrong password, a database that does not exist: exit 2 and
    one line that says what to do; the password is never printed."""
    url = pg_server.create_db("errors")
    down = f"postgresql://engine:pw@/errors?host={tmp_path}&port=5432"
    cases = {
        down: "cannot connect",
        pg_server.url("errors", password="wrong-secret"): "password authentication failed "
        "for user engine: check the user and password",
        pg_server.url("no_such_db"): "the database does not exist: create it",
    }
    for location, said in cases.items():
        assert main(["--db", location, "dc", "list"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
        assert err.startswith("error: PostgreSQL database ")
        assert "wrong-secret" not in err and "engine-secret" not in err
    assert main(["--db", url, "dc", "list"]) == 0


def test_sqlite_users_do_not_load_psycopg(tmp_path: Path) -> None:
    code = (
        "import sys; from engine_client.cli import main; "
        f"main(['--db', {str(tmp_path / 'e.db')!r}, 'dc', 'list']); "
        "print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out


# -- the attachment's own IP settings (docs/engine-cli.md "Addresses") --------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ip", "10.0.0.300/24"], "--ip: expected ADDR/PREFIX"),
        (["--ip", "10.0.0.5"], "--ip: expected ADDR/PREFIX (e.g. 10.0.0.5/24 or 2001:db8::5/64), "
         "got '10.0.0.5'"),
        (["--ip", "10.0.0.5/33"], "got '10.0.0.5/33'"),
        (["--ip", "127.0.0.5/8"], "--ip: 127.0.0.5 cannot be a host's static address"),
        (["--ip", "fe80::5/64"], "--ip: fe80::5 cannot be a host's static address"),
        (["--gateway", "10.0.0.1"], "--gateway: '10.0.0.1' needs a static --ip"),
        (["--dhcp", "--gateway", "10.0.0.1"], "--gateway: '10.0.0.1' needs a static --ip "
         "(DHCP brings its own)"),
        (["--dhcp", "--ip", "10.0.0.5/24"], "--dhcp: conflicts with --ip '10.0.0.5/24'"),
        (["--ip", "10.0.0.5/24", "--gateway", "10.0.1.1"],
         "--gateway: '10.0.1.1' is not in the subnet of --ip 10.0.0.5/24 (10.0.0.0/24)"),
        (["--ip", "10.0.0.5/24", "--gateway", "nope"],
         "--gateway: expected an IP address, got 'nope'"),
        (["--ip", "2001:db8::5/64", "--gateway", "10.0.0.1"],
         "--gateway: an IPv4 gateway '10.0.0.1' for the IPv6 --ip 2001:db8::5/64"),
        (["--ip", "10.0.0.5/24", "--gateway", "10.0.0.5"],
         "--gateway: '10.0.0.5' is the host's own --ip address"),
        (["--ip", "10.0.0.0/24"], "--ip: 10.0.0.0 is the network address of 10.0.0.0/24"),
        (["--ip", "10.0.0.255/24"], "--ip: 10.0.0.255 is the broadcast address of 10.0.0.0/24"),
        (["--ip", "2001:db8::5/64", "--gateway", "2001:db9::1"],
         "--gateway: '2001:db9::1' is not in the subnet of --ip 2001:db8::5/64"),
    ],
)
def test_attach_bad_ip_options_change_nothing(
    dc: Cli, options: list[str], message: str
) -> None:
    assert dc("network", "attach", "red", "h1", "--nic", "eth1", *options) == 2
    assert message in dc.err
    assert not setup_calls(dc, H1)
    with dc.store() as s:
        assert s.list_attachments() == []


def test_attach_ipv6_gateway_may_be_link_local_and_ipv4_a_netmask(dc: Cli) -> None:
    assert dc(
        "network", "attach", "red", "h1", "--nic", "eth1",
        "--ip", "2001:db8::5/64", "--gateway", "FE80::1",
    ) == 0  # fmt: skip
    assert setup_calls(dc, H1)[-1]["red"]["ipv6gateway"] == "fe80::1"
    netmask = ["--ip", "10.1.2.3/255.255.0.0"]
    assert dc("network", "attach", "red", "h2", "--nic", "eth2", *netmask) == 0
    assert setup_calls(dc, H2)[-1]["red"]["prefix"] == 16
    with dc.store() as s:
        assert s.get_attachment("h2", "red").ip.address == "10.1.2.3/16"


def test_attach_isolated_with_ip_refused(dc: Cli) -> None:
    assert dc("network", "add", "iso", "--dc", "dc1") == 0
    assert dc("network", "attach", "iso", "h1", "--isolated", "--ip", "10.0.0.5/24") == 2
    assert "networks.iso: an isolated network (host h1) takes no IP settings" in dc.err
    assert not setup_calls(dc, H1)


def test_attach_ip_is_sent_to_that_host_only_and_stored(dc: Cli) -> None:
    assert dc(
        "network", "attach", "red", "h1", "--nic", "eth1",
        "--ip", "10.0.0.5/24", "--gateway", "10.0.0.1",
    ) == 0  # fmt: skip
    assert dc("network", "attach", "red", "h2", "--nic", "eth2", "--ip", "2001:DB8::6/64") == 0
    assert setup_calls(dc, H1) == [
        {"red": {"nic": "eth1", "vlan": 100, "mtu": 1500, "bridged": True,
                 "ipaddr": "10.0.0.5", "prefix": 24, "gateway": "10.0.0.1"}}
    ]  # fmt: skip
    assert setup_calls(dc, H2) == [
        {"red": {"nic": "eth2", "vlan": 100, "mtu": 1500, "bridged": True,
                 "ipv6addr": "2001:db8::6/64"}}
    ]  # fmt: skip
    with dc.store() as s:
        assert s.get_attachment("h1", "red").ip == IpSettings("static", "10.0.0.5/24", "10.0.0.1")
        assert s.get_attachment("h2", "red").ip == IpSettings("static", "2001:db8::6/64")
        assert in_sync(s, "h1", "red") and in_sync(s, "h2", "red")
    # Every later rollout sends each host its own address with the new definition.
    assert dc("network", "update", "red", "--mtu", "9000") == 0
    assert setup_calls(dc, H1)[-1]["red"] == {
        "nic": "eth1", "vlan": 100, "mtu": 9000, "bridged": True,
        "ipaddr": "10.0.0.5", "prefix": 24, "gateway": "10.0.0.1",
    }  # fmt: skip
    assert setup_calls(dc, H2)[-1]["red"]["ipv6addr"] == "2001:db8::6/64"


def test_reattach_changes_or_removes_the_ip_and_dhcp(dc: Cli) -> None:
    assert dc("network", "attach", "red", "h1", "--nic", "eth1", "--ip", "10.0.0.5/24") == 0
    assert dc("network", "attach", "red", "h1", "--nic", "eth1", "--dhcp") == 0
    assert setup_calls(dc, H1)[-1]["red"]["bootproto"] == "dhcp"
    assert "ipaddr" not in setup_calls(dc, H1)[-1]["red"]
    _, doc = dc.json("network", "show", "red")
    assert doc["hosts"][0]["attached"] == "nic eth1, dhcp"
    assert doc["hosts"][0]["in_sync"]
    # Re-run without --ip/--dhcp: the attachment is stated whole, so no address.
    assert dc("network", "attach", "red", "h1", "--nic", "eth1") == 0
    assert setup_calls(dc, H1)[-1] == {
        "red": {"nic": "eth1", "vlan": 100, "mtu": 1500, "bridged": True}
    }
    with dc.store() as s:
        assert s.get_attachment("h1", "red").ip == IpSettings()


def test_address_removed_behind_the_agent_is_out_of_sync_naming_it(dc: Cli) -> None:
    assert dc(
        "network", "attach", "red", "h1", "--nic", "eth1",
        "--ip", "10.0.0.5/24", "--gateway", "10.0.0.1",
    ) == 0  # fmt: skip
    red = agent(dc, H1).networks["red"]
    del red["ipaddr"], red["prefix"], red["gateway"]  # the host lost its address
    _, doc = dc.json("network", "show", "red")
    row = doc["hosts"][0]
    assert not row["in_sync"]
    assert row["differences"] == [
        {"key": "ipv4_boot_protocol", "expected": "static", "found": "none"},
        {"key": "ipv4_address", "expected": "10.0.0.5/24", "found": None},
        {"key": "ipv4_gateway", "expected": "10.0.0.1", "found": None},
    ]
    assert "ipv4_address: expected 10.0.0.5/24, found none" in row["differs"]
    assert dc("sync") == 0
    assert agent(dc, H1).networks["red"]["ipaddr"] == "10.0.0.5"
    with dc.store() as s:
        assert in_sync(s, "h1", "red")


def test_an_address_another_host_has_on_the_network_is_refused(dc: Cli) -> None:
    assert dc("network", "attach", "red", "h1", "--nic", "eth1", "--ip", "10.0.0.5/24") == 0
    assert dc("network", "attach", "red", "h2", "--nic", "eth2", "--ip", "10.0.0.5/16") == 2
    assert "--ip: 10.0.0.5 is already the address of host h1 on network red" in dc.err
    assert not setup_calls(dc, H2)
    # Re-attaching h1 with its own address is no conflict.
    assert dc("network", "attach", "red", "h1", "--nic", "eth1", "--ip", "10.0.0.5/24") == 0


def test_reattach_with_an_ip_makes_a_label_attachment_manual_and_keeps_the_address(
    dc: Cli,
) -> None:
    assert dc("network", "update", "red", "--label", "lab") == 0
    assert dc("label", "add", "h1", "lab", "--nic", "eth1") == 0
    with dc.store() as s:
        assert s.get_attachment("h1", "red").via_label == "lab"
    assert dc("network", "attach", "red", "h1", "--nic", "eth1", "--ip", "10.0.0.5/24") == 0
    with dc.store() as s:
        att = s.get_attachment("h1", "red")
    # Made by hand now (as any attach over a label's attachment): the label no longer owns it.
    assert (att.via_label, att.ip.address) == (None, "10.0.0.5/24")
    assert setup_calls(dc, H1)[-1]["red"]["ipaddr"] == "10.0.0.5"
    agent(dc, H1).networks["red"]["mtu"] = 1280
    assert dc("sync") == 0
    assert setup_calls(dc, H1)[-1]["red"]["ipaddr"] == "10.0.0.5"
    assert dc("label", "remove", "h1", "lab", "--nic", "eth1") == 0
    with dc.store() as s:
        assert s.get_attachment("h1", "red").ip.address == "10.0.0.5/24"


def test_user_list_gives_times_with_their_zone(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    assert cli("user", "add", "admin") == 0
    code, doc = cli.json("user", "list")
    assert code == 0 and [u["name"] for u in doc] == ["admin"]
    # As every other time the client prints: ISO 8601 with the zone's offset.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", doc[0]["created"])
