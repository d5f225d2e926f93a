"""kill -9 at random instants while a child rewrites a state file: the file always parses and
holds one of the two configs that were written, never a torn mix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from vdsm_net.model import NetConfig, NetworkConfig, frozen_map
from vdsm_net.persist import StateStore

ITERATIONS = 200
REPO = Path(__file__).resolve().parents[2]

# Two configs of very different sizes, so a torn write would show as invalid JSON or a mix.
WRITER = """
import sys
from pathlib import Path
from vdsm_net.model import NetConfig, NetworkConfig, frozen_map
from vdsm_net.persist import StateStore

small = NetConfig(frozen_map({"a": NetworkConfig("a", nic="eth0")}))
big = NetConfig(frozen_map({
    f"n{i}": NetworkConfig(f"n{i}", nic="eth1", vlan=i, mtu=9000) for i in range(1, 400)
}))
store = StateStore(Path(sys.argv[1]))
store.save_running(small)
print("go", flush=True)
while True:
    store.save_running(big)
    store.save_running(small)
"""

SMALL = NetConfig(frozen_map({"a": NetworkConfig("a", nic="eth0")}))


def test_state_file_survives_kill_9_at_any_instant(tmp_path: Path) -> None:
    rng = random.Random(20240521)
    store = StateStore(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(ITERATIONS):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"go\n"
        # The instant is random; what is asserted afterwards does not depend on it.
        time.sleep(rng.uniform(0, 0.02))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        child.stdout.close()
        cfg = store.load_running()  # raises StateFileError on a torn file
        assert cfg == SMALL or len(cfg.networks) == 399
        store.remove_stale_temporaries()
    assert [p.name for p in tmp_path.iterdir()] == ["running.json"]
