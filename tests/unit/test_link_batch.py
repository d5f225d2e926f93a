"""The link batch (vdsm_net.kernel.batch) against a scripted socket: what is sent in which
``send``, how ACKs are matched and what a refusal says. No root, no kernel: the same
behaviour is covered against a real kernel by tests/kernel/test_backend.py."""

from __future__ import annotations

import errno

import pytest

from tests.scripted_socket import Kernel, ScriptedSocket, Sent, ack, get_answer
from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import constants as c
from vdsm_net.kernel import route_socket as rs
from vdsm_net.kernel.batch import LinkBatch, Refused
from vdsm_net.ops import CreateBridge, CreateVlan, SetMtu, SetUp
from vdsm_net.state import OWNED_GROUP


def ok(sent: Sent) -> list[bytes]:
    return [ack(sent)]


def batch_on(kernel: Kernel, index: dict[str, int] | None = None,
             ) -> tuple[LinkBatch, ScriptedSocket]:
    """A batch on a scripted socket that knows ``index`` (by default eth0=2, eth1=3)."""
    sock = ScriptedSocket(kernel)
    batch = LinkBatch(rs.RouteSocket(sock))
    batch.index = dict(index or {"eth0": 2, "eth1": 3})
    return batch, sock


def test_the_socket_asks_for_capped_extended_acks_and_strict_dumps() -> None:
    sock = ScriptedSocket(ok)
    rs.RouteSocket(sock)
    for option in (c.NETLINK_CAP_ACK, c.NETLINK_EXT_ACK, c.NETLINK_GET_STRICT_CHK):
        assert sock.options[(c.SOL_NETLINK, option)] == 1


def test_changes_are_queued_then_sent_in_one_send_and_acknowledged_in_order() -> None:
    batch, sock = batch_on(ok)
    batch.change(SetMtu("eth0", 9000), "eth0", attrs=rs.nla_u32(c.IFLA_MTU, 9000))
    batch.change(SetUp("eth1", True), "eth1", up=True)
    assert sock.sends == []  # nothing sent before a flush
    batch.flush()
    (sent,) = sock.sends
    assert [(s.index, s.attr("IFLA_MTU")) for s in sent] == [(2, 9000), (3, None)]
    assert (sent[1].msg["flags"], sent[1].msg["change"]) == (c.IFF_UP, c.IFF_UP)
    assert [s.seq for s in sent] == [1, 2]
    assert all(s.flags & c.NLM_F_ACK for s in sent)
    batch.flush()
    assert len(sock.sends) == 1  # an empty flush sends nothing


def test_a_refusal_names_its_op_with_the_kernels_message() -> None:
    def kernel(sent: Sent) -> list[bytes]:
        if sent.attr("IFLA_MTU") == 70000:
            return [ack(sent, errno.EINVAL, "MTU greater than device maximum")]
        return [ack(sent)]

    batch, sock = batch_on(kernel)
    op = SetMtu("eth0", 70000)
    batch.change(SetUp("eth1", True), "eth1", up=True)
    batch.change(op, "eth0", attrs=rs.nla_u32(c.IFLA_MTU, 70000))
    batch.change(SetUp("eth0", True), "eth0", up=True)
    with pytest.raises(NetError) as info:
        batch.flush()
    assert info.value.kind == ErrorKind.KERNEL
    assert info.value.message == (
        f"{op}: MTU greater than device maximum (Invalid argument)"
    )
    # The kernel ran the whole datagram: the request after the refused one was sent too.
    assert len(sock.requests) == 3


def test_a_refusal_without_a_message_says_strerror_and_enetdown_explains_vlans() -> None:
    batch, _ = batch_on(lambda sent: [ack(sent, errno.ENETDOWN)])
    op = SetUp("eth0.100", True)
    batch.index["eth0.100"] = 9
    batch.change(op, "eth0.100", up=True)
    with pytest.raises(NetError) as info:
        batch.flush()
    assert info.value.message == (
        f"{op}: Network is down (a VLAN's base device must be up first)"
    )


def test_ignored_errors_are_no_failure() -> None:
    batch, _ = batch_on(lambda sent: [ack(sent, errno.ENODEV)])
    batch.delete(None, index=7, ignore=(errno.ENODEV,))
    batch.flush()


def test_a_change_to_a_device_created_in_the_batch_waits_for_the_creates_ack() -> None:
    batch, sock = batch_on(ok)
    create = CreateBridge("br0", 1500)
    batch.create(create, "br0", "bridge", b"", rs.nla_u32(c.IFLA_MTU, 1499))
    batch.change(create, "br0", attrs=rs.nla_u32(c.IFLA_MTU, 1500))
    batch.change(SetUp("eth0", True), "eth0", up=True)
    batch.flush()
    first, second = sock.sends
    # The create and the unrelated change go together; the bridge's MTU waits.
    assert [(s.kind, s.index) for s in first] == [("bridge", 4), (None, 2)]
    assert first[0].flags & (c.NLM_F_CREATE | c.NLM_F_EXCL) == c.NLM_F_CREATE | c.NLM_F_EXCL
    assert first[0].attr("IFLA_GROUP") == OWNED_GROUP
    assert first[0].attr("IFLA_IFNAME") == "br0"
    # ...and is sent by ifindex, the one chosen for the create, once it is acknowledged.
    assert [(s.index, s.attr("IFLA_MTU")) for s in second] == [(4, 1500)]
    assert batch.index["br0"] == 4


def test_a_failed_create_sends_none_of_its_devices_changes() -> None:
    def kernel(sent: Sent) -> list[bytes]:
        if sent.flags & c.NLM_F_CREATE:
            return [ack(sent, errno.EOPNOTSUPP, "Unknown device type")]
        return [ack(sent)]

    batch, sock = batch_on(kernel)
    create = CreateVlan("eth0.100", "eth0", 100, 1500)
    batch.create(create, "eth0.100", "vlan", rs.nla_u16(c.IFLA_VLAN_ID, 100), b"")
    batch.change(SetUp("eth0.100", True), "eth0.100", up=True)
    with pytest.raises(NetError) as info:
        batch.flush()
    assert info.value.message.startswith(f"{create}: Unknown device type")
    assert len(sock.requests) == 1
    assert "eth0.100" not in batch.index


def test_a_create_at_a_taken_ifindex_is_made_again_where_the_kernel_chooses() -> None:
    def kernel(sent: Sent) -> list[bytes]:
        if sent.flags & c.NLM_F_CREATE and sent.index:
            return [ack(sent, errno.EEXIST)]  # a device created since the last read has it
        if sent.msg_type == c.RTM_GETLINK:
            return get_answer(sent, 17, "br0", kind="bridge")
        return [ack(sent)]

    batch, sock = batch_on(kernel)
    create = CreateBridge("br0", 1500)
    batch.create(create, "br0", "bridge", b"", b"")
    batch.change(create, "br0", up=True)
    batch.flush()
    kinds = [(s.msg_type, s.index) for s in sock.requests]
    assert kinds == [
        (c.RTM_NEWLINK, 4),  # at the chosen index: EEXIST
        (c.RTM_NEWLINK, 0),  # the same create, the kernel chooses
        (c.RTM_GETLINK, 0),  # by name: which index it chose
        (c.RTM_NEWLINK, 17),  # the deferred change goes there
    ]
    assert sock.requests[2].attr("IFLA_IFNAME") == "br0"
    assert batch.index["br0"] == 17
    batch.create(None, "br1", "bridge", b"", b"")
    batch.flush()
    assert sock.requests[4].index == 18  # the next choice is above the kernel's


def test_a_read_sends_the_batch_first() -> None:
    def kernel(sent: Sent) -> list[bytes]:
        if sent.msg_type == c.RTM_GETLINK:
            return get_answer(sent, 2, "eth0", mtu=9000)
        return [ack(sent)]

    batch, sock = batch_on(kernel)
    batch.change(SetMtu("eth0", 9000), "eth0", attrs=rs.nla_u32(c.IFLA_MTU, 9000))
    link = batch.get_link(index=2)
    assert [[s.msg_type for s in send] for send in sock.sends] == [
        [c.RTM_NEWLINK], [c.RTM_GETLINK],
    ]
    assert (link.index, link.name, link.mtu) == (2, "eth0", 9000)


def test_pipelined_reads_send_the_batch_first_and_answer_each_name() -> None:
    def kernel(sent: Sent) -> list[bytes]:
        if sent.msg_type == c.RTM_GETLINK:
            if sent.attr("IFLA_IFNAME") == "gone":
                return [ack(sent, errno.ENODEV)]
            return get_answer(sent, 2, "eth0")
        return [ack(sent)]

    batch, sock = batch_on(kernel)
    batch.change(None, "eth0", up=False)
    got = batch.request_each([rs.get_request(name="eth0"), rs.get_request(name="gone")])
    assert [len(send) for send in sock.sends] == [1, 2]
    assert got[0] == batch.get_link(index=2)
    assert got[1] == rs.Ack(errno.ENODEV)


def test_the_ifindex_of_a_device_created_in_the_batch_flushes_it() -> None:
    batch, sock = batch_on(ok)
    batch.create(None, "br0", "bridge", b"", b"")
    assert batch.ifindex("br0") == 4
    assert len(sock.sends) == 1


def test_an_unknown_name_is_looked_up_once_and_a_missing_one_refused() -> None:
    def kernel(sent: Sent) -> list[bytes]:
        if sent.attr("IFLA_IFNAME") == "eth9":
            return get_answer(sent, 11, "eth9")
        return [ack(sent, errno.ENODEV)]

    batch, sock = batch_on(kernel)
    assert batch.ifindex("eth9") == 11
    assert batch.ifindex("eth9") == 11
    assert len(sock.requests) == 1
    with pytest.raises(Refused, match="no device 'nope'"):
        batch.ifindex("nope")


def test_a_big_batch_goes_in_chunks_each_acknowledged_before_the_next() -> None:
    batch, sock = batch_on(ok, {f"v{i}": 100 + i for i in range(300)})
    for i in range(300):
        batch.change(None, f"v{i}", up=True)
    batch.flush()
    assert [len(send) for send in sock.sends] == [128, 128, 44]
    assert [s.index for s in sock.requests] == [100 + i for i in range(300)]


def test_acks_are_matched_by_sequence_number_not_arrival() -> None:
    pending: list[Sent] = []

    def kernel(sent: Sent) -> list[bytes]:
        pending.append(sent)
        if len(pending) < 3:
            return []
        # A stray answer of another sequence number, then the ACKs in reverse order.
        stray = ack(pending[0], errno.EPERM)
        stray = stray[:8] + (999).to_bytes(4, "little") + stray[12:]  # nlmsg_seq
        return [stray] + [ack(s, errno.EINVAL if s is pending[0] else 0)
                          for s in reversed(pending)]

    batch, _ = batch_on(kernel)
    ops = [SetUp("eth0", True), SetUp("eth1", True), SetUp("eth0", False)]
    for op in ops:
        batch.change(op, op.device, up=op.up)
    with pytest.raises(NetError) as info:
        batch.flush()
    assert info.value.message == f"{ops[0]}: Invalid argument"


def test_discard_forgets_what_is_queued() -> None:
    batch, sock = batch_on(ok)
    batch.create(None, "br0", "bridge", b"", b"")
    batch.change(None, "br0", up=True)
    batch.discard()
    batch.flush()
    assert sock.sends == []
