"""``vdsm-net-lab`` on the host kernel (docs/lab.md): a lab of three hosts answers, carries a
network the engine client attaches and changes through the command line ``up`` printed, and
``down`` leaves no namespace, link, address, process or file, also after a killed ``up``.

Each test's lab lives in its own directory; whatever a broken ``down`` would leave is removed
afterwards by this file's own cleanup (from ``lab.json``), so that a failure does not leak.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns import run

BIN = Path(sys.executable).parent
LAB = str(BIN / "vdsm-net-lab")


@dataclass
class Made:
    """What a lab made, read from its manifest while it exists."""

    directory: Path
    lab_id: str = ""
    subnet: str = ""

    def read(self) -> None:
        doc = json.loads((self.directory / "lab.json").read_text())
        self.lab_id, self.subnet = doc["lab_id"], doc["subnet"]


def lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAB, *args], capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert proc.returncode == code, (
        f"{shlex.join(proc.args)}: exit {proc.returncode}, expected {code}\n"
        f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    return proc.stdout


def netns_names() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line]


def root_links() -> list[str]:
    return [d["ifname"] for d in json.loads(run("ip", "-j", "link", "show").stdout)]


def root_addresses() -> list[ipaddress.IPv4Interface]:
    return [
        ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
        for dev in json.loads(run("ip", "-j", "-4", "addr", "show").stdout)
        for a in dev.get("addr_info", [])
    ]


def processes_naming(text: str) -> list[str]:
    """Every process whose command line mentions ``text``: ``pid: cmdline``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline.replace(chr(0), ' ')}")
    return found


def leftovers(made: Made) -> list[str]:
    left = []
    if made.directory.exists():
        left.append(f"directory {made.directory}: {sorted(os.listdir(made.directory))}")
    left += [f"namespace {n}" for n in netns_names() if f"vnlab-{made.lab_id}-" in n]
    left += [f"link {n}" for n in root_links() if n.startswith(f"vnl{made.lab_id}-")]
    subnet = ipaddress.IPv4Network(made.subnet)
    left += [f"address {a}" for a in root_addresses() if a.ip in subnet]
    left += [f"process {p}" for p in processes_naming(str(made.directory))]
    return left


def _force_clean(made: Made) -> None:
    """Independent of ``down``: kill, delete, remove whatever the lab left."""
    for line in processes_naming(str(made.directory)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
    for name in netns_names():
        if made.lab_id and f"vnlab-{made.lab_id}-" in name:
            run("ip", "netns", "del", name, check=False)
    for name in root_links():
        if made.lab_id and name.startswith(f"vnl{made.lab_id}-"):
            run("ip", "link", "del", name, check=False)
    run("rm", "-rf", str(made.directory), check=False)


@pytest.fixture
def made(tmp_path: Path) -> Iterator[Made]:
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (it makes network namespaces)")
    record = Made(tmp_path / "lab")
    try:
        yield record
    finally:
        if record.lab_id:
            _force_clean(record)


def engine(command_line: str, *args: str) -> Any:
    """The engine client as ``up`` printed it, with ``args`` and ``--json``."""
    argv = [*shlex.split(command_line), *args, "--json"]
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_CLIENT_DB"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    return json.loads(ok(proc)) if proc.stdout.strip() else None


def bridge_in(netns: str, name: str) -> dict[str, Any]:
    devs = json.loads(run("ip", "-n", netns, "-d", "-j", "link", "show", "dev", name).stdout)
    return dict(devs[0])


def test_up_status_network_down_leaves_nothing(made: Made) -> None:
    out = ok(lab("up", "3", "--dir", str(made.directory)))
    made.read()
    match = re.search(r"^\s*(\S*engine-client --db \S+)\s*$", out, re.MULTILINE)
    assert match, f"up printed no engine-client command line:\n{out}"
    command_line = match.group(1)

    doc = json.loads(ok(lab("status", "--dir", str(made.directory), "--json")))
    assert doc["state"] == "up"
    assert [h["name"] for h in doc["hosts"]] == ["host1", "host2", "host3"]
    for host in doc["hosts"]:
        assert host["netns_present"] and host["pid_alive"] and host["answering"], host
        assert {n["name"] for n in host["nics"]} >= {"eth1", "eth2"}
        assert host["netns"] in netns_names()
    text = ok(lab("status", "--dir", str(made.directory)))
    assert text.count(" yes ") == 3, text

    # Every agent listens on an address of a link the lab made: the host end of the root
    # namespace's veth, in a /30 with the root end.
    subnet = ipaddress.IPv4Network(made.subnet)
    assert subnet.subnet_of(ipaddress.IPv4Network("198.18.0.0/15"))
    mine = [a for a in root_addresses() if a.ip in subnet]
    assert len(mine) == 3

    assert [h["name"] for h in engine(command_line, "host", "list")] == [
        "host1", "host2", "host3",
    ]  # fmt: skip
    engine(command_line, "network", "add", "red", "--dc", "lab")
    for host in ("host1", "host2", "host3"):
        engine(command_line, "network", "attach", "red", host, "--nic", "eth1")
    engine(command_line, "network", "update", "red", "--mtu", "1400")
    for host in doc["hosts"]:
        red = bridge_in(host["netns"], "red")
        assert red["linkinfo"]["info_kind"] == "bridge"
        assert red["mtu"] == 1400
        assert bridge_in(host["netns"], "eth1")["master"] == "red"

    agents = processes_naming(str(made.directory))
    assert len(agents) == 3, agents
    out = ok(lab("down", "--dir", str(made.directory)))
    assert "removed" in out
    assert leftovers(made) == []
    assert "nothing to remove" in ok(lab("down", "--dir", str(made.directory)))


def test_up_refuses_a_directory_holding_a_lab(made: Made) -> None:
    ok(lab("up", "1", "--dir", str(made.directory)))
    made.read()
    manifest = (made.directory / "lab.json").read_text()
    proc = lab("up", "2", "--dir", str(made.directory))
    assert proc.returncode == 2
    assert "a lab already exists in" in proc.stderr and str(made.directory) in proc.stderr
    assert (made.directory / "lab.json").read_text() == manifest  # the first lab is untouched
    status = json.loads(ok(lab("status", "--dir", str(made.directory), "--json")))
    assert len(status["hosts"]) == 1 and status["hosts"][0]["answering"]
    ok(lab("down", "--dir", str(made.directory)))
    assert leftovers(made) == []


def test_down_cleans_a_killed_up(made: Made) -> None:
    up = subprocess.Popen(
        [LAB, "up", "3", "--dir", str(made.directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Killed once the first agent runs: namespaces, links, certificates and at least one
        # agent exist, the store and the later hosts may not.
        first_pid = made.directory / "hosts" / "host1" / "agent.pid"
        deadline = time.monotonic() + 240
        while not first_pid.exists() and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first_pid.exists(), f"up did not start an agent (exit {up.poll()})"
        made.read()
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert processes_naming(str(made.directory)), "no agent survived the killed up"
    assert any(f"vnlab-{made.lab_id}-" in n for n in netns_names())

    status = lab("status", "--dir", str(made.directory), "--json")
    assert status.returncode == 1, status.stdout + status.stderr
    assert json.loads(status.stdout)["state"] == "building"

    ok(lab("down", "--dir", str(made.directory)))
    assert leftovers(made) == []
