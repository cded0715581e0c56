"""The power worker: observe the cluster, ask ``policy.power`` what to do, do it, journal it.

Modes (setting ``power.mode``): ``off`` (default) plans nothing, ``advise`` plans and shows,
``auto`` acts — one node at a time. A power-off drains the node with the evacuation planner and
the migration executor (its limits apply), checks that nothing but the guests marked to sleep
with the node still runs, shuts those down gracefully, asks PVE to shut the node down and
watches it go offline. A wake sends a magic packet (``wakeonlan``) or asks PVE's ``wakeonlan``
on another online node, then watches the node rejoin within its boot timeout, starts the
guests that slept with it and moves back the ones its drain took away (``power.return_guests``).
A magic packet is one UDP datagram nobody acknowledges, so it goes out ``PACKET_COPIES`` times,
and the wake is sent once more at half the boot timeout if the node is not back by then; a node
that still does not come back is marked ``failed`` with an alert, and is not retried in a loop.
Nothing happens on stale data, without quorum, or read-only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

import wakeonlan

from pvetop.engine.evacuation import fetch_preconditions
from pvetop.engine.intents import standby_reason
from pvetop.engine.jobs import KEPT_ALERTS
from pvetop.engine.migrations import MigrationExecutor, MigrationJob
from pvetop.errors import PvetopError, UsageError
from pvetop.model import ClusterSnapshot, Guest, LocalVolumes, MigratePrecondition, Node
from pvetop.policy.placement import PlannedMove, comigrating, plan_bulk_move
from pvetop.policy.power import (
    POWER_SETTINGS,
    EnergyReport,
    LoadSample,
    NodeDecision,
    NodeFacts,
    PowerInputs,
    PowerPlan,
    PowerSettings,
    WakeMethod,
    check_power_off,
    check_wake,
    energy_report,
    plan_power,
    qdevice_votes,
    samples_from_rrd,
)
from pvetop.policy.settings import SettingsRegistry
from pvetop.pve import actions, tasks

SLEEP_WITH_NODE = "power.sleep_with_node"  # setting: {vmid: guest name} of guests that sleep with their node
SLEPT = "power.slept"  # setting: {node: [vmids]} shut down with their node, to start after its wake
DRAINED = "power.drained"  # setting: {node: {vmid: local storage its disks came from, or ""}} to return after the wake
MARGIN_KEY = "power.failure_margin"
SHUTDOWN_TIMEOUT = 900.0  # seconds a node gets to go offline after PVE accepted the shutdown
GUEST_SHUTDOWN_TIMEOUT = 300.0  # seconds a guest that sleeps with its node gets to shut down
COMIGRATE_TIMEOUT = 600.0  # seconds a guest PVE's HA manager moves along with its partner gets to arrive
POWER_ACTIONS = ("power.off", "power.wake")
HISTORY_GAP = 600.0  # seconds without a sample of a node after which its rrddata is read again
PACKET_COPIES = 3  # magic packets per wake (wakeonlan sends one; nothing acknowledges it)
HISTORY_KEPT = 4200.0  # seconds of samples kept per node (an rrd hour: 70 one-minute rows)

UpdateCallback = Callable[[str], None]


def power_registry() -> SettingsRegistry:
    return SettingsRegistry(POWER_SETTINGS)


def load_settings(store: Any, cluster: str) -> PowerSettings:
    """The cluster's ``power.*`` settings, with when the failure margin in force was chosen."""
    if store is None:
        return PowerSettings()
    values = power_registry().effective(store.settings(cluster))
    chosen = store.journal_entries(cluster, actions=("setting.set",), target=f"setting/{MARGIN_KEY}")
    return PowerSettings.from_values(values, margin_chosen_at=chosen[-1].at if chosen else None)


def sleep_marks(store: Any, cluster: str) -> dict[int, str]:
    """Guests marked to sleep with their node: vmid -> the guest's name when it was marked."""
    stored = store.get_setting(cluster, SLEEP_WITH_NODE, {}) if store is not None else {}
    return {int(vmid): str(name) for vmid, name in (stored or {}).items()}


def mark_sleep_with_node(store: Any, cluster: str, guest: Guest, on: bool, *, actor: str = "user") -> dict[int, str]:
    """Marks (or unmarks) a guest to be shut down with its node and started again after the wake."""

    def update(old: Any) -> dict[str, str]:
        marks = {str(k): str(v) for k, v in (old or {}).items()}
        if on:
            marks[str(guest.vmid)] = guest.name
        else:
            marks.pop(str(guest.vmid), None)
        return marks

    store.update_setting(cluster, SLEEP_WITH_NODE, update, {}, actor=actor)
    return sleep_marks(store, cluster)


def power_events(store: Any, cluster: str, since: float = 0.0) -> list[tuple[float, str, str]]:
    """(time, node, "off"|"on") from the journal: when a power-off ended offline, when a wake rejoined."""
    return _events_of(store.journal_entries(cluster, actions=POWER_ACTIONS, since=since)) if store is not None else []


def _events_of(entries: Iterable[Any]) -> list[tuple[float, str, str]]:
    """``power_events`` of journal entries already read (the worker reads them once a round)."""
    return [
        (entry.at, entry.target.removeprefix("node/"), "off" if entry.action == "power.off" else "on")
        for entry in entries
        if entry.result == "ok"
    ]


def _failed_power_offs_of(entries: Iterable[Any]) -> dict[str, float]:
    """Node -> when its last power-off among the journal ``entries`` failed."""
    return {
        e.target.removeprefix("node/"): e.at
        for e in entries
        if e.action == "power.off" and e.result.startswith("failed")
    }


def energy(store: Any, cluster: str, settings: PowerSettings, *, now: float, since: float = 0.0) -> EnergyReport:
    return energy_report(power_events(store, cluster), settings, now=now, since=since)


def local_minute_of_day(at: float) -> int:
    """Minutes since local midnight: the power windows are written in the operator's local time."""
    moment = datetime.fromtimestamp(at)
    return moment.hour * 60 + moment.minute


@dataclass
class NodeTrack:
    """What the worker is doing with one node (the policy reads ``state``)."""

    state: str
    since: float
    detail: str = ""


@dataclass
class PowerOutcome:
    node: str
    action: str
    ok: bool
    detail: str
    decision: NodeDecision | None = None
    refused: bool = False


@dataclass
class PowerWorker:
    """One cluster's power worker; every blocking call runs in a thread, so the UI loop stays free."""

    client: Any
    store: Any
    cluster: str
    executor: MigrationExecutor | None = None
    clock: Callable[[], float] = time.time
    poll: float = 2.0
    read_only: bool = False
    on_update: UpdateCallback | None = None
    send_packet: Callable[..., None] = wakeonlan.wake
    local_minute: Callable[[float], int] = local_minute_of_day
    tracks: dict[str, NodeTrack] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    plan: PowerPlan | None = None
    running: dict[str, asyncio.Task] = field(default_factory=dict)
    _pve_macs: dict[str, str | None] = field(default_factory=dict)
    _qdevice: Mapping[str, Any] | None = None
    _samples: dict[str, list[LoadSample]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor is None:
            self.executor = MigrationExecutor(
                self.client, store=self.store, cluster=self.cluster, poll=self.poll / 2, clock=self.clock
            )

    # --- observing -------------------------------------------------------------------------------

    async def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(func, *args, **kwargs)

    def settings(self) -> PowerSettings:
        return load_settings(self.store, self.cluster)

    async def snapshot(self) -> ClusterSnapshot:
        return await self._call(self.client.fetch_snapshot)

    async def _pve_mac(self, node: str, online: bool) -> str | None:
        """The MAC in the node's PVE config. PVE only answers for an online node (595 otherwise), so
        a sleeping node's MAC is the one remembered, or the one journaled when it was switched off."""
        if node in self._pve_macs:
            return self._pve_macs[node]
        if self.client is None:  # planning on a fixed snapshot: nothing to ask
            return None
        if online:
            try:
                self._pve_macs[node] = await self._call(actions.node_wakeonlan_mac, self.client, node)
            except PvetopError:
                return None
        elif self.store is not None:
            offs = await self._call(
                self.store.journal_entries, self.cluster, actions=("power.off",), target=f"node/{node}"
            )
            macs = [e.params["pve_mac"] for e in offs if e.params.get("pve_mac")]
            self._pve_macs[node] = macs[-1] if macs else None
        return self._pve_macs.get(node)

    async def _history(self, node: Node, now: float) -> tuple[LoadSample, ...]:
        """The node's last hour: its rrddata on a fresh start (or after a gap), then the worker's own
        snapshots appended, so a running worker does not read every node's rrd on every round."""
        kept = self._samples.get(node.name, [])
        if self.client is not None and (not kept or now - kept[-1].time > HISTORY_GAP):
            try:
                kept = list(samples_from_rrd(await self._call(self.client.node_rrddata, node.name, "hour")))
            except PvetopError:
                kept = []
        if node.maxcpu and node.maxmem and (not kept or kept[-1].time < now):
            kept.append(LoadSample(now, node.cpu * node.maxcpu, node.maxcpu, node.mem, node.maxmem))
        kept = [sample for sample in kept if sample.time >= now - HISTORY_KEPT]
        self._samples[node.name] = kept
        return tuple(kept[:-1])  # the policy adds the snapshot of now itself

    async def inputs(
        self, snapshot: ClusterSnapshot, settings: PowerSettings, *, preconditions_for: Iterable[str] = ()
    ) -> PowerInputs:
        now = self.clock()
        store, cluster = self.store, self.cluster
        rules = await self._call(store.ruleset, cluster) if store is not None else None
        # the day's power entries, read once for the cycle counts and the failed power-offs (in a
        # thread: the screen's event loop runs this too)
        journal = (
            await self._call(store.journal_entries, cluster, actions=POWER_ACTIONS, since=now - 86400.0)
            if store is not None
            else []
        )
        events, failed_offs = _events_of(journal), _failed_power_offs_of(journal)
        offs = [e for e in events if e[2] == "off"]
        wakes = {name: at for at, name, what in events if what == "on"}  # the last one per node
        facts: dict[str, NodeFacts] = {}
        history = {}
        powers = await self._call(store.node_power_settings, cluster) if store is not None else []
        power_of = {p.node: p for p in powers}
        for node in snapshot.nodes:
            stored = power_of.get(node.name)
            track = self.tracks.get(node.name)
            facts[node.name] = NodeFacts(
                allow_power_off=bool(stored and stored.allow_power_off),
                store_mac=stored.wol_mac if stored else None,
                pve_mac=await self._pve_mac(node.name, node.online),
                boot_timeout=stored.boot_timeout if stored else 300,
                state=track.state if track else None,  # type: ignore[arg-type]
                power_offs=tuple(at for at, name, _ in offs if name == node.name),
                woken_at=wakes.get(node.name),
                off_failed_at=failed_offs.get(node.name),
            )
            if node.online:
                history[node.name] = await self._history(node, now)
        api_node, others = None, False
        if self.client is not None:
            if self._qdevice is None:
                try:
                    self._qdevice = await self._call(actions.qdevice_status, self.client)
                except PvetopError:
                    self._qdevice = {}
            api_node, others = await self._call(actions.api_endpoint, self.client)
        sleepers = await self._call(sleep_marks, store, cluster) if store is not None else {}
        guests = [g for n in preconditions_for for g in snapshot.guests_by_node.get(n, ()) if g.running]
        preconditions = await fetch_preconditions(self.client, guests) if guests and self.client else {}
        local_volumes = await self._local_volumes(snapshot, guests, preconditions)
        kwargs: dict[str, Any] = {"rules": rules} if rules is not None else {}
        return PowerInputs(
            snapshot=snapshot,
            now=now,
            minute_of_day=self.local_minute(now),
            settings=settings,
            facts=facts,
            history=history,
            qdevice=qdevice_votes(self._qdevice or {}, len(snapshot.nodes)),
            api_node=api_node,
            other_endpoint_answers=others,
            sleepers=sleepers,
            preconditions=preconditions,
            local_volumes=local_volumes,
            **kwargs,
        )

    async def _local_volumes(
        self, snapshot: ClusterSnapshot, guests: list[Guest], preconditions: Mapping[int, MigratePrecondition]
    ) -> dict[int, LocalVolumes]:
        """The volumes a drain must copy: a VM's local disks from PVE's precondition, a container's
        from its config (PVE's precondition checks no storage for containers)."""
        shared = {s.storage for s in snapshot.storage if s.shared}
        found: dict[int, LocalVolumes] = {}
        for guest in guests:
            volumes: LocalVolumes | None = None
            if guest.type == "qemu" and guest.vmid in preconditions:
                volumes = preconditions[guest.vmid].local_volumes()
            elif guest.type == "lxc" and self.client is not None:
                try:
                    volumes = await self._call(actions.container_local_volumes, self.client, guest, shared)
                except PvetopError:
                    volumes = None  # planned as before: the move's task says what PVE thinks
            if volumes is not None:
                found[guest.vmid] = volumes
        return found

    def _paused(self, snapshot: ClusterSnapshot, settings: PowerSettings) -> str | None:
        age = self.clock() - snapshot.fetched_at
        if snapshot.fetched_at and age > max(3 * settings.interval, 120.0):
            return f"cluster data is {age:.0f} s old"
        if not snapshot.quorate:
            return "the cluster has lost quorum"
        if self.read_only:
            return "read-only: pvetop changes nothing"
        return standby_reason(self.executor)

    async def evaluate(
        self, snapshot: ClusterSnapshot | None = None, settings: PowerSettings | None = None
    ) -> PowerPlan:
        """The policy's plan now; a candidate for power-off is re-planned with PVE's migrate preconditions.
        ``settings``: the ones the caller read this round already (each read is two store queries)."""
        settings = settings or await self._call(self.settings)
        try:
            snapshot = snapshot or await self.snapshot()
        except PvetopError as exc:
            if self.plan is not None:
                self.plan = replace(self.plan, paused=f"cannot read the cluster: {exc.message}")
            raise
        self._follow_states(snapshot)
        paused = self._paused(snapshot, settings)
        inputs = await self.inputs(snapshot, settings)
        plan = plan_power(inputs, paused=paused)
        if plan.action is not None and plan.action.action == "power_off":
            inputs = await self.inputs(snapshot, settings, preconditions_for=[plan.action.node])
            plan = plan_power(inputs, paused=paused)
        self.plan = plan
        self._changed("plan")
        return plan

    def _follow_states(self, snapshot: ClusterSnapshot) -> None:
        """Forget finished tracks: a node seen online while "off" (woken by someone) is simply on."""
        for name, track in list(self.tracks.items()):
            node = snapshot.node_by_name.get(name)
            if node is None:
                del self.tracks[name]
            elif track.state == "on" or (node.online and track.state in ("off", "failed")):
                del self.tracks[name]  # done, or woken (or fixed) by someone else
            elif track.state == "waking" and node.online and name not in self.running:
                del self.tracks[name]

    # --- the loop --------------------------------------------------------------------------------

    async def step(
        self, snapshot: ClusterSnapshot | None = None, settings: PowerSettings | None = None
    ) -> PowerPlan | None:
        """One evaluation; in ``auto`` the planned action starts (in the background). The settings
        are read once per step (or taken from the caller), not again by ``evaluate``."""
        settings = settings or await self._call(self.settings)
        if settings.mode == "off":
            self.plan = None
            return None
        plan = await self.evaluate(snapshot, settings)
        action = plan.action
        if settings.mode == "auto" and action is not None and plan.paused is None and not self.running:
            if action.action == "power_off":
                self.start(self.power_off(action.node, actor="power"), action.node)
            elif action.action == "wake":
                self.start(self.wake(action.node, actor="power"), action.node)
        return plan

    def start(self, work: Any, node: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(work, name=f"power-{node}")
        self.running[node] = task
        task.add_done_callback(partial(self._finished, node))
        return task

    def _finished(self, node: str, task: asyncio.Task) -> None:
        """An action started in ``auto`` whose reads failed before it began is an alert (the next
        round plans again); its exception went unretrieved. Any other exception stays loud."""
        self.running.pop(node, None)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, PvetopError):
            self._alert(f"{node}: {task.get_name()} stopped before it began: {error.message}")
        elif error is not None:
            raise error

    async def run(self) -> None:
        """Evaluates every ``power.interval`` seconds until cancelled; a failed read waits for the next round."""
        while True:
            try:
                await self.step()
            except PvetopError:
                pass  # the plan says why (paused); the next round tries again
            await asyncio.sleep((await self._call(self.settings)).interval)

    # --- acting ----------------------------------------------------------------------------------

    def _set(self, node: str, state: str, detail: str = "") -> None:
        self.tracks[node] = NodeTrack(state, self.clock(), detail)
        self._changed(node)

    def _changed(self, what: str) -> None:
        if self.on_update is not None:
            self.on_update(what)

    def _alert(self, text: str) -> None:
        self.alerts = [*self.alerts[-(KEPT_ALERTS - 1) :], text]
        self._changed("alert")

    async def _journal(self, actor: str, action: str, node: str, params: Mapping[str, Any], result: str) -> None:
        if self.store is not None:
            await self._call(self.store.journal, self.cluster, actor, action, f"node/{node}", dict(params), result)

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise UsageError("read-only: pvetop changes nothing on the cluster")

    async def _wait_for(self, done: Callable[[ClusterSnapshot], bool], timeout: float) -> ClusterSnapshot | None:
        """Polls snapshots until ``done``; None when ``timeout`` (clock seconds) passed first."""
        deadline = self.clock() + timeout
        while True:
            try:
                snapshot = await self.snapshot()
                if done(snapshot):
                    return snapshot
            except PvetopError:
                pass  # the node we talk to may be the one rebooting; keep asking until the deadline
            if self.clock() >= deadline:
                return None
            await asyncio.sleep(self.poll)

    async def check_power_off(self, node: str) -> NodeDecision:
        snapshot = await self.snapshot()
        settings = await self._call(self.settings)
        inputs = await self.inputs(snapshot, settings, preconditions_for=[node])
        return check_power_off(inputs, node)

    async def check_wake(self, node: str) -> NodeDecision:
        snapshot = await self.snapshot()
        inputs = await self.inputs(snapshot, await self._call(self.settings))
        return check_wake(inputs, node)

    async def power_off(self, node: str, *, actor: str = "user", force: bool = False) -> PowerOutcome:
        """Drain, shut the sleepers down, shut the node down, wait until it is offline."""
        self._refuse_if_read_only()
        snapshot = await self.snapshot()
        settings = await self._call(self.settings)
        inputs = await self.inputs(snapshot, settings, preconditions_for=[node])
        decision = check_power_off(inputs, node) if actor == "user" else plan_power(inputs).decision(node)
        if decision.refusals and not force:
            await self._journal(actor, "power.off", node, {"reasons": list(decision.reasons)}, "refused")
            return PowerOutcome(node, "power_off", False, "; ".join(decision.refusals), decision, refused=True)
        params = {
            "reasons": list(decision.refusals if force else decision.reasons),
            "forced": force,
            "pve_mac": inputs.fact(node).pve_mac,  # the way back, once PVE no longer answers for the node
        }
        await self._journal(actor, "power.off", node, params, "started")
        self._set(node, "draining", f"{len(decision.drain.moves) if decision.drain else 0} moves")
        try:
            origins = {vmid: volumes.storages[0] for vmid, volumes in inputs.local_volumes.items()}
            return await self._power_off(node, decision, actor, origins, snapshot)
        except PvetopError as exc:
            return await self._power_off_failed(node, actor, f"{exc.message}", decision)

    async def _power_off_failed(self, node: str, actor: str, why: str, decision: NodeDecision) -> PowerOutcome:
        self._set(node, "on", f"power-off failed: {why}")
        self._alert(f"{node}: power-off stopped: {why}")
        await self._journal(actor, "power.off", node, {}, f"failed: {why}")
        return PowerOutcome(node, "power_off", False, why, decision)

    async def _power_off(
        self, node: str, decision: NodeDecision, actor: str, origins: Mapping[int, str], snapshot: ClusterSnapshot
    ) -> PowerOutcome:
        drain = decision.drain
        jobs, along = await self._move(drain.moves if drain else (), snapshot, actor)
        moved = {str(job.vmid): origins.get(job.vmid, "") if job.move.target_storage else "" for job in jobs}
        moved.update({str(move.vmid): "" for move in along})
        if moved and self.store is not None:
            await self._call(
                self.store.update_setting,
                self.cluster,
                DRAINED,
                lambda old: {**(old or {}), node: {**(old or {}).get(node, {}), **moved}},
                {},
                actor=actor,
            )
        failed = [job for job in jobs if not job.succeeded]
        if failed:
            why = "; ".join(f"{job.vmid}: {job.error}" for job in failed)
            return await self._power_off_failed(node, actor, f"drain incomplete ({why})", decision)
        snapshot = await self.snapshot()
        still = [g for g in snapshot.guests_by_node.get(node, ()) if g.running and g.vmid not in decision.sleepers]
        if still:
            names = ", ".join(f"{g.vmid} ({g.name})" for g in still)
            return await self._power_off_failed(node, actor, f"still running after the drain: {names}", decision)
        sleepers = [g for g in snapshot.guests_by_node.get(node, ()) if g.running and g.vmid in decision.sleepers]
        if sleepers:
            self._set(node, "shutting down", f"shutting down {len(sleepers)} guests that sleep with it")
            await self._call(
                self.store.update_setting,
                self.cluster,
                SLEPT,
                lambda old: {**(old or {}), node: sorted(g.vmid for g in sleepers)},
                {},
                actor=actor,
            )
            for guest in sleepers:
                upid = await self._call(actions.guest_power, self.client, guest, "shutdown")
                await self._await_task(upid, GUEST_SHUTDOWN_TIMEOUT)
            stopped = await self._wait_for(
                lambda s: not any(g.running for g in s.guests_by_node.get(node, ())), GUEST_SHUTDOWN_TIMEOUT
            )
            if stopped is None:
                return await self._power_off_failed(node, actor, "guests that sleep with it did not stop", decision)
        self._set(node, "shutting down")
        await self._call(actions.shutdown_node, self.client, node)
        gone = await self._wait_for(lambda s: not s.node_by_name[node].online, SHUTDOWN_TIMEOUT)
        if gone is None:
            self._set(node, "failed", "did not go offline")
            self._alert(f"{node}: did not go offline within {SHUTDOWN_TIMEOUT:.0f} s after the shutdown")
            await self._journal(actor, "power.off", node, {}, "failed: did not go offline")
            return PowerOutcome(node, "power_off", False, "did not go offline", decision)
        self._set(node, "off")
        await self._journal(actor, "power.off", node, {"sleepers": list(decision.sleepers)}, "ok")
        return PowerOutcome(node, "power_off", True, "offline", decision)

    async def _move(
        self, moves: Iterable[PlannedMove], snapshot: ClusterSnapshot, actor: str
    ) -> tuple[list[MigrationJob], list[PlannedMove]]:
        """Runs the moves and waits for them; a guest PVE's HA manager moves along with a partner
        is journaled, not asked for, and waited for until it arrived (or ``COMIGRATE_TIMEOUT``)."""
        executor = self.executor
        assert executor is not None
        asked, along = comigrating(snapshot, moves)
        for move, leader in along:
            params = {"source": move.source, "target": move.target, "via_ha": True, "reason": move.reason}
            result = f"comigrates with {leader} (PVE's HA manager moves positive-affinity partners)"
            if self.store is not None:
                target = f"guest/{move.vmid}"
                await self._call(self.store.journal, self.cluster, actor, "migrate", target, params, result)
        jobs = [executor.submit(move, actor=actor) for move in asked]
        await executor.wait(jobs)
        if along and all(job.succeeded for job in jobs):

            def arrived(snapshot: ClusterSnapshot) -> bool:
                guests = snapshot.guest_by_vmid
                return all(
                    m.vmid in guests and guests[m.vmid].node == m.target and not guests[m.vmid].lock for m, _ in along
                )

            await self._wait_for(arrived, COMIGRATE_TIMEOUT)
        return jobs, [move for move, _ in along]

    async def _await_task(self, upid: str, timeout: float) -> None:
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            status = await self._call(tasks.task_status, self.client, upid)
            if not status.running:
                return
            await asyncio.sleep(self.poll)

    async def wake(self, node: str, *, actor: str = "user", wait: bool = True, force: bool = False) -> PowerOutcome:
        """Sends the wake, then (``wait``) watches the node rejoin within its boot timeout."""
        self._refuse_if_read_only()
        snapshot = await self.snapshot()
        settings = await self._call(self.settings)
        inputs = await self.inputs(snapshot, settings)
        decision = check_wake(inputs, node) if actor == "user" else plan_power(inputs).decision(node)
        method = decision.wake
        if method is None or (decision.refusals and not force):
            await self._journal(actor, "power.wake", node, {"reasons": list(decision.reasons)}, "refused")
            return PowerOutcome(node, "wake", False, "; ".join(decision.refusals), decision, refused=True)
        self._set(node, "waking", method.describe())
        try:
            await self._send_wake(node, method, settings)
        except (PvetopError, OSError) as exc:
            why = exc.message if isinstance(exc, PvetopError) else str(exc)
            self._set(node, "failed", why)
            self._alert(f"{node}: wake failed: {why}")
            await self._journal(actor, "power.wake", node, {"method": method.describe()}, f"failed: {why}")
            return PowerOutcome(node, "wake", False, why, decision)
        await self._journal(actor, "power.wake", node, {"method": method.describe()}, "started")
        if not wait:
            return PowerOutcome(node, "wake", True, f"sent {method.describe()}", decision)
        return await self.watch_rejoin(node, actor, decision)

    async def _send_wake(self, node: str, method: WakeMethod, settings: PowerSettings) -> None:
        """A magic packet (``PACKET_COPIES`` of it: a datagram to a sleeping NIC is easily lost, and
        a node already booting ignores the extra ones) or PVE's ``wakeonlan`` on another node."""
        if method.kind == "packet":
            assert method.mac is not None
            for _copy in range(PACKET_COPIES):
                await self._call(self.send_packet, method.mac, host=settings.wol_host, port=settings.wol_port)
        else:
            await self._call(actions.wake_node, self.client, node)

    async def test_wake(self, node: str, *, actor: str = "user") -> PowerOutcome:
        """Sends the node's wake (packet or PVE's wakeonlan) without expecting anything: a node that
        is on ignores it, and the operator learns whether the way back works before it is needed."""
        self._refuse_if_read_only()
        snapshot = await self.snapshot()
        settings = await self._call(self.settings)
        inputs = await self.inputs(snapshot, settings)
        method = check_wake(inputs, node).wake
        if method is None:
            return PowerOutcome(node, "test_wake", False, "no known way to wake it", refused=True)
        try:
            await self._send_wake(node, method, settings)
        except (PvetopError, OSError) as exc:
            why = exc.message if isinstance(exc, PvetopError) else str(exc)
            await self._journal(actor, "power.test_wake", node, {"method": method.describe()}, f"failed: {why}")
            return PowerOutcome(node, "test_wake", False, why)
        await self._journal(actor, "power.test_wake", node, {"method": method.describe()}, "ok")
        return PowerOutcome(node, "test_wake", True, f"sent {method.describe()}")

    async def watch_rejoin(self, node: str, actor: str, decision: NodeDecision) -> PowerOutcome:
        timeout = float(
            (await self._call(self.store.node_power, self.cluster, node)).boot_timeout if self.store else 300
        )

        def online(snapshot: ClusterSnapshot) -> bool:
            return snapshot.node_by_name[node].online

        back = await self._wait_for(online, timeout / 2)
        if back is None and decision.wake is not None:  # the wake may have been lost: once more, then wait
            try:
                await self._send_wake(node, decision.wake, await self._call(self.settings))
                await self._journal(actor, "power.wake", node, {}, f"resent: not back after {timeout / 2:.0f} s")
            except (PvetopError, OSError):
                pass  # the first wake may still be booting it; the rest of the timeout tells
            back = await self._wait_for(online, timeout / 2)
        if back is None:
            why = f"did not rejoin within {timeout:.0f} s"
            self._set(node, "failed", why)
            self._alert(f"{node}: {why} after the wake, sent twice — marked failed; check it by hand")
            await self._journal(actor, "power.wake", node, {}, f"failed: {why}")
            return PowerOutcome(node, "wake", False, why, decision)
        await self._start_slept_guests(node, back, actor)
        await self._return_drained_guests(node, back, actor)
        self._set(node, "on")
        await self._journal(actor, "power.wake", node, {}, "ok")
        return PowerOutcome(node, "wake", True, "online", decision)

    async def _return_drained_guests(self, node: str, snapshot: ClusterSnapshot, actor: str) -> None:
        """Moves the guests the drain took off ``node`` back onto it (setting ``power.return_guests``):
        a node woken for the load carries it again, and copied disks go back to the storage they
        came from. Guests moved since (or stopped, or held by a rule) stay where they are."""
        drained = (await self._call(self.store.get_setting, self.cluster, DRAINED, {}) or {}).get(node, {})
        if not drained:
            return
        settings = await self._call(self.settings)
        guests = [snapshot.guest_by_vmid[int(v)] for v in drained if int(v) in snapshot.guest_by_vmid]
        away = [g for g in guests if g.node != node and g.running]
        if settings.return_guests and away:
            rules = await self._call(self.store.ruleset, self.cluster)
            preconditions = await fetch_preconditions(self.client, away)
            plan = plan_bulk_move(
                snapshot,
                [g.vmid for g in away],
                node,
                rules,
                mode="auto",
                mem_ceiling=settings.band_high,
                preconditions=preconditions,
            )
            moves = [
                replace(move, reason=f"back to {node} after its wake", target_storage=drained[str(move.vmid)] or None)
                for move in plan.moves
            ]
            jobs, _ = await self._move(moves, snapshot, actor)
            for job in jobs:
                if not job.succeeded:
                    self._alert(f"{node}: guest {job.vmid} did not move back after the wake: {job.error}")
        await self._call(
            self.store.update_setting,
            self.cluster,
            DRAINED,
            lambda old: {k: v for k, v in (old or {}).items() if k != node},
            {},
            actor=actor,
        )

    async def _start_slept_guests(self, node: str, snapshot: ClusterSnapshot, actor: str) -> None:
        slept = (await self._call(self.store.get_setting, self.cluster, SLEPT, {}) or {}).get(node, [])
        for vmid in slept:
            guest = snapshot.guest_by_vmid.get(int(vmid))
            if guest is None or guest.running or guest.node != node:
                continue
            try:
                await self._call(actions.guest_power, self.client, guest, "start")
            except PvetopError as exc:
                self._alert(f"{node}: could not start guest {vmid} after the wake: {exc.message}")
        if slept:
            await self._call(
                self.store.update_setting,
                self.cluster,
                SLEPT,
                lambda old: {k: v for k, v in (old or {}).items() if k != node},
                {},
                actor=actor,
            )
