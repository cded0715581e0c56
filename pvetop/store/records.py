"""What the store hands out: frozen records, never peewee rows.

Callers (UI, engine, CLI, policy) see plain immutable values, so no database object crosses a
thread and no caller can change a rule without going through the store (and its journal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

DEFAULT_BOOT_TIMEOUT = 300  # seconds a woken node gets to rejoin the cluster (else marked failed)

R = TypeVar("R", bound="DataclassInstance")


def record_of(kind: type[R], row: Any, **converted: Any) -> R:
    """The record ``kind`` holding a database row's columns of the same names; ``converted``
    gives the values that need more than reading (JSON, numbers a backend returns as text)."""
    columns = {item.name: getattr(row, item.name) for item in fields(kind) if item.name not in converted}
    return kind(**columns, **converted)


@dataclass(frozen=True, slots=True)
class Pin:
    """A guest may only run on ``nodes``; ``name`` is the guest's name when it was pinned."""

    cluster: str
    vmid: int
    name: str
    nodes: frozenset[str]
    note: str = ""
    created_at: float = 0.0
    who: str = ""

    def allows(self, node: str) -> bool:
        return node in self.nodes


@dataclass(frozen=True, slots=True)
class Lock:
    """A guest that no automatic action may move (and whose node stays powered)."""

    cluster: str
    vmid: int
    name: str
    reason: str = ""
    created_at: float = 0.0
    who: str = ""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A node kept for the operator: nothing moves to or from it automatically."""

    cluster: str
    node: str
    reason: str = ""
    created_at: float = 0.0
    who: str = ""


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A node being emptied for maintenance: evacuated, and nothing is sent to it."""

    cluster: str
    node: str
    since: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodePower:
    """How the power policy may treat a node; the defaults mean "never switch it off"."""

    cluster: str
    node: str
    wol_mac: str | None = None
    allow_power_off: bool = False
    boot_timeout: int = DEFAULT_BOOT_TIMEOUT


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    at: float
    cluster: str
    actor: str
    action: str
    target: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    result: str = ""
    upid: str | None = None
    host: str = ""  # the pvetop instance that wrote the entry
    pid: int = 0


@dataclass(frozen=True, slots=True)
class StoredRules:
    """Every stored rule of one cluster, for reconcile, export and the UI's rule views."""

    cluster: str
    pins: tuple[Pin, ...] = ()
    locks: tuple[Lock, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    maintenance: tuple[Maintenance, ...] = ()
    node_power: tuple[NodePower, ...] = ()
