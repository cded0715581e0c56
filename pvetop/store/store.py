"""The rules store: one object the UI thread and worker threads share.

Every change runs in a write transaction that takes the lock up front and writes its journal
entry in the same transaction, so a rule never changes without a trace and a crash never leaves
half a change. Reads hand out frozen records (``records.py``), never peewee rows.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import replace
from types import MappingProxyType
from typing import Any, TypeVar

import peewee

from pvetop.errors import ReadOnlyRefused, UsageError
from pvetop.model import ACTORS
from pvetop.policy.reconcile import ReconcileChange
from pvetop.policy.rules import RuleSet
from pvetop.store import location as location_mod
from pvetop.store import transfer
from pvetop.store.coordination import Coordination, Instance
from pvetop.store.models import bind_models
from pvetop.store.records import (
    JournalEntry,
    Lock,
    Maintenance,
    NodePower,
    Pin,
    Reservation,
    StoredRules,
    record_of,
)
from pvetop.store.schema import StoreError, check_readable, ensure_schema
from pvetop.store.validate import (
    check_boot_timeout,
    check_cluster,
    check_node,
    check_nodes,
    check_vmid,
    normalise_mac,
)

Stored = TypeVar("Stored")  # a frozen record the remove family hands back

IMPORT_PROXLB_TAGS = "import_proxlb_tags"  # the setting RuleSet.import_proxlb_tags comes from
SECRET_KEY = re.compile(r"pass|secret|token|ticket|csrf|cookie|authori", re.IGNORECASE)
SECRET_VALUE = re.compile(r"PVEAPIToken=|PVEAuthCookie|PVE:[^:]+:[0-9A-F]{8}::", re.IGNORECASE)
REDACTED = "***"
UNSET: Any = object()


def open_store(db: str | None = None, *, clock: Callable[[], float] = time.time, read_only: str | None = None) -> Store:
    """Opens (creating or upgrading) the rules store named by ``--db``/``PVETOP_DB``/the default.

    ``read_only`` (why: "--read-only", "listing only", ...) opens it so that nothing can change
    it: a SQLite file is opened read-only, never waits for another instance's write lock, and is
    not created when missing (it then reads as empty).
    """
    where = location_mod.resolve(db, read_only=read_only is not None)
    store = Store(where.database, where.display, clock=clock, read_only=read_only)
    try:
        store.open(empty=where.missing)
    except peewee.ImproperlyConfigured as exc:  # PostgreSQL without a driver installed
        raise UsageError(
            f"cannot open rules store {where.display}: {_first_line(exc)}",
            hint="pip install psycopg2-binary (or psycopg) to keep rules in PostgreSQL",
        ) from None
    except (peewee.PeeweeException, sqlite3.Error) as exc:
        store.close()
        raise store_failure(where.display, exc, opening=True) from None
    except StoreError:
        store.close()
        raise
    return store


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# what SQLite says -> what it means for the user
_CAUSES = (
    ("database or disk is full", "the disk is full"),
    ("readonly database", "the file or its directory is not writable"),
    ("unable to open database file", "the file cannot be opened (missing directory or no permission)"),
    ("malformed", "the file is damaged (corrupted database pages)"),
    ("file is not a database", "the file is not an SQLite database (or is damaged beyond reading)"),
    ("database is locked", "another program held its write lock for too long"),
    ("disk i/o error", "a disk I/O error"),
)


def store_failure(display: str, exc: BaseException, *, opening: bool = False) -> StoreError:
    """One clear line for a database failure, naming its cause. SQLite rolls back a failed
    transaction whole, so nothing was changed by it (after a full disk SQLite has rolled back
    itself, and peewee's own rollback then fails: the first failure is the cause)."""
    while exc.__context__ is not None and isinstance(exc.__context__, (peewee.PeeweeException, sqlite3.Error)):
        exc = exc.__context__
    text = _first_line(exc)
    cause = next((meaning for needle, meaning in _CAUSES if needle in text.lower()), text)
    if cause == "the disk is full" or "not writable" in cause or "write lock" in cause:
        hint = "nothing was changed; fix that and run the command again"
    elif opening:
        untouched = "the database" if "://" in display else "the file"  # a server URL, or a file path
        hint = f"check --db / PVETOP_DB; {untouched} was left untouched"
    else:
        hint = "restore the file from a backup or move it aside (pvetop then starts a new one)"
    verb = "cannot open" if opening else "cannot use"
    shown = f"{cause} ({text})" if cause != text else cause
    return StoreError(f"{verb} rules store {display}: {shown}", hint=hint)


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """A public store method whose database failures, and unreadable values found in rows, end as
    a ``StoreError`` naming the cause instead of a peewee/sqlite/json traceback."""

    @functools.wraps(method)
    def call(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (peewee.PeeweeException, sqlite3.Error) as exc:
            raise store_failure(self.display, exc) from None
        except (ValueError, TypeError) as exc:  # json.loads, int(), frozenset() of a bad row value
            raise StoreError(
                f"rules store {self.display} holds a value pvetop cannot read: {_first_line(exc)}",
                hint="fix or remove that entry (pvetop export shows the rules), or restore a backup",
            ) from None

    return call


def scrub(value: Any) -> Any:
    """A JSON-able copy with anything that looks like a secret replaced by ``***``."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if SECRET_KEY.search(str(k)) else scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [scrub(v) for v in items]
    if isinstance(value, str):
        return REDACTED if SECRET_VALUE.search(value) else value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return scrub(str(value))


def _json_value(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"setting value {value!r} cannot be stored as JSON: {exc}") from None


class Store:
    """Repository of one database; methods are keyed by cluster name and safe from any thread."""

    def __init__(
        self,
        database: peewee.Database,
        display: str,
        *,
        clock: Callable[[], float] = time.time,
        read_only: str | None = None,
    ):
        self._db = database
        self.display = display
        self.read_only = read_only  # why nothing may be written (None: writable)
        self._clock = clock
        self._m = bind_models(database)
        self._sqlite = isinstance(database, peewee.SqliteDatabase)
        self.found_version: int | None = None  # schema version the database had when opened (0 = new)
        self.instance = Instance.this_process()  # named in every journal entry, lease and intent
        self.coordination = Coordination(self)

    def open(self, *, empty: bool = False) -> None:
        """Checks (or, writable, creates and upgrades) the schema. ``empty``: the database stands
        in for a store file that does not exist yet, so it gets the schema whatever the mode."""
        self._db.connect(reuse_if_open=True)
        if self.read_only is not None and not empty:
            self.found_version = check_readable(self._m, self.display)
            if self.found_version is not None:
                return
            self._db.close()  # a file without tables (yet): read it as an empty store
            self._db = location_mod.empty_database()
            self._m = bind_models(self._db)
            empty = True
        self.found_version = ensure_schema(self._m, self.display)
        if self._sqlite and not empty:
            self._db.execute_sql("PRAGMA journal_mode=wal")  # readers never wait for a writer

    def close(self) -> None:
        """Closes this thread's connection (each thread holds its own)."""
        if not self._db.is_closed():
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display})"

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _write(self):
        if self.read_only is not None:
            raise ReadOnlyRefused(f"rules store {self.display} is open read-only ({self.read_only}): nothing changed")
        with self._db.atomic():  # SQLite: BEGIN IMMEDIATE (see location.py)
            yield

    @contextmanager
    def _read(self):
        """One consistent view across several selects, without taking the write lock."""
        with self._db.atomic(lock_type="DEFERRED") if self._sqlite else self._db.atomic():
            yield

    # -- journal --------------------------------------------------------------------------------

    def journal(
        self,
        cluster: str,
        actor: str,
        action: str,
        target: str,
        params: Mapping[str, Any] | None = None,
        result: str = "ok",
        upid: str | None = None,
    ) -> JournalEntry:
        """Records an action; secrets in ``params`` are replaced by ``***`` before they are kept."""
        with self._write():
            return self._journal(cluster, actor, action, target, params, result, upid)

    def _journal(self, cluster, actor, action, target, params, result="ok", upid=None) -> JournalEntry:
        cluster = check_cluster(cluster)
        if actor not in ACTORS:
            raise UsageError(f"journal actor {actor!r} is not one of {', '.join(ACTORS)}")
        clean = scrub(dict(params or {}))
        row = self._m.Journal.create(
            at=self._clock(),
            cluster=cluster,
            actor=actor,
            action=action,
            target=str(target),
            params=json.dumps(clean, sort_keys=True),
            result=scrub(str(result)),
            upid=upid,
            host=self.instance.host,
            pid=self.instance.pid,
        )
        return self._journal_record(row)

    @staticmethod
    def _journal_record(row) -> JournalEntry:
        return record_of(JournalEntry, row, params=MappingProxyType(json.loads(row.params or "{}")))

    def recent_journal(self, cluster: str | None = None, limit: int = 100, *, since: float = 0.0) -> list[JournalEntry]:
        """Newest first, written at or after ``since``; every cluster when ``cluster`` is None."""
        m = self._m.Journal
        query = m.select().where(m.at >= since).order_by(m.id.desc()).limit(max(1, int(limit)))
        if cluster is not None:
            query = query.where(m.cluster == cluster)
        return [self._journal_record(row) for row in query]

    def journal_entries(
        self,
        cluster: str,
        *,
        actions: Iterable[str],
        target: str | None = None,
        actor: str | None = None,
        since: float = 0.0,
    ) -> list[JournalEntry]:
        """Entries of the given actions (and target, and actor) since a time, oldest first: history a
        worker replays."""
        m = self._m.Journal
        query = m.select().where((m.cluster == cluster) & (m.action.in_(list(actions))) & (m.at >= since))
        if target is not None:
            query = query.where(m.target == target)
        if actor is not None:
            query = query.where(m.actor == actor)
        return [self._journal_record(row) for row in query.order_by(m.id)]

    # -- pins -----------------------------------------------------------------------------------

    @staticmethod
    def _pin_record(row) -> Pin:
        return record_of(
            Pin, row, vmid=int(row.vmid), nodes=frozenset(json.loads(row.nodes)), created_at=float(row.created_at)
        )

    def pin_guest(
        self,
        cluster: str,
        vmid: int,
        name: str,
        nodes: Iterable[str],
        *,
        note: str = "",
        who: str = "",
        actor: str = "user",
    ) -> Pin:
        """Pins (or re-pins, replacing the node set) a guest; it may then run on any of ``nodes``."""
        pin = Pin(
            cluster=check_cluster(cluster),
            vmid=check_vmid(vmid),
            name=str(name or ""),
            nodes=check_nodes(nodes),
            note=str(note or ""),
            created_at=self._clock(),
            who=str(who or ""),
        )
        with self._write():
            before = self.pin(pin.cluster, pin.vmid)
            self._upsert_pin(pin)
            self._journal(
                pin.cluster,
                actor,
                "pin",
                f"guest/{pin.vmid}",
                {
                    "name": pin.name,
                    "nodes": pin.nodes,
                    "note": pin.note,
                    "who": pin.who,
                    "before": sorted(before.nodes) if before else None,
                },
            )
        return pin

    def _upsert_pin(self, pin: Pin) -> None:
        m = self._m.GuestPin
        values = {
            "cluster": pin.cluster,
            "vmid": pin.vmid,
            "name": pin.name,
            "nodes": json.dumps(sorted(pin.nodes)),
            "note": pin.note,
            "created_at": pin.created_at,
            "who": pin.who,
        }
        m.insert(values).on_conflict(
            conflict_target=[m.cluster, m.vmid],
            update={
                m.name: pin.name,
                m.nodes: values["nodes"],
                m.note: pin.note,
                m.created_at: pin.created_at,
                m.who: pin.who,
            },
        ).execute()

    def _remove(
        self,
        cluster: str,
        row: tuple[Any, Any, object],
        current: Callable[[], Stored | None],
        journal: tuple[str, str, str],
        params: Callable[[Stored], Mapping[str, object]],
    ) -> Stored | None:
        """The remove family: what is stored is read, deleted and journaled in one write transaction.

        ``row`` is (model, key column, key), ``journal`` (actor, action, target). Returns what was
        removed; None, and no journal entry, when there was nothing."""
        actor, action, target = journal
        with self._write():
            before = current()
            if before is None:
                return None
            self._delete(cluster, *row)
            self._journal(cluster, actor, action, target, params(before))
        return before

    @staticmethod
    def _delete(cluster: str, model: Any, key_column: Any, key: object) -> None:
        model.delete().where((model.cluster == cluster) & (key_column == key)).execute()

    def unpin(self, cluster: str, vmid: int, *, actor: str = "user") -> Pin | None:
        """Removes a pin; returns what was removed (None, and no journal entry, if there was none)."""
        cluster, vmid = check_cluster(cluster), check_vmid(vmid)
        m = self._m.GuestPin
        return self._remove(
            cluster,
            (m, m.vmid, vmid),
            lambda: self.pin(cluster, vmid),
            (actor, "unpin", f"guest/{vmid}"),
            lambda pin: {"name": pin.name, "nodes": pin.nodes},
        )

    def pin(self, cluster: str, vmid: int) -> Pin | None:
        m = self._m.GuestPin
        row = m.get_or_none((m.cluster == cluster) & (m.vmid == int(vmid)))
        return self._pin_record(row) if row else None

    def pins(self, cluster: str) -> list[Pin]:
        m = self._m.GuestPin
        return [self._pin_record(r) for r in m.select().where(m.cluster == cluster).order_by(m.vmid)]

    # -- locks ----------------------------------------------------------------------------------

    @staticmethod
    def _lock_record(row) -> Lock:
        return record_of(Lock, row, vmid=int(row.vmid), created_at=float(row.created_at))

    def lock_guest(
        self, cluster: str, vmid: int, name: str, *, reason: str = "", who: str = "", actor: str = "user"
    ) -> Lock:
        lock = Lock(
            cluster=check_cluster(cluster),
            vmid=check_vmid(vmid),
            name=str(name or ""),
            reason=str(reason or ""),
            created_at=self._clock(),
            who=str(who or ""),
        )
        with self._write():
            self._upsert_lock(lock)
            self._journal(
                lock.cluster,
                actor,
                "lock",
                f"guest/{lock.vmid}",
                {"name": lock.name, "reason": lock.reason, "who": lock.who},
            )
        return lock

    def _upsert_lock(self, lock: Lock) -> None:
        m = self._m.GuestLock
        m.insert(
            cluster=lock.cluster,
            vmid=lock.vmid,
            name=lock.name,
            reason=lock.reason,
            created_at=lock.created_at,
            who=lock.who,
        ).on_conflict(
            conflict_target=[m.cluster, m.vmid],
            update={m.name: lock.name, m.reason: lock.reason, m.created_at: lock.created_at, m.who: lock.who},
        ).execute()

    def unlock_guest(self, cluster: str, vmid: int, *, actor: str = "user") -> Lock | None:
        cluster, vmid = check_cluster(cluster), check_vmid(vmid)
        m = self._m.GuestLock
        return self._remove(
            cluster,
            (m, m.vmid, vmid),
            lambda: self.lock(cluster, vmid),
            (actor, "unlock", f"guest/{vmid}"),
            lambda lock: {"name": lock.name},
        )

    def lock(self, cluster: str, vmid: int) -> Lock | None:
        m = self._m.GuestLock
        row = m.get_or_none((m.cluster == cluster) & (m.vmid == int(vmid)))
        return self._lock_record(row) if row else None

    def locks(self, cluster: str) -> list[Lock]:
        m = self._m.GuestLock
        return [self._lock_record(r) for r in m.select().where(m.cluster == cluster).order_by(m.vmid)]

    # -- reservations ---------------------------------------------------------------------------

    @staticmethod
    def _reservation_record(row) -> Reservation:
        return record_of(Reservation, row, created_at=float(row.created_at))

    def reserve_node(
        self, cluster: str, node: str, *, reason: str = "", who: str = "", actor: str = "user"
    ) -> Reservation:
        res = Reservation(
            cluster=check_cluster(cluster),
            node=check_node(node),
            reason=str(reason or ""),
            created_at=self._clock(),
            who=str(who or ""),
        )
        with self._write():
            self._upsert_reservation(res)
            self._journal(res.cluster, actor, "reserve", f"node/{res.node}", {"reason": res.reason, "who": res.who})
        return res

    def _upsert_reservation(self, res: Reservation) -> None:
        m = self._m.NodeReservation
        m.insert(
            cluster=res.cluster, node=res.node, reason=res.reason, created_at=res.created_at, who=res.who
        ).on_conflict(
            conflict_target=[m.cluster, m.node],
            update={m.reason: res.reason, m.created_at: res.created_at, m.who: res.who},
        ).execute()

    def reservation(self, cluster: str, node: str) -> Reservation | None:
        m = self._m.NodeReservation
        row = m.get_or_none((m.cluster == cluster) & (m.node == node))
        return self._reservation_record(row) if row else None

    def unreserve_node(self, cluster: str, node: str, *, actor: str = "user") -> Reservation | None:
        cluster, node = check_cluster(cluster), check_node(node)
        m = self._m.NodeReservation
        return self._remove(
            cluster,
            (m, m.node, node),
            lambda: self.reservation(cluster, node),
            (actor, "unreserve", f"node/{node}"),
            lambda reservation: {"reason": reservation.reason},
        )

    def reservations(self, cluster: str) -> list[Reservation]:
        m = self._m.NodeReservation
        return [self._reservation_record(r) for r in m.select().where(m.cluster == cluster).order_by(m.node)]

    # -- maintenance ----------------------------------------------------------------------------

    def set_maintenance(self, cluster: str, node: str, *, reason: str = "", actor: str = "user") -> Maintenance:
        """Flags a node for maintenance; an existing flag keeps its ``since``."""
        cluster, node = check_cluster(cluster), check_node(node)
        with self._write():
            before = self.node_maintenance(cluster, node)
            flag = Maintenance(
                cluster=cluster, node=node, since=before.since if before else self._clock(), reason=str(reason or "")
            )
            self._upsert_maintenance(flag)
            self._journal(cluster, actor, "maintenance.set", f"node/{node}", {"reason": flag.reason})
        return flag

    def clear_maintenance(self, cluster: str, node: str, *, actor: str = "user") -> Maintenance | None:
        cluster, node = check_cluster(cluster), check_node(node)
        m = self._m.NodeMaintenance
        return self._remove(
            cluster,
            (m, m.node, node),
            lambda: self.node_maintenance(cluster, node),
            (actor, "maintenance.clear", f"node/{node}"),
            lambda flag: {"since": flag.since},
        )

    def _upsert_maintenance(self, flag: Maintenance) -> None:
        m = self._m.NodeMaintenance
        m.insert(cluster=flag.cluster, node=flag.node, since=flag.since, reason=flag.reason).on_conflict(
            conflict_target=[m.cluster, m.node], update={m.since: flag.since, m.reason: flag.reason}
        ).execute()

    def node_maintenance(self, cluster: str, node: str) -> Maintenance | None:
        m = self._m.NodeMaintenance
        row = m.get_or_none((m.cluster == cluster) & (m.node == node))
        return Maintenance(cluster=row.cluster, node=row.node, since=row.since, reason=row.reason) if row else None

    def maintenance(self, cluster: str) -> list[Maintenance]:
        m = self._m.NodeMaintenance
        return [
            Maintenance(cluster=r.cluster, node=r.node, since=r.since, reason=r.reason)
            for r in m.select().where(m.cluster == cluster).order_by(m.node)
        ]

    # -- node power settings --------------------------------------------------------------------

    @staticmethod
    def _power_record(row) -> NodePower:
        return record_of(NodePower, row, allow_power_off=bool(row.allow_power_off))

    def node_power(self, cluster: str, node: str) -> NodePower:
        """The node's power settings; the defaults when none were ever set."""
        return self._stored_node_power(cluster, node) or NodePower(cluster=cluster, node=node)

    def _stored_node_power(self, cluster: str, node: str) -> NodePower | None:
        m = self._m.NodePowerSettings
        row = m.get_or_none((m.cluster == cluster) & (m.node == node))
        return self._power_record(row) if row else None

    def node_power_settings(self, cluster: str) -> list[NodePower]:
        m = self._m.NodePowerSettings
        return [self._power_record(r) for r in m.select().where(m.cluster == cluster).order_by(m.node)]

    def set_node_power(
        self,
        cluster: str,
        node: str,
        *,
        wol_mac: str | None = UNSET,
        allow_power_off: bool = UNSET,
        boot_timeout: int = UNSET,
        actor: str = "user",
    ) -> NodePower:
        """Changes only the fields given; ``wol_mac=None`` (or "") forgets the MAC."""
        cluster, node = check_cluster(cluster), check_node(node)
        changes: dict[str, Any] = {}
        if wol_mac is not UNSET:
            changes["wol_mac"] = normalise_mac(wol_mac)
        if allow_power_off is not UNSET:
            if not isinstance(allow_power_off, bool):
                raise UsageError(f"allow power-off must be true or false, not {allow_power_off!r}")
            changes["allow_power_off"] = allow_power_off
        if boot_timeout is not UNSET:
            changes["boot_timeout"] = check_boot_timeout(boot_timeout)
        with self._write():
            before = self.node_power(cluster, node)
            after = replace(before, **changes)
            self._upsert_power(after)
            self._journal(cluster, actor, "node_power.set", f"node/{node}", dict(changes))
        return after

    def _upsert_power(self, power: NodePower) -> None:
        m = self._m.NodePowerSettings
        m.insert(
            cluster=power.cluster,
            node=power.node,
            wol_mac=power.wol_mac,
            allow_power_off=power.allow_power_off,
            boot_timeout=power.boot_timeout,
        ).on_conflict(
            conflict_target=[m.cluster, m.node],
            update={
                m.wol_mac: power.wol_mac,
                m.allow_power_off: power.allow_power_off,
                m.boot_timeout: power.boot_timeout,
            },
        ).execute()

    def remove_node_power(self, cluster: str, node: str, *, actor: str = "user") -> NodePower | None:
        cluster = check_cluster(cluster)
        m = self._m.NodePowerSettings
        return self._remove(
            cluster,
            (m, m.node, node),
            lambda: self._stored_node_power(cluster, node),
            (actor, "node_power.remove", f"node/{node}"),
            lambda power: {"wol_mac": power.wol_mac, "allow_power_off": power.allow_power_off},
        )

    # -- settings -------------------------------------------------------------------------------

    def get_setting(self, cluster: str, key: str, default: Any = None) -> Any:
        m = self._m.Setting
        row = m.get_or_none((m.cluster == cluster) & (m.key == key))
        return json.loads(row.value) if row else default

    def settings(self, cluster: str) -> dict[str, Any]:
        m = self._m.Setting
        return {r.key: json.loads(r.value) for r in m.select().where(m.cluster == cluster).order_by(m.key)}

    def set_setting(self, cluster: str, key: str, value: Any, *, actor: str = "user") -> None:
        """Keeps any JSON value (numbers, strings, lists, objects) under ``key``."""
        self.update_setting(cluster, key, lambda _old: value, actor=actor)

    def update_setting(
        self, cluster: str, key: str, update: Callable[[Any], Any], default: Any = None, *, actor: str = "user"
    ) -> Any:
        """Read-modify-write in one transaction (no lost update between threads); returns the new value."""
        cluster = check_cluster(cluster)
        if not isinstance(key, str) or not key.strip():
            raise UsageError("setting name is empty")
        m = self._m.Setting
        with self._write():
            query = m.select().where((m.cluster == cluster) & (m.key == key))
            if not self._sqlite:
                # SQLite already holds the write lock. Elsewhere, lock the row, creating it first:
                # two first updates must not both read "no value" and both write 1.
                m.insert(cluster=cluster, key=key, value=_json_value(default)).on_conflict_ignore().execute()
                query = query.for_update()
            row = query.first()
            old = json.loads(row.value) if row else default
            new = update(old)
            self._upsert_setting(cluster, key, new)
            self._journal(cluster, actor, "setting.set", f"setting/{key}", {"value": new})
        return new

    def _upsert_setting(self, cluster: str, key: str, value: Any) -> None:
        m = self._m.Setting
        encoded = _json_value(value)
        m.insert(cluster=cluster, key=key, value=encoded).on_conflict(
            conflict_target=[m.cluster, m.key], update={m.value: encoded}
        ).execute()

    def delete_setting(self, cluster: str, key: str, *, actor: str = "user") -> bool:
        m = self._m.Setting
        with self._write():
            deleted = m.delete().where((m.cluster == cluster) & (m.key == key)).execute()
            if deleted:
                self._journal(cluster, actor, "setting.delete", f"setting/{key}", {})
        return bool(deleted)

    # -- whole-cluster views --------------------------------------------------------------------

    def clusters(self) -> list[str]:
        """Every cluster name that has a rule, a setting or a journal entry."""
        names: set[str] = set()
        for model in (
            self._m.GuestPin,
            self._m.GuestLock,
            self._m.NodeReservation,
            self._m.NodeMaintenance,
            self._m.NodePowerSettings,
            self._m.Setting,
            self._m.Journal,
        ):
            names.update(r.cluster for r in model.select(model.cluster).distinct())
        return sorted(names)

    def rules(self, cluster: str) -> StoredRules:
        with self._read():
            return StoredRules(
                cluster=cluster,
                pins=tuple(self.pins(cluster)),
                locks=tuple(self.locks(cluster)),
                reservations=tuple(self.reservations(cluster)),
                maintenance=tuple(self.maintenance(cluster)),
                node_power=tuple(self.node_power_settings(cluster)),
            )

    def ruleset(self, cluster: str) -> RuleSet:
        """What the planners read: the cluster's rules as one immutable value."""
        m = self._m

        def column(model, field):  # plain tuples: the dashboard re-reads this on every refresh
            return [row[0] for row in model.select(field).where(model.cluster == cluster).tuples()]

        with self._read():
            pins = m.GuestPin.select(m.GuestPin.vmid, m.GuestPin.nodes).where(m.GuestPin.cluster == cluster).tuples()
            pins = {vmid: frozenset(json.loads(nodes)) for vmid, nodes in pins}
            locks = column(m.GuestLock, m.GuestLock.vmid)
            reserved = column(m.NodeReservation, m.NodeReservation.node)
            maintenance = column(m.NodeMaintenance, m.NodeMaintenance.node)
            import_tags = bool(self.get_setting(cluster, IMPORT_PROXLB_TAGS, False))
        return RuleSet(
            pins=pins, locks=locks, reserved=reserved, maintenance=maintenance, import_proxlb_tags=import_tags
        )

    # -- reconcile ------------------------------------------------------------------------------

    def apply_reconcile(
        self, cluster: str, changes: Iterable[ReconcileChange], *, actor: str = "user"
    ) -> list[tuple[ReconcileChange, bool]]:
        """Applies reviewed changes in one transaction; an entry changed since the review is left
        alone (``False`` beside it), so a confirmation never removes something the user did not see."""
        cluster = check_cluster(cluster)
        outcome = []
        with self._write():
            for change in changes:
                applied = self._apply_change(cluster, change)
                outcome.append((change, applied))
                if applied:
                    params: dict[str, object] = {"problem": change.problem, "detail": change.detail}
                    if change.action == "narrow":
                        params["nodes"] = change.new_nodes
                    self._journal(
                        cluster, actor, f"reconcile.{change.action}", f"{change.kind}:{change.target}", params
                    )
        return outcome

    def _apply_change(self, cluster: str, change: ReconcileChange) -> bool:
        entry: Any = change.entry  # the stored record of change.kind, as it was reviewed
        m = self._m
        tables = {  # kind -> (model, key column, key of the entry, the entry as stored now)
            "pin": (m.GuestPin, m.GuestPin.vmid, lambda: self.pin(cluster, entry.vmid)),
            "lock": (m.GuestLock, m.GuestLock.vmid, lambda: self.lock(cluster, entry.vmid)),
            "reservation": (m.NodeReservation, m.NodeReservation.node, lambda: self.reservation(cluster, entry.node)),
            "maintenance": (
                m.NodeMaintenance,
                m.NodeMaintenance.node,
                lambda: self.node_maintenance(cluster, entry.node),
            ),
            "node_power": (
                m.NodePowerSettings,
                m.NodePowerSettings.node,
                lambda: self._stored_node_power(cluster, entry.node),
            ),
        }
        if (
            change.kind not in tables
            or change.action not in ("remove", "narrow")
            or (change.action == "narrow" and change.kind != "pin")
        ):
            raise UsageError(f"unknown reconcile change {change.kind}/{change.action}")
        model, key_column, current = tables[change.kind]
        if current() != entry:
            return False
        if change.action == "narrow":
            self._upsert_pin(replace(entry, nodes=check_nodes(change.new_nodes)))
        else:
            self._delete(cluster, model, key_column, entry.vmid if change.kind in ("pin", "lock") else entry.node)
        return True

    # -- export / import ------------------------------------------------------------------------

    def export(self, cluster: str | None = None) -> dict:
        """Every rule and setting (not the journal) of one cluster or all, as a JSON-able document."""
        with self._read():
            names = [cluster] if cluster is not None else self.clusters()
            return transfer.to_document(
                [(self.rules(name), self.settings(name)) for name in names], exported_at=self._clock()
            )

    def import_rules(self, document: Any, *, source: str = "import", actor: str = "user") -> dict[str, dict[str, int]]:
        """Adds or replaces every entry of an export; the whole file is checked before anything is
        written, so a bad file changes nothing. Returns counts per cluster."""
        parsed = transfer.from_document(document, source)
        counts: dict[str, dict[str, int]] = {}
        with self._write():
            for rules, settings in parsed:
                name = rules.cluster
                for pin in rules.pins:
                    self._upsert_pin(pin)
                for lock in rules.locks:
                    self._upsert_lock(lock)
                for reservation in rules.reservations:
                    self._upsert_reservation(reservation)
                for maintenance in rules.maintenance:
                    self._upsert_maintenance(maintenance)
                for power in rules.node_power:
                    self._upsert_power(power)
                for key, value in settings.items():
                    self._upsert_setting(name, key, value)
                counts[name] = {
                    "pins": len(rules.pins),
                    "locks": len(rules.locks),
                    "reservations": len(rules.reservations),
                    "maintenance": len(rules.maintenance),
                    "node_power": len(rules.node_power),
                    "settings": len(settings),
                }
                self._journal(name, actor, "import", f"cluster/{name}", {"source": source, **counts[name]})
        return counts


for _name, _method in list(vars(Store).items()):
    if not _name.startswith("_") and callable(_method) and _name not in ("open", "close"):
        setattr(Store, _name, _guarded(_method))
