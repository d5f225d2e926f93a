"""``Store``: the one object the engine client's code holds. It opens the database (migrating
its schema), runs transactions, and hands each record operation to the table class of its
concept, which holds the SQL (the section comments below name the module). Methods take and
return the typed records of ``models.py``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from engine_client.events import PendingEvent
from engine_client.models import (
    ApiUser,
    Attachment,
    DataCenter,
    Event,
    Host,
    HostLabel,
    LogicalNetwork,
    NicLabel,
    Rollout,
    Vm,
)
from engine_client.store import schema
from engine_client.store.api_users import ApiUserTable
from engine_client.store.conflicts import LeaseHolder, NetworkLeaseTable, pid_alive
from engine_client.store.event_log import EventLog
from engine_client.store.hosts import DataCenterTable, HostTable, LabelTable
from engine_client.store.networks import AttachmentTable, NetworkTable, VmTable
from engine_client.store.rollouts import RolloutTable
from engine_client.store.session import Session
from engine_client.store_backend import Backend, SqliteBackend, is_url, open_backend


class Store:
    """The engine client's records. Also an ``EventSink`` (``emit`` stores one event)."""

    def __init__(self, db: Backend) -> None:
        self._session = session = Session(db)
        self._dcs = DataCenterTable(session)
        self._hosts = HostTable(session, self._dcs)
        self._labels = LabelTable(session, self._hosts)
        self._networks = NetworkTable(session, self._dcs)
        self._attachments = AttachmentTable(session, self._hosts, self._networks)
        self._vms = VmTable(session, self._networks)
        self._events = EventLog(session)
        self._leases = NetworkLeaseTable(session)
        self._rollouts = RolloutTable(session)
        self._users = ApiUserTable(session)

    @classmethod
    def _migrated(cls, db: Backend) -> Store:
        """The store on ``db`` with the newest schema; ``db`` is closed if migrating fails."""
        store = cls(db)
        try:
            schema.migrate(store._session)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, location: str | os.PathLike[str]) -> Store:
        """Open (creating parent directories, the file and the schema) and migrate; a
        ``postgresql://`` URL opens that database (which must exist)."""
        return cls._migrated(open_backend(location))

    @classmethod
    def open_scratch(cls, location: str | os.PathLike[str]) -> Store:
        """The store as it is now, for a command that must write nothing (``--dry-run``):
        whatever it writes is thrown away. SQLite: an in-memory copy of the file (the file is
        only read, and no lock is held while the command runs). PostgreSQL: one transaction
        that every block joins and ``close`` rolls back; it takes no write lock (nothing is
        committed), so other engine-clients, their lease heartbeats included, go on."""
        if is_url(location):
            store = cls.open(location)
            store._session.begin_discarded()
            return store
        return cls._migrated(SqliteBackend.copy_of(Path(location)))

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._session.db.name

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return schema.schema_version(self._session)

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing block; nested blocks join the outermost one (``Session.transaction``)."""
        return self._session.transaction()

    # -- data centers, hosts, labels (store/hosts.py) --------------------------------------

    def add_dc(self, dc: DataCenter) -> DataCenter:
        return self._dcs.add_dc(dc)

    def find_dc(self, name: str) -> DataCenter | None:
        return self._dcs.find_dc(name)

    def get_dc(self, name: str) -> DataCenter:
        return self._dcs.get_dc(name)

    def list_dcs(self) -> list[DataCenter]:
        return self._dcs.list_dcs()

    def remove_dc(self, name: str) -> None:
        self._dcs.remove_dc(name)

    def add_host(self, host: Host) -> Host:
        return self._hosts.add_host(host)

    def find_host(self, name: str) -> Host | None:
        return self._hosts.find_host(name)

    def get_host(self, name: str) -> Host:
        return self._hosts.get_host(name)

    def list_hosts(self, dc: str | None = None) -> list[Host]:
        return self._hosts.list_hosts(dc)

    def remove_host(self, name: str) -> None:
        self._hosts.remove_host(name)

    def set_host_caps(
        self,
        name: str,
        caps: Mapping[str, Any],
        *,
        agent_version: str | None,
        when: float | None = None,
    ) -> None:
        self._hosts.set_host_caps(name, caps, agent_version=agent_version, when=when)

    def add_host_label(self, host: str, label: str) -> HostLabel:
        return self._labels.add_host_label(host, label)

    def remove_host_label(self, host: str, label: str) -> None:
        self._labels.remove_host_label(host, label)

    def list_host_labels(
        self, *, host: str | None = None, label: str | None = None
    ) -> list[HostLabel]:
        return self._labels.list_host_labels(host=host, label=label)

    def add_nic_label(self, host: str, nic: str, label: str) -> NicLabel:
        return self._labels.add_nic_label(host, nic, label)

    def remove_nic_label(self, host: str, nic: str, label: str) -> None:
        self._labels.remove_nic_label(host, nic, label)

    def list_nic_labels(
        self, *, host: str | None = None, label: str | None = None
    ) -> list[NicLabel]:
        return self._labels.list_nic_labels(host=host, label=label)

    # -- logical networks, attachments, VMs (store/networks.py) ----------------------------

    def add_network(self, net: LogicalNetwork) -> LogicalNetwork:
        return self._networks.add_network(net)

    def find_network(self, name: str) -> LogicalNetwork | None:
        return self._networks.find_network(name)

    def get_network(self, name: str) -> LogicalNetwork:
        return self._networks.get_network(name)

    def list_networks(
        self, *, dc: str | None = None, label: str | None = None
    ) -> list[LogicalNetwork]:
        return self._networks.list_networks(dc=dc, label=label)

    def update_network(self, old_name: str, net: LogicalNetwork) -> LogicalNetwork:
        return self._networks.update_network(old_name, net)

    def remove_network(self, name: str) -> None:
        self._networks.remove_network(name)

    def set_attachment(self, att: Attachment) -> Attachment:
        return self._attachments.set_attachment(att)

    def find_attachment(self, host: str, network: str) -> Attachment | None:
        return self._attachments.find_attachment(host, network)

    def get_attachment(self, host: str, network: str) -> Attachment:
        return self._attachments.get_attachment(host, network)

    def list_attachments(
        self, *, host: str | None = None, network: str | None = None
    ) -> list[Attachment]:
        return self._attachments.list_attachments(host=host, network=network)

    def mark_attachment(self, host: str, network: str, *, last_error: str | None) -> None:
        self._attachments.mark_attachment(host, network, last_error=last_error)

    def remove_attachment(self, host: str, network: str) -> None:
        self._attachments.remove_attachment(host, network)

    def add_vm(self, vm: Vm) -> Vm:
        return self._vms.add_vm(vm)

    def find_vm(self, name: str) -> Vm | None:
        return self._vms.find_vm(name)

    def list_vms(self, *, network: str | None = None) -> list[Vm]:
        return self._vms.list_vms(network=network)

    def remove_vm(self, name: str) -> None:
        self._vms.remove_vm(name)

    # -- events (store/event_log.py) -------------------------------------------------------

    def add_event(
        self,
        message: str,
        *,
        correlation_id: str | None,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
        when: float | None = None,
    ) -> Event:
        return self._events.add_event(
            message,
            correlation_id=correlation_id,
            host=host,
            network=network,
            severity=severity,
            when=when,
        )

    def add_events(self, events: Sequence[PendingEvent]) -> None:
        self._events.add_events(events)

    def emit(
        self,
        message: str,
        *,
        correlation_id: str,
        host: str | None = None,
        network: str | None = None,
        severity: str = "info",
    ) -> None:
        self._events.add_event(
            message, correlation_id=correlation_id, host=host, network=network, severity=severity
        )

    def last_event_id(self) -> int:
        return self._events.last_event_id()

    def list_events(
        self,
        *,
        correlation_id: str | None = None,
        host: str | None = None,
        network: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        return self._events.list_events(
            correlation_id=correlation_id, host=host, network=network, after=after, limit=limit
        )

    def follow_events(
        self,
        *,
        correlation_id: str | None = None,
        host: str | None = None,
        network: str | None = None,
        limit: int | None = None,
        poll: float = 0.5,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterable[Event]:
        return self._events.follow_events(
            correlation_id=correlation_id,
            host=host,
            network=network,
            limit=limit,
            poll=poll,
            stop=stop,
        )

    # -- leases: one change of a network at a time (store/conflicts.py) --------------------

    def acquire_leases(
        self,
        networks: Sequence[str],
        holder: LeaseHolder,
        ttl: float,
        *,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self._leases.acquire_leases(networks, holder, ttl, alive=alive)

    def renew_leases(self, holder: str, ttl: float) -> int:
        return self._leases.renew_leases(holder, ttl)

    def release_leases(self, holder: str) -> None:
        self._leases.release_leases(holder)

    def lease_holder(self, network: str) -> str | None:
        return self._leases.lease_holder(network)

    # -- rollouts (store/rollouts.py) ------------------------------------------------------

    def start_rollout(self, correlation_id: str, network: str, action: str, planned: int) -> int:
        return self._rollouts.start_rollout(correlation_id, network, action, planned)

    def end_rollout(self, rollout_id: int, *, updated: int, failed: int) -> None:
        self._rollouts.end_rollout(rollout_id, updated=updated, failed=failed)

    def list_rollouts(self, *, limit: int = 10) -> list[Rollout]:
        return self._rollouts.list_rollouts(limit=limit)

    # -- REST API users (store/api_users.py) -----------------------------------------------

    def add_user(self, name: str, password_hash: str) -> ApiUser:
        return self._users.add_user(name, password_hash)

    def find_user(self, name: str) -> ApiUser | None:
        return self._users.find_user(name)

    def list_users(self) -> list[ApiUser]:
        return self._users.list_users()

    def remove_user(self, name: str) -> None:
        self._users.remove_user(name)
