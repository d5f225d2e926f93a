"""Linux bridge options as the kernel reports them over netlink, spelled as sysfs spells them.

VDSM reports a bridge's ``opts`` from ``/sys/class/net/<bridge>/bridge/``; the agent reads the
same values from the bridge's IFLA_INFO_DATA (one dump for every bridge, namespace-safe) and
prints them the way sysfs does (``net/bridge/br_sysfs_br.c``), so a VDSM client sees the same
strings. Pure: no I/O. Attribute numbers and widths: include/uapi/linux/if_link.h
(IFLA_BR_*), the fill order of ``br_fill_info`` in net/bridge/br_netlink.c.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType

# How a value is printed: decimal, sysfs's "%#x" / "%#06x", a MAC, a bridge id.
DEC, HEX, HEX4, MAC, BRIDGE_ID = "dec", "hex", "hex4", "mac", "id"

# IFLA_BR_* number -> (sysfs name, struct format, spelling). Clock_t values (the times and
# timers) are in 1/100 s on both sides, so they copy unchanged.
ATTRS: Mapping[int, tuple[str, str, str]] = MappingProxyType({
    1: ("forward_delay", "=I", DEC),
    2: ("hello_time", "=I", DEC),
    3: ("max_age", "=I", DEC),
    4: ("ageing_time", "=I", DEC),
    5: ("stp_state", "=I", DEC),
    6: ("priority", "=H", DEC),
    7: ("vlan_filtering", "=B", DEC),
    8: ("vlan_protocol", ">H", HEX4),
    9: ("group_fwd_mask", "=H", HEX),
    10: ("root_id", "8s", BRIDGE_ID),
    11: ("bridge_id", "8s", BRIDGE_ID),
    12: ("root_port", "=H", DEC),
    13: ("root_path_cost", "=I", DEC),
    14: ("topology_change", "=B", DEC),
    15: ("topology_change_detected", "=B", DEC),
    16: ("hello_timer", "=Q", DEC),
    17: ("tcn_timer", "=Q", DEC),
    18: ("topology_change_timer", "=Q", DEC),
    19: ("gc_timer", "=Q", DEC),
    20: ("group_addr", "6s", MAC),
    22: ("multicast_router", "=B", DEC),
    23: ("multicast_snooping", "=B", DEC),
    24: ("multicast_query_use_ifaddr", "=B", DEC),
    25: ("multicast_querier", "=B", DEC),
    26: ("hash_elasticity", "=I", DEC),
    27: ("hash_max", "=I", DEC),
    28: ("multicast_last_member_count", "=I", DEC),
    29: ("multicast_startup_query_count", "=I", DEC),
    30: ("multicast_last_member_interval", "=Q", DEC),
    31: ("multicast_membership_interval", "=Q", DEC),
    32: ("multicast_querier_interval", "=Q", DEC),
    33: ("multicast_query_interval", "=Q", DEC),
    34: ("multicast_query_response_interval", "=Q", DEC),
    35: ("multicast_startup_query_interval", "=Q", DEC),
    36: ("nf_call_iptables", "=B", DEC),
    37: ("nf_call_ip6tables", "=B", DEC),
    38: ("nf_call_arptables", "=B", DEC),
    39: ("default_pvid", "=H", DEC),
    41: ("vlan_stats_enabled", "=B", DEC),
    42: ("multicast_stats_enabled", "=B", DEC),
    43: ("multicast_igmp_version", "=B", DEC),
    44: ("multicast_mld_version", "=B", DEC),
    45: ("vlan_stats_per_port", "=B", DEC),
})
# IFLA_BR_MULTI_BOOLOPT: struct br_boolopt_multi {u32 optval; u32 optmask}; sysfs shows bit
# BR_BOOLOPT_NO_LL_LEARN as no_linklocal_learn.
MULTI_BOOLOPT = 46
NO_LL_LEARN_BIT = 0


def spell(number: int, payload: bytes) -> tuple[str, str] | None:
    """(sysfs name, sysfs text) of one IFLA_BR_* attribute; None for one sysfs lacks or a
    payload too short for its type."""
    if number == MULTI_BOOLOPT:
        if len(payload) < 4:
            return None
        (optval,) = struct.unpack_from("=I", payload)
        return "no_linklocal_learn", str(optval >> NO_LL_LEARN_BIT & 1)
    known = ATTRS.get(number)
    if known is None:
        return None
    name, fmt, how = known
    if len(payload) < struct.calcsize(fmt):
        return None
    (value,) = struct.unpack_from(fmt, payload)
    if how == HEX:
        return name, f"{value:#x}"
    if how == HEX4:
        return name, f"{value:#06x}"
    if how == MAC:
        return name, bytes(value).hex(":")
    if how == BRIDGE_ID:
        raw = bytes(value)
        return name, f"{raw[:2].hex()}.{raw[2:].hex()}"
    return name, str(value)


def as_sysfs(opts: Mapping[str, str]) -> dict[str, str]:
    """The options sysfs shows: a kernel without CONFIG_BRIDGE_VLAN_FILTERING still sends
    IFLA_BR_VLAN_FILTERING (always 0) but has no vlan_filtering file; such a kernel sends no
    IFLA_BR_VLAN_PROTOCOL, which tells the two apart."""
    out = dict(opts)
    if "vlan_protocol" not in out:
        out.pop("vlan_filtering", None)
    return out


# ---- setting options (``custom: {"bridge_opts": "k=v k=v"}``) -----------------------------

# Read-only state (ids, the root port, topology flags, the timers' remaining times), and
# hash_elasticity, which the kernel accepts and ignores since Linux 5.0 (it always reads 16).
READ_ONLY = frozenset({
    "root_id", "bridge_id", "root_port", "root_path_cost", "topology_change",
    "topology_change_detected", "hello_timer", "tcn_timer", "topology_change_timer",
    "gc_timer", "hash_elasticity",
})
NO_LL_LEARN = "no_linklocal_learn"
# sysfs name -> (IFLA_BR_* number, struct format, spelling) of every option one can set.
SETTABLE: Mapping[str, tuple[int, str, str]] = MappingProxyType({
    name: (number, fmt, how)
    for number, (name, fmt, how) in ATTRS.items()
    if name not in READ_ONLY
})
# Every option that a SetBridgeOptions may carry (stp_state is the network's ``stp``).
SETTABLE_NAMES = frozenset(SETTABLE) - {"stp_state"} | {"no_linklocal_learn"}
# Kept in times of 1/100 s (clock_t) but stored in jiffies: a value may read back one less
# (3125 reads 3124 at HZ=250), so these compare within one unit.
CLOCK_T = frozenset({
    "forward_delay", "hello_time", "max_age", "ageing_time", "multicast_last_member_interval",
    "multicast_membership_interval", "multicast_querier_interval", "multicast_query_interval",
    "multicast_query_response_interval", "multicast_startup_query_interval",
})
# What a new bridge reports (Linux 6.1 and 6.18): an option a network stops setting goes
# back to this.
DEFAULTS: Mapping[str, str] = MappingProxyType({
    "forward_delay": "1500", "hello_time": "200", "max_age": "2000", "ageing_time": "30000",
    "priority": "32768", "vlan_filtering": "0", "vlan_protocol": "0x8100",
    "group_fwd_mask": "0x0", "group_addr": "01:80:c2:00:00:00", "multicast_router": "1",
    "multicast_snooping": "1", "multicast_query_use_ifaddr": "0", "multicast_querier": "0",
    "hash_max": "4096", "multicast_last_member_count": "2",
    "multicast_startup_query_count": "2", "multicast_last_member_interval": "100",
    "multicast_membership_interval": "26000", "multicast_querier_interval": "25500",
    "multicast_query_interval": "12500", "multicast_query_response_interval": "1000",
    "multicast_startup_query_interval": "3125", "nf_call_iptables": "0",
    "nf_call_ip6tables": "0", "nf_call_arptables": "0", "default_pvid": "1",
    "vlan_stats_enabled": "0", "multicast_stats_enabled": "0", "multicast_igmp_version": "2",
    "multicast_mld_version": "1", "vlan_stats_per_port": "0", NO_LL_LEARN: "0",
})
STP_STATE = "stp_state"


def parse(text: str) -> dict[str, str]:
    """``"multicast_snooping=0 forward_delay=1500"`` -> {name: value as sysfs spells it},
    sorted. Raises ValueError naming the token, the option or the value."""
    out: dict[str, str] = {}
    for token in text.split():
        name, sep, value = token.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"expected key=value, got {token!r}")
        if name in out:
            raise ValueError(f"option {name} is given twice")
        out[name] = canonical(name, value)
    return dict(sorted(out.items()))


def canonical(name: str, value: str) -> str:
    """The sysfs spelling of a value for option ``name``; ValueError if it cannot be set."""
    if name in READ_ONLY:
        raise ValueError(f"bridge option {name} cannot be set (value {value!r})")
    if name == NO_LL_LEARN:
        return _number(name, value, 0, 1)
    known = SETTABLE.get(name)
    if known is None:
        raise ValueError(f"unknown bridge option {name!r} (value {value!r})")
    _, fmt, how = known
    if how == MAC:
        return _group_addr(name, value)
    high = 2 ** (8 * struct.calcsize(fmt)) - 1
    if name == STP_STATE:
        high = 1
    number = _number(name, value, 0, high)
    if how == HEX:
        return f"{int(number):#x}"
    if how == HEX4:
        return f"{int(number):#06x}"
    return number


def _number(name: str, value: str, low: int, high: int) -> str:
    """Decimal, or hexadecimal with 0x (sysfs reads these with kstrtoul base 0)."""
    text = value.lower()
    base = 10
    if text.startswith("0x"):
        text, base = text[2:], 16
    digits = "0123456789abcdef"[:base]
    if not text or len(text) > 20 or any(ch not in digits for ch in text):
        raise ValueError(f"{name}: bad value {value!r}")
    number = int(text, base)
    if not low <= number <= high:
        raise ValueError(f"{name}: expected {low}-{high}, got {value!r}")
    return str(number)


def _group_addr(name: str, value: str) -> str:
    parts = value.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                  for p in parts):
        raise ValueError(f"{name}: expected a MAC address, got {value!r}")
    return ":".join(parts)


def same(name: str, now: str | None, want: str) -> bool:
    """Whether the kernel's ``now`` is the wanted value (clock_t options within a jiffy)."""
    if now is None:
        return False
    if name in CLOCK_T and now.isdigit() and want.isdigit():
        return abs(int(now) - int(want)) <= 1
    return now == want


def encode(options: Mapping[str, str]) -> bytes:
    """The IFLA_BR_* attributes (IFLA_INFO_DATA of kind "bridge") that set ``options``."""
    out = b""
    for name, value in options.items():
        if name == NO_LL_LEARN:
            bit = 1 << NO_LL_LEARN_BIT
            out += _nla(MULTI_BOOLOPT, struct.pack("=II", bit if value == "1" else 0, bit))
            continue
        number, fmt, how = SETTABLE[name]
        if how == MAC:
            payload = bytes.fromhex(value.replace(":", ""))
        else:
            payload = struct.pack(fmt, int(value, 0))
        out += _nla(number, payload)
    return out


def _nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)
