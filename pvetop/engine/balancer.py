"""The balancer worker: observe the cluster, plan with ``policy.balance``, move guests, journal it.

Modes (setting ``balancer.mode``): ``off`` plans nothing; ``advise`` (the default) plans on every
evaluation and shows the plan for a user to apply; ``auto`` also acts, but only once the trigger
has held for ``balancer.hold`` evaluations in a row on fresh data, with quorum, and never in
read-only mode; once it has moved guests it goes on re-planning until imbalance is below
``balancer.settle`` of the threshold or nothing is left to move. Loads are averaged over the
last ``balancer.smoothing`` polls so a burst moves nothing; the window starts afresh after the
balancer's own moves, whose before/after figures must not be mixed.

Moves go through the shared ``MigrationExecutor`` as the ``balancer`` actor, so the cluster-wide,
per-source and per-target limits bind them together with every other migration, HA-managed
guests move through PVE's HA manager and are followed to the end, and each move is journaled
with its reason. The worker starts a batch from the head of the plan (moves that touch no node
an earlier move of the batch touches, so a move that makes room runs before the one that needs
it) and re-plans when the batch has finished. A refused or failed move (an HA request the
manager dropped included) is reported and puts the guest in cooldown like a done move: it is
not retried in a loop. When PVE rebalances HA guests itself (``crs: ha-auto-rebalance``), the
planner leaves them to it and the worker says so.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pvetop.engine.evacuation import fetch_preconditions
from pvetop.engine.intents import standby_reason
from pvetop.engine.jobs import KEPT_ALERTS
from pvetop.engine.migrations import JobState, MigrationExecutor, MigrationJob
from pvetop.errors import UsageError
from pvetop.model import ClusterSnapshot, Guest, MigratePrecondition
from pvetop.policy.balance import (
    BalanceMove,
    BalancePlan,
    BalancerConfig,
    TriggerState,
    balanced_nodes,
    cooldown_until,
    plan_balance,
    smooth,
)
from pvetop.policy.registry import settings_registry
from pvetop.policy.rules import RuleSet

ACTOR = "balancer"
PLAN_ACTION = "balance.plan"
SKIP_ACTION = "balance.skip"
MODE_KEY = "balancer.mode"
HISTORY = 120  # imbalance figures kept for the sparkline
PRECONDITION_ROUNDS = 3  # plan, read PVE's precondition of the planned VMs, plan again (at most this often)
PRECONDITION_TTL = 600.0  # seconds a precondition answer is trusted (a disk may move to shared storage)
COOLDOWN_LOOKBACK = 7 * 86400.0  # journal history read for cooldowns (the backoff spans a day per repeat)

UpdateCallback = Callable[[str], None]


def load_config(store: Any, cluster: str) -> BalancerConfig:
    """The cluster's ``balancer.*`` settings (defaults where none or an invalid one is stored)."""
    stored = store.settings(cluster) if store is not None and cluster else {}
    return BalancerConfig.from_settings(settings_registry().effective(stored))


def set_mode(store: Any, cluster: str, mode: str, *, actor: str = "user") -> str:
    """Switches the balancer's mode (validated, journaled by the store)."""
    value = settings_registry().parse(MODE_KEY, mode)
    store.set_setting(cluster, MODE_KEY, value, actor=actor)
    return value


def cooldowns(store: Any, cluster: str, config: BalancerConfig, now: float) -> dict[int, float]:
    """vmid -> when the guest may move again, from the balancer's journaled moves (done or failed)."""
    if store is None or not cluster:
        return {}
    moved: dict[int, list[float]] = defaultdict(list)
    for entry in store.journal_entries(cluster, actions=("migrate",), actor=ACTOR, since=now - COOLDOWN_LOOKBACK):
        if entry.result != "started" and entry.target.startswith("guest/"):
            moved[int(entry.target.removeprefix("guest/"))].append(entry.at)
    return {vmid: cooldown_until(times, config) for vmid, times in moved.items()}


def unreadable_precondition(guest: Guest, snapshot: ClusterSnapshot) -> MigratePrecondition:
    """Stands in for a migrate precondition PVE did not answer: every other node refused, so the
    guest is held (with the reason shown) instead of being planned as if it had no local disks."""
    why = "PVE did not answer its migrate precondition: not moved until it does"
    return MigratePrecondition(
        running=guest.running, not_allowed_nodes={node.name: why for node in snapshot.nodes if node.name != guest.node}
    )


def changes_nothing(answer: MigratePrecondition, node: str, nodes: Iterable[str]) -> bool:
    """Whether PVE's migrate answer for a VM on ``node`` leaves the plan as it was planned without
    it: none of the balanced ``nodes`` refused, no local disk or resource. The planner then judges
    the VM as it did unread, so planning again would find the same plan."""
    others = set(nodes) - {node}
    return (
        not answer.local_disks
        and not answer.local_resources
        and not others & answer.not_allowed_nodes.keys()
        and (answer.allowed_nodes is None or others <= answer.allowed_nodes)
    )


def with_preconditions_read(plan: BalancePlan, vmids: Set[int]) -> BalancePlan:
    """``plan`` once PVE answered for ``vmids`` and each answer changed nothing: their moves copy
    no local disks (as ``planned_move`` sets it from such an answer) and they are checked."""
    moves = tuple(
        replace(step, move=replace(step.move, with_local_disks=False))
        if step.vmid in vmids and step.move.with_local_disks is None
        else step
        for step in plan.moves
    )
    return replace(plan, moves=moves, unchecked=plan.unchecked - vmids)


UNCHECKED = "not moved: PVE's migrate precondition was not read yet (local disks unknown); planned again next time"


def unchecked(step: BalanceMove) -> bool:
    """A VM the plan moved before PVE answered its migrate precondition (the plan's last round
    brought it in). The executor would read the precondition itself and copy any local disks
    along, which the balancer holds by default, so it is never sent: the next plan reads it."""
    return step.move.type == "qemu" and step.move.with_local_disks is None


def batch(moves: Sequence[BalanceMove]) -> list[BalanceMove]:
    """The moves at the head of the plan that may run together: a guest group moving as one stays
    whole; the batch ends at the first move touching a node an earlier group touched, so a move
    that makes room on a node finishes before the move that needs the room starts."""
    chosen: list[BalanceMove] = []
    touched: set[str] = set()
    index = 0
    while index < len(moves):
        group = [moves[index]]
        while index + len(group) < len(moves) and moves[index + len(group)].move.reason == group[0].move.reason:
            group.append(moves[index + len(group)])
        nodes = {group[0].move.source, group[0].move.target}
        if nodes & touched:
            break
        chosen += group
        touched |= nodes
        index += len(group)
    return chosen


def remaining(plan: BalancePlan, started: Sequence[BalanceMove]) -> dict[int, str]:
    """The moves (vmid -> node) of ``plan`` after the ``started`` ones: the next plan may finish
    them rather than set off afresh (guests PVE's HA manager brings along are not moves)."""
    begun = {step.vmid for step in started}
    return {step.vmid: step.move.target for step in plan.moves if step.vmid not in begun and step.follows is None}


@dataclass
class BalancerWorker:
    """One cluster's balancer; blocking calls run in threads so the UI loop stays free."""

    client: Any
    store: Any
    cluster: str
    executor: MigrationExecutor
    clock: Callable[[], float] = time.time
    read_only: bool = False
    max_age: float = 120.0  # seconds after which a snapshot counts as stale
    on_update: UpdateCallback | None = None
    plan: BalancePlan | None = None
    trigger: TriggerState = field(default_factory=TriggerState)
    paused: str | None = None  # why the worker does not act now (shown, journaled once)
    mode: str = "advise"
    last_config: BalancerConfig = field(default_factory=BalancerConfig)  # as read by the last evaluation
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    jobs: list[MigrationJob] = field(default_factory=list)  # the balancer's moves, newest last
    alerts: list[str] = field(default_factory=list)
    _window: deque[ClusterSnapshot] = field(default_factory=lambda: deque(maxlen=60))
    _preconditions: dict[int, tuple[float, str, MigratePrecondition]] = field(default_factory=dict)
    _resume: dict[int, str] = field(default_factory=dict)  # vmid -> node: the rest of the plan auto started
    _journaled_plan: tuple | None = None
    _journaled_skip: str | None = None
    _seen_finished: set[int] = field(default_factory=set)
    _watchers: set[asyncio.Task] = field(default_factory=set)

    async def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(func, *args, **kwargs)

    def config(self) -> BalancerConfig:
        return load_config(self.store, self.cluster)

    @property
    def running(self) -> tuple[MigrationJob, ...]:
        return tuple(job for job in self.jobs if not job.state.finished)

    # --- observing and planning --------------------------------------------------------------------

    def _why_paused(self, snapshot: ClusterSnapshot, stale: bool) -> str | None:
        age = self.clock() - snapshot.fetched_at
        if stale or (snapshot.fetched_at and age > self.max_age):
            return "cluster data is stale: nothing moves until a fresh refresh arrives"
        if not snapshot.quorate:
            return "the cluster has no quorum: nothing moves"
        if self.read_only:
            return "read-only: the balancer only advises"
        standby = standby_reason(self.executor)
        if standby is not None:
            return standby
        if self.running:
            return f"{len(self.running)} balancer move(s) running: re-planning when they finish"
        return None

    def _follow_jobs(self) -> None:
        """New results of the balancer's moves: failures are reported once, and any finished move
        starts a fresh smoothing window (node figures before and after a move must not mix)."""
        self._seen_finished &= {job.id for job in self.jobs}  # of the moves still kept (HISTORY)
        for job in self.jobs:
            if job.state.finished and job.id not in self._seen_finished:
                self._seen_finished.add(job.id)
                self._window.clear()
                if job.state is JobState.FAILED:
                    self._alert(f"balancer move {job.label} failed: {job.error} (not retried before its cooldown)")

    async def plan_now(
        self,
        snapshot: ClusterSnapshot,
        config: BalancerConfig,
        *,
        balancing: bool = False,
        auto: bool = False,
        resume: Mapping[int, str] | None = None,
    ) -> BalancePlan:
        """The plan for ``snapshot``, PVE's migrate precondition read for every VM it moves
        (``balancing``: moves were made for this trigger already; ``auto``: the plan is for auto
        mode; ``resume``: the moves left of the plan being carried out; see ``plan_balance``).

        Planning runs in a thread: on a cluster of a few hundred guests it takes a good part of a
        second, which on the dashboard's event loop would freeze the screen meanwhile."""
        now = self.clock()
        rules = await self._call(self.store.ruleset, self.cluster) if self.store is not None else RuleSet()
        waits = await self._call(cooldowns, self.store, self.cluster, config, now)
        plan_with = partial(
            plan_balance,
            snapshot,
            rules,
            config,
            now=now,
            cooldowns=waits,
            balancing=balancing,
            auto=auto,
            resume=resume,
        )
        plan = await self._call(plan_with, preconditions=self._known(snapshot))
        unanswered: dict[int, MigratePrecondition] = {}
        for _round in range(PRECONDITION_ROUNDS):
            if not plan.unchecked:
                break
            guests = [snapshot.guest_by_vmid[vmid] for vmid in sorted(plan.unchecked)]
            # without a client (a fixed snapshot on screen) nothing can be asked, nor moved
            answers = await fetch_preconditions(self.client, guests) if self.client is not None else {}
            for guest in guests:
                answer = answers.get(guest.vmid)
                if answer is not None:
                    self._preconditions[guest.vmid] = (now, guest.node, answer)
                elif self.client is None:  # a fixed snapshot on screen: shown as planned, nothing can move
                    self._preconditions[guest.vmid] = (now, guest.node, MigratePrecondition(running=guest.running))
                else:  # PVE did not answer (a node just back, a dropped read): held for this plan only
                    unanswered[guest.vmid] = unreadable_precondition(guest, snapshot)
            nodes = balanced_nodes(snapshot, rules)
            if all(
                guest.vmid not in unanswered and changes_nothing(self._preconditions[guest.vmid][2], guest.node, nodes)
                for guest in guests
            ):
                plan = with_preconditions_read(plan, plan.unchecked)  # planning again would find the same
                break
            plan = await self._call(plan_with, preconditions={**self._known(snapshot), **unanswered})
        return plan

    def _known(self, snapshot: ClusterSnapshot) -> dict[int, MigratePrecondition]:
        """Precondition answers still valid: fresh, and asked on the node the guest is on now."""
        now = self.clock()
        known = {}
        for vmid, (at, node, answer) in list(self._preconditions.items()):
            guest = snapshot.guest_by_vmid.get(vmid)
            if guest is None or guest.node != node or now - at > PRECONDITION_TTL:
                del self._preconditions[vmid]
            else:
                known[vmid] = answer
        return known

    async def evaluate(self, snapshot: ClusterSnapshot, *, stale: bool = False) -> BalancePlan | None:
        """One look at the cluster: the plan now (None in mode off), the trigger, the journal."""
        config = self.last_config = await self._call(self.config)
        self.mode = config.mode
        self._follow_jobs()
        if config.mode == "off":
            self.plan, self.paused, self.trigger = None, "balancer is off", TriggerState()
            self._changed("plan")
            return None
        paused = self._why_paused(snapshot, stale)
        if self.running:  # the snapshot shows moves half done: keep the plan they came from
            await self._set_paused(paused)
            return self.plan
        advising = paused is not None and (paused.startswith("read-only") or paused.startswith("another"))
        if paused is None or advising:
            self._window.append(snapshot)
        while len(self._window) > config.smoothing:  # older polls are never read again: free them
            self._window.popleft()
        window = list(self._window) or [snapshot]
        auto = config.mode == "auto"
        balancing = self.trigger.balancing and auto
        resume = self._resume if balancing else None
        plan = await self.plan_now(
            await self._call(smooth, window), config, balancing=balancing, auto=auto, resume=resume
        )
        if paused is None or advising:
            self.trigger = self.trigger.next(plan.trigger, moves=bool(plan.moves))
        if not self.trigger.balancing:
            self._resume = {}
        self.plan = plan
        self.history.append(plan.before.imbalance)
        await self._set_paused(paused)
        await self._journal_plan(plan)
        self._changed("plan")
        return plan

    async def step(self, snapshot: ClusterSnapshot, *, stale: bool = False) -> list[MigrationJob]:
        """Evaluate and, in ``auto`` once the trigger has held, start the head of the plan."""
        plan = await self.evaluate(snapshot, stale=stale)
        config = self.last_config
        if plan is None or config.mode != "auto" or self.paused is not None or not plan.moves:
            return []
        if not self.trigger.ready(config):
            return []
        head = batch(plan.moves)
        started = await self.apply(head, actor=ACTOR)
        if started:
            self.trigger = self.trigger.acted()
            self._resume = remaining(plan, head)
        return started

    # --- acting ------------------------------------------------------------------------------------

    async def apply(self, moves: Iterable[BalanceMove], *, actor: str = "user") -> list[MigrationJob]:
        """Runs planned moves through the shared executor (a user applying advice, or ``auto``)."""
        if self.read_only:
            raise UsageError("read-only: pvetop changes nothing on the cluster")
        started = []
        for step in moves:
            if step.follows is not None:  # PVE's HA manager brings it along with its partner
                await self._journal_guest(
                    step, actor, f"comigrates with {step.follows} (PVE's HA manager moves positive-affinity partners)"
                )
                continue
            if self.executor.job_for(step.vmid) is not None:
                continue  # already on its way (applied twice from the screen)
            if unchecked(step):
                await self._journal(SKIP_ACTION, {"vmid": step.vmid, "target": step.move.target}, UNCHECKED)
                continue
            job = self.executor.submit(step.move, actor=actor)
            self.jobs.append(job)
            started.append(job)
        self.jobs = self.jobs[-HISTORY:]
        if started:
            self._changed("jobs")
            self._watchers.add(asyncio.get_running_loop().create_task(self._watch(started)))
        return started

    async def _watch(self, jobs: list[MigrationJob]) -> None:
        """Reports the moves' results as soon as they are in (the next evaluation re-plans)."""
        try:
            await self.executor.wait(jobs)
            self._follow_jobs()
            self._changed("jobs")
        finally:
            self._watchers.discard(asyncio.current_task())

    async def balance(
        self, fetch: Callable[[], ClusterSnapshot], *, max_moves: int | None = None, actor: str = ACTOR
    ) -> list[MigrationJob]:
        """Plan, run the head of the plan, wait, re-plan on a fresh snapshot: until nothing is left
        to gain, or ``max_moves`` moves were made. Asked for explicitly (cron, systemd), it runs
        whatever the mode, but never on stale data, without quorum or read-only."""
        config = await self._call(self.config)
        done: list[MigrationJob] = []
        resume: dict[int, str] = {}
        while max_moves is None or len(done) < max_moves:
            snapshot = await self._call(fetch)
            await self._set_paused(self._why_paused(snapshot, False))
            if self.paused is not None:
                break
            plan = self.plan = await self.plan_now(snapshot, config, balancing=bool(done), resume=resume)
            self.history.append(plan.before.imbalance)
            await self._journal_plan(plan)
            if not plan.moves:
                break
            moves = batch(plan.moves)[: None if max_moves is None else max_moves - len(done)]
            jobs = await self.apply(moves, actor=actor)
            if not jobs:
                break
            resume = remaining(plan, moves)
            await self.executor.wait(jobs)
            done += jobs
            self._follow_jobs()
            if all(job.state is JobState.FAILED for job in jobs):
                break  # every move of the batch failed: reported, not looped on
        return done

    # --- bookkeeping -------------------------------------------------------------------------------

    def _changed(self, what: str) -> None:
        if self.on_update is not None:
            self.on_update(what)

    def _alert(self, text: str) -> None:
        self.alerts = [*self.alerts[-(KEPT_ALERTS - 1) :], text]
        self._changed("alert")

    async def _set_paused(self, paused: str | None) -> None:
        self.paused = paused
        if paused != self._journaled_skip:
            self._journaled_skip = paused
            if paused is not None:
                await self._journal(SKIP_ACTION, {"mode": self.mode}, paused)

    async def _journal_plan(self, plan: BalancePlan) -> None:
        """A plan is journaled when what it proposes changes (not on every evaluation)."""
        key = (plan.trigger is not None, tuple((s.vmid, s.move.target) for s in plan.moves))
        if key == self._journaled_plan:
            return
        self._journaled_plan = key
        params: Mapping[str, Any] = {
            "mode": self.mode,
            "imbalance_before": round(plan.before.imbalance, 4),
            "imbalance_after": round(plan.after.imbalance, 4),
            "moves": [f"{s.vmid} {s.move.source}->{s.move.target}: {s.move.reason}" for s in plan.moves],
            "held": [f"{h.vmid}: {h.reason}" for h in plan.held],
        }
        await self._journal(PLAN_ACTION, params, plan.summary)

    async def _journal_guest(self, step: BalanceMove, actor: str, result: str) -> None:
        """A move PVE makes for us, journaled like the executor journals the ones we ask for."""
        if self.store is not None and self.cluster and not self.read_only:
            move = step.move
            params = {"source": move.source, "target": move.target, "via_ha": True, "reason": move.reason}
            await self._call(self.store.journal, self.cluster, actor, "migrate", f"guest/{move.vmid}", params, result)

    async def _journal(self, action: str, params: Mapping[str, Any], result: str) -> None:
        if self.store is not None and self.cluster and not self.read_only:
            await self._call(self.store.journal, self.cluster, ACTOR, action, "cluster", dict(params), result)
