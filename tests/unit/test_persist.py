from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vdsm_net.model import BondConfig, NetConfig, NetworkConfig, frozen_map
from vdsm_net.persist import (
    StateFileError,
    StateStore,
    atomic_write,
    config_from_json,
    config_to_json,
    install,
)

RICH = NetConfig(
    networks=frozen_map({
        "red": NetworkConfig("red", nic="eth1", vlan=100, mtu=9000, stp=True,
                             ipv4="192.0.2.10/24", gateway="192.0.2.1",
                             ipv6="2001:db8::10/64", ipv6gateway="2001:db8::1",
                             default_route=True),
        "blue": NetworkConfig("blue", bonding="bond0", bridged=False),
        "iso": NetworkConfig("iso"),
        "dyn": NetworkConfig("dyn", nic="eth2", bootproto="dhcp"),
    }),
    bondings=frozen_map({
        "bond0": BondConfig("bond0", ("eth3", "eth4"),
                            frozen_map({"mode": "802.3ad", "miimon": "100"})),
    }),
)


def test_round_trip() -> None:
    doc = json.loads(json.dumps(config_to_json(RICH)))
    assert doc["version"] == 1
    assert config_from_json(doc) == RICH


def test_store_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load_running() == NetConfig()
    assert store.load_safe() is None
    store.save_running(RICH)
    store.save_safe(NetConfig())
    assert store.load_running() == RICH
    assert store.load_safe() == NetConfig()
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["running.json", "safe.json"]
    assert json.loads(store.running_path.read_text())["version"] == 1


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["f.json"]


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_running(RICH)
    stale = tmp_path / ".running.json.abc123.tmp"
    stale.write_text('{"torn')
    assert store.remove_stale_temporaries() == [stale]
    assert not stale.exists()
    assert store.load_running() == RICH


def test_bond_without_mode_gets_the_default_mode() -> None:
    doc = {"version": 1, "bondings": {"bond1": {"nics": ["eth1"], "options": "miimon=100"}}}
    bond = config_from_json(doc).bondings["bond1"]
    assert dict(bond.options) == {"mode": "balance-rr", "miimon": "100"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"version": 1, "networks": {', r"running\.json: invalid state file: Expecting"),
        (b"\xff\xfe", r"running\.json: invalid state file"),
        ("[]", r"\(top level\): expected an object, got \[\]"),
        ('{"networks": {}}', r"version: expected 1, got None"),
        ('{"version": 2}', r"version: expected 1, got 2"),
        ('{"version": 1, "extra": 1}', r"\(top level\)\.extra: unknown attribute"),
        ('{"version": 1, "networks": {"red": {"mtu": 1500, "bridged": true, "vlna": 5}}}',
         r"networks\.red\.vlna: unknown attribute \(value 5\)"),
        ('{"version": 1, "networks": {"red": {"mtu": "big", "bridged": true}}}',
         r'networks\.red\.mtu: expected 68-65535, got "big"'),
        ('{"version": 1, "networks": {"red": {"mtu": 1500, "bridged": "maybe"}}}',
         r'networks\.red\.bridged: expected a boolean, got "maybe"'),
        ('{"version": 1, "networks": {"red": {"mtu": 1500, "bridged": true, "vlan": true}}}',
         r"networks\.red\.vlan: expected 0-4094, got true"),
        ('{"version": 1, "networks": {"red": {"mtu": 1500, "bridged": true, "ipaddr": "1.2.3.4"}}}',
         r"networks\.red\.ipaddr: needs netmask or prefix"),
        ('{"version": 1, "networks": {"red": {"mtu": 1500, "bridged": true, "nic": "a",'
         ' "bonding": "bond0"}}}', r'networks\.red: nic "a" and bonding "bond0" are exclusive'),
        ('{"version": 1, "bondings": {"bond0": {"nics": "eth1"}}}',
         r'bondings\.bond0\.nics: expected a non-empty list of NIC names, got "eth1"'),
        ('{"version": 1, "bondings": {"bond0": {"nics": ["eth1"], "options": "mode"}}}',
         r'bondings\.bond0\.options: expected key=value, got "mode"'),
    ],
)
def test_bad_file_is_an_error_naming_file_and_field(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    store = StateStore(tmp_path)
    data = content if isinstance(content, bytes) else content.encode()
    store.running_path.write_bytes(data)
    with pytest.raises(StateFileError, match=expected) as info:
        store.load_running()
    assert str(store.running_path) in str(info.value)


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.safe_path.mkdir()  # reading a directory fails with EISDIR
    with pytest.raises(StateFileError, match=r"safe\.json: cannot read"):
        store.load_safe()


def test_staged_files_are_invisible_until_installed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_running(NetConfig())
    before = store.running_path.read_bytes()
    staged = store.stage_running(NetConfig(networks=frozen_map({})))
    assert store.running_path.read_bytes() == before and staged.tmp.exists()
    staged.discard()
    assert not staged.tmp.exists() and store.remove_stale_temporaries() == []


def test_a_failed_install_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.safe_path.mkdir()
    (store.safe_path / "in-the-way").write_text("")  # a non-empty directory cannot be replaced
    staged = store.stage_safe(NetConfig())
    with pytest.raises(StateFileError, match=r"safe\.json: cannot replace: ") as info:
        install([staged])
    assert info.value.code == 16
    staged.discard()


def test_an_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "file-not-dir" / "state")
    (tmp_path / "file-not-dir").write_text("")
    with pytest.raises(StateFileError, match=r"running\.json: cannot write: Not a directory"):
        store.save_running(NetConfig())
