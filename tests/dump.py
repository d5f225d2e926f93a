"""A network namespace's kernel state, as the kernel reports it, normalised for comparison.

`dump_state(ns)` reads `ip -d -j link`, `ip -j addr`, the IPv4 and IPv6 routes of every table and
`bridge -j link`, and keeps what a configuration decides (devices, kinds, masters, MTUs, MACs, up
flags, VLAN ids, bond and bridge options, addresses, routes) while dropping what the kernel
changes on its own as time passes (counters, timers, carrier, STP port states, link-local IPv6).
Two dumps of the same namespace are then equal unless something was configured differently, and
`diff_dumps` shows what was, one `path: value` line per difference.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# A normalised dump is plain JSON data (nested dicts of str, int, bool, lists).
Dump = dict[str, Any]
Json = Any

# Top-level fields of `ip -d -j link` that a configuration decides. Everything else is either an
# identifier that changes between runs (ifindex), a counter, or follows carrier/time: operstate,
# qdisc (attached only once carrier is on), promiscuity/allmulti (reference counts), and the
# gso/tso/gro limits a bridge recomputes from its ports.
_LINK_FIELDS = (
    "ifname", "flags", "mtu", "master", "link", "group", "txqlen", "link_type", "address",
    "broadcast", "permaddr", "linkmode", "min_mtu", "max_mtu", "inet6_addr_gen_mode",
    "proto_down", "altnames",
)

# Flags that report carrier (a bridge gets LOWER_UP a moment after its first port comes up).
_CARRIER_FLAGS = frozenset({"LOWER_UP", "NO-CARRIER", "DORMANT", "M-DOWN"})

# Per-kind fields of linkinfo data that move on their own: STP timers and convergence, the
# bond's choice of active slave and 802.3ad negotiation, learned-entry counters.
_VOLATILE_INFO = {
    "bridge": frozenset({
        "hello_timer", "tcn_timer", "topology_change_timer", "gc_timer", "topology_change",
        "topology_change_detected", "root_id", "root_port", "root_path_cost",
        "fdb_n_learned", "mcast_querier_state",
    }),
    "bond": frozenset({"active_slave", "ad_info"}),
}
_VOLATILE_SLAVE_INFO = {
    "bridge": frozenset({
        "state", "cost", "id", "no", "designated_port", "designated_cost", "designated_bridge",
        "designated_root", "bridge_id", "root_id", "hold_timer", "message_age_timer",
        "forward_delay_timer", "topology_change_ack", "config_pending", "mcast_n_groups",
    }),
    "bond": frozenset({
        "state", "mii_status", "link_failure_count", "ad_aggregator_id",
        "ad_actor_oper_port_state", "ad_actor_oper_port_state_str",
        "ad_partner_oper_port_state", "ad_partner_oper_port_state_str",
    }),
}
# `bridge -j link` repeats the bridge port data; the same volatile fields go.
_VOLATILE_BRIDGE_PORT = frozenset({"ifindex", "state", "cost", "flags", "operstate"})

# Lifetimes count down; DAD flags flip after a second or so.
_ADDR_DROP = frozenset({"valid_life_time", "preferred_life_time", "tentative", "dadfailed",
                        "optimistic"})
_ROUTE_DROP = frozenset({"expires", "cache"})
_ROUTE_DROP_FLAGS = frozenset({"linkdown"})  # set while the device has no carrier

_LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")
_MULTICAST_V6 = ipaddress.ip_network("ff00::/8")


@dataclass(frozen=True)
class RawState:
    """The kernel's reports, as parsed JSON, before normalisation."""

    links: list[Json]
    addrs: list[Json]
    routes4: list[Json]
    routes6: list[Json]
    bridge_ports: list[Json]


def _ip_json(ns: str, *args: str, tool: str = "ip") -> list[Json]:
    proc = subprocess.run([tool, "-n", ns, "-j", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} -n {ns} -j {' '.join(args)}: {proc.stderr.strip()}")
    out = proc.stdout.strip()
    return list(json.loads(out)) if out else []


def read_raw(ns: str) -> RawState:
    return RawState(
        links=_ip_json(ns, "-d", "link", "show"),
        addrs=_ip_json(ns, "addr", "show"),
        # `ip -j route show table all` without -4 also lists IPv6 routes on iproute2 6.x.
        routes4=_ip_json(ns, "-4", "route", "show", "table", "all"),
        routes6=_ip_json(ns, "-6", "route", "show", "table", "all"),
        bridge_ports=_ip_json(ns, "link", "show", tool="bridge"),
    )


def dump_state(ns: str) -> Dump:
    """The normalised kernel state of network namespace `ns`."""
    return normalise(read_raw(ns))


def normalise(raw: RawState) -> Dump:
    return {
        "links": {link["ifname"]: _link(link) for link in raw.links},
        "addresses": _addresses(raw.addrs),
        "routes": _routes([("inet", r) for r in raw.routes4] + [("inet6", r) for r in raw.routes6]),
        "bridge_ports": {
            port["ifname"]: {k: v for k, v in port.items()
                             if k not in _VOLATILE_BRIDGE_PORT and k != "ifname"}
            for port in raw.bridge_ports
        },
    }


def _link(link: Mapping[str, Json]) -> Dump:
    out: Dump = {k: link[k] for k in _LINK_FIELDS if k in link and k != "ifname"}
    out["flags"] = sorted(set(link.get("flags", ())) - _CARRIER_FLAGS)
    if "link" not in link and "link_index" in link:
        # The peer lives in another namespace: its ifindex means nothing here.
        out["link"] = "<other netns>"
    info = link.get("linkinfo")
    if info is not None:
        out["kind"] = info.get("info_kind")
        if "info_data" in info:
            out["info"] = _without(info["info_data"], _VOLATILE_INFO.get(out["kind"], ()))
        slave_kind = info.get("info_slave_kind")
        if slave_kind is not None:
            out["slave_kind"] = slave_kind
            out["slave_info"] = _without(info.get("info_slave_data", {}),
                                         _VOLATILE_SLAVE_INFO.get(slave_kind, ()))
    return out


def _without(data: Mapping[str, Json], drop: Iterable[str]) -> Dump:
    dropped = frozenset(drop)
    return {k: v for k, v in data.items() if k not in dropped}


def _is_derived_v6(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr.split("/")[0])
    except ValueError:
        return False
    return ip.version == 6 and (ip in _LINK_LOCAL_V6 or ip in _MULTICAST_V6)


def _addresses(addrs: list[Json]) -> Dump:
    out: Dump = {}
    for link in addrs:
        per_dev: Dump = {}
        for a in link.get("addr_info", ()):
            # Link-local IPv6 appears when the device first gets carrier, i.e. whenever.
            if a.get("family") == "inet6" and _is_derived_v6(a["local"]):
                continue
            per_dev[f"{a['local']}/{a['prefixlen']}"] = {
                k: v for k, v in a.items() if k not in _ADDR_DROP | {"local", "prefixlen"}
            }
        if per_dev:
            out[link["ifname"]] = per_dev
    return out


def _route_key(family: str, r: Mapping[str, Json]) -> str:
    parts = [family, r.get("table", "main"), r.get("type", "unicast"), str(r.get("dst"))]
    if "dev" in r:
        parts.append(f"dev {r['dev']}")
    if "metric" in r:
        parts.append(f"metric {r['metric']}")
    if "tos" in r:
        parts.append(f"tos {r['tos']}")
    return " ".join(parts)


def _routes(routes: list[tuple[str, Json]]) -> Dump:
    out: Dump = {}
    for family, r in routes:
        # The local table's IPv6 entries follow addresses (their own entry appears only after
        # DAD) and link-local/multicast prefixes follow carrier: derived, and time-varying.
        if family == "inet6" and (
            r.get("table") == "local" or _is_derived_v6(str(r.get("dst", "")))
        ):
            continue
        key = _route_key(family, r)
        n = 2
        while key in out:  # multipath or duplicate entries keep distinct keys
            key = f"{_route_key(family, r)} #{n}"
            n += 1
        entry = {k: v for k, v in r.items() if k not in _ROUTE_DROP}
        if "flags" in entry:
            entry["flags"] = sorted(set(entry["flags"]) - _ROUTE_DROP_FLAGS)
        out[key] = entry
    return out


def flatten(data: Json, prefix: str = "") -> list[str]:
    """One `path: value` line per leaf, sorted: the form in which dumps are diffed."""
    if isinstance(data, dict) and data:
        lines: list[str] = []
        for key in sorted(data):
            lines.extend(flatten(data[key], f"{prefix}/{key}" if prefix else str(key)))
        return lines
    return [f"{prefix}: {json.dumps(data, sort_keys=True)}"]


def diff_dumps(before: Dump, after: Dump) -> list[str]:
    """The differences between two dumps, as unified-diff lines of their flattened forms."""
    return list(difflib.unified_diff(flatten(before), flatten(after), "before", "after",
                                     lineterm="", n=0))


def assert_same_state(before: Dump, after: Dump, what: str = "kernel state") -> None:
    diff = diff_dumps(before, after)
    if diff:
        raise AssertionError(f"{what} differs:\n" + "\n".join(diff))
