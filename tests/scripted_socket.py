"""A scripted stand-in for the NETLINK_ROUTE socket, at the I/O boundary only.

``ScriptedSocket`` implements the socket methods ``RouteSocket`` uses (``setsockopt``,
``bind``, ``send``, ``recv``, ``close``). Each request sent is recorded, decoded by pyroute2
(``Sent``), and answered by the test's ``kernel`` function with the messages the kernel would
send: error ACKs in the kernel's own layout (``ack``: struct nlmsgerr, the request's header
echoed as NETLINK_CAP_ACK makes it, the extended-ack message) and links encoded by pyroute2
(``link``). Each answer message is one datagram, as the kernel sends ACKs; a ``recv`` with
nothing left to read fails the test (a real socket would block forever).

Used by the unit tests of the batch logic; the same behaviour is covered against a real
kernel by tests/kernel/test_backend.py.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from vdsm_net.kernel import constants as c

_HDR = struct.Struct("=IHHII")


@dataclass(frozen=True)
class Sent:
    """One request as the kernel received it: its header and pyroute2's decoding of it."""

    msg_type: int
    flags: int
    seq: int
    raw: bytes  # header and payload
    msg: Any  # pyroute2's ifinfmsg

    @property
    def index(self) -> int:
        return int(self.msg["index"])

    def attr(self, name: str) -> Any:
        return self.msg.get_attr(name)

    @property
    def kind(self) -> str | None:
        info = self.msg.get_attr("IFLA_LINKINFO")
        return None if info is None else str(info.get_attr("IFLA_INFO_KIND"))


Kernel = Callable[[Sent], list[bytes]]


@dataclass
class ScriptedSocket:
    kernel: Kernel
    sends: list[list[Sent]] = field(default_factory=list)  # per send(): the requests in it
    options: dict[tuple[int, int], int] = field(default_factory=dict)
    _pending: deque[bytes] = field(default_factory=deque)
    closed: bool = False

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        self.options[(level, option)] = value

    def bind(self, address: tuple[int, int], /) -> None:
        assert address == (0, 0)

    def send(self, data: bytes | bytearray, /) -> int:
        data = bytes(data)
        batch: list[Sent] = []
        offset = 0
        while offset < len(data):
            length, msg_type, flags, seq, _ = _HDR.unpack_from(data, offset)
            raw = data[offset : offset + length]
            msg = ifinfmsg(raw)
            msg.decode()
            sent = Sent(msg_type, flags, seq, raw, msg)
            batch.append(sent)
            self._pending.extend(self.kernel(sent))
            offset += (length + 3) & ~3
        self.sends.append(batch)
        return len(data)

    def recv(self, size: int, /) -> bytes:
        assert self._pending, "recv() with no answer due: a real socket would block forever"
        return self._pending.popleft()

    def close(self) -> None:
        self.closed = True

    @property
    def requests(self) -> list[Sent]:
        return [s for batch in self.sends for s in batch]


def ack(sent: Sent, code: int = 0, message: str = "") -> bytes:
    """The kernel's answer to ``sent``: 0 or a positive errno, and its extended-ack text."""
    flags = c.NLM_F_CAPPED
    tlvs = b""
    if message:
        flags |= c.NLM_F_ACK_TLVS
        text = message.encode() + b"\0"
        tlvs = struct.pack("=HH", 4 + len(text), c.NLMSGERR_ATTR_MSG) + text
        tlvs += b"\0" * (-len(tlvs) % 4)
    body = struct.pack("=i", -code) + sent.raw[: _HDR.size] + tlvs
    return _HDR.pack(_HDR.size + len(body), c.NLMSG_ERROR, flags, sent.seq, 0) + body


def link(sent: Sent, index: int, name: str, *, kind: str | None = None, flags: int = 0,
         mtu: int = 1500, group: int = 0, master: int = 0) -> bytes:
    """An RTM_NEWLINK answering ``sent``, encoded by pyroute2."""
    msg = ifinfmsg()
    msg["header"]["type"] = c.RTM_NEWLINK
    msg["header"]["sequence_number"] = sent.seq
    msg["index"] = index
    msg["flags"] = flags
    attrs: list[tuple[str, Any]] = [
        ("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_GROUP", group),
    ]
    if master:
        attrs.append(("IFLA_MASTER", master))
    if kind is not None:
        attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]}))
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def get_answer(sent: Sent, index: int, name: str, **kw: Any) -> list[bytes]:
    """The answer to an RTM_GETLINK: the link, then an ACK if the request asked for one."""
    out = [link(sent, index, name, **kw)]
    if sent.flags & c.NLM_F_ACK:
        out.append(ack(sent))
    return out
