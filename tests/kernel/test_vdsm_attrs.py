"""The attributes VDSM's engine sends, on a real kernel (docs/api.md): ``custom.bridge_opts``
(the bridge's options as sysfs shows them), ``nameservers`` (the resolver file's bytes),
``defaultRoute`` moving (``ip -j route`` per table), a bond's ``hwaddr`` and ARP targets
(sysfs), an installer's bond adopted and later removed through ``bondings``. Each with a
rollback: a failure later in the same change puts everything back.

Bridges run on this host's kernel; bonds and VLANs in User-Mode Linux (one boot per test
function: the bond tests loop inside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs, RpcError
from tests.dump import dump_state
from tests.faults import FailingBackend, Faults
from tests.netns import NetNS
from vdsm_net.kernel.backend import Backend
from vdsm_net.render import network_table

OPTS = "multicast_snooping=0 forward_delay=1000 group_fwd_mask=0x4000 priority=100"
CHANGED = {"multicast_snooping": "0", "forward_delay": "1000", "group_fwd_mask": "0x4000",
           "priority": "100"}
DEFAULTS = {"multicast_snooping": "1", "forward_delay": "1500", "group_fwd_mask": "0x0",
            "priority": "32768"}


def sysfs(ns: NetNS, path: str) -> str:
    """A /sys/class/net file as the namespace's own sysfs shows it (ip netns exec remounts)."""
    return ns.sh("cat", f"/sys/class/net/{path}").stdout.strip()


def bridge_sysfs(ns: NetNS, bridge: str, names: list[str]) -> dict[str, str]:
    return {name: sysfs(ns, f"{bridge}/bridge/{name}") for name in names}


def failing_agent(ns: NetNS, state: Path) -> tuple[AgentInNs, Faults]:
    faults = Faults()
    agent = AgentInNs(ns, state, backend_factory=lambda: FailingBackend(
        Backend(netns=ns.name), ns, faults))
    return agent, faults


async def fail_at_last_op(agent: AgentInNs, faults: Faults, networks: dict[str, Any],
                          bondings: dict[str, Any] | None = None) -> RpcError:
    """Plan the change (dryRun), then run it with its last operation failing."""
    plan = (await agent.setup(networks, bondings, dryRun=True))["plan"]
    assert plan
    faults.arm(len(plan) - 1, collide=False)
    with pytest.raises(RpcError) as err:
        await agent.setup(networks, bondings)
    faults.disarm()
    assert err.value.code == 41, err.value.message
    return err.value


# ---- bridge_opts -------------------------------------------------------------------------


async def test_bridge_opts_reach_the_kernel_and_go_back_to_defaults(
    netns: NetNS, tmp_path: Path
) -> None:
    netns.add_nic("nic0", dummy=False)
    agent = AgentInNs(netns, tmp_path)
    try:
        await agent.setup({"red": {"nic": "nic0", "custom": {"bridge_opts": OPTS}}})
        assert bridge_sysfs(netns, "red", sorted(CHANGED)) == CHANGED
        opts = (await agent.caps())["bridges"]["red"]["opts"]
        assert {k: opts[k] for k in CHANGED} == CHANGED
        # Redefined without them: the kernel's defaults again, the bridge kept.
        index = netns.link("red")["ifindex"]
        await agent.setup({"red": {"nic": "nic0"}})
        assert bridge_sysfs(netns, "red", sorted(DEFAULTS)) == DEFAULTS
        assert netns.link("red")["ifindex"] == index
        # stp_state in bridge_opts is the network's stp (VDSM writes bridge_opts last).
        await agent.setup({"red": {"nic": "nic0", "custom": {"bridge_opts": "stp_state=1"}}})
        assert sysfs(netns, "red/bridge/stp_state") == "1"
        assert (await agent.caps())["networks"]["red"]["stp"] == "on"
    finally:
        agent.close()


async def test_bridge_opts_roll_back_with_the_change(netns: NetNS, tmp_path: Path) -> None:
    netns.add_nic("nic0", dummy=False)
    agent, faults = failing_agent(netns, tmp_path)
    try:
        await agent.setup({"red": {"nic": "nic0", "custom": {"bridge_opts": "priority=7"}}})
        before = bridge_sysfs(netns, "red", [*sorted(CHANGED)])
        # The options change, then the address after them fails: all of it is undone.
        change = {"red": {"nic": "nic0", "ipaddr": "192.0.2.5", "prefix": 24,
                          "custom": {"bridge_opts": OPTS}}}
        await fail_at_last_op(agent, faults, change)
        assert bridge_sysfs(netns, "red", sorted(CHANGED)) == before == {**DEFAULTS,
                                                                         "priority": "7"}
        assert netns.ip_json("-4", "addr", "show", "dev", "red") == []
    finally:
        agent.close()


async def test_a_value_the_kernel_refuses_changes_nothing(netns: NetNS, tmp_path: Path) -> None:
    netns.add_nic("nic0", dummy=False)
    agent = AgentInNs(netns, tmp_path)
    try:
        await agent.setup({"red": {"nic": "nic0"}})
        # The kernel refuses to forward the reserved link-local groups 0-2 (EINVAL).
        with pytest.raises(RpcError) as err:
            await agent.setup({"red": {"nic": "nic0", "mtu": 1400, "custom": {
                "bridge_opts": "group_fwd_mask=0x1"}}})
        assert err.value.code == 41 and "SetBridgeOptions" in err.value.message
        assert (netns.link("red")["mtu"], sysfs(netns, "red/bridge/group_fwd_mask")) == (
            1500, "0x0")
    finally:
        agent.close()


# ---- nameservers -------------------------------------------------------------------------

MGMT = {"nic": "nic0", "ipaddr": "192.0.2.10", "prefix": 24, "gateway": "192.0.2.1",
        "defaultRoute": True}


async def test_nameservers_are_written_to_the_resolver_file(netns: NetNS, tmp_path: Path) -> None:
    netns.add_nic("nic0", dummy=False)
    resolv = tmp_path / "resolv.conf"
    resolv.write_bytes(b"# by the installer\nsearch example.org\nnameserver 198.51.100.53\n"
                       b"options edns0\n")
    agent = AgentInNs(netns, tmp_path)
    try:
        await agent.setup({"mgmt": {**MGMT, "nameservers": ["192.0.2.53", "2001:db8::53"]}})
        assert resolv.read_bytes() == (b"# by the installer\nsearch example.org\n"
                                       b"nameserver 192.0.2.53\nnameserver 2001:db8::53\n"
                                       b"options edns0\n")
        caps = await agent.caps()
        assert caps["nameservers"] == caps["networks"]["mgmt"]["nameservers"] == [
            "192.0.2.53", "2001:db8::53"]
        # [] (and no nameservers at all) leave the file alone (docs/api.md).
        written = resolv.read_bytes()
        await agent.setup({"mgmt": {**MGMT, "mtu": 1400, "nameservers": []}})
        await agent.setup({"mgmt": {**MGMT, "mtu": 1300}})
        assert resolv.read_bytes() == written
    finally:
        agent.close()


async def test_nameservers_roll_back_with_the_change(netns: NetNS, tmp_path: Path) -> None:
    netns.add_nic("nic0", dummy=False)
    resolv = tmp_path / "resolv.conf"
    original = b"search example.org\nnameserver 198.51.100.53\n"
    resolv.write_bytes(original)
    agent = AgentInNs(netns, tmp_path)
    try:
        # Written after the kernel change, then the connectivity check fails: rolled back.
        with pytest.raises(RpcError) as err:
            await agent.setup({"mgmt": {**MGMT, "nameservers": ["192.0.2.53"]}},
                              connectivityCheck=True, connectivityTimeout=0.3)
        assert err.value.code == 10
        assert resolv.read_bytes() == original
        assert "mgmt" not in netns.links()
        # A file that did not exist is removed again.
        resolv.unlink()
        with pytest.raises(RpcError):
            await agent.setup({"mgmt": {**MGMT, "nameservers": ["192.0.2.53"]}},
                              connectivityCheck=True, connectivityTimeout=0.3)
        assert not resolv.exists()
    finally:
        agent.close()


# ---- defaultRoute moving -----------------------------------------------------------------


def default_routes(ns: NetNS, table: int | str = "main") -> list[tuple[str, str]]:
    routes = ns.ip_json("-4", "route", "show", "table", str(table), "default")
    return [(r["gateway"], r["dev"]) for r in routes]


OLD = {"nic": "nic0", "bridged": False, "ipaddr": "198.51.100.10", "prefix": 24,
       "gateway": "198.51.100.1", "defaultRoute": True}
NEW = {"nic": "nic1", "bridged": False, "ipaddr": "203.0.113.10", "prefix": 24,
       "gateway": "203.0.113.1", "defaultRoute": True}


async def test_default_route_moves_to_the_network_given_it(netns: NetNS, tmp_path: Path) -> None:
    for nic in ("nic0", "nic1"):
        netns.add_nic(nic, dummy=False)
    agent = AgentInNs(netns, tmp_path)
    try:
        await agent.setup({"old": OLD})
        assert default_routes(netns) == [("198.51.100.1", "nic0")]
        await agent.setup({"new": NEW})
        assert default_routes(netns) == [("203.0.113.1", "nic1")]
        # The old network keeps its gateway in a table of its own.
        assert default_routes(netns, network_table("old")) == [("198.51.100.1", "nic0")]
        caps = await agent.caps()
        assert (caps["networks"]["old"]["defaultRoute"], caps["networks"]["new"]["defaultRoute"],
                caps["networks"]["old"]["gateway"]) == (False, True, "198.51.100.1")
    finally:
        agent.close()


async def test_a_failed_move_leaves_the_default_route_where_it_was(
    netns: NetNS, tmp_path: Path
) -> None:
    for nic in ("nic0", "nic1"):
        netns.add_nic(nic, dummy=False)
    agent, faults = failing_agent(netns, tmp_path)
    try:
        await agent.setup({"old": OLD})
        await fail_at_last_op(agent, faults, {"new": NEW})
        assert default_routes(netns) == [("198.51.100.1", "nic0")]
        assert default_routes(netns, network_table("old")) == []
        caps = await agent.caps()
        assert sorted(caps["networks"]) == ["old"]
        assert caps["networks"]["old"]["defaultRoute"] is True
    finally:
        agent.close()


async def test_a_gateway_outside_the_subnet_is_error_22_and_changes_nothing(
    netns: NetNS, tmp_path: Path
) -> None:
    netns.add_nic("nic0", dummy=False)
    # What the rule rests on: with 198.51.100.10/24 as the device's only address, the kernel
    # itself refuses a route through 198.51.101.1 (no on-link route reaches it).
    netns.ip("addr", "add", "198.51.100.10/24", "dev", "nic0")
    refused = netns.ip("route", "add", "default", "via", "198.51.101.1", "dev", "nic0",
                       "table", "100", check=False)
    assert refused.returncode != 0 and "Nexthop has invalid gateway" in refused.stderr
    netns.ip("addr", "flush", "dev", "nic0")
    before = dump_state(netns.name)
    agent = AgentInNs(netns, tmp_path)
    try:
        with pytest.raises(RpcError) as err:
            await agent.setup({"off": {**OLD, "nic": "nic0", "gateway": "198.51.101.1"}})
        assert err.value.code == 22
        assert err.value.message == ("networks.off.gateway: 198.51.101.1 is not in "
                                     "198.51.100.0/24, the subnet of ipaddr 198.51.100.10/24")
        assert dump_state(netns.name) == before
    finally:
        agent.close()


# ---- bonds (User-Mode Linux) -------------------------------------------------------------

ARP = "mode=active-backup arp_interval=1000 arp_ip_target=192.0.2.1,192.0.2.2"


def bond_sysfs(ns: NetNS, bond: str) -> tuple[str, str, str]:
    """(MAC, ARP targets, mode) as the bond's sysfs shows them."""
    return (sysfs(ns, f"{bond}/address"), sysfs(ns, f"{bond}/bonding/arp_ip_target"),
            sysfs(ns, f"{bond}/bonding/mode"))


async def _bond_hwaddr_and_arp_targets(ns: NetNS, state: Path) -> None:
    for nic in ("nic0", "nic1"):
        ns.add_nic(nic)
    agent, faults = failing_agent(ns, state)
    try:
        bond = {"nics": ["nic0", "nic1"], "hwaddr": "02:00:00:00:0b:01", "options": ARP}
        await agent.setup({"blue": {"bonding": "bond1", "bridged": False}}, {"bond1": bond})
        assert bond_sysfs(ns, "bond1") == ("02:00:00:00:0b:01", "192.0.2.1 192.0.2.2",
                                           "active-backup 1")
        entry = (await agent.caps())["bondings"]["bond1"]
        assert (entry["hwaddr"], entry["opts"]) == ("02:00:00:00:0b:01", {
            "mode": "1", "arp_interval": "1000", "arp_ip_target": "192.0.2.1,192.0.2.2"})
        # Changed in place: a new MAC, one target less, one more (netlink replaces the list).
        changed = {"nics": ["nic0", "nic1"], "hwaddr": "02:00:00:00:0b:02",
                   "options": "mode=active-backup arp_interval=1000 "
                              "arp_ip_target=192.0.2.2,192.0.2.3"}
        index = ns.link("bond1")["ifindex"]
        await agent.setup({}, {"bond1": changed})
        assert bond_sysfs(ns, "bond1") == ("02:00:00:00:0b:02", "192.0.2.2 192.0.2.3",
                                           "active-backup 1")
        assert ns.link("bond1")["ifindex"] == index
        # Rolled back: the MAC and the targets as they were.
        again = {**changed, "hwaddr": "02:00:00:00:0b:03",
                 "options": "mode=active-backup arp_interval=1000 arp_ip_target=192.0.2.9"}
        await fail_at_last_op(agent, faults, {"blue": {"bonding": "bond1", "bridged": False,
                                                       "mtu": 1400}}, {"bond1": again})
        assert bond_sysfs(ns, "bond1") == ("02:00:00:00:0b:02", "192.0.2.2 192.0.2.3",
                                           "active-backup 1")
        assert ns.link("bond1")["mtu"] == 1500
        # Every other option the kernel has, set and read back by sysfs name.
        more = {"nics": ["nic0", "nic1"], "options": (
            "mode=active-backup miimon=100 num_unsol_na=3 resend_igmp=4 arp_missed_max=5 "
            "peer_notif_delay=200 primary_reselect=better all_slaves_active=1 lp_interval=3 "
            "arp_all_targets=all ns_ip6_target=2001:db8::1,2001:db8::2")}
        await agent.setup({}, {"bond1": more})
        got = {name: sysfs(ns, f"bond1/bonding/{name}") for name in (
            "num_grat_arp", "num_unsol_na", "resend_igmp", "arp_missed_max", "peer_notif_delay",
            "all_slaves_active", "lp_interval", "arp_ip_target")}
        assert got == {"num_grat_arp": "3", "num_unsol_na": "3", "resend_igmp": "4",
                       "arp_missed_max": "5", "peer_notif_delay": "200",
                       "all_slaves_active": "1", "lp_interval": "3", "arp_ip_target": ""}
        # Linux 6.1 has no sysfs file for the NS targets: netlink's report (ip -d).
        data = ns.link("bond1")["linkinfo"]["info_data"]
        assert data["ns_ip6_target"] == ["2001:db8::1", "2001:db8::2"]
        opts = (await agent.caps())["bondings"]["bond1"]["opts"]
        assert opts["ns_ip6_target"] == "2001:db8::1,2001:db8::2"
        assert "arp_ip_target" not in opts
        assert sysfs(ns, "bond1/bonding/primary_reselect") == "better 1"
        assert sysfs(ns, "bond1/bonding/arp_all_targets") == "all 1"
    finally:
        agent.close()


async def _adopted_bond_is_kept_then_removed(ns: NetNS, state: Path) -> None:
    for nic in ("nic2", "nic3"):
        ns.add_nic(nic)
    # An installer's bond: 802.3ad, fast LACP, its own MAC, two slaves.
    ns.ip("link", "add", "bond9", "address", "02:00:00:00:09:09", "type", "bond",
          "mode", "802.3ad", "lacp_rate", "fast")
    for nic in ("nic2", "nic3"):
        ns.ip("link", "set", nic, "down")
        ns.ip("link", "set", nic, "master", "bond9")
    ns.ip("link", "set", "bond9", "up")
    before = ns.link("bond9")
    agent, faults = failing_agent(ns, state)
    try:
        # A failed adoption gives the bond back as it was (not the agent's: default group).
        await fail_at_last_op(agent, faults, {"green": {"bonding": "bond9", "ipaddr": "192.0.2.9",
                                                        "prefix": 24}})
        after_failure = ns.link("bond9")
        assert (after_failure.get("group"), after_failure["ifindex"]) == ("default",
                                                                         before["ifindex"])
        assert "green" not in ns.links()
        await agent.setup({"green": {"bonding": "bond9"}})
        bond = ns.link("bond9")
        data = bond["linkinfo"]["info_data"]
        assert (bond["ifindex"], bond["address"], data["mode"], data["ad_lacp_rate"]) == (
            before["ifindex"], "02:00:00:00:09:09", "802.3ad", "fast")
        assert sorted(n for n, d in ns.links().items() if d.get("master") == "bond9") == [
            "nic2", "nic3"]
        assert ns.link("green")["linkinfo"]["info_kind"] == "bridge"
        caps = await agent.caps()
        assert caps["bondings"]["bond9"]["opts"] == {"mode": "4", "lacp_rate": "1"}
        assert caps["networks"]["green"]["southbound"] == "bond9"
        # The agent owns it now: changed and removed through bondings.
        await agent.setup({}, {"bond9": {"nics": ["nic2"], "options": "mode=4 lacp_rate=1"}})
        assert sorted(n for n, d in ns.links().items() if d.get("master") == "bond9") == [
            "nic2"]
        await agent.setup({"green": {"remove": True}}, {"bond9": {"remove": True}})
        links = ns.links()
        assert "bond9" not in links and "green" not in links
        assert {"nic2", "nic3"} <= set(links)
    finally:
        agent.close()


@pytest.mark.needs("bond", "dummy")
async def test_bonds_hwaddr_options_and_adoption(tmp_path: Path) -> None:
    for case in (_bond_hwaddr_and_arp_targets, _adopted_bond_is_kept_then_removed):
        ns = NetNS()
        try:
            await case(ns, tmp_path / case.__name__)
        finally:
            ns.close()
