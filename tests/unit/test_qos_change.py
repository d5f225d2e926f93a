"""Which devices a setupNetworks shapes (vdsm_net/qos/change.py, the pure part)."""

from __future__ import annotations

from types import MappingProxyType

from vdsm_net.model import NetConfig, NetworkConfig
from vdsm_net.qos import HostQos
from vdsm_net.qos.change import change_of, shaping_of


def qos(m2: int) -> HostQos:
    parsed = HostQos.from_json({"out": {"ls": {"m2": m2}}}, "hostQos")
    assert parsed is not None
    return parsed


def config(*nets: NetworkConfig) -> NetConfig:
    return NetConfig(networks=MappingProxyType({n.name: n for n in nets}))


RED = NetworkConfig("red", nic="eth1", vlan=10, host_qos=qos(100))
BLUE = NetworkConfig("blue", nic="eth1", vlan=20, host_qos=qos(200))
GREEN = NetworkConfig("green", nic="eth1", host_qos=qos(300))
PLAIN = NetworkConfig("plain", nic="eth2", vlan=5)
ON_BOND = NetworkConfig("bonded", bonding="bond0", vlan=7, host_qos=qos(50))


def test_shaping_is_by_southbound_and_vlan_tag() -> None:
    assert shaping_of(config(RED, BLUE, GREEN, PLAIN, ON_BOND)) == {
        "eth1": {10: qos(100), 20: qos(200), None: qos(300)},
        "bond0": {7: qos(50)},
    }


def test_a_named_network_touches_its_device_with_every_network_on_it() -> None:
    running = config(RED, BLUE)
    new = config(NetworkConfig("red", nic="eth1", vlan=10, host_qos=qos(999)), BLUE)
    change = change_of(running, new, ["red"])
    assert change.desired == {"eth1": {10: qos(999), 20: qos(200)}}


def test_networks_without_qos_touch_nothing() -> None:
    assert not change_of(config(RED), config(RED, PLAIN), ["plain"])
    assert change_of(config(RED), config(RED, PLAIN), ["plain"]).devices == []


def test_removal_and_a_move_unshape_the_old_device() -> None:
    assert change_of(config(RED), config(), ["red"]).desired == {"eth1": {}}
    moved = NetworkConfig("red", nic="eth2", vlan=10, host_qos=qos(100))
    assert change_of(config(RED), config(moved), ["red"]).desired == {
        "eth1": {}, "eth2": {10: qos(100)}}
    dropped = NetworkConfig("red", nic="eth1", vlan=10)
    assert change_of(config(RED, BLUE), config(dropped, BLUE), ["red"]).desired == {
        "eth1": {20: qos(200)}}
