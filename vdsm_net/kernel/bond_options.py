"""Linux bonding options the agent reads and writes, spelled as sysfs spells them.

Pure (no pyroute2, no I/O): the request parser validates with ``canonical``, the renderer fills a
bond's desired options with ``normalize``, and the backend maps them to ``IFLA_BOND_*``
numbers. The backend reports exactly ``OPTION_NAMES`` for every bond, so a desired bond
must carry the same keys: ``normalize`` adds the kernel defaults for the missing ones.
"""

from __future__ import annotations

import ipaddress
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
    "arp_all_targets": ("any", "all"),
    "lacp_active": ("off", "on"),
}
# Integers and their ranges (the kernel's bond_opt_value tables / checks in bond_options.c).
_INT_MAX = 2**31 - 1
INT_RANGES: Mapping[str, tuple[int, int]] = {
    "miimon": (0, _INT_MAX),
    "updelay": (0, _INT_MAX),
    "downdelay": (0, _INT_MAX),
    "arp_interval": (0, _INT_MAX),
    "min_links": (0, _INT_MAX),
    "resend_igmp": (0, 255),
    "num_grat_arp": (0, 255),
    "lp_interval": (1, _INT_MAX),
    "packets_per_slave": (0, 65535),
    "peer_notif_delay": (0, 300000),
    "ad_actor_sys_prio": (1, 65535),
    "ad_user_port_key": (0, 1023),
    "arp_missed_max": (1, 255),
}
INTS = frozenset(INT_RANGES)
BOOLS = frozenset({"all_slaves_active", "use_carrier", "tlb_dynamic_lb"})
# The name of a slave, "" for none. Netlink reports it only while that slave is enslaved.
PRIMARY = "primary"
# Lists of addresses, comma-separated as VDSM writes them ("192.0.2.1,192.0.2.2"); netlink
# carries them as a nest that replaces the whole list; at most 16 (BOND_MAX_ARP_TARGETS,
# BOND_MAX_NS_TARGETS).
ARP_IP_TARGET = "arp_ip_target"
NS_IP6_TARGET = "ns_ip6_target"
ADDRESS_LISTS: Mapping[str, int] = {ARP_IP_TARGET: 4, NS_IP6_TARGET: 6}
MAX_TARGETS = 16
# A MAC address: the LACP system id (802.3ad).
AD_ACTOR_SYSTEM = "ad_actor_system"
# sysfs has two names for one kernel value (IFLA_BOND_NUM_PEER_NOTIF): the request keeps
# the first, the read-back reports both.
ALIASES: Mapping[str, str] = {"num_unsol_na": "num_grat_arp"}

OPTION_NAMES = frozenset({*ENUMS, *INTS, *BOOLS, PRIMARY, *ADDRESS_LISTS, AD_ACTOR_SYSTEM,
                          *ALIASES})

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
    "arp_all_targets": "any",
    "primary_reselect": "always",
    "all_slaves_active": "0",
    "use_carrier": "1",
    "primary": "",
    "resend_igmp": "1",
    "num_grat_arp": "1",
    "num_unsol_na": "1",
    "lp_interval": "1",
    "packets_per_slave": "1",
    "tlb_dynamic_lb": "1",
    "peer_notif_delay": "0",
    "ad_actor_sys_prio": "65535",
    "ad_user_port_key": "0",
    "ad_actor_system": "00:00:00:00:00:00",
    "arp_missed_max": "2",
    "lacp_active": "on",
    "arp_ip_target": "",
    "ns_ip6_target": "",
}



def canonical(name: str, value: str) -> str:
    """The sysfs spelling of one option value (``mode=4`` -> ``802.3ad``, an address list
    comma-joined in its addresses' canonical form).

    Raises ValueError naming the option and the value when either is unknown or bad.
    """
    if name in ENUMS:
        names = ENUMS[name]
        if value in names:
            return value
        if value.isdigit() and int(value) < len(names):
            return names[int(value)]
        raise ValueError(f"{name}: expected one of {', '.join(names)}, got {value!r}")
    if name in INTS:
        low, high = INT_RANGES[name]
        if value.isascii() and value.isdigit() and low <= int(value) <= high:
            return str(int(value))
        raise ValueError(f"{name}: expected an integer {low}-{high}, got {value!r}")
    if name in BOOLS:
        if value in ("0", "1"):
            return value
        raise ValueError(f"{name}: expected 0 or 1, got {value!r}")
    if name == PRIMARY:
        return value
    if name in ADDRESS_LISTS:
        return _address_list(name, value)
    if name == AD_ACTOR_SYSTEM:
        return _mac(name, value)
    if name in ALIASES:
        return canonical(ALIASES[name], value)
    raise ValueError(f"unknown bonding option {name!r} (known: {', '.join(sorted(OPTION_NAMES))})")


def _address_list(name: str, value: str) -> str:
    family = ADDRESS_LISTS[name]
    kind = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    out: list[str] = []
    for text in value.split(",") if value else ():
        try:
            address = kind(text)
        except ValueError:
            raise ValueError(f"{name}: bad IPv{family} address {text!r} in {value!r}") from None
        if address.is_unspecified or address.is_multicast or (
            family == 4 and address == ipaddress.IPv4Address("255.255.255.255")
        ):
            raise ValueError(f"{name}: {text!r} cannot be a target")
        if str(address) in out:
            raise ValueError(f"{name}: {text!r} is listed twice")
        out.append(str(address))
    if len(out) > MAX_TARGETS:
        raise ValueError(f"{name}: at most {MAX_TARGETS} targets, got {len(out)}")
    return ",".join(out)


def _mac(name: str, value: str) -> str:
    parts = value.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and _is_hex(p) for p in parts):
        raise ValueError(f"{name}: expected a MAC address xx:xx:xx:xx:xx:xx, got {value!r}")
    return value.lower()


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdefABCDEF" for ch in text)


def addresses(name: str, value: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of a canonical address-list option value."""
    return [ipaddress.ip_address(a) for a in value.split(",")] if value else []


def normalize(options: Mapping[str, str]) -> dict[str, str]:
    """Every option in ``OPTION_NAMES``: the given ones canonicalised, the rest defaulted.

    Mirrors the kernel's own adjustments so that a desired bond compares equal to the bond
    the kernel builds from it: ARP monitoring and MII monitoring exclude each other
    (setting ``arp_interval`` turns ``miimon`` off).
    """
    out = dict(DEFAULTS)
    for name, value in options.items():
        out[ALIASES.get(name, name)] = canonical(name, value)
    for alias, name in ALIASES.items():
        out[alias] = out[name]
    if int(out["arp_interval"]) > 0:
        out["miimon"] = "0"  # the kernel applies miimon first, then arp_interval turns it off
    if out["mode"] in _MII_ONLY_MODES and "miimon" not in options:
        # bond_option_mode_set(): these modes cannot use ARP monitoring, and the kernel
        # turns MII monitoring on (BOND_DEFAULT_MIIMON) when it was off.
        out["miimon"] = "100"
    return out


_MII_ONLY_MODES = frozenset({"802.3ad", "balance-tlb", "balance-alb"})


def to_number(name: str, value: str) -> int:
    """The netlink integer for an enum/int/bool option value (not ``primary``, not the
    address lists nor ``ad_actor_system``)."""
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
    "arp_all_targets": (c.IFLA_BOND_ARP_ALL_TARGETS, "=I"),
    "resend_igmp": (c.IFLA_BOND_RESEND_IGMP, "=I"),
    "num_grat_arp": (c.IFLA_BOND_NUM_PEER_NOTIF, "=B"),
    "lp_interval": (c.IFLA_BOND_LP_INTERVAL, "=I"),
    "packets_per_slave": (c.IFLA_BOND_PACKETS_PER_SLAVE, "=I"),
    "ad_actor_sys_prio": (c.IFLA_BOND_AD_ACTOR_SYS_PRIO, "=H"),
    "ad_user_port_key": (c.IFLA_BOND_AD_USER_PORT_KEY, "=H"),
    "tlb_dynamic_lb": (c.IFLA_BOND_TLB_DYNAMIC_LB, "=B"),
    "peer_notif_delay": (c.IFLA_BOND_PEER_NOTIF_DELAY, "=I"),
    "lacp_active": (c.IFLA_BOND_AD_LACP_ACTIVE, "=B"),
    "arp_missed_max": (c.IFLA_BOND_MISSED_MAX, "=B"),
}
# Options that are not one integer on the wire: a nest of addresses (replacing the whole
# list), a 6-byte MAC.
TEXT_ATTRS: Mapping[str, int] = {
    ARP_IP_TARGET: c.IFLA_BOND_ARP_IP_TARGET,
    NS_IP6_TARGET: c.IFLA_BOND_NS_IP6_TARGET,
    AD_ACTOR_SYSTEM: c.IFLA_BOND_AD_ACTOR_SYSTEM,
}
# Options the kernel changes only while the bond is down (BOND_OPTFLAG_IFDOWN).
CHANGED_WHILE_DOWN = frozenset({"mode", "lacp_rate", "ad_select", "tlb_dynamic_lb"})
# Monitors: a delay can only be set while MII monitoring is on, so monitors are switched on
# before the other options and off after them.
MONITORS = frozenset({"miimon", "arp_interval"})
