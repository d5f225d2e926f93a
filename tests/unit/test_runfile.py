"""RunningEncoder writes exactly the bytes persist writes for the same config."""

from __future__ import annotations

import json
import random

from tests.unit.test_scope import BONDS, random_network
from vdsm_net.model import NetConfig
from vdsm_net.persist import _encode, config_from_json
from vdsm_net.request import parse_config
from vdsm_net.runfile import RunningEncoder


def test_same_bytes_as_persist_across_changes() -> None:
    rng = random.Random(7)
    encoder = RunningEncoder()
    assert encoder.encode(NetConfig()) == _encode(NetConfig())
    nets: dict[str, object] = {}
    for _ in range(300):
        for _ in range(rng.randint(1, 3)):
            name = f"net{rng.randint(0, 20)}"
            if name in nets and rng.random() < 0.3:
                del nets[name]
            else:
                nets[name] = random_network(rng, name)
        bonds = BONDS if rng.random() < 0.7 else {}
        try:
            cfg = parse_config({"networks": nets, "bondings": bonds})
        except Exception:
            continue
        data = encoder.encode(cfg)
        assert data == _encode(cfg)
    assert config_from_json(json.loads(data)) == cfg


def test_unchanged_entries_are_reused_and_changed_ones_re_encoded() -> None:
    encoder = RunningEncoder()
    cfg = parse_config({"networks": {"a": {"nic": "eth1"}, "b": {"nic": "eth2"}}})
    assert encoder.encode(cfg) == _encode(cfg)
    changed = parse_config({"networks": {"b": {"nic": "eth2", "mtu": 9000}}})
    merged = NetConfig({**cfg.networks, "b": changed.networks["b"]}, cfg.bondings)
    assert merged.networks["a"] is cfg.networks["a"]
    assert encoder.encode(merged) == _encode(merged)
    assert encoder.encode(cfg) == _encode(cfg)
