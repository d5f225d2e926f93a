"""The dump normaliser on canned kernel reports (trimmed from real `ip -j` output, kernel 6.1)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.dump import RawState, assert_same_state, diff_dumps, flatten, normalise

LINKS = json.loads("""[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",
  "operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,
  "link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00",
  "promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,"inet6_addr_gen_mode":"eui64",
  "num_tx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,
  "tso_max_segs":65535,"gro_max_size":65536},
 {"ifindex":2,"ifname":"d0","flags":["BROADCAST","NOARP","UP","LOWER_UP"],"mtu":9000,
  "qdisc":"noqueue","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,
  "link_type":"ether","address":"2a:3b:46:14:d9:c8","broadcast":"ff:ff:ff:ff:ff:ff",
  "promiscuity":1,"allmulti":1,"min_mtu":0,"max_mtu":0,"linkinfo":{"info_kind":"dummy"},
  "inet6_addr_gen_mode":"eui64","num_tx_queues":1,"gso_max_size":65536},
 {"ifindex":3,"link":"d0","ifname":"d0.100","flags":["BROADCAST","NOARP","UP","LOWER_UP"],
  "mtu":9000,"qdisc":"noqueue","master":"br100","operstate":"UP","linkmode":"DEFAULT",
  "group":"default","txqlen":1000,"link_type":"ether","address":"2a:3b:46:14:d9:c8",
  "broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":1,"allmulti":1,"min_mtu":0,"max_mtu":65535,
  "linkinfo":{"info_kind":"vlan","info_data":{"protocol":"802.1Q","id":100,
   "flags":["REORDER_HDR"]},"info_slave_kind":"bridge","info_slave_data":{"state":"forwarding",
   "priority":32,"cost":100,"hairpin":false,"guard":false,"learning":true,"flood":true,
   "id":"0x8001","no":"0x1","designated_port":32769,"designated_cost":0,
   "bridge_id":"8000.2a:3b:46:14:d9:c8","root_id":"8000.2a:3b:46:14:d9:c8","hold_timer":0.0,
   "message_age_timer":0.0,"forward_delay_timer":13.51,"topology_change_ack":0,
   "config_pending":0,"isolated":false}},
  "inet6_addr_gen_mode":"eui64","num_tx_queues":1,"gso_max_size":65536},
 {"ifindex":4,"ifname":"br100","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":9000,
  "qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,
  "link_type":"ether","address":"2a:3b:46:14:d9:c8","broadcast":"ff:ff:ff:ff:ff:ff",
  "promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"bridge",
   "info_data":{"forward_delay":1500,"hello_time":200,"max_age":2000,"stp_state":0,
   "priority":32768,"vlan_filtering":0,"bridge_id":"8000.2a:3b:46:14:d9:c8",
   "root_id":"8000.2a:3b:46:14:d9:c8","root_port":0,"root_path_cost":0,"topology_change":0,
   "topology_change_detected":0,"hello_timer":0.0,"tcn_timer":0.0,"topology_change_timer":0.0,
   "gc_timer":298.62,"mcast_snooping":1}},
  "inet6_addr_gen_mode":"eui64","num_tx_queues":1,"gso_max_size":65536},
 {"ifindex":5,"ifname":"bond0","flags":["BROADCAST","MULTICAST","MASTER","UP","LOWER_UP"],
  "mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default",
  "txqlen":1000,"link_type":"ether","address":"f2:bb:a0:74:a8:c8",
  "broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,
  "linkinfo":{"info_kind":"bond","info_data":{"mode":"active-backup","active_slave":"d1",
   "miimon":100,"updelay":0,"downdelay":0,"use_carrier":1,"arp_validate":null,
   "xmit_hash_policy":"layer2","ad_select":"stable"}},
  "inet6_addr_gen_mode":"eui64","num_tx_queues":16},
 {"ifindex":6,"ifname":"d1","flags":["BROADCAST","NOARP","SLAVE","UP","LOWER_UP"],"mtu":1500,
  "qdisc":"noqueue","master":"bond0","operstate":"UNKNOWN","linkmode":"DEFAULT",
  "group":"default","txqlen":1000,"link_type":"ether","address":"f2:bb:a0:74:a8:c8",
  "broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,
  "linkinfo":{"info_kind":"dummy","info_slave_kind":"bond","info_slave_data":{"state":"ACTIVE",
   "mii_status":"UP","link_failure_count":0,"perm_hwaddr":"f2:bb:a0:74:a8:c8","queue_id":0,
   "prio":0}},
  "inet6_addr_gen_mode":"eui64","num_tx_queues":1},
 {"ifindex":7,"link_index":9,"link_netnsid":0,"ifname":"v0",
  "flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],"mtu":1500,"qdisc":"noop",
  "operstate":"LOWERLAYERDOWN","group":"default","address":"aa:bb:cc:dd:ee:01",
  "linkinfo":{"info_kind":"veth"}}
]""")

ADDRS = json.loads("""[
 {"ifindex":1,"ifname":"lo","addr_info":[
  {"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo",
   "valid_life_time":4294967295,"preferred_life_time":4294967295},
  {"family":"inet6","local":"::1","prefixlen":128,"scope":"host",
   "valid_life_time":4294967295,"preferred_life_time":4294967295}]},
 {"ifindex":4,"ifname":"br100","addr_info":[
  {"family":"inet","local":"192.0.2.1","prefixlen":24,"scope":"global","label":"br100",
   "valid_life_time":4294967295,"preferred_life_time":4294967295},
  {"family":"inet6","local":"2001:db8::1","prefixlen":64,"scope":"global","tentative":true,
   "valid_life_time":4294967295,"preferred_life_time":4294967295},
  {"family":"inet6","local":"fe80::283b:46ff:fe14:d9c8","prefixlen":64,"scope":"link",
   "valid_life_time":4294967295,"preferred_life_time":4294967295}]},
 {"ifindex":2,"ifname":"d0","addr_info":[
  {"family":"inet6","local":"fe80::283b:46ff:fe14:d9c8","prefixlen":64,"scope":"link",
   "valid_life_time":4294967295,"preferred_life_time":4294967295}]}
]""")

ROUTES4 = json.loads("""[
 {"dst":"default","gateway":"192.0.2.254","dev":"br100","flags":[]},
 {"dst":"192.0.2.0/24","dev":"br100","protocol":"kernel","scope":"link","prefsrc":"192.0.2.1",
  "flags":["linkdown"]},
 {"type":"local","dst":"192.0.2.1","dev":"br100","table":"local","protocol":"kernel",
  "scope":"host","prefsrc":"192.0.2.1","flags":[]}
]""")

ROUTES6 = json.loads("""[
 {"dst":"2001:db8::/64","dev":"br100","protocol":"kernel","metric":256,"flags":[],
  "pref":"medium"},
 {"dst":"fe80::/64","dev":"br100","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
 {"type":"local","dst":"2001:db8::1","dev":"br100","table":"local","protocol":"kernel",
  "metric":0,"flags":[],"pref":"medium"},
 {"type":"multicast","dst":"ff00::/8","dev":"br100","table":"local","protocol":"kernel",
  "metric":256,"flags":[],"pref":"medium"}
]""")

BRIDGE_PORTS = json.loads("""[
 {"ifindex":3,"link":"d0","ifname":"d0.100","flags":["BROADCAST","UP","LOWER_UP"],"mtu":9000,
  "master":"br100","state":"forwarding","priority":32,"cost":100}
]""")


def raw(**changes: Any) -> RawState:
    parts: dict[str, Any] = {"links": LINKS, "addrs": ADDRS, "routes4": ROUTES4,
                             "routes6": ROUTES6, "bridge_ports": BRIDGE_PORTS}
    parts = {k: copy.deepcopy(v) for k, v in parts.items()}
    parts.update(changes)
    return RawState(**parts)


@pytest.fixture
def dump() -> dict[str, Any]:
    return normalise(raw())


def test_keeps_configuration(dump: dict[str, Any]) -> None:
    links = dump["links"]
    assert set(links) == {"lo", "d0", "d0.100", "br100", "bond0", "d1", "v0"}
    vlan = links["d0.100"]
    assert vlan["kind"] == "vlan"
    assert vlan["info"] == {"protocol": "802.1Q", "id": 100, "flags": ["REORDER_HDR"]}
    assert (vlan["link"], vlan["master"], vlan["mtu"]) == ("d0", "br100", 9000)
    assert vlan["address"] == "2a:3b:46:14:d9:c8"
    assert "UP" in vlan["flags"]
    assert links["br100"]["info"]["stp_state"] == 0
    assert links["bond0"]["info"]["mode"] == "active-backup"
    assert links["bond0"]["info"]["miimon"] == 100
    assert links["d1"]["slave_kind"] == "bond"
    assert links["d1"]["slave_info"]["perm_hwaddr"] == "f2:bb:a0:74:a8:c8"


def test_drops_ids_counters_timers_and_carrier(dump: dict[str, Any]) -> None:
    text = "\n".join(flatten(dump))
    for gone in ("ifindex", "operstate", "qdisc", "promiscuity", "gso_max_size", "num_tx_queues",
                 "LOWER_UP", "NO-CARRIER", "gc_timer", "hello_timer", "root_port",
                 "forward_delay_timer", "active_slave", "mii_status", "life_time",
                 "tentative", "linkdown", "link_index", "link_netnsid", '"forwarding"'):
        assert gone not in text, gone
    assert dump["links"]["v0"]["link"] == "<other netns>"
    assert dump["links"]["d1"]["slave_info"].keys() == {"perm_hwaddr", "queue_id", "prio"}


def test_addresses_without_link_local(dump: dict[str, Any]) -> None:
    assert dump["addresses"] == {
        "lo": {"127.0.0.1/8": {"family": "inet", "scope": "host", "label": "lo"},
               "::1/128": {"family": "inet6", "scope": "host"}},
        "br100": {"192.0.2.1/24": {"family": "inet", "scope": "global", "label": "br100"},
                  "2001:db8::1/64": {"family": "inet6", "scope": "global"}},
    }


def test_routes_keyed_without_derived_ipv6(dump: dict[str, Any]) -> None:
    assert sorted(dump["routes"]) == [
        "inet local local 192.0.2.1 dev br100",
        "inet main unicast 192.0.2.0/24 dev br100",
        "inet main unicast default dev br100",
        "inet6 main unicast 2001:db8::/64 dev br100 metric 256",
    ]
    assert dump["routes"]["inet main unicast default dev br100"]["gateway"] == "192.0.2.254"
    assert dump["routes"]["inet main unicast 192.0.2.0/24 dev br100"]["flags"] == []


def test_bridge_ports(dump: dict[str, Any]) -> None:
    assert dump["bridge_ports"] == {
        "d0.100": {"link": "d0", "mtu": 9000, "master": "br100", "priority": 32}}


def test_time_varying_fields_do_not_change_the_dump() -> None:
    links = copy.deepcopy(LINKS)
    links[3]["linkinfo"]["info_data"]["gc_timer"] = 12.5
    links[3]["flags"].remove("LOWER_UP")
    links[3]["operstate"] = "DOWN"
    links[2]["linkinfo"]["info_slave_data"]["state"] = "learning"
    links[4]["linkinfo"]["info_data"]["active_slave"] = "d2"
    addrs = copy.deepcopy(ADDRS)
    del addrs[1]["addr_info"][2]  # link-local not there yet
    del addrs[1]["addr_info"][1]["tentative"]
    routes6 = [r for r in ROUTES6 if r.get("table") != "local"]
    later = normalise(raw(links=links, addrs=addrs, routes6=routes6))
    assert_same_state(normalise(raw()), later)


def test_diff_names_the_change() -> None:
    links = copy.deepcopy(LINKS)
    links[3]["mtu"] = 1500
    routes4 = ROUTES4[1:]
    diff = diff_dumps(normalise(raw()), normalise(raw(links=links, routes4=routes4)))
    assert "-links/br100/mtu: 9000" in diff
    assert "+links/br100/mtu: 1500" in diff
    assert '-routes/inet main unicast default dev br100/gateway: "192.0.2.254"' in diff
    with pytest.raises(AssertionError, match=r"\+links/br100/mtu: 1500"):
        assert_same_state(normalise(raw()), normalise(raw(links=links)))


def test_duplicate_route_keys_stay_distinct() -> None:
    routes4 = [{"dst": "10.0.0.0/8", "dev": "d0", "tos": "0x10"},
               {"dst": "10.0.0.0/8", "dev": "d0"}, {"dst": "10.0.0.0/8", "dev": "d0"}]
    keys = sorted(normalise(raw(routes4=routes4, routes6=[]))["routes"])
    assert keys == ["inet main unicast 10.0.0.0/8 dev d0",
                    "inet main unicast 10.0.0.0/8 dev d0 #2",
                    "inet main unicast 10.0.0.0/8 dev d0 tos 0x10"]
