"""Every number of vdsm_net.kernel.constants equals pyroute2's own (no kernel needed)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pyroute2.netlink as pr_netlink
import pyroute2.netlink.rtnl as pr_rtnl
import pyroute2.netlink.rtnl.ifaddrmsg as pr_ifaddr
import pyroute2.netlink.rtnl.ifinfmsg as pr_ifinf
from pyroute2.netlink.rtnl.ifinfmsg.plugins.bond import bond
from pyroute2.netlink.rtnl.ifinfmsg.plugins.vlan import vlan
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from vdsm_net.kernel import constants

# Attribute numbers are positions in pyroute2's nla maps; the longest prefix wins.
NLA_MAPS: Sequence[tuple[str, Sequence[tuple[str, str]]]] = (
    ("IFLA_INFO_", pr_ifinf.ifinfmsg.ifinfo.nla_map),
    ("IFLA_VLAN_", vlan.nla_map),
    ("IFLA_BR_", pr_ifinf.ifinfmsg.ifinfo.bridge_data.nla_map),
    ("IFLA_BOND_AD_INFO_", bond.ad_info.nla_map),
    ("IFLA_BOND_SLAVE_", pr_ifinf.ifinfmsg.ifinfo.bond_slave_data.nla_map),
    ("IFLA_BOND_", bond.nla_map),
    ("IFLA_", pr_ifinf.ifinfmsg.nla_map),
    ("IFA_", pr_ifaddr.ifaddrmsg.nla_map),
    ("RTA_", rtmsg.nla_map),
    ("TCA_", tcmsg.nla_map),
    ("NLMSGERR_ATTR_", pr_netlink.nlmsgerr.nla_map),
)
# Numbers pyroute2 has no name for, each checked another way below.
NOT_IN_PYROUTE2 = {"SO_RCVBUFFORCE", "NLA_TYPE_MASK", "ETH_MIN_MTU", "NETLINK_CAP_ACK",
                   "IFLA_INET6_CONF", "DEVCONF_ACCEPT_RA", "DEVCONF_AUTOCONF",
                   "IFLA_BOND_PEER_NOTIF_DELAY", "IFLA_BOND_AD_LACP_ACTIVE",
                   "IFLA_BOND_MISSED_MAX", "IFLA_BOND_NS_IP6_TARGET",
                   "ICMP_ECHOREPLY", "ICMP_ECHO", "ICMPV6_ECHO_REQUEST", "ICMPV6_ECHO_REPLY"}
# The uapi headers (linux-libc-dev, in the README's test set-up) for what pyroute2
# does not name.
UAPI = Path("/usr/include/linux")


def _ours() -> dict[str, int]:
    return {k: v for k, v in vars(constants).items() if k.isupper() and isinstance(v, int)}


def _pyroute2(name: str) -> int | None:
    for prefix, nla_map in NLA_MAPS:
        if name.startswith(prefix) and not name.startswith("IFA_F_"):
            names = [entry[0] for entry in nla_map]
            return names.index(name) if name in names else None
    if name.startswith("RTN_"):
        return int(pr_rtnl.rtypes[name])
    if name.startswith("RT_SCOPE_"):
        return int(pr_rtnl.rtscopes[name])
    for module in (pr_netlink, pr_rtnl, pr_ifinf, pr_ifaddr):
        value = getattr(module, name, None)
        if isinstance(value, int):
            return value
    return None


def test_every_number_is_pyroute2s() -> None:
    unchecked = []
    for name, value in _ours().items():
        theirs = _pyroute2(name)
        if theirs is None:
            unchecked.append(name)
        else:
            assert value == theirs, f"{name}: ours {value}, pyroute2 {theirs}"
    assert set(unchecked) == NOT_IN_PYROUTE2


def test_the_few_pyroute2_lacks() -> None:
    # linux/netlink.h numbers the socket options in a row; pyroute2 names its neighbours.
    assert constants.NETLINK_CAP_ACK == pr_netlink.NETLINK_EXT_ACK - 1
    flag_bits = pr_netlink.NLA_F_NESTED | pr_netlink.NLA_F_NET_BYTEORDER
    mask = ~flag_bits & 0xFFFF
    assert mask == constants.NLA_TYPE_MASK
    assert (constants.SO_RCVBUFFORCE, constants.ETH_MIN_MTU) == (33, 68)
    # linux/if_link.h IFLA_INET6_CONF, linux/ipv6.h DEVCONF_ACCEPT_RA and DEVCONF_AUTOCONF:
    # pyroute2 decodes the devconf array by field position, not by these names.
    assert (constants.IFLA_INET6_CONF, constants.DEVCONF_ACCEPT_RA,
            constants.DEVCONF_AUTOCONF) == (2, 3, 5)
    # linux/if_link.h: the bonding attributes after pyroute2's last (IFLA_BOND_TLB_DYNAMIC_LB).
    last = len(bond.nla_map) - 1
    assert bond.nla_map[last][0] == "IFLA_BOND_TLB_DYNAMIC_LB"
    ours = (constants.IFLA_BOND_PEER_NOTIF_DELAY, constants.IFLA_BOND_AD_LACP_ACTIVE,
            constants.IFLA_BOND_MISSED_MAX, constants.IFLA_BOND_NS_IP6_TARGET)
    assert ours == (last + 1, last + 2, last + 3, last + 4)


def test_operstates_are_pyroute2s_in_lower_case() -> None:
    codes = pr_ifinf.state_by_code
    assert tuple(codes[i].lower() for i in range(len(codes))) == constants.OPERSTATES


def test_icmp_types_are_the_uapi_headers() -> None:
    defined: dict[str, int] = {}
    for header in ("icmp.h", "icmpv6.h"):
        text = (UAPI / header).read_text()
        for name, value in re.findall(r"^#define\s+(ICMP\w+)\s+(\d+)\b", text, re.M):
            defined[name] = int(value)
    ours = {k: v for k, v in _ours().items() if k.startswith("ICMP")}
    assert len(ours) == 4
    for name, value in ours.items():
        assert defined.get(name) == value, f"{name}: ours {value}, {UAPI} {defined.get(name)}"
