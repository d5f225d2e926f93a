"""What a lab is made of, by name, recorded in ``DIR/lab.json`` before any of it is made.

The manifest is written first and rewritten atomically as the lab is built, so that ``down``
finds every namespace, link and process even of an ``up`` that was killed midway: it removes
what the manifest plans, whether or not it got built.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from vdsm_net.errors import ErrorKind, NetError
from vdsm_net.persist import atomic_write

MANIFEST: Final = "lab.json"
DB: Final = "engine.db"
PKI: Final = "pki"
HOSTS: Final = "hosts"
DC: Final = "lab"
DC_VERSION: Final = "4.7"
PORT: Final = 54321
# Benchmark space (RFC 2544): reserved for tests, so never a real network of the machine's.
POOL: Final = ipaddress.IPv4Network("198.18.0.0/15")
# One /30 per host (root side .1, host side .2) in one /24: 64 links.
MAX_HOSTS: Final = 64
NICS: Final = ("eth1", "eth2")  # veth pairs whose far ends are plugged into the lab's switch
DUMMY_NIC: Final = "eth3"  # a dummy device (a NIC without a cable), where the kernel has them
MGMT: Final = "mgmt"  # the host end of the management link, used by no network

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class LabHost:
    name: str  # as registered in the store: host1, host2, ...
    netns: str
    root_link: str  # the root namespace's end of the management link
    root_addr: str  # with prefix: 198.18.7.1/30
    addr: str  # the agent's address (no prefix)
    prefix: int

    @property
    def url(self) -> str:
        return f"https://{self.addr}:{PORT}"


@dataclass(frozen=True)
class Lab:
    """A lab's plan: every name and address it uses. ``kinds`` is what the kernel could
    make when it was built (vlan, bond, dummy)."""

    directory: Path
    lab_id: str
    subnet: str
    hosts: tuple[LabHost, ...]
    made_directory: bool  # whether ``up`` created DIR (``down`` then removes it)
    state: str = "building"  # "up" once every agent answered and the store is filled
    kinds: tuple[str, ...] = ()

    @property
    def switch_netns(self) -> str:
        """The namespace holding one bridge per NIC name, into which every host's NIC of
        that name is plugged: hosts reach each other through it, tagged frames included."""
        return f"vnlab-{self.lab_id}-switch"

    @property
    def probe_netns(self) -> str:
        return f"vnlab-{self.lab_id}-probe"

    @property
    def netns_names(self) -> list[str]:
        return [h.netns for h in self.hosts] + [self.switch_netns, self.probe_netns]

    @property
    def db(self) -> Path:
        return self.directory / DB

    @property
    def pki(self) -> Path:
        return self.directory / PKI

    def host_dir(self, host: LabHost) -> Path:
        return self.directory / HOSTS / host.name

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise NetError(ErrorKind.BAD_PARAMS, f"host: expected one of the lab's, got {name!r}")

    def with_state(self, state: str, kinds: Iterable[str] | None = None) -> Lab:
        return dataclasses.replace(
            self, state=state, kinds=self.kinds if kinds is None else tuple(kinds)
        )

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["directory"] = str(self.directory)
        return doc


def plan(directory: Path, count: int, subnet: ipaddress.IPv4Network, made: bool) -> Lab:
    lab_id = secrets.token_hex(2)
    hosts = []
    for i in range(count):
        base = subnet.network_address + 4 * i
        hosts.append(
            LabHost(
                name=f"host{i + 1}",
                netns=f"vnlab-{lab_id}-host{i + 1}",
                root_link=f"vnl{lab_id}-{i + 1}",
                root_addr=f"{base + 1}/30",
                addr=str(base + 2),
                prefix=30,
            )
        )
    return Lab(directory, lab_id, str(subnet), tuple(hosts), made)


def pick_subnet(in_use: Iterable[IPNetwork]) -> ipaddress.IPv4Network:
    """A /24 of the pool that overlaps no address or route of the machine, starting at a
    random one so that two labs built at once are unlikely to pick the same."""
    taken = [
        net for net in in_use if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0
    ]
    candidates = list(POOL.subnets(new_prefix=24))
    start = secrets.randbelow(len(candidates))
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(other) for other in taken):
            return net
    raise NetError(ErrorKind.BAD_ADDR, f"address: every /24 of {POOL} is in use on this machine")


def save(lab: Lab) -> None:
    """Atomically (a killed ``up`` leaves the previous manifest or the new one)."""
    text = json.dumps(lab.to_json(), indent=2) + "\n"
    atomic_write(lab.directory / MANIFEST, text.encode())


def load(directory: Path) -> Lab | None:
    """The lab in ``directory``, or None when there is none."""
    path = directory / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise NetError(ErrorKind.BAD_PARAMS, f"{path}: not a lab manifest: {exc}") from None
    try:
        return Lab(
            directory=directory,
            lab_id=str(doc["lab_id"]),
            subnet=str(doc["subnet"]),
            hosts=tuple(LabHost(**h) for h in doc["hosts"]),
            made_directory=bool(doc["made_directory"]),
            state=str(doc["state"]),
            kinds=tuple(doc.get("kinds", ())),
        )
    except (KeyError, TypeError) as exc:
        raise NetError(ErrorKind.BAD_PARAMS, f"{path}: not a lab manifest: {exc!r}") from None
