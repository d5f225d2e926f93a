"""Network labels (docs/engine-cli.md) end to end through the engine-client CLI over in-process fake
agents: which attachments labels make, that a label change provisions or removes exactly those
through the rollout path (events, correlation id, summary), and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from engine_client.models import Attachment
from tests.enginecli import in_sync
from tests.unit.engine.fakeagent import FakeAgent, FakeTransport
from tests.unit.engine.test_cli import Cli

H1, H2, H3 = "https://10.9.0.1:54321", "https://10.9.0.2:54321", "https://10.9.0.3:54321"
H_OTHER = "https://10.9.1.1:54321"


class BondAgent(FakeAgent):
    """A host that reports bond0 (the fake agent builds no bonds itself)."""

    def caps(self) -> dict[str, Any]:
        doc = super().caps()
        doc["bondings"] = {
            "bond0": {"slaves": ["eth1", "eth2"], "opts": {}, "mtu": 1500, "active_slave": ""}
        }
        return doc


@pytest.fixture
def transport() -> FakeTransport:
    t = FakeTransport()
    t.add(H1, FakeAgent("h1"))
    t.add(H2, FakeAgent("h2"))
    t.add(H3, BondAgent("h3"))
    t.add(H_OTHER, FakeAgent("other"))
    return t


@pytest.fixture
def cli(
    store_location: str, transport: FakeTransport, capsys: pytest.CaptureFixture[str]
) -> Cli:
    c = Cli(store_location, transport, capsys)
    assert c("dc", "add", "dc1", "--version", "4.7") == 0
    assert c("dc", "add", "dc2", "--version", "4.7") == 0
    for name, url in (("h1", H1), ("h2", H2), ("h3", H3)):
        assert c("host", "add", name, url, "--dc", "dc1") == 0
    assert c("host", "add", "other", H_OTHER, "--dc", "dc2") == 0
    return c


def agent(cli: Cli, url: str) -> FakeAgent:
    return cli.transport.agents[url]


def setups(cli: Cli, url: str) -> list[dict[str, Any]]:
    return [c.params["networks"] for c in agent(cli, url).methods("Host.setupNetworks")]


def attachments(cli: Cli, network: str) -> dict[str, Attachment]:
    with cli.store() as s:
        return {a.host: a for a in s.list_attachments(network=network)}


def synced(cli: Cli, network: str) -> dict[str, bool]:
    """Per host: is the attachment in sync, as every command judges it."""
    with cli.store() as s:
        return {a.host: in_sync(s, a.host, network) for a in s.list_attachments(network=network)}


def ok(cli: Cli, *argv: str) -> None:
    code = cli(*argv)
    assert code == 0, f"{argv}: exit {code}\n{cli.out}\n{cli.err}"


def refused(cli: Cli, *argv: str, message: str) -> None:
    code = cli(*argv)
    assert code == 2, f"{argv}: exit {code}\n{cli.out}\n{cli.err}"
    assert message in cli.err, cli.err


# -- which attachments a label makes ----------------------------------------------------------


def test_host_label_provisions_isolated_network(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--mtu", "9000", "--label", "lab")
    assert attachments(cli, "iso") == {}  # no host carries the label yet
    code, doc = cli.json("label", "add", "h1", "lab")
    assert code == 0
    # Isolated: no uplink, no VLAN, only the MTU of the definition.
    assert setups(cli, H1) == [{"iso": {"mtu": 9000, "bridged": True}}]
    assert agent(cli, H1).caps()["networks"]["iso"]["isolated"] is True
    assert agent(cli, H1).safe == agent(cli, H1).networks  # made safe, as in docs/engine-cli.md
    att = attachments(cli, "iso")["h1"]
    assert (att.isolated, att.via_label, synced(cli, "iso")["h1"]) == (True, "lab", True)
    assert doc["action"] == "label add" and doc["host"] == "h1" and doc["nic"] is None
    [net] = doc["networks"]
    assert (net["network"], net["planned"], net["updated"]) == ("iso", 1, 1)
    cid = doc["correlation_id"]
    with cli.store() as s:
        assert [e.message for e in s.list_events(correlation_id=cid)] == [
            "1/1 applying network iso on host h1",
            "1/1 network iso were updated on host h1",
        ]
    assert {c.correlation_id for c in agent(cli, H1).calls if c.method != "Host.getCapabilities"}
    assert setups(cli, H2) == []


def test_isolated_network_takes_no_vlan(cli: Cli) -> None:
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--vlan", "100", "--label", "lab")
    assert setups(cli, H1) == [{"iso": {"mtu": 1500, "bridged": True}}]


def test_host_label_skips_non_vm_network(cli: Cli) -> None:
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "network", "add", "mgmt", "--dc", "dc1", "--no-vm", "--label", "lab")
    assert setups(cli, H1) == []
    assert attachments(cli, "mgmt") == {}


def test_nic_label_provisions_network_on_that_nic(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1", "--vlan", "100", "--label", "lab")
    ok(cli, "label", "add", "h2", "lab", "--nic", "eth2")
    assert setups(cli, H2) == [{"red": {"nic": "eth2", "vlan": 100, "mtu": 1500, "bridged": True}}]
    att = attachments(cli, "red")["h2"]
    assert (att.nic, att.isolated, att.via_label) == ("eth2", False, "lab")
    assert "label lab added to nic eth2 of host h2" in cli.out
    assert "1/1 network red were updated on host h2" in cli.err


def test_nic_label_on_a_bond(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1", "--vlan", "100", "--label", "lab")
    ok(cli, "label", "add", "h3", "lab", "--nic", "bond0")
    assert setups(cli, H3) == [
        {"red": {"bonding": "bond0", "vlan": 100, "mtu": 1500, "bridged": True}}
    ]
    assert attachments(cli, "red")["h3"].bond == "bond0"


def test_network_add_with_label_provisions_every_labelled_host_at_once(cli: Cli) -> None:
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h2", "lab", "--nic", "eth1")
    ok(cli, "label", "add", "other", "lab")  # another data center: never
    code, doc = cli.json("network", "add", "blue", "--dc", "dc1", "--label", "lab")
    assert code == 0
    assert doc["name"] == "blue" and doc["label"] == "lab"
    [push] = doc["networks"]
    assert (push["planned"], push["updated"]) == (2, 2)
    assert setups(cli, H1) == [{"blue": {"mtu": 1500, "bridged": True}}]
    assert setups(cli, H2) == [{"blue": {"nic": "eth1", "mtu": 1500, "bridged": True}}]
    assert setups(cli, H_OTHER) == [] and setups(cli, H3) == []
    # One correlation id for the whole command, on every host.
    cids = {
        c.correlation_id
        for url in (H1, H2)
        for c in agent(cli, url).calls
        if c.method == "Host.setupNetworks"
    }
    assert cids == {doc["correlation_id"]}


def test_network_add_without_label_touches_no_host(cli: Cli) -> None:
    code, doc = cli.json("network", "add", "plain", "--dc", "dc1")
    assert code == 0 and doc["networks"] == [] and doc["correlation_id"] is None
    assert all(setups(cli, url) == [] for url in (H1, H2, H3))


def test_label_add_twice_changes_nothing(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h1", "lab")
    assert len(setups(cli, H1)) == 1


# -- a manual attachment is never the label's -------------------------------------------------


def test_label_never_takes_over_a_manual_attachment(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1", "--label", "lab")
    ok(cli, "network", "attach", "red", "h1", "--nic", "eth1")
    ok(cli, "label", "add", "h1", "lab")
    assert len(setups(cli, H1)) == 1  # the attach only
    ok(cli, "label", "remove", "h1", "lab")
    assert len(setups(cli, H1)) == 1
    att = attachments(cli, "red")["h1"]
    assert (att.nic, att.via_label) == ("eth1", None)


def test_label_removal_removes_only_what_it_made(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "network", "add", "iso2", "--dc", "dc1", "--label", "lab")
    ok(cli, "network", "add", "manual", "--dc", "dc1")
    ok(cli, "network", "attach", "manual", "h1", "--isolated")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h2", "lab")
    assert set(agent(cli, H1).networks) == {"iso", "iso2", "manual"}
    code, doc = cli.json("label", "remove", "h1", "lab")
    assert code == 0
    assert [n["network"] for n in doc["networks"]] == ["iso", "iso2"]
    assert set(agent(cli, H1).networks) == {"manual"}
    assert setups(cli, H1)[-2:] == [{"iso": {"remove": True}}, {"iso2": {"remove": True}}]
    assert set(agent(cli, H2).networks) == {"iso", "iso2"}  # h2 keeps its label's networks
    assert set(attachments(cli, "iso")) == {"h2"}
    assert set(attachments(cli, "manual")) == {"h1"}
    with cli.store() as s:
        assert s.list_host_labels(host="h1") == []


def test_manual_attach_over_label_attachment_makes_it_manual(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "network", "attach", "iso", "h1", "--isolated")
    assert attachments(cli, "iso")["h1"].via_label is None
    ok(cli, "label", "remove", "h1", "lab")
    assert "iso" in agent(cli, H1).networks


def test_detach_of_label_attachment_refused(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    refused(
        cli,
        "network",
        "detach",
        "iso",
        "h1",
        message="networks.iso: attached to host h1 by label lab",
    )
    assert "iso" in agent(cli, H1).networks


# -- network update re-computes label attachments ---------------------------------------------


def test_update_mtu_reaches_every_labelled_host(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    for host in ("h1", "h2"):
        ok(cli, "label", "add", host, "lab")
    code, doc = cli.json("network", "update", "iso", "--mtu", "9000")
    assert code == 0
    assert (doc["planned"], doc["updated"]) == (2, 2)
    for url in (H1, H2):
        assert setups(cli, url)[-1] == {"iso": {"mtu": 9000, "bridged": True}}
    assert setups(cli, H3) == []


def test_update_label_moves_attachments(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1", "--vlan", "10", "--label", "a")
    ok(cli, "network", "attach", "red", "h3", "--nic", "eth1")  # manual: stays
    ok(cli, "label", "add", "h1", "a")
    ok(cli, "label", "add", "h2", "b", "--nic", "eth2")
    assert set(attachments(cli, "red")) == {"h1", "h3"}
    code, doc = cli.json("network", "update", "red", "--label", "b")
    assert code == 0
    # Removals first (a NIC slot must be free before it is reused), then additions.
    assert [(n["network"], [h["host"] for h in n["hosts"]]) for n in doc["networks"]] == [
        ("red", ["h1"]),
        ("red", ["h2"]),
    ]
    assert "red" not in agent(cli, H1).networks
    assert agent(cli, H2).networks["red"] == {
        "nic": "eth2",
        "vlan": 10,
        "mtu": 1500,
        "bridged": True,
    }
    atts = attachments(cli, "red")
    assert set(atts) == {"h2", "h3"}
    assert atts["h2"].via_label == "b" and atts["h3"].via_label is None
    calls_h3 = len(setups(cli, H3))
    ok(cli, "network", "update", "red", "--no-label")
    assert set(attachments(cli, "red")) == {"h3"}
    assert "red" not in agent(cli, H2).networks
    assert len(setups(cli, H3)) == calls_h3


def test_update_label_kept_in_place_is_only_relabelled(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1", "--label", "a")
    ok(cli, "label", "add", "h1", "a", "--nic", "eth1")
    ok(cli, "label", "add", "h1", "b", "--nic", "eth1")
    assert len(setups(cli, H1)) == 1
    ok(cli, "network", "update", "red", "--label", "b")
    assert len(setups(cli, H1)) == 1  # same NIC: nothing to send
    assert attachments(cli, "red")["h1"].via_label == "b"


def test_update_to_non_vm_drops_isolated_label_attachments(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h2", "lab", "--nic", "eth1")
    ok(cli, "network", "update", "red", "--no-vm")
    assert "red" not in agent(cli, H1).networks
    assert agent(cli, H2).networks["red"] == {"nic": "eth1", "mtu": 1500, "bridged": False}
    assert set(attachments(cli, "red")) == {"h2"}
    ok(cli, "network", "update", "red", "--vm")
    assert agent(cli, H1).networks["red"] == {"mtu": 1500, "bridged": True}
    assert set(attachments(cli, "red")) == {"h1", "h2"}


# -- refusals: nothing written, nothing sent --------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["label", "add", "h1", "bad label"],
            "label: expected 1-50 letters, digits, '_' or '-', got",
        ),
        (["label", "add", "h1", "x" * 51], "label: expected 1-50"),
        (["label", "add", "h1", "lab", "--nic", "a/b"], 'nic: bad device name "a/b"'),
        (["label", "add", "nohost", "lab"], "no host 'nohost'"),
        (["label", "remove", "h1", "nolabel"], "host 'h1' has no label 'nolabel'"),
        (["network", "add", "n", "--dc", "dc1", "--label", "a:b"], "label: expected"),
    ],
)
def test_bad_input(cli: Cli, argv: list[str], message: str) -> None:
    refused(cli, *argv, message=message)


def test_label_on_host_and_nic_of_one_host_refused(cli: Cli) -> None:
    ok(cli, "label", "add", "h1", "lab")
    refused(cli, "label", "add", "h1", "lab", "--nic", "eth1", message="already a label of host h1")
    ok(cli, "label", "add", "h2", "lab", "--nic", "eth1")
    refused(cli, "label", "add", "h2", "lab", message="already the label of nic eth1 on host h2")
    refused(
        cli,
        "label",
        "add",
        "h2",
        "lab",
        "--nic",
        "eth2",
        message="already the label of nic eth1 on host h2",
    )


def test_slot_conflict_refused_and_nothing_written(cli: Cli) -> None:
    ok(cli, "network", "add", "red", "--dc", "dc1")
    ok(cli, "network", "attach", "red", "h1", "--nic", "eth1")
    ok(cli, "network", "add", "blue", "--dc", "dc1", "--label", "lab")
    refused(
        cli,
        "label",
        "add",
        "h1",
        "lab",
        "--nic",
        "eth1",
        message="networks.blue: eth1 (untagged) on host h1 already carries network red",
    )
    with cli.store() as s:
        assert s.list_nic_labels(host="h1") == []
    assert set(attachments(cli, "blue")) == set()
    assert len(setups(cli, H1)) == 1


def test_label_removal_refused_while_vms_use_the_bridge(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    agent(cli, H1).add_tap("iso", "vnet0")
    refused(
        cli,
        "label",
        "remove",
        "h1",
        "lab",
        message="networks.iso: removing it from host h1 is not permitted while VMs are using "
        "it (bridge ports vnet0)",
    )
    refused(
        cli,
        "network",
        "update",
        "iso",
        "--no-label",
        message="removing it from host h1 is not permitted while VMs",
    )
    refused(cli, "network", "update", "iso", "--no-vm", message="Changing a VM network to a non-VM")
    with cli.store() as s:
        assert s.list_host_labels(host="h1")[0].label == "lab"
        assert s.get_network("iso").label == "lab"
    assert "iso" in agent(cli, H1).networks


# -- failures go through the rollout path; sync finishes the job ------------------------------


def test_failed_label_removal_is_finished_by_sync(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h2", "lab")
    h1 = agent(cli, H1)
    h1.fail_setup = (41, "kernel said no")
    code, doc = cli.json("label", "remove", "h1", "lab")
    assert code == 1
    [push] = doc["networks"]
    assert (push["planned"], push["updated"], push["failed"]) == (1, 0, 1)
    with cli.store() as s:
        events = [e.message for e in s.list_events(correlation_id=doc["correlation_id"])]
        assert s.list_host_labels(host="h1") == []  # the label is gone ...
    assert "1 are planned to be updated, however only 0 could be updated." in events
    assert any("failed to update iso changes on host h1 due to" in m for m in events)
    att = attachments(cli, "iso")["h1"]  # ... its attachment stays until h1 removes it
    assert att.via_label == "lab" and "kernel said no" in (att.last_error or "")
    assert "iso" in h1.networks
    h1.fail_setup = None
    code, doc = cli.json("sync")
    assert code == 0
    assert "iso" not in h1.networks
    assert set(attachments(cli, "iso")) == {"h2"}
    assert len(setups(cli, H2)) == 1  # in sync: not sent again


def test_partly_failed_network_remove_is_not_undone_by_its_label(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h2", "lab")
    lost = cli.transport.agents.pop(H2)
    assert cli("network", "remove", "iso") == 1
    assert "iso" not in agent(cli, H1).networks
    cli.transport.add(H2, lost)
    ok(cli, "sync")
    # h1 does not get it back; h2, whose removal failed, loses it now.
    assert "iso" not in agent(cli, H1).networks and "iso" not in lost.networks
    assert attachments(cli, "iso") == {}
    with cli.store() as s:  # sync finished the removal: no host carries it any more
        assert s.find_network("iso") is None


def test_unreachable_host_gets_its_label_network_on_sync(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    lost = cli.transport.agents.pop(H1)
    assert cli("label", "add", "h1", "lab") == 1
    assert "h1" not in attachments(cli, "iso")  # recorded once the host has applied it
    cli.transport.add(H1, lost)
    ok(cli, "sync")
    assert lost.networks == {"iso": {"mtu": 1500, "bridged": True}}
    assert synced(cli, "iso")["h1"]


def test_old_dc_records_without_pushing(cli: Cli) -> None:
    ok(cli, "dc", "add", "old", "--version", "3.0")
    cli.transport.add("https://10.9.2.1:54321", FakeAgent("o1"))
    ok(cli, "host", "add", "o1", "https://10.9.2.1:54321", "--dc", "old")
    ok(cli, "network", "add", "iso", "--dc", "old", "--label", "lab")
    ok(cli, "label", "add", "o1", "lab")
    assert setups(cli, "https://10.9.2.1:54321") == []
    assert "iso network changes will not be applied to data center: old" in cli.err
    ok(cli, "label", "remove", "o1", "lab")
    assert attachments(cli, "iso") == {}


# -- list and statistics ----------------------------------------------------------------------


def test_label_list(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "network", "add", "red", "--dc", "dc1", "--label", "up")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h1", "up", "--nic", "eth1")
    code, doc = cli.json("label", "list", "h1")
    assert code == 0
    assert doc == [
        {"host": "h1", "label": "lab", "nic": None, "networks": ["iso"], "attached": ["iso"]},
        {"host": "h1", "label": "up", "nic": "eth1", "networks": ["red"], "attached": ["red"]},
    ]
    ok(cli, "label", "list")
    assert "nic eth1" in cli.out and "lab" in cli.out
    ok(cli, "network", "show", "red")
    assert "nic eth1 (label up)" in cli.out


def test_stats_of_isolated_and_nic_networks(cli: Cli) -> None:
    ok(cli, "network", "add", "iso", "--dc", "dc1", "--label", "lab")
    ok(cli, "network", "add", "red", "--dc", "dc1", "--label", "up")
    ok(cli, "label", "add", "h1", "lab")
    ok(cli, "label", "add", "h1", "up", "--nic", "eth1")
    for name in ("iso", "red"):
        code, doc = cli.json("stats", "h1", name)
        assert code == 0
        assert set(doc["networks"]) == {name}
        assert all(isinstance(doc["networks"][name][k], int) for k in ("rx", "tx", "rxErrors"))
    refused(cli, "stats", "h2", "iso", message="network 'iso' is not attached to host 'h2'")
