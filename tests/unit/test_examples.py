"""The shipped example configuration is valid, key for key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_client.pki import init_ca, issue
from vdsm_net.config import ConfigError, load_config

EXAMPLE = Path(__file__).parents[2] / "contrib" / "examples" / "vdsm-net.toml"


def test_example_config_loads_once_its_certificates_exist(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    with pytest.raises(ConfigError, match=r"\[tls\] cert: no such file"):
        load_config(EXAMPLE)
    init_ca(tmp_path)
    issue(tmp_path, "HOST", ips=["127.0.0.1"], dns=[])
    local = tmp_path / "vdsm-net.toml"
    local.write_text(text.replace("/etc/pki/vdsm-net", str(tmp_path)))
    cfg = load_config(local)
    assert cfg.listen == ("0.0.0.0", 54321)
    assert cfg.tls_ca == tmp_path / "ca.pem"
    assert cfg.connectivity_timeout == 120.0
    assert cfg.state_dir == Path("/var/lib/vdsm-net")
