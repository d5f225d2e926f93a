"""Data centers, hosts (with their last capabilities) and the labels of hosts and of their NICs:
the ``data_center``, ``host``, ``host_label`` and ``nic_label`` tables.

What labels attach is ``engine_client/labels.py``; these are only their rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from engine_client.models import DataCenter, Host, HostLabel, NicLabel
from engine_client.store import rows
from engine_client.store.session import Session
from engine_client.store_backend import StoreError


class DataCenterTable:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_dc(self, dc: DataCenter) -> DataCenter:
        with self._s.transaction():
            if self.find_dc(dc.name) is not None:
                raise StoreError(f"data center {dc.name!r} already exists")
            self._s.execute(
                "INSERT INTO data_center (name, version) VALUES (?, ?)", (dc.name, dc.version)
            )
        return dc

    def find_dc(self, name: str) -> DataCenter | None:
        row = self._s.one("SELECT * FROM data_center WHERE name = ?", (name,))
        return None if row is None else rows.dc(row)

    def get_dc(self, name: str) -> DataCenter:
        dc = self.find_dc(name)
        if dc is None:
            raise StoreError(f"no data center {name!r}")
        return dc

    def list_dcs(self) -> list[DataCenter]:
        return [rows.dc(r) for r in self._s.all("SELECT * FROM data_center ORDER BY name")]

    def remove_dc(self, name: str) -> None:
        with self._s.transaction():
            self.get_dc(name)
            if self._s.one(
                "SELECT 1 FROM host WHERE dc = ? UNION SELECT 1 FROM network WHERE dc = ?",
                (name, name),
            ):
                raise StoreError(f"data center {name!r} still has hosts or networks")
            self._s.execute("DELETE FROM data_center WHERE name = ?", (name,))


class HostTable:
    def __init__(self, session: Session, dcs: DataCenterTable) -> None:
        self._s = session
        self._dcs = dcs

    def add_host(self, host: Host) -> Host:
        with self._s.transaction():
            self._dcs.get_dc(host.dc)
            if self.find_host(host.name) is not None:
                raise StoreError(f"host {host.name!r} already exists")
            self._s.execute(
                "INSERT INTO host (name, url, dc, cert, key, ca, caps, caps_time, agent_version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    host.name,
                    host.url,
                    host.dc,
                    host.cert,
                    host.key,
                    host.ca,
                    json.dumps(dict(host.caps)) if host.caps else None,
                    host.caps_time,
                    host.agent_version,
                ),
            )
        return host

    def find_host(self, name: str) -> Host | None:
        row = self._s.one("SELECT * FROM host WHERE name = ?", (name,))
        return None if row is None else rows.host(row)

    def get_host(self, name: str) -> Host:
        host = self.find_host(name)
        if host is None:
            raise StoreError(f"no host {name!r}")
        return host

    def list_hosts(self, dc: str | None = None) -> list[Host]:
        if dc is None:
            found = self._s.all("SELECT * FROM host ORDER BY name")
        else:
            found = self._s.all("SELECT * FROM host WHERE dc = ? ORDER BY name", (dc,))
        return [rows.host(r) for r in found]

    def remove_host(self, name: str) -> None:
        """Removes the host with its attachments and labels (the hosts' kernels are untouched)."""
        with self._s.transaction():
            self.get_host(name)
            self._s.execute("DELETE FROM host WHERE name = ?", (name,))

    def set_host_caps(
        self,
        name: str,
        caps: Mapping[str, Any],
        *,
        agent_version: str | None,
        when: float | None = None,
    ) -> None:
        with self._s.transaction():
            self.get_host(name)
            self._s.execute(
                "UPDATE host SET caps = ?, caps_time = ?, agent_version = ? WHERE name = ?",
                (
                    json.dumps(dict(caps)),
                    time.time() if when is None else when,
                    agent_version,
                    name,
                ),
            )


class LabelTable:
    """Host labels and NIC labels."""

    def __init__(self, session: Session, hosts: HostTable) -> None:
        self._s = session
        self._hosts = hosts

    def add_host_label(self, host: str, label: str) -> HostLabel:
        with self._s.transaction():
            self._hosts.get_host(host)
            self._s.execute(
                "INSERT INTO host_label (host, label) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (host, label),
            )
        return HostLabel(host=host, label=label)

    def remove_host_label(self, host: str, label: str) -> None:
        with self._s.transaction():
            cur = self._s.execute(
                "DELETE FROM host_label WHERE host = ? AND label = ?", (host, label)
            )
            if cur.rowcount == 0:
                raise StoreError(f"host {host!r} has no label {label!r}")

    def list_host_labels(
        self, *, host: str | None = None, label: str | None = None
    ) -> list[HostLabel]:
        found = self._s.all(
            "SELECT * FROM host_label WHERE (? IS NULL OR host = ?) AND (? IS NULL OR label = ?)"
            " ORDER BY host, label",
            (host, host, label, label),
        )
        return [rows.host_label(r) for r in found]

    def add_nic_label(self, host: str, nic: str, label: str) -> NicLabel:
        with self._s.transaction():
            self._hosts.get_host(host)
            self._s.execute(
                "INSERT INTO nic_label (host, nic, label) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (host, nic, label),
            )
        return NicLabel(host=host, nic=nic, label=label)

    def remove_nic_label(self, host: str, nic: str, label: str) -> None:
        with self._s.transaction():
            cur = self._s.execute(
                "DELETE FROM nic_label WHERE host = ? AND nic = ? AND label = ?",
                (host, nic, label),
            )
            if cur.rowcount == 0:
                raise StoreError(f"nic {nic!r} of host {host!r} has no label {label!r}")

    def list_nic_labels(
        self, *, host: str | None = None, label: str | None = None
    ) -> list[NicLabel]:
        found = self._s.all(
            "SELECT * FROM nic_label WHERE (? IS NULL OR host = ?) AND (? IS NULL OR label = ?)"
            " ORDER BY host, nic, label",
            (host, host, label, label),
        )
        return [rows.nic_label(r) for r in found]
