"""The lab's plan (``engine_client.lab.layout``) and its command line's input checks: no
kernel, no root."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from engine_client.lab import cli, layout
from vdsm_net.errors import ErrorKind, NetError

IFNAMSIZ = 15  # the kernel's limit on a device name


def test_plan_names_and_addresses(tmp_path: Path) -> None:
    subnet = ipaddress.IPv4Network("198.18.5.0/24")
    lab = layout.plan(tmp_path, layout.MAX_HOSTS, subnet, made=True)
    assert [h.name for h in lab.hosts][:3] == ["host1", "host2", "host3"]
    assert len({h.netns for h in lab.hosts} | {lab.switch_netns, lab.probe_netns}) == (
        layout.MAX_HOSTS + 2
    )
    for host in lab.hosts:
        assert len(host.root_link) <= IFNAMSIZ, host.root_link
        assert len(f"{host.name}-eth2") <= IFNAMSIZ  # its NIC's port on the switch
        link = ipaddress.IPv4Interface(host.root_addr).network
        assert link.prefixlen == 30 and link.subnet_of(subnet)
        assert ipaddress.IPv4Address(host.addr) in link
        assert str(ipaddress.IPv4Interface(host.root_addr).ip) != host.addr
    links = [ipaddress.IPv4Interface(h.root_addr).network for h in lab.hosts]
    assert len(set(links)) == layout.MAX_HOSTS  # 64 disjoint /30s fill the /24


def test_pick_subnet_avoids_every_network_in_use() -> None:
    taken = [ipaddress.ip_network(f"198.{18 + i // 256}.{i % 256}.0/24") for i in range(511)]
    taken.append(ipaddress.ip_network("0.0.0.0/0"))  # a default route overlaps nothing
    for _ in range(20):
        assert layout.pick_subnet(taken) == ipaddress.IPv4Network("198.19.255.0/24")
    # A wider route over the whole range leaves nothing.
    with pytest.raises(NetError) as err:
        layout.pick_subnet([ipaddress.ip_network("198.16.0.0/12")])
    assert err.value.kind == ErrorKind.BAD_ADDR
    assert "198.18.0.0/15" in err.value.message


def test_manifest_round_trip(tmp_path: Path) -> None:
    lab = layout.plan(tmp_path, 2, ipaddress.IPv4Network("198.19.1.0/24"), made=False)
    lab = lab.with_state("up", ("dummy",))
    layout.save(lab)
    assert layout.load(tmp_path) == lab
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_manifest_is_no_lab_and_a_broken_one_is_named(tmp_path: Path) -> None:
    assert layout.load(tmp_path) is None
    (tmp_path / layout.MANIFEST).write_text(json.dumps({"lab_id": "ab12"}))
    with pytest.raises(NetError) as err:
        layout.load(tmp_path)
    assert str(tmp_path / layout.MANIFEST) in err.value.message


@pytest.mark.parametrize("count", ["0", "65", "-1", "three"])
def test_up_refuses_a_host_count_out_of_range(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["up", count]) == 2
    assert f"argument N: expected 1-64 hosts, got '{count}'" in capsys.readouterr().err


def test_every_option_has_help() -> None:
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command_name")
    assert isinstance(subs.choices, dict)
    for name, sub in subs.choices.items():
        for action in sub._actions:
            assert action.help, f"vdsm-net-lab {name}: {action.dest} has no help"
