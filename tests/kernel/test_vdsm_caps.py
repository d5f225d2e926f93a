"""Golden capability documents (tests/unit/golden/vdsm_caps/): each file's requests applied on
a real kernel, and Host.getNetworkCapabilities compared with VDSM's document field by field.

A golden file holds ``host`` (the NICs and the initial resolvers), ``requests`` (in order),
``capabilities`` (VDSM's document for that host), ``volatile`` (paths whose value the kernel
chooses: type compared only) and ``subset`` (bridge ``opts``: golden pairs must be present).
The test host's NICs are veth pairs whose peers stay in the namespace (the "cable"), so
``nics`` is compared for the golden's NICs only. ``ipv6autoconf`` is compared with the
kernel's own sysctl for the device (VDSM reports false because nmstate turns SLAAC off; the
agent reports what the kernel has, see docs/api.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.agenthelp import AgentInNs
from tests.netns import NetNS
from vdsm_net.capsdoc import check_document

GOLDEN = Path(__file__).parent.parent / "unit" / "golden" / "vdsm_caps"
SECTIONS = ("networks", "bridges", "vlans", "bondings")


def golden(name: str) -> dict[str, Any]:
    return dict(json.loads((GOLDEN / f"{name}.json").read_text()))


def _autoconf(ns: NetNS, device: str) -> bool:
    def flag(leaf: str) -> int:
        out = ns.sh("cat", f"/proc/sys/net/ipv6/conf/{device}/{leaf}").stdout
        return int(out.strip())

    return flag("autoconf") > 0 and flag("accept_ra") > 0


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return sorted((_norm(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def compare(
    path: tuple[str, ...], want: Any, got: Any, volatile: set[tuple[str, ...]],
    subset: set[tuple[str, ...]], out: list[str],
) -> None:
    where = ".".join(path) or "document"
    if path in volatile:
        if type(want) is not type(got):
            out.append(f"{where}: expected a {type(want).__name__}, got {got!r}")
        return
    if path in subset:
        missing = {k: v for k, v in want.items() if got.get(k) != v}
        if missing:
            out.append(f"{where}: lacks {missing} (has {got})")
        return
    if isinstance(want, dict) and isinstance(got, dict):
        if sorted(want) != sorted(got):
            out.append(f"{where}: keys {sorted(want)} != {sorted(got)}")
        for key in sorted(set(want) & set(got)):
            compare((*path, key), want[key], got[key], volatile, subset, out)
        return
    if _norm(want) != _norm(got) or type(want) is not type(got):
        out.append(f"{where}: expected {want!r}, got {got!r}")


async def run_golden(name: str, ns: NetNS, tmp_path: Path) -> None:
    spec = golden(name)
    for nic in spec["host"]["nics"]:
        ns.add_nic(nic, dummy=False)
    resolv = tmp_path / "state" / "resolv.conf"
    resolv.parent.mkdir(parents=True)
    resolv.write_text("".join(f"nameserver {a}\n" for a in spec["host"]["resolver"]))
    agent = AgentInNs(ns, tmp_path / "state")
    try:
        for request in spec["requests"]:
            await agent.setup(request["networks"], request["bondings"])
        doc = await agent.caps()
    finally:
        agent.close()
    assert check_document(doc) == []
    want = spec["capabilities"]
    # A network entry says what the network asks for (ipv6autoconf: false, as the golden
    # files); a device entry what the kernel has for SLAAC on it (the in-process test agent
    # writes /proc/sys/net from the root namespace, so its devices keep the kernel's default).
    for section in ("bridges", "vlans", "bondings", "nics"):
        for dev_name, entry in want[section].items():
            entry["ipv6autoconf"] = _autoconf(ns, dev_name)
    volatile = {tuple(p) for p in spec["volatile"]}
    subset = {tuple(p) for p in spec["subset"]}
    problems: list[str] = []
    for key in sorted(want):
        if key == "nics":
            for nic, entry in want["nics"].items():
                if nic not in doc["nics"]:
                    problems.append(f"nics.{nic}: missing")
                else:
                    compare(("nics", nic), entry, doc["nics"][nic], volatile, subset, problems)
        else:
            compare((key,), want[key], doc.get(key), volatile, subset, problems)
    assert problems == []


@pytest.mark.parametrize(
    "name", ["bridged", "bridgeless", "isolated", "static_default_route", "default_route_moved"]
)
async def test_golden_document_on_this_kernel(name: str, netns: NetNS, tmp_path: Path) -> None:
    await run_golden(name, netns, tmp_path)


# VLANs and bonds need User-Mode Linux here: one test, several documents, one guest boot.
@pytest.mark.needs("vlan", "bond")
async def test_golden_documents_with_vlans_and_bonds(tmp_path: Path) -> None:
    for name in ("tagged", "bond", "bond_arp_tagged"):
        ns = NetNS()
        try:
            await run_golden(name, ns, tmp_path / name)
        finally:
            ns.close()


# Remaining times: they run down between the two reads.
TIMERS = frozenset({"hello_timer", "tcn_timer", "topology_change_timer", "gc_timer"})


async def test_bridge_opts_are_what_sysfs_shows(netns: NetNS, tmp_path: Path) -> None:
    netns.add_nic("nic0", dummy=False)
    agent = AgentInNs(netns, tmp_path)
    try:
        await agent.setup({"red": {"nic": "nic0", "stp": True}})
        doc = await agent.caps()
    finally:
        agent.close()
    opts = doc["bridges"]["red"]["opts"]
    listing = 'cd /sys/class/net/red/bridge && for f in *; do echo "$f:$(cat $f)"; done'
    sysfs = netns.sh("sh", "-c", listing + " 2>/dev/null").stdout
    shown = dict(line.split(":", 1) for line in sysfs.splitlines())
    assert shown.pop("flush") == ""  # write-only: reading it fails
    assert sorted(opts) == sorted(shown)
    assert {k: v for k, v in opts.items() if k not in TIMERS} == {
        k: v for k, v in shown.items() if k not in TIMERS
    }
    assert (opts["stp_state"], doc["bridges"]["red"]["stp"]) == ("1", "on")
