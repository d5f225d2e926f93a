"""The raw netlink encoders and the ACK decoder, checked against pyroute2's own codec (no
kernel: the kernel tests in tests/kernel/test_backend.py send them for real)."""

from __future__ import annotations

import errno
import struct

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from vdsm_net.kernel import constants as c
from vdsm_net.kernel import route_socket as netlink


def decoded(req: netlink.Request) -> ifinfmsg:
    header = struct.pack("=IHHII", 16 + len(req.payload), req.msg_type, req.flags, 1, 0)
    msg = ifinfmsg(header + req.payload)
    msg.decode()
    return msg


def test_a_vlan_create_reads_back_in_pyroute2() -> None:
    attrs = (
        netlink.nla_str(c.IFLA_IFNAME, "eth0.100")
        + netlink.nla_u32(c.IFLA_GROUP, 0x564E)
        + netlink.nla_u32(c.IFLA_LINK, 7)
        + netlink.nla_u32(c.IFLA_MTU, 9000)
        + netlink.linkinfo("vlan", netlink.nla_u16(1, 100))
    )
    req = netlink.link_request(index=42, create=True, attrs=attrs)
    assert req.msg_type == c.RTM_NEWLINK
    assert req.flags == c.NLM_F_REQUEST | c.NLM_F_ACK | 0x400 | 0x200
    msg = decoded(req)
    assert msg["index"] == 42
    assert msg.get_attr("IFLA_IFNAME") == "eth0.100"
    assert (msg.get_attr("IFLA_GROUP"), msg.get_attr("IFLA_LINK")) == (0x564E, 7)
    assert msg.get_attr("IFLA_MTU") == 9000
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "vlan"
    assert info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_VLAN_ID") == 100


def test_up_and_down_touch_only_iff_up() -> None:
    up, down, neither = (
        decoded(netlink.link_request(index=3, up=u)) for u in (True, False, None)
    )
    assert (up["flags"], up["change"]) == (1, 1)
    assert (down["flags"], down["change"]) == (0, 1)
    assert (neither["flags"], neither["change"]) == (0, 0)


def test_attributes_are_padded_to_four_bytes() -> None:
    for name in ("a", "ab", "abc", "abcd", "br-with-long"):
        assert len(netlink.nla_str(c.IFLA_IFNAME, name)) % 4 == 0
    assert netlink.nla_u16(1, 100) == struct.pack("=HHH", 6, 1, 100) + b"\0\0"


def test_an_error_ack_carries_the_code_and_the_kernel_message() -> None:
    text = b"Invalid MTU\0"
    tlv = struct.pack("=HH", 4 + len(text), c.NLMSGERR_ATTR_MSG) + text
    tlv += b"\0" * (-len(tlv) % 4)
    body = struct.pack("=i", -errno.EINVAL) + struct.pack("=IHHII", 32, 16, 5, 9, 0) + tlv
    data = struct.pack("=IHHII", 16 + len(body), c.NLMSG_ERROR,
                       c.NLM_F_ACK_TLVS, 9, 0) + body
    ack = netlink._parse_ack(data, 0, len(data), c.NLM_F_ACK_TLVS, True)
    assert (ack.code, ack.message) == (errno.EINVAL, "Invalid MTU")
    assert ack.reason() == "Invalid MTU (Invalid argument)"
    ok = struct.pack("=IHHII", 36, c.NLMSG_ERROR, 0, 9, 0) + b"\0" * 20
    assert netlink._parse_ack(ok, 0, len(ok), 0, True) == netlink.Ack(0)


def test_batches_are_cut_by_count_and_by_size() -> None:
    small = [netlink.link_request(index=i, up=True) for i in range(300)]
    chunks = list(netlink._chunks(small))
    assert [len(c) for c in chunks] == [128, 128, 44]
    big = [netlink.link_request(index=1, attrs=b"\0" * 4000) for _ in range(20)]
    sizes = [len(c) for c in netlink._chunks(big)]
    assert sum(sizes) == 20 and max(sizes) <= 8
    assert [r for c in netlink._chunks(small) for r in c] == small
