"""The engine client's store (docs/files.md, docs/store.md): SQLite (a file, the default) or
PostgreSQL (a ``postgresql://`` URL), with the same schema, migrations and guarantees.

All SQL of the engine client lives in this package, written once for both databases; what
differs between them is in ``store_backend.py`` (SQLite) and ``store_pg.py`` (PostgreSQL).
One concept a module:

- ``facade.py``: ``Store``, the object every caller holds (open, close, transactions, and one
  method per record operation, handed to the table class below that holds its SQL);
- ``session.py``: one connection and its nested transactions (``Session``);
- ``schema.py``: ``MIGRATIONS`` and ``migrate``;
- ``rows.py``: a table's row as a typed record of ``models.py``;
- ``hosts.py``: data centers, hosts and their capabilities, host and NIC labels;
- ``networks.py``: logical networks, their attachments to hosts, VMs and templates;
- ``event_log.py``: the event log, ``follow_events`` included;
- ``conflicts.py``: one change of a network at a time: ``Conflict``, ``NetworkBusy``,
  ``StaleDefinition``, ``LeaseHolder`` and the ``network_lease`` table's rule;
- ``rollouts.py``: the rollout records; ``api_users.py``: the REST API's accounts;
- ``location.py``: where the store is (``--db``, ``$ENGINE_CLIENT_DB``, the default file).
"""

from __future__ import annotations

from engine_client.store.conflicts import (
    Conflict,
    LeaseHolder,
    NetworkBusy,
    StaleDefinition,
    pid_alive,
)
from engine_client.store.facade import Store
from engine_client.store.location import ENV_DB, default_db_path, default_location
from engine_client.store.schema import MIGRATIONS
from engine_client.store_backend import StoreError

__all__ = [
    "ENV_DB",
    "MIGRATIONS",
    "Conflict",
    "LeaseHolder",
    "NetworkBusy",
    "StaleDefinition",
    "Store",
    "StoreError",
    "default_db_path",
    "default_location",
    "pid_alive",
]
