"""Logical networks (their definition and generation), their attachments to hosts (with the
attachment's IP settings and last error) and the VMs and templates that use them: the
``network``, ``attachment``, ``vm`` and ``vm_nic`` tables."""

from __future__ import annotations

from dataclasses import replace

from engine_client.models import Attachment, LogicalNetwork, Vm
from engine_client.store import rows
from engine_client.store.conflicts import StaleDefinition
from engine_client.store.hosts import DataCenterTable, HostTable
from engine_client.store.session import Session
from engine_client.store_backend import StoreError


class NetworkTable:
    def __init__(self, session: Session, dcs: DataCenterTable) -> None:
        self._s = session
        self._dcs = dcs

    def add_network(self, net: LogicalNetwork) -> LogicalNetwork:
        with self._s.transaction():
            self._dcs.get_dc(net.dc)
            if self.find_network(net.name) is not None:
                raise StoreError(f"network {net.name!r} already exists")
            self._s.execute(
                "INSERT INTO network (name, dc, vlan, mtu, vm, label) VALUES (?, ?, ?, ?, ?, ?)",
                (net.name, net.dc, net.vlan, net.mtu, int(net.vm), net.label),
            )
        return net

    def find_network(self, name: str) -> LogicalNetwork | None:
        row = self._s.one("SELECT * FROM network WHERE name = ?", (name,))
        return None if row is None else rows.network(row)

    def get_network(self, name: str) -> LogicalNetwork:
        net = self.find_network(name)
        if net is None:
            raise StoreError(f"no network {name!r}")
        return net

    def list_networks(
        self, *, dc: str | None = None, label: str | None = None
    ) -> list[LogicalNetwork]:
        found = self._s.all(
            "SELECT * FROM network WHERE (? IS NULL OR dc = ?) AND (? IS NULL OR label = ?)"
            " ORDER BY name",
            (dc, dc, label, label),
        )
        return [rows.network(r) for r in found]

    def update_network(self, old_name: str, net: LogicalNetwork) -> LogicalNetwork:
        """Replace a network's definition; ``net.name != old_name`` renames it (cascading).
        ``net.generation`` is the generation the caller read: if another command wrote the
        definition since, ``StaleDefinition`` and nothing is written. Returns the definition
        as stored (its next generation)."""
        with self._s.transaction():
            old = self.get_network(old_name)
            if old.generation != net.generation:
                raise StaleDefinition(old_name, net.generation, old.generation)
            if net.dc != old.dc:
                raise StoreError(f"network {old_name!r}: cannot move to another data center")
            if net.name != old_name and self.find_network(net.name) is not None:
                raise StoreError(f"network {net.name!r} already exists")
            cur = self._s.execute(
                "UPDATE network SET name = ?, vlan = ?, mtu = ?, vm = ?, label = ?,"
                " removing = ?, generation = generation + 1 WHERE name = ? AND generation = ?",
                (
                    net.name,
                    net.vlan,
                    net.mtu,
                    int(net.vm),
                    net.label,
                    int(net.removing),
                    old_name,
                    net.generation,
                ),
            )
            if cur.rowcount != 1:  # written meanwhile (the write lock makes this a last guard)
                raise StaleDefinition(old_name, net.generation, net.generation + 1)
        return replace(net, generation=net.generation + 1)

    def remove_network(self, name: str) -> None:
        with self._s.transaction():
            self.get_network(name)
            if self._s.one("SELECT 1 FROM attachment WHERE network = ?", (name,)):
                raise StoreError(f"network {name!r} is still attached to hosts")
            if self._s.one("SELECT 1 FROM vm_nic WHERE network = ?", (name,)):
                raise StoreError(f"network {name!r} is still used by VMs or templates")
            self._s.execute("DELETE FROM network WHERE name = ?", (name,))


class AttachmentTable:
    def __init__(self, session: Session, hosts: HostTable, networks: NetworkTable) -> None:
        self._s = session
        self._hosts = hosts
        self._networks = networks

    def set_attachment(self, att: Attachment) -> Attachment:
        """Insert or replace the attachment of ``att.network`` on ``att.host``."""
        with self._s.transaction():
            host = self._hosts.get_host(att.host)
            net = self._networks.get_network(att.network)
            if host.dc != net.dc:
                raise StoreError(
                    f"network {net.name!r} (data center {net.dc!r}) cannot be attached to host "
                    f"{host.name!r} (data center {host.dc!r})"
                )
            self._s.execute(
                "INSERT INTO attachment"
                " (host, network, nic, bond, isolated, via_label, last_error,"
                " boot_protocol, ip_address, ip_gateway)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (host, network) DO UPDATE SET nic = excluded.nic,"
                " bond = excluded.bond, isolated = excluded.isolated,"
                " via_label = excluded.via_label, last_error = excluded.last_error,"
                " boot_protocol = excluded.boot_protocol, ip_address = excluded.ip_address,"
                " ip_gateway = excluded.ip_gateway",
                (
                    att.host,
                    att.network,
                    att.nic,
                    att.bond,
                    int(att.isolated),
                    att.via_label,
                    att.last_error,
                    att.ip.method,
                    att.ip.address,
                    att.ip.gateway,
                ),
            )
        return att

    def find_attachment(self, host: str, network: str) -> Attachment | None:
        row = self._s.one(
            "SELECT * FROM attachment WHERE host = ? AND network = ?", (host, network)
        )
        return None if row is None else rows.attachment(row)

    def get_attachment(self, host: str, network: str) -> Attachment:
        att = self.find_attachment(host, network)
        if att is None:
            raise StoreError(f"network {network!r} is not attached to host {host!r}")
        return att

    def list_attachments(
        self, *, host: str | None = None, network: str | None = None
    ) -> list[Attachment]:
        found = self._s.all(
            "SELECT * FROM attachment WHERE (? IS NULL OR host = ?) AND (? IS NULL OR network = ?)"
            " ORDER BY network, host",
            (host, host, network, network),
        )
        return [rows.attachment(r) for r in found]

    def mark_attachment(self, host: str, network: str, *, last_error: str | None) -> None:
        """Record the last push's failure (None: it succeeded)."""
        with self._s.transaction():
            self.get_attachment(host, network)
            self._s.execute(
                "UPDATE attachment SET last_error = ? WHERE host = ? AND network = ?",
                (last_error, host, network),
            )

    def remove_attachment(self, host: str, network: str) -> None:
        with self._s.transaction():
            self.get_attachment(host, network)
            self._s.execute(
                "DELETE FROM attachment WHERE host = ? AND network = ?", (host, network)
            )


class VmTable:
    """VMs and templates (what validation reads: a network a VM uses is not removed)."""

    def __init__(self, session: Session, networks: NetworkTable) -> None:
        self._s = session
        self._networks = networks

    def add_vm(self, vm: Vm) -> Vm:
        with self._s.transaction():
            if self.find_vm(vm.name) is not None:
                raise StoreError(f"vm {vm.name!r} already exists")
            for net in vm.networks:
                self._networks.get_network(net)
            self._s.execute(
                "INSERT INTO vm (name, running, template) VALUES (?, ?, ?)",
                (vm.name, int(vm.running), int(vm.template)),
            )
            self._s.executemany(
                "INSERT INTO vm_nic (vm, network) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(vm.name, net) for net in vm.networks],
            )
        return vm

    def find_vm(self, name: str) -> Vm | None:
        row = self._s.one("SELECT * FROM vm WHERE name = ?", (name,))
        if row is None:
            return None
        nets = self._s.all("SELECT network FROM vm_nic WHERE vm = ? ORDER BY network", (name,))
        return Vm(
            name=row["name"],
            running=bool(row["running"]),
            template=bool(row["template"]),
            networks=tuple(r["network"] for r in nets),
        )

    def list_vms(self, *, network: str | None = None) -> list[Vm]:
        found = self._s.all(
            "SELECT DISTINCT vm.name FROM vm LEFT JOIN vm_nic ON vm_nic.vm = vm.name"
            " WHERE (? IS NULL OR vm_nic.network = ?) ORDER BY vm.name",
            (network, network),
        )
        return [vm for r in found if (vm := self.find_vm(r["name"])) is not None]

    def remove_vm(self, name: str) -> None:
        with self._s.transaction():
            if self.find_vm(name) is None:
                raise StoreError(f"no vm {name!r}")
            self._s.execute("DELETE FROM vm WHERE name = ?", (name,))
