from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path

import pytest

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.journal import Journal
from vdsm_net.state import Device, Route, make_state

SNAPSHOT = make_state(
    [
        Device("eth1", "", 9000, True, master="bond0"),
        Device("bond0", "bond", 9000, True, owned=True,
               bond_options={"mode": "active-backup", "miimon": "100"}, mac="02:00:00:00:00:01"),
        Device("red", "bridge", 9000, True, owned=True, stp=True,
               ipv4=frozenset({IPv4Interface("192.0.2.1/24")}),
               ipv6=frozenset({IPv6Interface("2001:db8::1/64")})),
        Device("bond0.7", "vlan", 9000, True, master="red", owned=True, vlan_base="bond0",
               vlan_id=7),
    ],
    {Route(4, IPv4Address("192.0.2.254"), "red"),
     Route(6, IPv6Address("2001:db8::fe"), "red", table=0x10000001)},
)


def test_record_then_pending_round_trips(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.pending() is None
    journal.record(SNAPSHOT, "cid-1")
    assert journal.pending() == SNAPSHOT
    journal.clear()
    assert journal.pending() is None
    journal.clear()  # clearing nothing is fine


def test_unreadable_journal_is_an_error_naming_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.path.write_text('{"version": 1, "before": {"devices": [{"name": 1}]}')
    with pytest.raises(NetError) as err:
        journal.pending()
    assert err.value.kind == ErrorKind.KERNEL
    assert str(journal.path) in err.value.message
