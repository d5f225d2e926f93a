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
