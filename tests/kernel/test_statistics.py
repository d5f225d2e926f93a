"""Host.getNetworkStatistics against the kernel's own report (`ip -s -j link`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs
from tests.netns import NetNS


@pytest.fixture
async def agent(netns: NetNS, tmp_path: Path) -> AsyncIterator[AgentInNs]:
    netns.add_nic("eth1", dummy=False)
    netns.add_nic("eth2", dummy=False)
    # eth2's peer goes down: eth2 stays administratively up without carrier (LOWERLAYERDOWN).
    netns.ip("link", "set", "eth2p", "down")
    # eth3: a veth pair, both ends up with carrier and IPv6 off (no DAD or router
    # solicitations to move the counters between the two reads).
    netns.ip("link", "add", "eth3", "type", "veth", "peer", "name", "eth3p")
    for end in ("eth3", "eth3p"):
        netns.sh("sysctl", "-q", "-w", f"net.ipv6.conf.{end}.disable_ipv6=1")
        netns.ip("link", "set", end, "up")
    a = AgentInNs(netns, tmp_path)
    try:
        yield a
    finally:
        a.close()


def kernel_state(link: dict[str, Any]) -> str:
    # `ip` prints NO-CARRIER for a device that is UP without IFF_RUNNING; VDSM's "up" is
    # IFF_UP and IFF_RUNNING.
    flags = link["flags"]
    return "up" if "UP" in flags and "NO-CARRIER" not in flags else "down"


async def test_statistics_are_the_kernels_counters_and_running_state(
    agent: AgentInNs, netns: NetNS
) -> None:
    await agent.setup({
        "red": {"nic": "eth1"},
        "blue": {"nic": "eth2", "bridged": False},
        "iso": {},
    })
    # Freeze the counters between the two reads: a device that is up sends MLD reports (and
    # a veth whose peer is down counts them as dropped). eth2 and eth3 stay up, IPv6 off.
    for name in ("eth1", "eth1p", "red", "iso"):
        netns.ip("link", "set", name, "down")
    netns.sh("sysctl", "-q", "-w", "net.ipv6.conf.eth2.disable_ipv6=1")
    stats = await agent.call("Host.getNetworkStatistics")
    kernel = {link["ifname"]: link for link in netns.ip_json("-s", "link", "show")}

    assert sorted(stats["interfaces"]) == sorted(set(kernel) - {"lo"})
    for name, entry in stats["interfaces"].items():
        counters = kernel[name]["stats64"]
        assert (entry["rx"], entry["tx"], entry["rxDropped"], entry["txDropped"],
                entry["rxErrors"], entry["txErrors"]) == (
            counters["rx"]["bytes"], counters["tx"]["bytes"], counters["rx"]["dropped"],
            counters["tx"]["dropped"], counters["rx"]["errors"], counters["tx"]["errors"],
        ), name
        assert entry["state"] == kernel_state(kernel[name]), (name, kernel[name]["flags"])

    # The cases the kernel tells apart: eth3 is up with carrier, eth2 is UP but has no
    # carrier, eth1 is down.
    assert stats["interfaces"]["eth3"]["state"] == "up"
    assert "NO-CARRIER" in kernel["eth2"]["flags"]
    assert stats["interfaces"]["eth2"]["state"] == "down"
    assert stats["interfaces"]["eth1"]["state"] == "down"
    assert sorted(stats["networks"]) == ["blue", "iso", "red"]
    assert stats["networks"]["blue"] == stats["interfaces"]["eth2"]
    assert stats["networks"]["red"] == stats["interfaces"]["red"]
    assert stats["networks"]["iso"] == stats["interfaces"]["iso"]
    assert isinstance(stats["sampleTime"], float)
