"""Stable resource ids: UUIDs derived (uuid5) from what names a resource in the store, so the
same network has the same id in every answer, in every process, after a restart. A rename
gives a new id (renaming an attached network is refused anyway, docs/engine-cli.md)."""

from __future__ import annotations

import uuid

# The namespace of every id this engine client makes.
NAMESPACE = uuid.UUID("6f1c5e2a-3d4b-5a60-9e7f-0a1b2c3d4e5f")


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x00".join(parts)))


def dc(name: str) -> str:
    return _id("data_center", name)


def cluster(dc_name: str) -> str:
    return _id("cluster", dc_name)


def host(name: str) -> str:
    return _id("host", name)


def network(name: str) -> str:
    return _id("network", name)


def nic(host_name: str, dev: str) -> str:
    return _id("host_nic", host_name, dev)


def attachment(host_name: str, network_name: str) -> str:
    return _id("network_attachment", host_name, network_name)


def unmanaged_network(host_name: str, network_name: str) -> str:
    return _id("unmanaged_network", host_name, network_name)


def statistic(owner: str, name: str) -> str:
    return _id("statistic", owner, name)
