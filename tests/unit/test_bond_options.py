"""The bonding option table: sysfs spellings, netlink numbers, defaults."""

from __future__ import annotations

import pytest

from vdsm_net.kernel import bond_options as bo


def test_canonical_accepts_names_and_numbers() -> None:
    assert bo.canonical("mode", "4") == "802.3ad"
    assert bo.canonical("mode", "active-backup") == "active-backup"
    assert bo.canonical("xmit_hash_policy", "1") == "layer3+4"
    assert bo.canonical("miimon", "0100") == "100"
    assert bo.canonical("primary", "eth1") == "eth1"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("mode", "7", "mode: expected one of"),
        ("mode", "fast", "'fast'"),
        ("miimon", "-1", "miimon: expected an integer 0-2147483647"),
        ("use_carrier", "2", "use_carrier: expected 0 or 1"),
        ("nosuch", "1", "unknown bonding option 'nosuch'"),
    ],
)
def test_canonical_names_field_and_value(name: str, value: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        bo.canonical(name, value)


def test_normalize_fills_every_option() -> None:
    got = bo.normalize({"mode": "1", "miimon": "100"})
    assert set(got) == bo.OPTION_NAMES == set(bo.DEFAULTS)
    assert (got["mode"], got["miimon"], got["lacp_rate"]) == ("active-backup", "100", "slow")


def test_arp_monitoring_turns_mii_monitoring_off() -> None:
    assert bo.normalize({"arp_interval": "200"})["miimon"] == "0"


def test_numbers_round_trip() -> None:
    for name in bo.ENUMS:
        for value in bo.ENUMS[name]:
            assert bo.from_number(name, bo.to_number(name, value)) == value
    assert bo.from_number("mode", 42) == "42"
    assert bo.to_number("miimon", "250") == 250


def test_modes_without_arp_monitoring_get_the_kernels_default_miimon() -> None:
    # The kernel sets miimon=100 when one of these modes is set while miimon is 0.
    for mode in ("802.3ad", "balance-tlb", "balance-alb", "4"):
        assert bo.normalize({"mode": mode})["miimon"] == "100"
        assert bo.normalize({"mode": mode, "miimon": "0"})["miimon"] == "0"
    assert bo.normalize({"mode": "active-backup"})["miimon"] == "0"
