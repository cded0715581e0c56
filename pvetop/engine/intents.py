"""Automatic actions written down before their API call, so none is done twice across a failover.

The acting instance opens an intent (under its lease's fencing token) before each automatic
migrate, power-off or wake request, records the task's UPID when the request returns, and closes
the intent when the task ends. An instance that becomes the acting one first settles the intents
another instance left open (``policy.intents.settle``): a task that reached the cluster is
followed to its end, a guest already moved is done, a request that never left is abandoned, and
only then does it plan. A user's own moves are not intents: they are not repeated automatically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pvetop.engine.lease import LeaseKeeper
from pvetop.model import ClusterSnapshot
from pvetop.policy.intents import PendingIntent, Settlement, settle, task_from_entry
from pvetop.pve import tasks
from pvetop.store.coordination import IntentRecord, LeaseLost

AUTOMATIC_ACTORS = frozenset({"balancer", "power"})


@dataclass
class IntentLog:
    """One instance's intents on one cluster."""

    store: Any
    cluster: str
    lease: LeaseKeeper
    clock: Callable[[], float] = time.time
    grace: float = 120.0  # an intent younger than this with no task yet may still be on its way
    settled: list[Settlement] = field(default_factory=list)  # the last settling pass, for the UI and log
    _mine: set[int] = field(default_factory=set)

    async def open(
        self, *, actor: str, action: str, vmid: int | None = None, source: str = "", target: str = ""
    ) -> int:
        """The intent's id; raises ``LeaseLost`` when this instance is not (or no longer) acting."""
        token = self.lease.token
        if token is None:
            raise LeaseLost(
                f"this instance is not acting on {self.cluster} ({self.lease.describe()}): {action} not started"
            )
        record: IntentRecord = await asyncio.to_thread(
            self.store.coordination.open_intent,
            self.cluster,
            token=token,
            actor=actor,
            action=action,
            vmid=vmid,
            source=source,
            target=target,
        )
        self._mine.add(record.id)
        return record.id

    async def started(self, intent_id: int, upid: str) -> None:
        await asyncio.to_thread(self.store.coordination.record_upid, intent_id, upid)

    async def finished(self, intent_id: int, *, ok: bool, detail: str = "") -> None:
        await asyncio.to_thread(
            self.store.coordination.finish_intent, intent_id, state="done" if ok else "failed", detail=detail
        )
        self._mine.discard(intent_id)

    async def unsettled(self) -> list[IntentRecord]:
        """Open intents this instance did not open itself (another instance's, or an earlier run's)."""
        records: list[IntentRecord] = await asyncio.to_thread(self.store.coordination.open_intents, self.cluster)
        return [r for r in records if r.id not in self._mine]

    async def settle(self, client: Any, snapshot: ClusterSnapshot) -> list[Settlement]:
        """Settles what can be settled now; returns the intents still open (follow or wait).
        Planning must wait while any is returned: the cluster is still changing under it."""
        foreign = await self.unsettled()
        if not foreign:
            self.settled = []
            return []
        entries = await asyncio.to_thread(tasks.cluster_tasks, client)
        seen = [t for t in (task_from_entry(e) for e in entries if isinstance(e, dict)) if t is not None]
        guest_nodes = {g.vmid: g.node for g in snapshot.guests}
        online = frozenset(n.name for n in snapshot.nodes if n.online)
        now = self.clock()
        pending: list[Settlement] = []
        results: list[Settlement] = []
        for record in foreign:
            intent = PendingIntent(
                record.id, record.action, record.vmid, record.source, record.target, record.created_at, record.upid
            )
            result = settle(intent, tasks=seen, guest_nodes=guest_nodes, online_nodes=online, now=now, grace=self.grace)
            results.append(result)
            if result.outcome in ("done", "failed", "abandoned"):
                await asyncio.to_thread(
                    self.store.coordination.finish_intent,
                    record.id,
                    state=result.outcome,
                    upid=result.upid,
                    detail=f"settled by {self.store.instance.host} (pid {self.store.instance.pid}): {result.reason}",
                )
            else:
                if result.upid and result.upid != record.upid:
                    await self.started(record.id, result.upid)
                pending.append(result)
        self.settled = results
        return pending


def standby_reason(executor: Any) -> str | None:
    """Why a worker may only advise because another pvetop instance acts on the cluster (None: it
    may act). An executor that writes intents carries the lease; one without intents acts alone."""
    intents = getattr(executor, "intents", None)
    if intents is not None and not intents.lease.acting:
        return f"another pvetop instance acts on this cluster ({intents.lease.describe()}): advising only"
    return None
