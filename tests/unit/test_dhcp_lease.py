"""The DHCP lease and its file, without a network: what an ACK grants, and the lease file's
round trip and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vdsm_net.dhcp import DhcpLease, LeaseFile
from vdsm_net.dhcp.lease import StoredLease


def ack(**options: Any) -> dict[str, Any]:
    base = {"message_type": 5, "server_id": "10.0.0.1", "lease_time": 120,
            "subnet_mask": "255.255.255.0", "router": ["10.0.0.254", "10.0.0.253"],
            "name_server": ["10.0.0.53"]}
    base.update(options)
    return {"yiaddr": "10.0.0.42", "options": base}


def test_an_ack_grants_address_prefix_router_and_times() -> None:
    lease = DhcpLease.from_ack(ack(renewal_time=30), "eth0", "aa:bb:cc:dd:ee:ff", 1000.0)
    assert (lease.cidr, lease.router, lease.server) == ("10.0.0.42/24", "10.0.0.254", "10.0.0.1")
    assert lease.nameservers == ("10.0.0.53",)
    assert (lease.lease_time, lease.renewal_time, lease.rebinding_time) == (120, 30, None)
    assert lease.expiry == 1120.0
    assert lease.remaining(now=1100.0) == 20.0 and lease.remaining(now=2000.0) == 0.0


def test_infinite_lease_and_missing_mask() -> None:
    lease = DhcpLease.from_ack(ack(lease_time=0xFFFFFFFF, subnet_mask=None, router=None),
                               "eth0", "aa:bb:cc:dd:ee:ff", 0.0)
    assert lease.lease_time is None and lease.expiry is None and lease.remaining() is None
    assert lease.prefixlen == 8  # classful default for 10.x
    assert lease.router is None


def test_a_non_contiguous_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="subnet_mask"):
        DhcpLease.from_ack(ack(subnet_mask="255.0.255.0"), "eth0", "m", 0.0)


def test_lease_file_round_trip_and_refusals(tmp_path: Path) -> None:
    lease = DhcpLease.from_ack(ack(), "eth0", "aa:bb:cc:dd:ee:ff", 1000.0)
    record = {"ack": ack(), "interface": "eth0", "server_mac": "aa:bb:cc:dd:ee:ff",
              "obtained": 1000.0, "sname": b"\x00"}
    path = tmp_path / "sub" / "eth0.lease"
    LeaseFile(path).write(StoredLease(lease, record))
    stored = LeaseFile(path).read("eth0")
    assert stored is not None and stored.lease == lease
    assert stored.client_record["ack"]["yiaddr"] == "10.0.0.42"
    assert json.loads(path.read_text())["lease"]["expiry"] == 1120.0
    assert [p.name for p in path.parent.iterdir()] == ["eth0.lease"]  # no temporary left

    assert LeaseFile(path).read("eth1") is None  # another interface's lease is not reused
    path.write_text("{not json")
    assert LeaseFile(path).read("eth0") is None
    path.write_text(json.dumps({"version": 99}))
    assert LeaseFile(path).read("eth0") is None
    LeaseFile(path).remove()
    assert not path.exists() and LeaseFile(path).read("eth0") is None
