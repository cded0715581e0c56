"""The chaos soak: the daemon's balancer and power workers in ``auto`` against a manual-clock
simulator, under a schedule of faults, with the invariant checkers run all along.

Simulated time moves one daemon round (``round_seconds``) at a time; while the daemon migrates
or powers a node, it moves in small steps in lock-step with its task reads. Faults go in through
the simulator's own fault switches (the ones its /sim/faults and /sim/nodes/NODE/crash control
API set). The checkers read the simulator's task record, node power and guest placement, and the
rules store's file, never what pvetop believes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pvetop.engine.daemon import Daemon
from pvetop.engine.power import SLEEP_WITH_NODE, mark_sleep_with_node
from pvetop.sim.runner import start_sim
from tests.engine.powerdrive import sim_client, sim_store
from tests.engine.simdrive import drive
from tests.soak import checks
from tests.soak.checks import JournalRow, Rules, Sample, TaskRow

HOUR = 3600.0
TOKEN_USER = "root@pam!pvetop"
CHECK_EVERY = HOUR  # simulated seconds between two runs of the whole-record checkers


@dataclass(frozen=True)
class Fault:
    """One entry of the schedule: at ``at`` seconds into each cycle, set ``values`` for ``hold`` seconds."""

    at: float
    kind: str
    values: dict
    hold: float = 0.0


# A six-hour cycle, repeated: each kind of fault the simulator knows, one after the other, so the
# automation meets each alone (and the crash meets the others' aftermath).
SCHEDULE = (
    Fault(10 * 60, "latency spike", {"latency_ms": 150}, hold=10 * 60),
    Fault(30 * 60, "api errors 5%", {"error_rate": 0.05}, hold=HOUR),
    Fault(100 * 60, "dropped connections", {"drop_rate": 0.05}, hold=30 * 60),
    Fault(140 * 60, "outage 30 s", {"outage_seconds": 30}),
    Fault(160 * 60, "failing migrations", {"migration_failure_rate": 0.3}, hold=2 * HOUR),
    Fault(170 * 60, "lost magic packets", {"wol_drop_rate": 0.5}, hold=2 * HOUR),
    Fault(300 * 60, "node crash", {}, hold=15 * 60),
)
CYCLE = 6 * HOUR
NO_FAULT = {"latency_ms": 0, "error_rate": 0, "drop_rate": 0, "migration_failure_rate": 0, "wol_drop_rate": 0}


@dataclass
class Figures:
    faults: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)
    moves: int = 0
    failed_moves: int = 0
    power_offs: int = 0
    wakes: int = 0
    rounds: int = 0
    simulated: float = 0.0
    wall: float = 0.0
    rss_start_kib: int = 0
    rss_end_kib: int = 0

    @property
    def failed(self) -> int:
        return sum(len(found) for found in self.failures.values())

    def report(self) -> str:
        lines = [
            f"simulated {self.simulated / HOUR:.1f} h in {self.wall:.0f} s wall, {self.rounds} daemon rounds",
            "faults injected: " + (", ".join(f"{k} x{n}" for k, n in sorted(self.faults.items())) or "none"),
            f"automatic moves: {self.moves} done, {self.failed_moves} failed",
            f"power cycles: {self.power_offs} power-offs, {self.wakes} wakes",
            f"invariant checks: {sum(self.checks.values())} made, {self.failed} failed",
        ]
        lines += [
            f"  {name}: {count} made, {len(self.failures.get(name, []))} failed"
            for name, count in sorted(self.checks.items())
        ]
        for name, found in sorted(self.failures.items()):
            lines += [f"  FAILED {name}: {line}" for line in found[:10]]
        lines.append(f"RSS: {self.rss_start_kib} KiB at start, {self.rss_end_kib} KiB at the end")
        return "\n".join(lines)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def task_rows(sim) -> list[TaskRow]:
    with sim.cluster.lock:
        return [
            TaskRow(
                task.upid,
                task.node,
                task.type,
                int(task.id) if task.id.isdigit() else None,
                task.user,
                float(task.starttime),
                task.end_time if task.end_time is not None and task.end_time <= sim.cluster.now else None,
                task.exitstatus,
                checks.task_target(text for _, text in task.lines) if task.type in checks.MIGRATION_TYPES else None,
            )
            for task in sim.cluster.tasks
        ]


def take_sample(sim) -> Sample:
    cluster = sim.cluster
    with cluster.lock:
        return Sample(
            cluster.now,
            {node.name: (node.power, node.votes) for node in cluster.nodes.values()},
            {guest.vmid: (guest.node, guest.status) for guest in cluster.guests.values() if not guest.template},
        )


def local_disk_vms(sim) -> set[int]:
    """VMs with a disk on storage that is not shared: the sim's own configuration says so."""
    cluster = sim.cluster
    with cluster.lock:
        return {
            guest.vmid
            for guest in cluster.guests.values()
            if guest.type == "qemu" and any(not cluster.storage_by_id[disk.storage].shared for disk in guest.disks)
        }


def journal_rows(path: str) -> list[JournalRow]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT at, actor, action, target, upid, result FROM journal").fetchall()
    finally:
        connection.close()
    return [JournalRow(*row) for row in rows]


class Soak:
    def __init__(self, scenario: str, *, seed: int = 1, round_seconds: float = 60.0, say=None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.round_seconds = round_seconds
        self.say: Callable[[str], None] = say or (lambda line: None)
        self.figures = Figures()
        self.crashed_nodes: set[str] = set()
        self._elapsed = -1.0

    # --- set-up ---------------------------------------------------------------------------------

    def configure(self, sim, client, store) -> Rules:
        """Both workers in auto, and a pin, a lock and (on smb) a reservation the moves must respect."""
        cluster = self.scenario
        store.set_setting(cluster, "balancer.mode", "auto")
        store.set_setting(cluster, "power.mode", "auto")
        snapshot = client.fetch_snapshot()
        if cluster == "homelab":
            store.set_setting(cluster, "power.failure_margin", 0)
            store.set_setting(cluster, "power.wake_method", "packet")
            store.set_setting(cluster, "power.wol_host", "127.0.0.1")
            store.set_setting(cluster, "power.wol_port", sim.info["wol_port"])
            store.set_setting(cluster, "power.band_high", 75)
            store.set_node_power(cluster, "pve-big", allow_power_off=True)
            with sim.cluster.lock:
                local = [
                    g.vmid
                    for g in sim.cluster.guests.values()
                    if g.node == "pve-big" and g.status == "running" and any(d.storage == "big-zfs" for d in g.disks)
                ]
            for vmid in local:
                mark_sleep_with_node(store, cluster, snapshot.guest_by_vmid[vmid], True)
        else:
            store.set_setting(cluster, "power.wake_method", "pve")
            for node in snapshot.node_by_name:
                store.set_node_power(cluster, node, allow_power_off=True)
        movable = sorted((g for g in snapshot.guests if g.status == "running" and not g.template), key=lambda g: g.vmid)
        nodes = sorted(snapshot.node_by_name)
        pinned, locked = movable[0], movable[1]
        pin_nodes = sorted({pinned.node, nodes[0]})
        store.pin_guest(cluster, pinned.vmid, pinned.name, pin_nodes)
        store.lock_guest(cluster, locked.vmid, locked.name)
        reservations: frozenset[str] = frozenset()
        if cluster == "smb":
            reserved = nodes[-1]
            store.reserve_node(cluster, reserved)
            reservations = frozenset({reserved})
        return Rules(
            pins={pinned.vmid: frozenset(pin_nodes)}, locks=frozenset({locked.vmid}), reservations=reservations
        )

    # --- the run --------------------------------------------------------------------------------

    async def run(self, hours: float) -> Figures:
        figures = self.figures
        figures.rss_start_kib = rss_kib()
        wall = time.monotonic()
        with (
            tempfile.TemporaryDirectory() as tmp,
            start_sim(scenario=self.scenario, seed=self.seed, manual_clock=True) as sim,
        ):
            path = str(Path(tmp) / "rules.sqlite")
            with sim_client(sim) as client, sim_store(sim, path) as store:
                rules = self.configure(sim, client, store)
                cooldown = float(store.get_setting(self.scenario, "balancer.cooldown_minutes", 30.0)) * 60
                caps = {
                    "parallel": int(store.get_setting(self.scenario, "migrations.max_parallel", 2)),
                    "per_source": int(store.get_setting(self.scenario, "migrations.max_per_source", 1)),
                    "per_target": int(store.get_setting(self.scenario, "migrations.max_per_target", 1)),
                }
                margin = int(store.get_setting(self.scenario, "power.failure_margin", 1))
                daemon = Daemon(
                    client, store, self.scenario, self.say, clock=lambda: sim.cluster.now, poll=0.01, lease_ttl=3 * HOUR
                )
                await daemon.lease.claim()
                first = take_sample(sim)
                start = sim.cluster.now
                samples: list[Sample] = [first]
                crashed: dict[str, float] = {}
                next_check = start + CHECK_EVERY

                def watch() -> None:
                    samples.append(take_sample(sim))

                while sim.cluster.now - start < hours * HOUR:
                    self._faults(sim, sim.cluster.now - start, crashed)
                    await daemon.lease.claim()  # renewed every round: the lease runs on simulated time
                    try:
                        await daemon.round()
                    except Exception as exc:  # noqa: BLE001 (a round that raises is a finding, not a crash of the soak)
                        where = traceback.extract_tb(exc.__traceback__)[-1]
                        self._found("no traceback", [f"round raised {exc!r} at {where.filename}:{where.lineno}"])
                    figures.rounds += 1
                    before = sim.cluster.now
                    await self._follow(sim, daemon, watch)
                    if sim.cluster.now == before:
                        sim.cluster.step(self.round_seconds)
                    watch()
                    self._check_samples(samples[1:], margin)
                    del samples[1:]
                    if sim.cluster.now >= next_check:
                        self._check_record(sim, rules, cooldown, caps, path, first=None)
                        next_check += CHECK_EVERY
                # let the last moves and boots end with no fault active, then judge the end state
                self._clear(sim, crashed)
                for _ in range(30):
                    await daemon.lease.claim()
                    await daemon.round()
                    await self._follow(sim, daemon, watch)
                    sim.cluster.step(self.round_seconds)
                    watch()
                self._check_samples(samples[1:], margin)
                await daemon.executor.aclose()
                self._check_record(sim, rules, cooldown, caps, path, first=first, store=store)
                figures.simulated = sim.cluster.now - start
        figures.wall = time.monotonic() - wall
        figures.rss_end_kib = rss_kib()
        return figures

    async def _follow(self, sim, daemon: Daemon, watch: Callable[[], None]) -> None:
        """Moves time while the daemon migrates or powers a node, in lock-step with its task reads."""
        executor, power = daemon.executor, daemon.power
        limit = sim.cluster.now + 6 * HOUR
        while executor.busy or power.running:
            if sim.cluster.now > limit:
                self._found("no stuck worker", [f"still busy after 6 simulated hours at {sim.cluster.now:.0f}"])
                return
            if executor.busy:
                await drive(sim, lambda: not executor.busy, step=2.0, limit=6 * HOUR)
            else:
                sim.cluster.step(2.0)
                await asyncio.sleep(0.01)
            watch()

    def _faults(self, sim, elapsed: float, crashed: dict[str, float]) -> None:
        """Starts the faults whose time has come since the last call, ends those whose hold is over
        (time may have jumped several rounds while the daemon migrated)."""
        cluster = sim.cluster
        since, self._elapsed = self._elapsed, elapsed

        def due(offset: float) -> bool:
            cycle = int(elapsed // CYCLE)
            return any(since < k * CYCLE + offset <= elapsed for k in (cycle - 1, cycle))

        with cluster.lock:
            for fault in SCHEDULE:
                if fault.values and fault.hold and due(fault.at + fault.hold):
                    cluster.faults.update({key: 0 for key in fault.values}, cluster.now)
                if due(fault.at):
                    self.figures.faults[fault.kind] += 1
                    if fault.kind == "node crash":
                        victim = self._crash_victim(cluster)
                        if victim:
                            cluster.crash_node(victim)
                            self.crashed_nodes.add(victim)
                            crashed[victim] = cluster.now + fault.hold
                    else:
                        cluster.faults.update(fault.values, cluster.now)
            for name, until in list(crashed.items()):
                if cluster.now >= until:
                    cluster.power.wake(cluster.nodes[name])  # the crashed node comes back
                    del crashed[name]
        sim.settle()

    @staticmethod
    def _crash_victim(cluster) -> str | None:
        """An online node other than the first (pvetop's configured endpoint fails over, but the
        soak keeps that for the outage): the one with the most guests."""
        names = [n.name for n in cluster.nodes.values() if n.power == "online"][1:]
        if not names:
            return None
        return max(names, key=lambda name: sum(1 for g in cluster.guests.values() if g.node == name))

    def _clear(self, sim, crashed: dict[str, float]) -> None:
        with sim.cluster.lock:
            sim.cluster.faults.update(NO_FAULT, sim.cluster.now)
            for name in crashed:
                sim.cluster.power.wake(sim.cluster.nodes[name])
            crashed.clear()
        sim.settle()

    # --- the checks -----------------------------------------------------------------------------

    def _record(self, name: str, found: list[str], made: int = 1) -> None:
        self.figures.checks[name] += made
        self._found(name, found)

    def _found(self, name: str, found: list[str]) -> None:
        """Keeps each violation once (the whole-record checkers see an old one again every hour)."""
        known = self.figures.failures.setdefault(name, [])
        known.extend(line for line in dict.fromkeys(found) if line not in known)
        if not known:
            del self.figures.failures[name]

    def _check_samples(self, samples: list[Sample], margin: int) -> None:
        if not samples:
            return
        self._record("quorum and failure margin", checks.quorum_kept(samples, margin), len(samples))
        self._record("no running guest on an off node", checks.no_running_guest_on_off_node(samples), len(samples))

    def _check_record(self, sim, rules: Rules, cooldown: float, caps: dict, path: str, *, first, store=None) -> None:
        tasks = task_rows(sim)
        moves = checks.automatic_migrations(tasks, TOKEN_USER)
        balancer_moves = self._balancer_moves(moves, path)
        self._record("rules respected", checks.rules_respected(moves, rules))
        self._record("no double migration", checks.no_double_migration(tasks))
        self._record("no repeat within cooldown", checks.no_repeat_within_cooldown(balancer_moves, cooldown))
        self._record("caps respected", checks.caps_respected(moves, **caps))
        self._record("no local-disk VM moved", checks.no_local_disk_moves(balancer_moves, local_disk_vms(sim)))
        self._record("writes journaled", checks.writes_journaled(tasks, journal_rows(path), TOKEN_USER))
        self._record("store integrity", checks.store_intact(path))
        if first is not None:
            last = take_sample(sim)
            self._record("guests kept", checks.guests_kept(first, last, self._excused(sim, last, store)))
            done = [m for m in moves if m.end is not None]
            self.figures.moves = sum(1 for m in done if m.exitstatus == "OK")
            self.figures.failed_moves = len(done) - self.figures.moves
            journal = journal_rows(path)
            self.figures.power_offs = sum(1 for r in journal if r.action == "power.off" and r.result == "ok")
            self.figures.wakes = sum(1 for r in journal if r.action == "power.wake" and r.result == "ok")

    @staticmethod
    def _balancer_moves(moves: list[TaskRow], path: str) -> list[TaskRow]:
        """The moves the balancer's journal entries name (the cooldown is the balancer's rule)."""
        by_balancer = {r.upid for r in journal_rows(path) if r.actor == "balancer" and r.action == "migrate"}
        return [m for m in moves if m.upid in by_balancer]

    def _excused(self, sim, last: Sample, store) -> set[int]:
        """Guests allowed not to run at the end: asleep with a node that is off now, or left
        stopped on a node that crashed because they neither start on boot nor are under HA."""
        marks = store.get_setting(self.scenario, SLEEP_WITH_NODE, {}) or {}
        asleep = {int(vmid) for vmid in marks if int(vmid) in last.guests}
        asleep = {v for v in asleep if last.nodes[last.guests[v][0]][0] == "off"}
        with sim.cluster.lock:
            not_restarted = {
                g.vmid
                for g in sim.cluster.guests.values()
                if not g.onboot and not g.ha and g.node in self.crashed_nodes
            }
        return asleep | not_restarted
