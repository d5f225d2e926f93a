"""Linux bonding options the agent reads and writes, spelled as sysfs spells them.

Pure (no pyroute2, no I/O): the request parser validates with ``canonical``, the renderer fills a
bond's desired options with ``normalize``, and the backend maps them to ``IFLA_BOND_*``
numbers. The backend reports exactly ``OPTION_NAMES`` for every bond, so a desired bond
must carry the same keys: ``normalize`` adds the kernel defaults for the missing ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from vdsm_net.kernel import constants as c

# Enumerated options: the kernel's number for each name is its position in the tuple
# (drivers/net/bonding/bond_options.c).
ENUMS: Mapping[str, tuple[str, ...]] = {
    "mode": (
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "802.3ad",
        "balance-tlb",
        "balance-alb",
    ),
    "lacp_rate": ("slow", "fast"),
    "xmit_hash_policy": (
        "layer2",
        "layer3+4",
        "layer2+3",
        "encap2+3",
        "encap3+4",
        "vlan+srcmac",
    ),
    "ad_select": ("stable", "bandwidth", "count"),
    "fail_over_mac": ("none", "active", "follow"),
    "arp_validate": (
        "none",
        "active",
        "backup",
        "all",
        "filter",
        "filter_active",
        "filter_backup",
    ),
    "primary_reselect": ("always", "better", "failure"),
}
INTS = frozenset({"miimon", "updelay", "downdelay", "arp_interval", "min_links"})
BOOLS = frozenset({"all_slaves_active", "use_carrier"})
# The name of a slave, "" for none. Netlink reports it only while that slave is enslaved.
PRIMARY = "primary"

OPTION_NAMES = frozenset({*ENUMS, *INTS, *BOOLS, PRIMARY})

# What a bond created over netlink with no options reports on Linux 6.1 (measured in UML).
DEFAULTS: Mapping[str, str] = {
    "mode": "balance-rr",
    "miimon": "0",
    "updelay": "0",
    "downdelay": "0",
    "arp_interval": "0",
    "min_links": "0",
    "lacp_rate": "slow",
    "xmit_hash_policy": "layer2",
    "ad_select": "stable",
    "fail_over_mac": "none",
    "arp_validate": "none",
    "primary_reselect": "always",
    "all_slaves_active": "0",
    "use_carrier": "1",
    "primary": "",
}

_INT_MAX = 2**31 - 1


def canonical(name: str, value: str) -> str:
    """The sysfs spelling of one option value (``mode=4`` -> ``802.3ad``).

    Raises ValueError naming the option and the value when either is unknown.
    """
    if name in ENUMS:
        names = ENUMS[name]
        if value in names:
            return value
        if value.isdigit() and int(value) < len(names):
            return names[int(value)]
        raise ValueError(f"{name}: expected one of {', '.join(names)}, got {value!r}")
    if name in INTS:
        if value.isdigit() and int(value) <= _INT_MAX:
            return str(int(value))
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    if name in BOOLS:
        if value in ("0", "1"):
            return value
        raise ValueError(f"{name}: expected 0 or 1, got {value!r}")
    if name == PRIMARY:
        return value
    raise ValueError(f"unknown bonding option {name!r} (known: {', '.join(sorted(OPTION_NAMES))})")


def normalize(options: Mapping[str, str]) -> dict[str, str]:
    """Every option in ``OPTION_NAMES``: the given ones canonicalised, the rest defaulted.

    Mirrors the kernel's own adjustments so that a desired bond compares equal to the bond
    the kernel builds from it: ARP monitoring and MII monitoring exclude each other
    (setting ``arp_interval`` turns ``miimon`` off).
    """
    out = dict(DEFAULTS)
    for name, value in options.items():
        out[name] = canonical(name, value)
    if int(out["arp_interval"]) > 0:
        out["miimon"] = "0"  # the kernel applies miimon first, then arp_interval turns it off
    if out["mode"] in _MII_ONLY_MODES and "miimon" not in options:
        # bond_option_mode_set(): these modes cannot use ARP monitoring, and the kernel
        # turns MII monitoring on (BOND_DEFAULT_MIIMON) when it was off.
        out["miimon"] = "100"
    return out


_MII_ONLY_MODES = frozenset({"802.3ad", "balance-tlb", "balance-alb"})


def to_number(name: str, value: str) -> int:
    """The netlink integer for an enum/int/bool option value (not ``primary``)."""
    value = canonical(name, value)
    if name in ENUMS:
        return ENUMS[name].index(value)
    return int(value)


def from_number(name: str, number: int) -> str:
    """The sysfs spelling of a netlink integer; unknown enum numbers are kept as digits."""
    if name in ENUMS:
        names = ENUMS[name]
        return names[number] if 0 <= number < len(names) else str(number)
    return str(number)


# Option name -> IFLA_BOND_* attribute number and struct format (include/uapi/linux/if_link.h,
# the policy in drivers/net/bonding/bond_netlink.c). The kernel applies the attributes of one
# request in its own fixed order (mode first, then miimon, then the delays, ...), whatever
# their order in the message.
NETLINK_ATTRS: Mapping[str, tuple[int, str]] = {
    "mode": (c.IFLA_BOND_MODE, "=B"),
    "miimon": (c.IFLA_BOND_MIIMON, "=I"),
    "updelay": (c.IFLA_BOND_UPDELAY, "=I"),
    "downdelay": (c.IFLA_BOND_DOWNDELAY, "=I"),
    "use_carrier": (c.IFLA_BOND_USE_CARRIER, "=B"),
    "arp_interval": (c.IFLA_BOND_ARP_INTERVAL, "=I"),
    "arp_validate": (c.IFLA_BOND_ARP_VALIDATE, "=I"),
    "primary": (c.IFLA_BOND_PRIMARY, "=I"),
    "primary_reselect": (c.IFLA_BOND_PRIMARY_RESELECT, "=B"),
    "fail_over_mac": (c.IFLA_BOND_FAIL_OVER_MAC, "=B"),
    "xmit_hash_policy": (c.IFLA_BOND_XMIT_HASH_POLICY, "=B"),
    "all_slaves_active": (c.IFLA_BOND_ALL_SLAVES_ACTIVE, "=B"),
    "min_links": (c.IFLA_BOND_MIN_LINKS, "=I"),
    "lacp_rate": (c.IFLA_BOND_AD_LACP_RATE, "=B"),
    "ad_select": (c.IFLA_BOND_AD_SELECT, "=B"),
}
# Options the kernel changes only while the bond is down (BOND_OPTFLAG_IFDOWN).
CHANGED_WHILE_DOWN = frozenset({"mode", "lacp_rate", "ad_select"})
# Monitors: a delay can only be set while MII monitoring is on, so monitors are switched on
# before the other options and off after them.
MONITORS = frozenset({"miimon", "arp_interval"})
