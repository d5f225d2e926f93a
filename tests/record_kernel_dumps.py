"""Record real netlink answers for the decoder's golden tests (run once, as root):

    .venv/bin/python -m tests.record_kernel_dumps          # netns here, then VLAN/bond in UML

In a fresh network namespace it builds devices (bridge with STP and a port, veth, MTUs,
groups, addresses, default routes; in User-Mode Linux also VLANs and bonds, which this
host's kernel lacks), dumps links, addresses and routes on the agent's own socket, and
writes every datagram the kernel sent, as hex, with what the kernel reports of the same
devices through ``ip -d -j`` (the independent expectation), to
``tests/unit/golden/kernel/<case>.json``. It also records the kernel's error ACKs for two
refused requests, with the message ``ip`` prints for the same refusal.
``tests/unit/test_kernel_golden.py`` decodes the datagrams and compares.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from tests.netns import NetNS
from vdsm_net.kernel import constants as c
from vdsm_net.kernel import route_socket as rs
from vdsm_net.state import OWNED_GROUP

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "unit" / "golden" / "kernel"


class Recorder:
    """A socket that keeps every datagram it receives."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.received: list[bytes] = []

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        self._sock.setsockopt(level, option, value)

    def bind(self, address: tuple[int, int], /) -> None:
        self._sock.bind(address)

    def send(self, data: bytes | bytearray, /) -> int:
        return self._sock.send(data)

    def recv(self, size: int, /) -> bytes:
        data = self._sock.recv(size)
        self.received.append(data)
        return data

    def close(self) -> None:
        self._sock.close()


def _payload(msg: Any) -> bytes:
    msg.encode()
    return bytes(msg.data[16 : msg["header"]["length"]])


def _dump(ns: NetNS, msg_type: int, msg: Any) -> list[str]:
    from pyroute2 import netns as pr_netns

    rec = Recorder(pr_netns.create_socket(ns.name, socket.AF_NETLINK, socket.SOCK_RAW,
                                          c.NETLINK_ROUTE))
    sock = rs.RouteSocket(rec)
    try:
        sock.request(rs.Request(msg_type, c.NLM_F_REQUEST | c.NLM_F_DUMP, _payload(msg)),
                     msg_type - 2, lambda data, offset, length: None)
    finally:
        sock.close()
    return [d.hex() for d in rec.received]


def _route_request(family: int) -> rtmsg:
    req = rtmsg()
    req["family"] = family
    req["type"] = c.RTN_UNICAST
    return req


def _refusals(ns: NetNS, bridge: str) -> dict[str, Any]:
    """Two requests the kernel refuses, pipelined as the agent sends them: an MTU over the
    bridge's maximum (EINVAL, with an extended-ack message) and a second bridge of the
    same name (EEXIST)."""
    from pyroute2 import netns as pr_netns

    index = ns.ip_json("link", "show", "dev", bridge)[0]["ifindex"]
    rec = Recorder(pr_netns.create_socket(ns.name, socket.AF_NETLINK, socket.SOCK_RAW,
                                          c.NETLINK_ROUTE))
    sock = rs.RouteSocket(rec)
    try:
        sock.exchange([
            rs.link_request(index=index, attrs=rs.nla_u32(c.IFLA_MTU, 70000)),
            rs.link_request(create=True, attrs=rs.nla_str(c.IFLA_IFNAME, bridge)
                            + rs.linkinfo("bridge", b"")),
        ])
    finally:
        sock.close()
    said = [
        ns.ip("link", "set", "dev", bridge, "mtu", "70000", check=False).stderr.strip(),
        ns.ip("link", "add", bridge, "type", "bridge", check=False).stderr.strip(),
    ]
    return {"datagrams": [d.hex() for d in rec.received], "ip_says": said}


# Bonding options beyond the first ones: our (sysfs) name -> the name ``ip -d -j`` uses.
_IP_BOND_NAMES = {
    "peer_notif_delay": "peer_notify_delay",
    "arp_missed_max": "arp_missed_max",
    "arp_all_targets": "arp_all_targets",
    "resend_igmp": "resend_igmp",
    "num_grat_arp": "num_peer_notif",
    "lp_interval": "lp_interval",
    "packets_per_slave": "packets_per_slave",
    "lacp_active": "ad_lacp_active",
    "tlb_dynamic_lb": "tlb_dynamic_lb",
    "ad_actor_sys_prio": "ad_actor_sys_prio",
    "ad_user_port_key": "ad_user_port_key",
    "ad_actor_system": "ad_actor_system",
}


def _expected_links(ip_links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``ip -d -j link`` reports, in the decoder's terms (see test_kernel_golden)."""
    index = {d["ifname"]: d["ifindex"] for d in ip_links}
    out = []
    for d in ip_links:
        info = d.get("linkinfo", {})
        data = info.get("info_data", {})
        kind = info.get("info_kind", "")
        group = d.get("group", "default")
        entry: dict[str, Any] = {
            "index": d["ifindex"],
            "name": d["ifname"],
            "up": "UP" in d["flags"],
            "mtu": d["mtu"],
            "link": index.get(d.get("link", ""), 0),
            "master": index.get(d.get("master", ""), 0),
            "group": 0 if group == "default" else int(group),
            "address": d.get("address"),
            "operstate": d["operstate"].lower(),
            "kind": kind,
            "slave_kind": info.get("info_slave_kind", ""),
            "vlan_id": data.get("id") if kind == "vlan" else None,
            "stp_state": data.get("stp_state") if kind == "bridge" else None,
        }
        if kind == "bond":
            entry["bond"] = {
                "mode": data["mode"],
                "miimon": str(data["miimon"]),
                "updelay": str(data["updelay"]),
                "downdelay": str(data["downdelay"]),
                "arp_interval": str(data["arp_interval"]),
                "arp_validate": data.get("arp_validate") or "none",
                "primary_reselect": data["primary_reselect"],
                "fail_over_mac": data["fail_over_mac"],
                "xmit_hash_policy": data["xmit_hash_policy"],
                "all_slaves_active": str(data["all_slaves_active"]),
                "min_links": str(data["min_links"]),
                "lacp_rate": data["ad_lacp_rate"],
                "ad_select": data["ad_select"],
            }
            # Sent only when there is one (primary), or by kernels that still have it.
            if "primary" in data:
                entry["bond"]["primary"] = data["primary"]
            if "use_carrier" in data:
                entry["bond"]["use_carrier"] = str(data["use_carrier"])
            for ours, theirs in _IP_BOND_NAMES.items():
                if theirs in data:
                    value = data[theirs]
                    entry["bond"][ours] = str(value) if isinstance(value, int) else value
            for ours in ("arp_ip_target", "ns_ip6_target"):  # ip: a list; ours: comma-joined
                if data.get(ours):
                    entry["bond"][ours] = ",".join(data[ours])
            entry["active_slave"] = index.get(data.get("active_slave", ""), 0)
        out.append(entry)
    return out


def _expected_addresses(ip_addrs: list[dict[str, Any]]) -> list[list[Any]]:
    return sorted(
        [d["ifindex"], f"{a['local']}/{a['prefixlen']}", a["scope"]]
        for d in ip_addrs for a in d.get("addr_info", [])
    )


def _expected_routes(ns: NetNS) -> list[list[Any]]:
    out = []
    for version in (4, 6):
        for r in ns.ip_json(f"-{version}", "route", "show", "table", "all"):
            unicast = r.get("type", "unicast") == "unicast"
            if r.get("dst") == "default" and "gateway" in r and unicast:
                table = r.get("table", "main")
                number = 254 if table == "main" else int(table)
                out.append([version, r["gateway"], r["dev"], number])
    return sorted(out)


def record(case: str, description: str, build: Callable[[NetNS], str]) -> None:
    ns = NetNS("rec")
    try:
        bridge = build(ns)
        # Operstates settle on their own (a bridge port going forwarding): take a dump that
        # ``ip`` reports the same before and after.
        for _ in range(40):
            ip_links = ns.ip_json("-d", "link", "show")
            links = _dump(ns, c.RTM_GETLINK, ifinfmsg())
            again = ns.ip_json("-d", "link", "show")
            if _expected_links(again) == _expected_links(ip_links):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("the devices' state did not settle in 20 s")
        golden = {
            "description": description,
            "kernel": platform.release(),
            "links": links,
            "addresses": _dump(ns, c.RTM_GETADDR, ifaddrmsg()),
            "routes": [_dump(ns, c.RTM_GETROUTE, _route_request(f))
                       for f in (socket.AF_INET, socket.AF_INET6)],
            "expected_links": _expected_links(ip_links),
            "expected_addresses": _expected_addresses(ns.ip_json("addr", "show")),
            "expected_routes": _expected_routes(ns),
            "refusals": _refusals(ns, bridge),
            "ip_link": ip_links,
        }
    finally:
        ns.close()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    path = GOLDEN / f"{case}.json"
    path.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {path}: {len(golden['expected_links'])} links")


def build_native(ns: NetNS) -> str:
    ip = ns.ip
    ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
    ip("link", "add", "br0", "mtu", "1400", "address", "02:00:00:00:0b:01", "group",
       str(OWNED_GROUP), "type", "bridge", "stp_state", "1")
    ip("link", "set", "veth0", "mtu", "1400", "master", "br0", "up")
    ip("link", "set", "veth1", "mtu", "9000", "up")
    ip("link", "set", "br0", "up")
    ip("link", "add", "br1", "group", str(OWNED_GROUP + 1), "type", "bridge")
    ip("addr", "add", "192.0.2.1/24", "dev", "br0")
    ip("addr", "add", "2001:db8::1/64", "dev", "br0", "nodad")
    ip("route", "add", "default", "via", "192.0.2.254", "dev", "br0")
    ip("route", "add", "default", "via", "192.0.2.253", "dev", "br0", "table", "1000")
    ip("-6", "route", "add", "default", "via", "2001:db8::fe", "dev", "br0")
    return "br0"


def build_uml(ns: NetNS) -> str:
    ip = ns.ip
    ip("link", "add", "dummy0", "mtu", "9000", "type", "dummy")
    ip("link", "set", "dummy0", "up")
    ip("link", "add", "link", "dummy0", "name", "dummy0.100", "mtu", "1500", "group",
       str(OWNED_GROUP), "type", "vlan", "id", "100")
    ip("link", "add", "dummy1", "type", "dummy")
    ip("link", "add", "dummy2", "type", "dummy")
    ip("link", "add", "bond0", "group", str(OWNED_GROUP), "type", "bond", "mode",
       "active-backup", "miimon", "100", "updelay", "200")
    ip("link", "set", "dummy1", "master", "bond0")
    ip("link", "set", "dummy2", "master", "bond0")
    ip("link", "set", "bond0", "type", "bond", "primary", "dummy1")
    ip("link", "set", "bond0", "up")
    ip("link", "add", "bond1", "mtu", "9000", "type", "bond", "mode", "802.3ad",
       "lacp_rate", "fast", "xmit_hash_policy", "layer3+4", "ad_select", "bandwidth")
    ip("link", "add", "link", "bond0", "name", "bond0.7", "type", "vlan", "id", "7")
    ip("link", "add", "br7", "type", "bridge")
    ip("link", "set", "bond0.7", "master", "br7", "up")
    ip("addr", "add", "198.51.100.7/25", "dev", "br7")
    ip("link", "set", "br7", "up")
    ip("route", "add", "default", "via", "198.51.100.1", "dev", "br7")
    return "br7"


def main() -> int:
    if "--uml-guest" in sys.argv:
        record("uml_vlan_bond", "VLANs (on a dummy NIC, on a bond), bonds (active-backup "
               "with primary and slaves; 802.3ad without), a bridge over a VLAN; in UML",
               build_uml)
        return 0
    record("netns_bridge_veth", "a bridge with STP, a group, a MAC, an MTU and a veth port, "
           "a second bridge in another group, addresses and default routes; in a netns",
           build_native)
    from contrib.bench.uml_run import run_in_uml

    result = run_in_uml([sys.executable, "-m", "tests.record_kernel_dumps", "--uml-guest"],
                        cwd=ROOT)
    print(result.output, end="")
    return result.returncode


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
