"""The backend's NETLINK_ROUTE socket, without pyroute2's machinery: pipelined writes and
lean dumps.

pyroute2 costs about 0.7 ms of Python per request (its event loop, request object and reply
parser) and some 30 µs per message of a dump, several times what the kernel spends creating a
VLAN or setting an MTU, or filling in a link. Here requests are plain bytes (``link_request``).
Writes are pipelined (``exchange``): several are written to the socket in one ``send`` and
their ACKs read afterwards. The kernel still runs them one at a time, in order: netlink
processes every message of a datagram in the sending thread (``netlink_rcv_skb``) and goes on
after a message that fails, so each request gets its own ACK and a failure is reported per
request, never for the batch.

Reads (``request``) hand every answer message, as bytes, to a decoder of the caller's.

``NETLINK_CAP_ACK``: an error ACK does not echo the request back, so ACKs stay small;
``NETLINK_EXT_ACK``: the kernel's own explanation of a refusal comes with the error code;
``NETLINK_GET_STRICT_CHK``: the kernel honours the filters of a dump request (by ifindex, by
output device, by table) instead of ignoring them and dumping everything (Linux 4.20+).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from vdsm_net.kernel.constants import (
    IFF_UP,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_GET_STRICT_CHK,
    NETLINK_ROUTE,
    NLA_TYPE_MASK,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    SO_RCVBUFFORCE,
    SOL_NETLINK,
)

T = TypeVar("T")

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_NLA = struct.Struct("=HH")

# A batch is sent in chunks: every ACK is one socket buffer of about 1 KiB of receive-buffer
# charge (truesize, not the 36 bytes of the message), and ACKs that do not fit the receive
# buffer are dropped by the kernel (ENOBUFS). The socket's buffer is raised to _RCVBUF.
_CHUNK_MESSAGES = 128
_CHUNK_BYTES = 32 * 1024
_RCVBUF = 1 << 20
# A dump's datagrams are at most 32 KiB (net/netlink/af_netlink.c caps max_recvmsg_len).
_RECV = 1 << 16


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def nla_u8(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=B", value))


def nla_u16(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=H", value))


def nla_u32(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=I", value))


def nla_str(kind: int, value: str) -> bytes:
    return nla(kind, value.encode() + b"\0")


def linkinfo(kind: str, data: bytes) -> bytes:
    """IFLA_LINKINFO with the kind and its kind-specific IFLA_INFO_DATA."""
    return nla(IFLA_LINKINFO, nla_str(IFLA_INFO_KIND, kind) + nla(IFLA_INFO_DATA, data))


@dataclass(frozen=True)
class Request:
    """One request without its header: the header (and its sequence number) is added when it
    is sent."""

    msg_type: int
    flags: int
    payload: bytes


def link_request(
    *, index: int = 0, create: bool = False, up: bool | None = None, attrs: bytes = b""
) -> Request:
    """RTM_NEWLINK: create a device (``create``) or change one, addressed by ``index`` or,
    when it is 0, by an IFLA_IFNAME among ``attrs``; ``up`` sets or clears IFF_UP."""
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if create else 0)
    change = IFF_UP if up is not None else 0
    head = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, change)
    return Request(RTM_NEWLINK, flags, head + attrs)


def get_request(*, index: int = 0, name: str | None = None) -> Request:
    """RTM_GETLINK of one device, by ``index`` or by ``name``; no ACK (the answer is one)."""
    head = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    attrs = nla_str(IFLA_IFNAME, name) if name is not None else b""
    return Request(RTM_GETLINK, NLM_F_REQUEST, head + attrs)


def del_request(*, index: int = 0, attrs: bytes = b"") -> Request:
    """RTM_DELLINK: delete a device by ``index``, or (index 0) those ``attrs`` select, such as
    a whole IFLA_GROUP."""
    head = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    return Request(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, head + attrs)


@dataclass(frozen=True)
class Ack:
    """The kernel's answer to one request: ``code`` 0 or a positive errno, and the kernel's
    extended-ack message if it gave one."""

    code: int
    message: str = ""

    def reason(self) -> str:
        """As ``ip`` says it: the kernel's message, then strerror of the code."""
        strerror = os.strerror(self.code) if self.code else "unknown error"
        if self.message and self.message != strerror:
            return f"{self.message} ({strerror})"
        return strerror


class KernelRefused(OSError):
    """The kernel answered a read request with an error: ``errno`` and its message."""

    def __init__(self, ack: Ack) -> None:
        super().__init__(ack.code, ack.reason())
        self.ack = ack


Decoder = Callable[[bytes, int, int], T | None]


class Socket(Protocol):
    """The methods of a NETLINK_ROUTE ``socket.socket`` that RouteSocket uses."""

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...
    def bind(self, address: tuple[int, int], /) -> None: ...
    def send(self, data: bytes | bytearray, /) -> int: ...
    def recv(self, size: int, /) -> bytes: ...
    def close(self) -> None: ...


class RouteSocket:
    """One NETLINK_ROUTE socket; not thread-safe (the backend holds its lock)."""

    def __init__(self, sock: Socket) -> None:
        self._sock = sock
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        try:  # root may go past net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind((0, 0))
        self._seq = 0

    @classmethod
    def open(cls, netns: str | None = None) -> RouteSocket:
        """``netns``: for tests, a socket in that named namespace (pyroute2 creates it in a
        child process, as it does for ``IPRoute(netns=...)``)."""
        if netns is None:
            return cls(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE))
        from pyroute2 import netns as pr_netns

        return cls(
            pr_netns.create_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        )

    def close(self) -> None:
        self._sock.close()

    def request(self, req: Request, answer_type: int, decode: Decoder[T]) -> list[T]:
        """Send one request (a dump, or a "get" with NLM_F_ACK) and decode each message of
        ``answer_type`` in its answer: ``decode(data, offset, length)``, None to skip it.
        An error answer raises KernelRefused."""
        self._seq += 1
        seq = self._seq
        out: list[T] = []
        length = _NLMSGHDR.size + len(req.payload)
        self._sock.send(_NLMSGHDR.pack(length, req.msg_type, req.flags, seq, 0) + req.payload)
        while True:
            data = self._sock.recv(_RECV)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, flags, got_seq, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                if got_seq == seq:
                    if kind == answer_type:
                        value = decode(data, offset, length)
                        if value is not None:
                            out.append(value)
                    elif kind in (NLMSG_ERROR, NLMSG_DONE):
                        # DONE carries an int too: a dump that failed midway says why there.
                        ack = _parse_ack(data, offset, length, flags, kind == NLMSG_ERROR)
                        if ack.code:
                            raise KernelRefused(ack)
                        return out
                offset += (length + 3) & ~3

    def request_each(
        self, requests: Sequence[Request], answer_type: int, decode: Callable[[bytes, int, int], T]
    ) -> list[T | Ack]:
        """Pipelined "get" requests (without NLM_F_ACK: one answer each): per request, the
        decoded answer or the error Ack, in order."""
        out: list[T | Ack] = []
        for chunk in _chunks(requests):
            first = self._seq + 1
            self._send(chunk)
            got: dict[int, T | Ack] = {}
            while len(got) < len(chunk):
                data = self._sock.recv(_RECV)
                offset = 0
                while offset + _NLMSGHDR.size <= len(data):
                    length, kind, flags, seq, _ = _NLMSGHDR.unpack_from(data, offset)
                    if length < _NLMSGHDR.size:
                        break
                    if first <= seq < first + len(chunk):
                        if kind == answer_type:
                            got[seq] = decode(data, offset, length)
                        elif kind == NLMSG_ERROR:
                            got[seq] = _parse_ack(data, offset, length, flags, True)
                    offset += (length + 3) & ~3
            out += [got[seq] for seq in range(first, first + len(chunk))]
        return out

    def _send(self, chunk: Sequence[Request]) -> None:
        out = bytearray()
        for req in chunk:
            self._seq += 1
            length = _NLMSGHDR.size + len(req.payload)
            out += _NLMSGHDR.pack(length, req.msg_type, req.flags, self._seq, 0)
            out += req.payload
        self._sock.send(out)

    def exchange(self, requests: Sequence[Request]) -> list[Ack]:
        """Send ``requests`` in order and return their ACKs, in the same order."""
        acks: list[Ack] = []
        for chunk in _chunks(requests):
            first = self._seq + 1
            self._send(chunk)
            acks += self._read_acks(first, len(chunk))
        return acks

    def _read_acks(self, first: int, count: int) -> list[Ack]:
        got: dict[int, Ack] = {}
        while len(got) < count:
            data = self._sock.recv(_RECV)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, flags, seq, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                if kind == NLMSG_ERROR and first <= seq < first + count:
                    got[seq] = _parse_ack(data, offset, length, flags, True)
                offset += (length + 3) & ~3
        return [got[seq] for seq in range(first, first + count)]


def _chunks(requests: Sequence[Request]) -> Iterable[Sequence[Request]]:
    start, size = 0, 0
    for i, req in enumerate(requests):
        size += _NLMSGHDR.size + len(req.payload)
        if i - start >= _CHUNK_MESSAGES or (size > _CHUNK_BYTES and i > start):
            yield requests[start:i]
            start, size = i, _NLMSGHDR.size + len(req.payload)
    if start < len(requests):
        yield requests[start:]


def _parse_ack(data: bytes, offset: int, length: int, flags: int, echo: bool) -> Ack:
    """An NLMSG_ERROR (``echo``: struct nlmsgerr, the code then the request's header) or an
    NLMSG_DONE (the code alone), each followed by extended-ack attributes if flagged."""
    (error,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
    if error == 0:
        return Ack(0)
    message = ""
    if flags & NLM_F_ACK_TLVS:
        pos = offset + _NLMSGHDR.size + 4 + (_NLMSGHDR.size if echo else 0)
        end = offset + length
        while pos + _NLA.size <= end:
            nla_len, nla_type = _NLA.unpack_from(data, pos)
            if nla_len < _NLA.size:
                break
            if nla_type & NLA_TYPE_MASK == NLMSGERR_ATTR_MSG:
                raw = data[pos + _NLA.size : pos + nla_len]
                message = raw.split(b"\0", 1)[0].decode(errors="replace")
            pos += (nla_len + 3) & ~3
    return Ack(-error, message)
