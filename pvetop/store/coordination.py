"""Several pvetop instances, one cluster: a lease says which one may act, intents make moves safe.

Only the instance holding a cluster's lease runs its automation in ``auto``; the others advise.
The lease is a row with an expiry that its holder renews (a heartbeat) and a fencing token that
grows with every change of holder. One mechanism for SQLite and PostgreSQL alike: on one host
several processes share a SQLite file, across hosts they share a PostgreSQL database, and in both
a holder that dies (``kill -9``, a closed laptop) is replaced once its lease expires, while a blip
shorter than the lease changes nothing. Lease times come from the instances' clocks, so hosts
sharing a store need synchronised clocks (NTP), as a Proxmox VE cluster already requires.

Every automatic action is written down as an *intent* before its API call, in the same
transaction that checks the fencing token, and completed with its UPID afterwards. An instance
that takes over first settles the open intents it finds (``pvetop.policy.intents``), so a move
whose request reached the cluster just before its instance died is followed, never repeated.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pvetop.store.records import record_of
from pvetop.store.schema import StoreError

if TYPE_CHECKING:
    from pvetop.store.store import Store

INTENT_STATES = ("open", "done", "failed", "abandoned")


class LeaseLost(StoreError):
    """This instance no longer holds the lease its action was planned under: nothing was written."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One running pvetop process; ``id`` differs between two runs of the same pid."""

    host: str
    pid: int
    nonce: str

    @property
    def id(self) -> str:
        return f"{self.host}:{self.pid}:{self.nonce}"

    @classmethod
    def this_process(cls) -> Instance:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(4))


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Who may act on ``cluster``; ``acting`` is from the point of view of the instance that asked."""

    cluster: str
    acting: bool
    host: str
    pid: int
    token: int
    since: float
    expires_at: float

    def describe(self) -> str:
        return f"{self.host} (pid {self.pid})"


@dataclass(frozen=True, slots=True)
class IntentRecord:
    id: int
    cluster: str
    token: int
    actor: str
    action: str
    vmid: int | None
    source: str
    target: str
    created_at: float
    host: str
    pid: int
    upid: str | None
    state: str
    detail: str = ""
    finished_at: float | None = None


class Coordination:
    """The lease and intent operations of one open store (each runs in one write transaction)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- lease ----------------------------------------------------------------------------------

    def claim(self, cluster: str, *, ttl: float, take_over: bool = False) -> LeaseState:
        """Takes or renews the lease when it is free, expired or already ours (or, with
        ``take_over``, from its live holder: the user asked); otherwise reports who holds it."""
        store, me = self._store, self._store.instance
        lease = store._m.Lease
        now = store._clock()
        with store._write():
            row = self._locked_row(cluster)
            if row.holder == me.id:
                changed = False
            elif row.expires_at <= now or take_over:
                changed = True
            else:
                return self._state(row, acting=False)
            previous = None if not row.holder else f"{row.host} (pid {row.pid})"
            values = {lease.expires_at: now + ttl}
            if changed:
                values.update(
                    {
                        lease.holder: me.id,
                        lease.host: me.host,
                        lease.pid: me.pid,
                        lease.token: row.token + 1,
                        lease.since: now,
                    }
                )
            lease.update(values).where(lease.cluster == cluster).execute()
            if changed:
                action = "lease.take_over" if take_over and row.expires_at > now else "lease.acquire"
                params = {
                    "term": row.token + 1,
                    "previous": previous,
                    "ttl": ttl,
                }  # not "token": the journal hides those
                store._journal(cluster, "user" if take_over else "instance", action, f"cluster/{cluster}", params)
            return self._state(lease.get(lease.cluster == cluster), acting=True)

    def release(self, cluster: str) -> bool:
        """Gives the lease up at once (a clean stop), so another instance need not wait it out."""
        store = self._store
        lease = store._m.Lease
        with store._write():
            released = (
                lease.update(expires_at=store._clock())
                .where((lease.cluster == cluster) & (lease.holder == store.instance.id))
                .execute()
            )
            if released:
                store._journal(cluster, "instance", "lease.release", f"cluster/{cluster}", {})
        return bool(released)

    def lease(self, cluster: str) -> LeaseState | None:
        """The lease as stored (None: no instance ever acted on this cluster)."""
        lease = self._store._m.Lease
        row = lease.get_or_none(lease.cluster == cluster)
        if row is None or not row.holder:
            return None
        now = self._store._clock()
        return self._state(row, acting=row.holder == self._store.instance.id and row.expires_at > now)

    def _locked_row(self, cluster: str):
        """The cluster's lease row, created empty if missing and locked for this transaction
        (PostgreSQL: two first claimers must not both read "no lease"; SQLite holds the write lock)."""
        lease = self._store._m.Lease
        placeholder = {"cluster": cluster, "holder": "", "host": "", "pid": 0, "token": 0, "since": 0, "expires_at": 0}
        lease.insert(**placeholder).on_conflict_ignore().execute()
        query = lease.select().where(lease.cluster == cluster)
        if not self._store._sqlite:
            query = query.for_update()
        return query.get()

    def _state(self, row, *, acting: bool) -> LeaseState:
        return LeaseState(row.cluster, acting, row.host, row.pid, row.token, row.since, row.expires_at)

    # -- intents --------------------------------------------------------------------------------

    def open_intent(
        self,
        cluster: str,
        *,
        token: int,
        actor: str,
        action: str,
        vmid: int | None = None,
        source: str = "",
        target: str = "",
    ) -> IntentRecord:
        """Writes an intent, but only while this instance still holds the lease under ``token``
        (fencing: an instance that lost its lease during a pause cannot act on a stale plan)."""
        store, me = self._store, self._store.instance
        intent = store._m.Intent
        now = store._clock()
        with store._write():
            row = self._locked_row(cluster)
            if row.holder != me.id or row.token != token or row.expires_at <= now:
                holder = f"{row.host} (pid {row.pid})" if row.holder else "nobody"
                raise LeaseLost(f"not acting on {cluster} any more (the lease is {holder}'s): {action} not started")
            created = intent.create(
                cluster=cluster,
                token=token,
                actor=actor,
                action=action,
                vmid=vmid,
                source=source,
                target=target,
                created_at=now,
                host=me.host,
                pid=me.pid,
            )
            return self._intent_record(created)

    def finish_intent(self, intent_id: int, *, state: str, upid: str | None = None, detail: str = "") -> IntentRecord:
        """Closes an intent (``done``, ``failed`` or ``abandoned``), keeping its UPID when known."""
        if state not in INTENT_STATES[1:]:
            raise ValueError(f"an intent ends as one of {', '.join(INTENT_STATES[1:])}, not {state!r}")
        return self._update_intent(intent_id, state=state, upid=upid, detail=detail, finished_at=self._store._clock())

    def record_upid(self, intent_id: int, upid: str) -> IntentRecord:
        """The API call returned: the intent now names its task (it stays open until the task ends)."""
        return self._update_intent(intent_id, upid=upid)

    def open_intents(self, cluster: str) -> list[IntentRecord]:
        intent = self._store._m.Intent
        query = intent.select().where((intent.cluster == cluster) & (intent.state == "open")).order_by(intent.id)
        return [self._intent_record(row) for row in query]

    def intents(self, cluster: str, *, limit: int = 100) -> list[IntentRecord]:
        """Newest first, every state."""
        intent = self._store._m.Intent
        query = intent.select().where(intent.cluster == cluster).order_by(intent.id.desc()).limit(max(1, limit))
        return [self._intent_record(row) for row in query]

    def _update_intent(self, intent_id: int, **values) -> IntentRecord:
        intent = self._store._m.Intent
        changes = {getattr(intent, key): value for key, value in values.items() if value is not None}
        with self._store._write():
            intent.update(changes).where(intent.id == intent_id).execute()
            return self._intent_record(intent.get_by_id(intent_id))

    @staticmethod
    def _intent_record(row) -> IntentRecord:
        return record_of(IntentRecord, row)
