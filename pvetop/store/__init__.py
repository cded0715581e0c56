"""Pins, locks, reservations, maintenance flags, node power settings, settings and the action
journal, kept with peewee (SQLite by default, any URL peewee speaks otherwise).

``open_store(db)`` is the one entry point; the ``Store`` it returns is shared by the UI thread and
worker threads and hands out frozen records from ``pvetop.store.records``.
"""

from pvetop.store.records import (
    DEFAULT_BOOT_TIMEOUT,
    JournalEntry,
    Lock,
    Maintenance,
    NodePower,
    Pin,
    Reservation,
    StoredRules,
)
from pvetop.store.schema import CURRENT_VERSION, StoreError
from pvetop.store.store import Store, open_store

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_BOOT_TIMEOUT",
    "JournalEntry",
    "Lock",
    "Maintenance",
    "NodePower",
    "Pin",
    "Reservation",
    "Store",
    "StoreError",
    "StoredRules",
    "open_store",
]
