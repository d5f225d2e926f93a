"""Link changes queued as requests and sent in pipelined batches, in plan order.

A batch is flushed (``vdsm_net.kernel.route_socket.RouteSocket.exchange``: many requests per
``send``, their ACKs read after) when the plan ends or when an op must first know its outcome:
any read on the socket (``request``, ``request_each``, ``get_link``), the ifindex of a device
created in the batch (``ifindex``), or a request still sent through pyroute2 (the backend
flushes first). The kernel runs the requests in order and the first refusal is the error,
named after the op that queued it; the requests after it in the same batch have run too (the
pipeline's revert reads what the kernel has).

A batch addresses only devices whose ifindex is known: existing ones, and new ones by the
ifindex chosen at creation. Changes to a device created in the batch wait until its create
has succeeded (``_deferred``): addressed by the chosen ifindex, they would change whatever
device holds it if the create failed on that; addressed by name, they would change the
device that holds the name if the create failed on that.

Not thread-safe: the backend holds its lock around every call.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.kernel import route_socket as rs
from vdsm_net.kernel.constants import IFLA_GROUP, IFLA_IFNAME, NLM_F_ACK, RTM_NEWLINK
from vdsm_net.kernel.decode import Link, parse_link
from vdsm_net.ops import Op
from vdsm_net.state import OWNED_GROUP

# A create at a chosen ifindex that is taken: EEXIST (the kernel finds the index first, and
# NLM_F_EXCL refuses it) or EBUSY (register_netdevice).
_INDEX_TAKEN = (errno.EEXIST, errno.EBUSY)


class Refused(Exception):
    """A request refused before it reaches the kernel; the backend names the op in front."""


@dataclass(frozen=True)
class _Queued:
    """A request waiting in the batch, and what to say if the kernel refuses it."""

    op: Op | None
    request: rs.Request
    created: str | None = None  # creates this device, at a chosen ifindex
    fallback: rs.Request | None = None  # the same create, where the kernel chooses
    up: bool | None = None
    ignore: tuple[int, ...] = ()  # errors that are no failure (ENODEV: already gone)

    def explain(self, ack: rs.Ack) -> str:
        if ack.code == errno.ENETDOWN and self.up:
            return f"{ack.reason()} (a VLAN's base device must be up first)"
        return ack.reason()


@dataclass(frozen=True)
class _Deferred:
    """A change to a device created in the batch, sent once the create has succeeded."""

    op: Op | None
    up: bool | None
    attrs: bytes


class LinkBatch:
    """The queue of link changes on one socket, and the name -> ifindex map they use."""

    def __init__(self, sock: rs.RouteSocket) -> None:
        self._sock = sock
        # name -> ifindex: refreshed by the backend's reads, kept up to date here as devices
        # are created and deleted.
        self.index: dict[str, int] = {}
        self._queue: list[_Queued] = []
        self._unconfirmed: dict[str, int] = {}  # created in the batch: name -> chosen ifindex
        self._deferred: dict[str, list[_Deferred]] = {}  # their changes, in order
        self._next_index: int | None = None

    # -- reads: each sees the batch's changes ----------------------------------------------

    def request(self, req: rs.Request, answer_type: int, decode: rs.Decoder[rs.T]) -> list[rs.T]:
        """``RouteSocket.request`` after a flush; a refusal raises ``KernelRefused``."""
        self.flush()
        return self._sock.request(req, answer_type, decode)

    def request_each(self, requests: Sequence[rs.Request]) -> list[Link | rs.Ack]:
        """Pipelined RTM_GETLINKs (``route_socket.get_request``) after a flush: per request,
        the link or the kernel's refusal."""
        self.flush()
        return self._sock.request_each(requests, RTM_NEWLINK, parse_link)

    def get_link(self, *, index: int = 0, name: str | None = None) -> Link:
        """One device, by ifindex or by name. ``KernelRefused`` (ENODEV) if there is none."""
        return self.request(_get_acked(index=index, name=name), RTM_NEWLINK, parse_link)[0]

    def ifindex(self, name: str) -> int:
        """The ifindex of ``name``: known, or learned by one RTM_GETLINK. A device created in
        the batch is known once its create has been acknowledged (this flushes)."""
        if name in self._unconfirmed:
            self.flush()
        index = self.index.get(name)
        if index is None:
            try:
                link = self.get_link(name=name)
            except rs.KernelRefused as e:
                if e.ack.code == errno.ENODEV:
                    raise Refused(f"no device {name!r}") from e
                raise
            index = self.index[name] = link.index
        return index

    def restart_indexes(self) -> None:
        """Devices may have come since: choose new ifindexes above the next read's."""
        self._next_index = None

    def forget(self, gone: set[int]) -> None:
        self.index = {n: i for n, i in self.index.items() if i not in gone}

    # -- writes ----------------------------------------------------------------------------

    def change(self, op: Op | None, name: str, *, up: bool | None = None,
               attrs: bytes = b"") -> None:
        """RTM_NEWLINK on ``name``: ``up`` sets or clears IFF_UP, ``attrs`` are set. A change
        to a device created in this batch waits for its create's ACK."""
        if name in self._unconfirmed:
            self._deferred.setdefault(name, []).append(_Deferred(op, up, attrs))
        else:
            self.change_index(op, self.ifindex(name), up=up, attrs=attrs)

    def change_index(
        self, op: Op | None, index: int, *, up: bool | None = None, attrs: bytes = b"",
        ignore: tuple[int, ...] = (),
    ) -> None:
        """RTM_NEWLINK on a known ifindex; the errors in ``ignore`` are no failure."""
        request = rs.link_request(index=index, up=up, attrs=attrs)
        self._queue.append(_Queued(op, request, up=up, ignore=ignore))

    def create(self, op: Op | None, name: str, kind: str, data: bytes, attrs: bytes) -> None:
        """A new device ``name`` of ``kind`` (IFLA_INFO_DATA ``data``, other ``attrs``), in
        OWNED_GROUP as every device the agent creates.

        Its ifindex is chosen here (RTM_NEWLINK honours ifi_index), so that no RTM_GETLINK
        is needed to learn it. NLM_F_EXCL matters: without it, a request whose ifindex is
        taken would change the device that holds it. If a device created since the last
        read holds it, the kernel answers EEXIST, and the flush creates the device again
        where the kernel chooses.
        """
        attrs = (
            rs.nla_str(IFLA_IFNAME, name)
            + rs.nla_u32(IFLA_GROUP, OWNED_GROUP)
            + attrs
            + rs.linkinfo(kind, data)
        )
        index = self._choose_index()
        self.index.pop(name, None)
        self._unconfirmed[name] = index
        self._queue.append(
            _Queued(
                op,
                rs.link_request(index=index, create=True, attrs=attrs),
                created=name,
                fallback=rs.link_request(create=True, attrs=attrs),
            )
        )

    def delete(self, op: Op | None, *, index: int = 0, attrs: bytes = b"",
               ignore: tuple[int, ...] = ()) -> None:
        """RTM_DELLINK of one device (``index``) or of those ``attrs`` select (a group)."""
        self._queue.append(_Queued(op, rs.del_request(index=index, attrs=attrs), ignore=ignore))

    def flush(self) -> None:
        """Send what is queued and read the ACKs; the first refusal raises NetError naming
        its op. Changes deferred on a create are sent once it is acknowledged."""
        while self._queue:
            queue, self._queue = self._queue, []
            created, self._unconfirmed = self._unconfirmed, {}
            deferred, self._deferred = self._deferred, {}
            acks = self._sock.exchange([q.request for q in queue])
            for q, ack in zip(queue, acks, strict=True):
                if ack.code and q.fallback is not None and ack.code in _INDEX_TAKEN:
                    ack = self._create_anywhere(q)
                if ack.code and ack.code not in q.ignore:
                    raise NetError(ErrorKind.KERNEL, f"{q.op}: {q.explain(ack)}")
                if q.created is not None and q.created not in self.index:
                    self.index[q.created] = created[q.created]
            for name, changes in deferred.items():
                for change in changes:
                    self.change_index(change.op, self.index[name], up=change.up,
                                      attrs=change.attrs)

    def discard(self) -> None:
        """Forget what is queued (after a failure: the revert reads what the kernel has)."""
        self._queue.clear()
        self._unconfirmed.clear()
        self._deferred.clear()

    def _create_anywhere(self, q: _Queued) -> rs.Ack:
        """The ifindex chosen for a new device was taken (by a device created since the last
        read), or its name is: create it again where the kernel chooses. A true name clash
        fails the same way a second time."""
        assert q.fallback is not None and q.created is not None
        ack = self._sock.exchange([q.fallback])[0]
        if not ack.code:
            got = self._sock.request(_get_acked(name=q.created), RTM_NEWLINK, parse_link)
            index = got[0].index
            self.index[q.created] = index
            self._next_index = max(self._next_index or 0, index + 1)
        return ack

    def _choose_index(self) -> int:
        if self._next_index is None:
            self._next_index = max(self.index.values(), default=0) + 1
        index = self._next_index
        self._next_index += 1
        return index


def _get_acked(*, index: int = 0, name: str | None = None) -> rs.Request:
    """RTM_GETLINK with NLM_F_ACK: a refusal comes back as an error ACK."""
    req = rs.get_request(index=index, name=name)
    return rs.Request(req.msg_type, req.flags | NLM_F_ACK, req.payload)
