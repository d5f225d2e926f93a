"""Rows of the store's tables as the typed records of ``models.py``: one function a table, named
after the record it makes (``rows.host(row)``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from engine_client.models import (
    ApiUser,
    Attachment,
    DataCenter,
    Event,
    Host,
    HostLabel,
    IpSettings,
    LogicalNetwork,
    NicLabel,
    Rollout,
)
from engine_client.store_backend import Row


def _caps(text: str | None) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text) if text else {})


def dc(row: Row) -> DataCenter:
    return DataCenter(name=row["name"], version=row["version"])


def host(row: Row) -> Host:
    return Host(
        name=row["name"],
        url=row["url"],
        dc=row["dc"],
        cert=row["cert"],
        key=row["key"],
        ca=row["ca"],
        caps=_caps(row["caps"]),
        caps_time=row["caps_time"],
        agent_version=row["agent_version"],
    )


def network(row: Row) -> LogicalNetwork:
    return LogicalNetwork(
        dc=row["dc"],
        name=row["name"],
        vlan=row["vlan"],
        mtu=row["mtu"],
        vm=bool(row["vm"]),
        label=row["label"],
        removing=bool(row["removing"]),
        generation=row["generation"],
    )


def attachment(row: Row) -> Attachment:
    return Attachment(
        host=row["host"],
        network=row["network"],
        nic=row["nic"],
        bond=row["bond"],
        isolated=bool(row["isolated"]),
        via_label=row["via_label"],
        ip=IpSettings(row["boot_protocol"], row["ip_address"], row["ip_gateway"]),
        last_error=row["last_error"],
    )


def host_label(row: Row) -> HostLabel:
    return HostLabel(host=row["host"], label=row["label"])


def nic_label(row: Row) -> NicLabel:
    return NicLabel(host=row["host"], nic=row["nic"], label=row["label"])


def event(row: Row) -> Event:
    return Event(
        id=row["id"],
        time=row["time"],
        correlation_id=row["correlation_id"],
        host=row["host"],
        severity=row["severity"],
        message=row["message"],
        network=row["network"],
    )


def rollout(row: Row) -> Rollout:
    return Rollout(
        id=row["id"],
        correlation_id=row["correlation_id"],
        network=row["network"],
        action=row["action"],
        started=row["started"],
        planned=row["planned"],
        ended=row["ended"],
        updated=row["updated"],
        failed=row["failed"],
    )


def api_user(row: Row) -> ApiUser:
    return ApiUser(name=row["name"], password_hash=row["password_hash"], created=row["created"])
