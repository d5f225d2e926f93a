"""The start-up warnings about NetworkManager and systemd-networkd (vdsm_net.coexist), on a
tree laid out as /proc, /run and /etc are (namespace links, comm files, NM's device files)."""

from __future__ import annotations

from pathlib import Path

from vdsm_net.coexist import NETWORKD_FILE, UDEV_RULE, Host, warnings
from vdsm_net.state import Device

OWNED = [Device("red", "bridge", 1500, True, owned=True, index=7),
         Device("blue", "bridge", 1500, True, owned=True, index=8)]


def _host(tmp_path: Path, processes: dict[int, tuple[str, str]]) -> Host:
    proc, run, root = tmp_path / "proc", tmp_path / "run", tmp_path / "root"
    for pid, (comm, netns) in {0: ("self", "net:[1]"), **processes}.items():
        d = proc / ("self" if pid == 0 else str(pid))
        (d / "ns").mkdir(parents=True)
        (d / "comm").write_text(comm + "\n")
        (d / "ns" / "net").symlink_to(netns)
    (run / "NetworkManager" / "devices").mkdir(parents=True)
    (run / "systemd" / "netif" / "links").mkdir(parents=True)
    root.mkdir()
    return Host(proc=proc, run=run, root=root)


def test_nothing_to_say_without_a_manager(tmp_path: Path) -> None:
    assert warnings(OWNED, _host(tmp_path, {42: ("sshd", "net:[1]")})) == []


def test_network_manager_without_the_rule_and_managing_an_owned_device(tmp_path: Path) -> None:
    host = _host(tmp_path, {100: ("NetworkManager", "net:[1]")})
    (host.run / "NetworkManager" / "devices" / "7").write_text("[device]\nmanaged=true\n")
    (host.run / "NetworkManager" / "devices" / "8").write_text("[device]\nmanaged=false\n")
    found = warnings(OWNED, host)
    assert len(found) == 2, found
    assert UDEV_RULE in found[0] and "not installed" in found[0]
    assert found[1].startswith("NetworkManager manages devices that vdsm-net owns: red;")


def test_the_installed_rule_silences_the_warning(tmp_path: Path) -> None:
    host = _host(tmp_path, {100: ("NetworkManager", "net:[1]")})
    rules = host.root / "etc" / "udev" / "rules.d"
    rules.mkdir(parents=True)
    (rules / UDEV_RULE).write_text("")
    assert warnings(OWNED, host) == []


def test_a_manager_in_another_namespace_is_not_ours(tmp_path: Path) -> None:
    host = _host(tmp_path, {100: ("NetworkManager", "net:[2]")})
    (host.run / "NetworkManager" / "devices" / "7").write_text("[device]\nmanaged=true\n")
    assert warnings(OWNED, host) == []


def test_networkd(tmp_path: Path) -> None:
    host = _host(tmp_path, {9: ("systemd-network", "net:[1]")})
    links = host.run / "systemd" / "netif" / "links"
    (links / "7").write_text("ADMIN_STATE=unmanaged\n")
    (links / "8").write_text("ADMIN_STATE=configured\nOPER_STATE=routable\n")
    found = warnings(OWNED, host)
    assert NETWORKD_FILE in found[0]
    assert found[1] == "systemd-networkd manages devices that vdsm-net owns: blue"
