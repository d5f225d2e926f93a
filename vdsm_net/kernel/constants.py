"""The kernel numbers the agent sends and reads, in one table.

Values are the kernel's uapi: include/uapi/linux/netlink.h, rtnetlink.h, if_link.h,
if_addr.h, if.h. ``tests/unit/test_kernel_constants.py`` checks every one against pyroute2's
own tables, so a typo here cannot hide.
"""

from __future__ import annotations

# -- the socket (linux/netlink.h, linux/socket.h) ------------------------------------------
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # an error ACK does not echo the whole request back
NETLINK_EXT_ACK = 11  # the kernel's explanation of a refusal comes with its code
NETLINK_GET_STRICT_CHK = 12  # dump requests are filtered as asked (Linux 4.20+)
SO_RCVBUFFORCE = 33  # asm-generic/socket.h: root may go past net.core.rmem_max

# -- message header ------------------------------------------------------------------------
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200  # in a NEW request; same bit as NLM_F_MATCH in a GET
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an ACK: the request is echoed as its header alone
NLM_F_ACK_TLVS = 0x200  # in an ACK: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

# -- rtnetlink message types ---------------------------------------------------------------
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
RTM_NEWQDISC = 36
RTM_GETQDISC = 38

# -- traffic control (linux/rtnetlink.h, linux/pkt_sched.h) --------------------------------
TCA_KIND = 1

# -- links (linux/if.h, linux/if_link.h) ---------------------------------------------------
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_STATS64 = 23
IFLA_AF_SPEC = 26
IFLA_GROUP = 27

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5

IFLA_VLAN_ID = 1
IFLA_BR_STP_STATE = 5

IFLA_BOND_MODE = 1
IFLA_BOND_ACTIVE_SLAVE = 2
IFLA_BOND_MIIMON = 3
IFLA_BOND_UPDELAY = 4
IFLA_BOND_DOWNDELAY = 5
IFLA_BOND_USE_CARRIER = 6
IFLA_BOND_ARP_INTERVAL = 7
IFLA_BOND_ARP_IP_TARGET = 8  # nested: one be32 IPv4 address per attribute
IFLA_BOND_ARP_VALIDATE = 9
IFLA_BOND_ARP_ALL_TARGETS = 10
IFLA_BOND_PRIMARY = 11
IFLA_BOND_PRIMARY_RESELECT = 12
IFLA_BOND_FAIL_OVER_MAC = 13
IFLA_BOND_XMIT_HASH_POLICY = 14
IFLA_BOND_RESEND_IGMP = 15
IFLA_BOND_NUM_PEER_NOTIF = 16  # sysfs num_grat_arp and num_unsol_na
IFLA_BOND_ALL_SLAVES_ACTIVE = 17
IFLA_BOND_MIN_LINKS = 18
IFLA_BOND_LP_INTERVAL = 19
IFLA_BOND_PACKETS_PER_SLAVE = 20
IFLA_BOND_AD_LACP_RATE = 21
IFLA_BOND_AD_SELECT = 22
IFLA_BOND_AD_INFO = 23  # nested, only while an 802.3ad aggregator is active
IFLA_BOND_AD_INFO_AGGREGATOR = 1  # u16
IFLA_BOND_AD_INFO_PARTNER_MAC = 5  # 6 bytes
IFLA_BOND_AD_ACTOR_SYS_PRIO = 24
IFLA_BOND_AD_USER_PORT_KEY = 25
IFLA_BOND_AD_ACTOR_SYSTEM = 26  # 6 bytes
IFLA_BOND_TLB_DYNAMIC_LB = 27
IFLA_BOND_PEER_NOTIF_DELAY = 28  # Linux 5.2
IFLA_BOND_AD_LACP_ACTIVE = 29  # Linux 5.15
IFLA_BOND_MISSED_MAX = 30  # Linux 5.18
IFLA_BOND_NS_IP6_TARGET = 31  # Linux 6.0; nested: one 16-byte IPv6 address per attribute
NLA_F_NESTED = 0x8000
IFLA_BOND_SLAVE_PERM_HWADDR = 4  # in a slave's IFLA_INFO_SLAVE_DATA; 6 bytes
IFLA_BOND_SLAVE_AD_AGGREGATOR_ID = 6  # u16, 802.3ad slaves only

# IFLA_AF_SPEC's AF_INET6 entry (linux/if_link.h): IFLA_INET6_CONF is the s32 devconf array,
# indexed by DEVCONF_* (linux/ipv6.h).
IFLA_INET6_CONF = 2
DEVCONF_ACCEPT_RA = 3
DEVCONF_AUTOCONF = 5

# IF_OPER_* (linux/if.h), by number, spelled as ``ip link`` spells them (lower case).
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

ETH_MIN_MTU = 68  # linux/if_ether.h

# -- addresses (linux/if_addr.h) -----------------------------------------------------------
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFA_F_NODAD = 0x02
IFA_F_PERMANENT = 0x80

# -- routes (linux/rtnetlink.h) ------------------------------------------------------------
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_TABLE = 15
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0

# -- ICMP echo (linux/icmp.h, linux/icmpv6.h): the connectivity probes' raw sockets ----------
ICMP_ECHOREPLY = 0
ICMP_ECHO = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
