"""The test bed itself: devices made with `ip` in the test's namespace, checked against the
kernel's own report (`ip -d -j link`). These test the bed (namespaces, NICs, UML delegation,
dumps), not the agent."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dump import Dump, assert_same_state, diff_dumps
from tests.netns import NetNS

KernelDump = Callable[[NetNS], Dump]


@pytest.mark.needs("vlan", "dummy")
def test_bridge_on_vlan_on_dummy_nic_with_jumbo_mtu(netns: NetNS) -> None:
    nic = netns.add_nic("eth0", dummy=True)
    netns.ip("link", "set", nic, "mtu", "9000")
    # The base must be up before its VLAN can be (the kernel answers "Network is down").
    netns.ip("link", "add", "link", nic, "name", "eth0.100", "mtu", "9000", "type", "vlan",
             "id", "100")
    netns.ip("link", "add", "br100", "mtu", "9000", "type", "bridge")
    netns.ip("link", "set", "eth0.100", "master", "br100", "up")
    netns.ip("link", "set", "br100", "up")

    links = netns.links()
    assert links["eth0"]["linkinfo"]["info_kind"] == "dummy"
    vlan = links["eth0.100"]
    assert vlan["linkinfo"]["info_kind"] == "vlan"
    assert vlan["linkinfo"]["info_data"]["id"] == 100
    assert vlan["linkinfo"]["info_data"]["protocol"] == "802.1Q"
    assert vlan["link"] == "eth0"
    assert vlan["master"] == "br100"
    assert links["br100"]["linkinfo"]["info_kind"] == "bridge"
    assert [links[d]["mtu"] for d in ("eth0", "eth0.100", "br100")] == [9000, 9000, 9000]
    assert all("UP" in links[d]["flags"] for d in ("eth0", "eth0.100", "br100"))


@pytest.mark.needs("bond", "dummy")
def test_active_backup_bond_of_two_nics(netns: NetNS) -> None:
    nics = [netns.add_nic(n, dummy=True) for n in ("eth1", "eth2")]
    netns.ip("link", "add", "bond0", "type", "bond", "mode", "active-backup", "miimon", "100")
    for nic in nics:
        # A NIC must be down to be enslaved to a bond.
        netns.ip("link", "set", nic, "down")
        netns.ip("link", "set", nic, "master", "bond0")
    netns.ip("link", "set", "bond0", "up")

    links = netns.links()
    info = links["bond0"]["linkinfo"]
    assert info["info_kind"] == "bond"
    assert info["info_data"]["mode"] == "active-backup"
    assert info["info_data"]["miimon"] == 100
    for nic in nics:
        assert links[nic]["master"] == "bond0"
        assert links[nic]["linkinfo"]["info_slave_kind"] == "bond"
    assert "MASTER" in links["bond0"]["flags"]


def test_bridge_without_ports(netns: NetNS) -> None:
    netns.ip("link", "add", "isol0", "type", "bridge", "stp_state", "1")
    netns.ip("link", "set", "isol0", "mtu", "4000", "up")

    br = netns.link("isol0")
    assert br["linkinfo"]["info_kind"] == "bridge"
    assert br["linkinfo"]["info_data"]["stp_state"] == 1
    assert br["mtu"] == 4000
    assert "UP" in br["flags"]
    assert [d for d in netns.links().values() if d.get("master") == "isol0"] == []


def test_nic_is_dummy_or_veth_as_the_kernel_allows(netns: NetNS) -> None:
    netns.add_nic("eth9")
    kind = netns.link("eth9")["linkinfo"]["info_kind"]
    assert kind in ("dummy", "veth")
    assert "UP" in netns.link("eth9")["flags"]


def test_dump_of_untouched_namespace_is_stable(netns: NetNS, kernel_dump: KernelDump) -> None:
    netns.add_nic("eth0")
    netns.ip("link", "add", "br0", "type", "bridge")
    netns.ip("link", "set", "eth0", "master", "br0")
    netns.ip("link", "set", "br0", "up")
    netns.ip("addr", "add", "192.0.2.1/24", "dev", "br0")
    netns.ip("addr", "add", "2001:db8::1/64", "dev", "br0")
    first = kernel_dump(netns)
    second = kernel_dump(netns)
    assert_same_state(first, second)
    assert first["links"]["eth0"]["master"] == "br0"
    assert "192.0.2.1/24" in first["addresses"]["br0"]
    assert "eth0" in first["bridge_ports"]


def test_a_change_shows_in_the_diff(netns: NetNS, kernel_dump: KernelDump) -> None:
    netns.ip("link", "add", "br0", "type", "bridge")
    netns.ip("link", "set", "br0", "up")
    before = kernel_dump(netns)
    netns.ip("link", "set", "br0", "mtu", "1400")
    netns.ip("addr", "add", "198.51.100.7/24", "dev", "br0")
    after = kernel_dump(netns)

    diff = diff_dumps(before, after)
    assert "-links/br0/mtu: 1500" in diff
    assert "+links/br0/mtu: 1400" in diff
    assert '+addresses/br0/198.51.100.7/24/family: "inet"' in diff
    assert any(line.startswith("+routes/inet main unicast 198.51.100.0/24 dev br0/")
               for line in diff)
    with pytest.raises(AssertionError, match="kernel state differs"):
        assert_same_state(before, after)


# --- the UML plugin, end to end: an outer pytest over a generated test file ----------------------

SELFTEST = '''
import os
import time

import pytest


@pytest.mark.no_uml
def test_on_host_a():
    assert "VDSM_NET_IN_UML" not in os.environ


@pytest.fixture
def boom():
    raise RuntimeError("fixture exploded")


def test_pass(netns):
    assert os.environ["VDSM_NET_IN_UML"] == "1"
    netns.ip("link", "add", "d0", "type", "dummy")


def test_fail():
    print("guest-stdout-marker")
    assert 1 + 1 == 3, "arith"


def test_skip():
    pytest.skip("no reason")


def test_fixture_error(boom):
    pass


@pytest.mark.xfail(reason="known", strict=True)
def test_xfail():
    raise AssertionError


@pytest.mark.parametrize("x", ["a b", "c[d]"])
def test_param(x):
    assert x


def test_sleep():
    if os.environ.get("SELFTEST_SLEEP"):
        time.sleep(600)


def test_second_run_fails():
    counter = os.environ.get("SELFTEST_COUNTER")
    if counter:  # the runs of VDSM_NET_UML_REPEAT count here (/tmp is the host's)
        with open(counter, "a") as f:
            f.write("x")
        with open(counter) as f:
            assert len(f.read()) != 2, "the second run fails"
'''


# A host test in a second module, after the delegated ones in collection order.
SELFTEST_B = '''
import pytest


@pytest.mark.no_uml
def test_on_host_b():
    pass
'''


def _outer_pytest(tmp_path: Path, env: dict[str, str], *select: str) -> tuple[int, str,
                                                                              dict[str, str]]:
    """Run an outer pytest over a generated kernel test file; (exit status, output, outcomes)."""
    root = Path(__file__).resolve().parents[2]
    # Not named test_*.py: other sessions never collect it; given explicitly, pytest does.
    tag = uuid.uuid4().hex[:8]
    paths = [Path(__file__).parent / f"uml_selftest_{tag}_{n}.py" for n in ("a", "b")]
    for path, text in zip(paths, (SELFTEST, SELFTEST_B), strict=True):
        path.write_text(text)
    junit = tmp_path / "junit.xml"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no",
             f"--junitxml={junit}", *map(str, paths), *select],
            cwd=root, capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    finally:
        for path in paths:
            path.unlink()
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.attrib["name"]] = kinds[0] if kinds else "passed"
    return proc.returncode, proc.stdout + proc.stderr, outcomes


@pytest.mark.no_uml
def test_uml_plugin_reports_each_inner_outcome(tmp_path: Path) -> None:
    status, out, outcomes = _outer_pytest(tmp_path, {"VDSM_NET_UML": "always"})
    assert status == 1, out
    assert outcomes == {
        "test_on_host_a": "passed",
        "test_on_host_b": "passed",  # not "previous item was not torn down properly"
        "test_pass": "passed",
        "test_fail": "failure",
        "test_skip": "failure",  # kernel tests must not skip, in the guest either
        "test_fixture_error": "failure",
        "test_xfail": "skipped",  # junit's word for xfailed
        "test_param[a b]": "passed",
        "test_param[c[d]]": "passed",
        "test_sleep": "passed",
        "test_second_run_fails": "passed",
    }, out
    assert "uml: 9 test(s) run in User-Mode Linux (VDSM_NET_UML=always)" in out
    assert "[UML] AssertionError: arith" in out
    assert "arith" in out
    assert "guest-stdout-marker" in out  # captured output travels with the report
    assert "fixture exploded" in out
    assert "kernel tests must not skip" in out
    assert "inner pytest exit status 1" in out


@pytest.mark.no_uml
def test_uml_plugin_fails_without_linux_uml(tmp_path: Path) -> None:
    # ip and modprobe are in sbin; linux.uml is in /usr/bin, now out of reach.
    status, out, outcomes = _outer_pytest(
        tmp_path, {"VDSM_NET_UML": "always", "PATH": "/usr/sbin:/sbin"}, "-k", "pass")
    assert status == 1, out
    assert outcomes == {"test_pass": "failure"}, out
    assert "linux.uml not found: apt-get install user-mode-linux kmod" in out


@pytest.mark.no_uml
def test_uml_plugin_kills_the_guest_on_timeout(tmp_path: Path) -> None:
    status, out, outcomes = _outer_pytest(
        tmp_path, {"VDSM_NET_UML": "always", "VDSM_NET_UML_TIMEOUT": "1", "SELFTEST_SLEEP": "1"},
        "-k", "sleep")
    assert status == 1, out
    assert outcomes == {"test_sleep": "failure"}, out
    assert "UML run killed after the 1 s timeout" in out


@pytest.mark.no_uml
def test_uml_plugin_repeats_the_runs_in_one_guest(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    status, out, outcomes = _outer_pytest(
        tmp_path, {"VDSM_NET_UML": "always", "VDSM_NET_UML_REPEAT": "3",
                   "SELFTEST_COUNTER": str(counter)},
        "-k", "test_pass or second_run")
    assert status == 1, out
    assert outcomes == {"test_pass": "passed", "test_second_run_fails": "failure"}, out
    assert counter.read_text() == "xxx", out  # the third run ran after the failed second
    assert "[UML] run 2 of 3: AssertionError: the second run fails" in out
    assert "3 runs (VDSM_NET_UML_REPEAT), 3 finished; 1 with a failure: runs [2]" in out
