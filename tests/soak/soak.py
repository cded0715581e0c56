"""The chaos soak: the daemon's balancer and power workers in ``auto`` against a manual-clock
simulator, under a schedule of faults, with the invariant checkers run all along.

Simulated time moves one daemon round (``round_seconds``) at a time; while the daemon migrates
or powers a node, it moves in small steps in lock-step with its task reads. Faults go in through
the simulator's own fault switches (the ones its /sim/faults and /sim/nodes/NODE/crash control
API set). The checkers read the simulator's task record, node power and guest placement, and the
rules store's file, never what pvetop believes.

Beside the daemon, the real dashboard (``PvetopApp`` with the same rules store) runs headless in
a process of its own against the same simulator (``tests.soak.dashboard``); a probe measures how
late its event loop answers. Every line the soak's pvetop writes (the daemon's log, Python
logging, stdout and stderr, the dashboard's notifications and output, the store's files) is
searched for the API token and password it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from pvetop.config import settings_from_sim_info
from pvetop.engine.daemon import Daemon
from pvetop.engine.power import SLEEP_WITH_NODE, mark_sleep_with_node
from pvetop.pve import PveClient
from pvetop.sim.runner import start_sim
from tests.engine.powerdrive import sim_store
from tests.engine.simdrive import drive
from tests.soak import checks
from tests.soak.checks import JournalRow, Rules, Sample, TaskRow
from tests.soak.dashboard import Dashboard, rss_kib, settled_rss_kib

HOUR = 3600.0
TOKEN_USER = "root@pam!pvetop"
CHECK_EVERY = HOUR  # simulated seconds between two runs of the whole-record checkers
CLIENT_TIMEOUT = 3.0  # real seconds an API request may take (a loaded CI machine answers late)
# Real seconds the simulator holds a lost migrate answer before it drops the connection: waiting out
# the client's timeout instead cost 3 s each, and a run loses dozens (smb's 7 h CI profile: 50-85).
# The request is carried out at once; however long the hold, the client sees the connection close
# without an answer (0.5 s held the migrate POSTs of smb's CI profile ~27 s in all, 0.1 s ~8 s)
LOST_ANSWER_HOLD = 0.1
LEASE_RENEW = 600.0  # simulated seconds between the daemon's lease renewals while it follows moves
HA_MOVE_BACK_WINDOW = HOUR  # an HA migration back this soon after pvetop's move undoes it
LAG_P99_LIMIT = 0.1  # seconds: the dashboard's event loop answers within this, 99 times in 100
RSS_GROWTH_LIMIT = 0.10  # from the end of the first fault cycle to the end of a long run
RSS_CHECK_MIN_HOURS = 48.0  # shorter runs report RSS but do not judge its growth


@dataclass(frozen=True)
class Fault:
    """One entry of the schedule: at ``at`` seconds into each cycle (or the first one only), set
    ``values`` for ``hold`` seconds."""

    at: float
    kind: str
    values: dict
    hold: float = 0.0
    first_cycle_only: bool = False


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
    # Half of the migrate POSTs in these windows lose their answer, half of the live migrations fail
    # copying their RAM. Only a few moves fall in them, none at all in some smb runs (its balancer
    # moves in the first minutes), so the soak also opens with one of each for sure: its first
    # migrate POST loses its answer, its first live migration fails in its RAM phase.
    Fault(0, "first migrate answer lost", {"lost_answers": 1}, first_cycle_only=True),
    Fault(0, "first live migration fails in its RAM phase", {"ram_failures": 1}, first_cycle_only=True),
    Fault(20 * 60, "lost migrate answers", {"lost_answer_rate": 0.5}, hold=5 * HOUR),
    Fault(20 * 60, "migrations failing in the RAM phase", {"ram_failure_rate": 0.5}, hold=2 * HOUR),
    Fault(240 * 60, "API endpoint node powers off", {}, hold=15 * 60),
)
CRASHES = ("node crash", "API endpoint node powers off")
CYCLE = 6 * HOUR
NO_FAULT = {
    "latency_ms": 0,
    "error_rate": 0,
    "drop_rate": 0,
    "migration_failure_rate": 0,
    "wol_drop_rate": 0,
    "lost_answer_rate": 0,
    "ram_failure_rate": 0,
    "ram_failures": 0,
}


@dataclass
class Figures:
    faults: Counter = field(default_factory=Counter)
    struck: Counter = field(default_factory=Counter)  # the simulator's count of faults that struck
    checks: Counter = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)
    moves: int = 0
    failed_moves: int = 0
    power_offs: int = 0
    wakes: int = 0
    rounds: int = 0
    simulated: float = 0.0
    wall: float = 0.0
    ram_failures: int = 0
    rss_start_kib: int = 0
    rss_warm_kib: int = 0  # at the end of the first fault cycle: everything loaded and warmed up
    rss_end_kib: int = 0  # at the end of the simulated run, read as the first cycle's (judged)
    rss_after_kib: int = 0  # after the final checks (they read the whole store) and the shutdown: shown
    lags: list[float] = field(default_factory=list)  # the dashboard's event-loop lateness, seconds
    own_lags: list[float] = field(default_factory=list)  # the part of it its own work caused
    dashboard_rss_kib: list[int] = field(default_factory=list)  # the dashboard process's, every 10 s
    dashboard_blocks: list[int] = field(default_factory=list)  # its Python allocated blocks, every 10 s
    dashboard_blocks_warm: int = 0  # its Python allocated blocks after a full collection, when warm and at the end
    dashboard_blocks_end: int = 0
    dashboard_settled_daily: list[tuple[float, int, int]] = field(default_factory=list)  # see DashboardFigures
    dashboard_rss_warm_kib: int = 0  # the dashboard's, read as rss_warm_kib is (collected, trimmed)
    dashboard_rss_end_kib: int = 0
    slow_after: dict[str, list[float]] = field(default_factory=dict)  # key pressed -> slow ticks after it
    dashboard_full_gc: list[float] = field(default_factory=list)  # seconds of each of its full collections

    @property
    def rss_growth(self) -> float:
        return (self.rss_end_kib - self.rss_warm_kib) / self.rss_warm_kib if self.rss_warm_kib else 0.0

    @property
    def dashboard_rss_growth(self) -> float:
        warm, end = self.dashboard_rss_warm_kib, self.dashboard_rss_end_kib
        return (end - warm) / warm if warm and end else 0.0

    @property
    def failed(self) -> int:
        return sum(len(found) for found in self.failures.values())

    def report(self) -> str:
        lines = [
            f"simulated {self.simulated / HOUR:.1f} h in {self.wall:.0f} s wall, {self.rounds} daemon rounds",
            "faults injected: " + (", ".join(f"{k} x{n}" for k, n in sorted(self.faults.items())) or "none"),
            "faults that struck: " + (", ".join(f"{k} x{n}" for k, n in sorted(self.struck.items())) or "none"),
            f"migrations that failed in their RAM phase: {self.ram_failures}",
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
        for what, lags in (("own work", self.own_lags), ("wall clock", self.lags)):
            lines.append(
                f"dashboard event-loop lag ({what}): p50 {checks.percentile(lags, 0.5) * 1000:.1f} ms, "
                f"p99 {checks.percentile(lags, 0.99) * 1000:.1f} ms, max {max(lags, default=0) * 1000:.0f} ms "
                f"over {len(lags)} probes"
            )
        lines.append(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if self.slow_after:
            slow = [
                f"{key} x{len(lags)} (max {max(lags) * 1000:.0f} ms)" for key, lags in sorted(self.slow_after.items())
            ]
            lines.append("dashboard ticks over 100 ms of own work, by the last key pressed: " + ", ".join(slow))
        if self.dashboard_full_gc:
            passes = self.dashboard_full_gc
            lines.append(f"dashboard full garbage collections: {len(passes)}, max {max(passes) * 1000:.0f} ms")
        if self.dashboard_rss_kib:
            rss = self.dashboard_rss_kib
            line = f"dashboard process RSS: {rss[0]} KiB at its first sample, {rss[-1]} KiB at the end"
            if self.dashboard_rss_warm_kib:
                line += (
                    f"; collected and trimmed: {self.dashboard_rss_warm_kib} KiB after the first fault cycle, "
                    f"{self.dashboard_rss_end_kib} KiB at the end ({self.dashboard_rss_growth * 100:+.1f} %)"
                )
            if self.dashboard_blocks:
                blocks = self.dashboard_blocks
                line += (
                    f"; Python's allocated blocks sampled {blocks[0]} → {blocks[len(blocks) // 2]} → {blocks[-1]}, "
                    f"collected {self.dashboard_blocks_warm} when warm → {self.dashboard_blocks_end} at the end"
                )
            lines.append(line)
        if self.dashboard_settled_daily:
            days = ", ".join(
                f"+{seconds / 86400:.0f} d: {blocks} blocks, {rss} KiB"
                for seconds, blocks, rss in self.dashboard_settled_daily
            )
            lines.append(f"dashboard memory collected and trimmed after warm, once a simulated day: {days}")
        lines.append(
            f"RSS: {self.rss_start_kib} KiB at start, {self.rss_warm_kib} KiB after the first fault cycle, "
            f"{self.rss_end_kib} KiB at the end ({self.rss_growth * 100:+.1f} % since the first cycle)"
            + (f", {self.rss_after_kib} KiB after the final checks and the shutdown" if self.rss_after_kib else "")
        )
        return "\n".join(lines)


class TaskRecord:
    """The migrations (and HA migrate requests) the simulator has run, kept by the soak: the
    simulator forgets old tasks as PVE does (a node's task index is bounded)."""

    KINDS = (*checks.MIGRATION_TYPES, checks.HA_REQUEST_TYPE)

    RAM_FAILURE = "ERROR: online migrate failure - aborting"  # a live migration failed copying memory

    def __init__(self) -> None:
        self.rows: dict[str, TaskRow] = {}
        self.ram_failures = 0

    def update(self, sim) -> list[TaskRow]:
        cluster = sim.cluster
        with cluster.lock:
            for task in cluster.tasks:
                known = self.rows.get(task.upid)
                if task.type not in self.KINDS or (known is not None and known.end is not None):
                    continue
                ended = task.end_time is not None and task.end_time <= cluster.now
                if ended and task.exitstatus != "OK" and any(self.RAM_FAILURE in text for _, text in task.lines):
                    self.ram_failures += 1
                self.rows[task.upid] = TaskRow(
                    task.upid,
                    task.node,
                    task.type,
                    int(task.id) if task.id.isdigit() else None,
                    task.user,
                    float(task.starttime),
                    task.end_time if ended else None,
                    task.exitstatus if ended else None,
                    checks.task_target(text for _, text in task.lines) if task.type in checks.MIGRATION_TYPES else None,
                )
        return list(self.rows.values())


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


def ha_partners(sim) -> dict[int, set[int]]:
    """Each HA guest's positive resource-affinity partners, from the simulator's HA rules."""
    cluster = sim.cluster
    with cluster.lock:
        return {
            guest.vmid: {int(sid.partition(":")[2]) for sid in cluster.ha.affinitive(guest.sid)[0]}
            for guest in cluster.guests.values()
            if guest.ha
        }


def journal_rows(path: str) -> list[JournalRow]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT at, actor, action, target, upid, result FROM journal").fetchall()
    finally:
        connection.close()
    return [JournalRow(*row) for row in rows]


def soak_client(sim) -> PveClient:
    """The soak's client: the simulator's time on its snapshots, every node's endpoint (it fails
    over), and a short timeout so that a lost answer costs little real time."""
    settings = replace(settings_from_sim_info(sim.info), timeout=CLIENT_TIMEOUT)
    return PveClient.connect(settings, clock=lambda: sim.cluster.now)


class SecretWatch:
    """Searches every text the soak's pvetop puts out for the secrets it was given; keeps only
    what it found and how many texts it read."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.read = 0
        self.found: list[str] = []
        self._lock = threading.Lock()

    def see(self, where: str, text: str) -> None:
        found = checks.secrets_shown([(where, text)], self.secrets)
        with self._lock:
            self.read += 1
            self.found.extend(found)

    def take(self) -> tuple[int, list[str]]:
        with self._lock:
            read, found, self.read, self.found = self.read, self.found, 0, []
        return read, found


class _Tee:
    """A text stream that also shows what goes through it to a ``SecretWatch``."""

    def __init__(self, stream, where: str, watch: SecretWatch) -> None:
        self._stream, self._where, self._watch = stream, where, watch

    def write(self, text: str) -> int:
        self._watch.see(self._where, text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class _LogWatch(logging.Handler):
    """Every log record: searched for secrets; one carrying an exception is a traceback."""

    def __init__(self, watch: SecretWatch) -> None:
        super().__init__(logging.DEBUG)
        self.watch = watch
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.watch.see(f"log {record.name}", text)
        if record.exc_info:
            self.tracebacks.append(f"{record.name}: {record.getMessage()} ({record.exc_info[1]!r})")


@contextlib.contextmanager
def watched_output(watch: SecretWatch) -> Iterator[_LogWatch]:
    """stdout, stderr and Python logging (pvetop's own at debug level) go through ``watch``."""
    handler = _LogWatch(watch)
    root, ours = logging.getLogger(), logging.getLogger("pvetop")
    levels = (root.level, ours.level)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    ours.setLevel(logging.DEBUG)
    streams = (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = _Tee(sys.stdout, "stdout", watch), _Tee(sys.stderr, "stderr", watch)
    try:
        yield handler
    finally:
        sys.stdout, sys.stderr = streams
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


def scan_files(folder: str, watch: SecretWatch) -> None:
    """The rules store's files (journal, settings, write-ahead log) as bytes."""
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            watch.see(f"file {path.name}", path.read_bytes().decode("latin-1"))


class Soak:
    def __init__(
        self,
        scenario: str,
        *,
        seed: int = 1,
        round_seconds: float = 60.0,
        say=None,
        dashboard: bool = True,
        progress_every: float = 0.0,
        show: Callable[[str], None] = print,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.round_seconds = round_seconds
        self.say: Callable[[str], None] = say or (lambda line: None)
        self.dashboard = dashboard
        self.progress_every = progress_every * HOUR  # simulated seconds between two reports to ``show``
        self.show = show
        self._next_progress = self.progress_every
        self._start = 0.0
        self.figures = Figures()
        self.crashed_nodes: set[str] = set()
        self.record = TaskRecord()
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
            start_sim(
                scenario=self.scenario, seed=self.seed, manual_clock=True, lost_answer_hold=LOST_ANSWER_HOLD
            ) as sim,
        ):
            watch = SecretWatch([str(sim.info.get(key) or "") for key in ("token_value", "password")])
            path = str(Path(tmp) / "rules.sqlite")
            with watched_output(watch) as log, soak_client(sim) as client, sim_store(sim, path) as store:
                rules = self.configure(sim, client, store)
                dashboard = Dashboard(sim, path, tmp, warm_after=CYCLE) if self.dashboard else None
                if dashboard is not None:
                    dashboard.start()
                try:
                    await self._soak(sim, client, store, rules, path, hours, watch, log)
                finally:
                    shown = dashboard.stop() if dashboard is not None else None
                if shown is not None:
                    figures.lags, figures.own_lags = shown.lags, shown.own_lags
                    figures.dashboard_rss_kib, figures.slow_after = shown.rss_kib, shown.slow_after
                    figures.dashboard_full_gc = shown.full_gc
                    figures.dashboard_rss_warm_kib = shown.rss_warm_kib
                    figures.dashboard_blocks = shown.blocks
                    figures.dashboard_blocks_warm, figures.dashboard_blocks_end = shown.blocks_warm, shown.blocks_end
                    figures.dashboard_rss_end_kib = shown.rss_end_kib
                    figures.dashboard_settled_daily = shown.settled_daily
                    self._found("no traceback", shown.errors)
                    self._record("dashboard lag p99", checks.lag_within(shown.own_lags, p99_limit=LAG_P99_LIMIT))
                self._found("no traceback", log.tracebacks)
                scan_files(tmp, watch)
                read, found = watch.take()
                self._record("no secret shown", found, read)
        figures.wall = time.monotonic() - wall
        figures.rss_after_kib = settled_rss_kib()
        if hours >= RSS_CHECK_MIN_HOURS:
            limit = RSS_GROWTH_LIMIT
            warm, end = figures.rss_warm_kib, figures.rss_end_kib
            self._record("RSS growth", checks.memory_within(warm, end, limit=limit, what="the soak", unit="KiB RSS"))
            if self.dashboard:  # its live objects: its RSS keeps the high-water mark of a busy screen (reported)
                warm, end = figures.dashboard_blocks_warm, figures.dashboard_blocks_end
                self._record(
                    "dashboard memory growth", checks.memory_within(warm, end, limit=limit, what="the dashboard")
                )
        return figures

    async def _soak(self, sim, client, store, rules: Rules, path: str, hours: float, watch: SecretWatch, log) -> None:
        figures = self.figures
        cooldown = float(store.get_setting(self.scenario, "balancer.cooldown_minutes", 30.0)) * 60
        caps = {
            "parallel": int(store.get_setting(self.scenario, "migrations.max_parallel", 2)),
            "per_source": int(store.get_setting(self.scenario, "migrations.max_per_source", 1)),
            "per_target": int(store.get_setting(self.scenario, "migrations.max_per_target", 1)),
        }
        margin = int(store.get_setting(self.scenario, "power.failure_margin", 1))

        def say(line: str) -> None:
            watch.see("daemon log", line)
            self.say(line)

        daemon = Daemon(client, store, self.scenario, say, clock=lambda: sim.cluster.now, poll=0.01, lease_ttl=3 * HOUR)
        await daemon.lease.claim()
        first = take_sample(sim)
        start = self._start = sim.cluster.now
        samples: list[Sample] = [first]
        crashed: dict[str, float] = {}
        next_check = start + CHECK_EVERY
        check = partial(self._check_record, sim, rules, cooldown, caps, path, watch)

        def sample() -> None:
            samples.append(take_sample(sim))

        def tick() -> None:  # the schedule keeps time while the daemon follows its moves too
            self._faults(sim, sim.cluster.now - start, crashed)
            sample()

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
            await self._follow(sim, daemon, tick)
            if sim.cluster.now == before:
                sim.cluster.step(self.round_seconds)
            sample()
            self._check_samples(samples[1:], margin)
            del samples[1:]
            if sim.cluster.now >= next_check:
                check(first=None)
                next_check += CHECK_EVERY
                if not figures.rss_warm_kib and sim.cluster.now - start >= CYCLE:
                    figures.rss_warm_kib = settled_rss_kib()
        figures.rss_end_kib = settled_rss_kib()  # read as the first cycle's was: at the end of the last simulated hour
        # let the last moves and boots end with no fault active, then judge the end state
        self._clear(sim, crashed)
        for _ in range(30):
            await daemon.lease.claim()
            await daemon.round()
            await self._follow(sim, daemon, sample)
            sim.cluster.step(self.round_seconds)
            sample()
        self._check_samples(samples[1:], margin)
        await daemon.executor.aclose()
        check(first=first, store=store)

    async def _follow(self, sim, daemon: Daemon, sample: Callable[[], None]) -> None:
        """Moves time while the daemon migrates or powers a node, in lock-step with its task reads,
        renewing its lease as its keeper would (another instance shares the store)."""
        executor, power = daemon.executor, daemon.power
        limit = sim.cluster.now + 6 * HOUR
        renewed = sim.cluster.now
        while executor.busy or power.running:
            if sim.cluster.now > limit:
                self._found("no stuck worker", [f"still busy after 6 simulated hours at {sim.cluster.now:.0f}"])
                return
            if sim.cluster.now - renewed >= LEASE_RENEW:
                await daemon.lease.claim()
                renewed = sim.cluster.now
            if executor.busy:
                await drive(
                    sim, partial(self._moved_or_due, sim, executor, renewed + LEASE_RENEW), step=2.0, limit=6 * HOUR
                )
            else:
                sim.cluster.step(2.0)
                await asyncio.sleep(0.01)
            sample()

    @staticmethod
    def _moved_or_due(sim, executor, due: float) -> bool:
        return not executor.busy or sim.cluster.now >= due

    def _faults(self, sim, elapsed: float, crashed: dict[str, float]) -> None:
        """Starts the faults whose time has come since the last call, ends those whose hold is over
        (time may have jumped several rounds while the daemon migrated). A window that began and
        ended within one jump is not injected: started after its end, it stayed on a whole cycle."""
        cluster = sim.cluster
        since, self._elapsed = self._elapsed, elapsed

        def due(offset: float) -> bool:
            cycle = int(elapsed // CYCLE)
            return any(since < k * CYCLE + offset <= elapsed for k in (cycle - 1, cycle))

        with cluster.lock:
            for fault in SCHEDULE:
                if fault.first_cycle_only and since >= fault.at + fault.hold:
                    continue  # its one window has come and gone
                ended = bool(fault.values and fault.hold) and due(fault.at + fault.hold)
                if ended:
                    cluster.faults.update({key: 0 for key in fault.values}, cluster.now)
                if due(fault.at) and not ended:
                    if fault.kind in CRASHES:
                        victim = self._crash_victim(cluster, endpoint=fault.kind != "node crash")
                        if victim:
                            self.figures.faults[fault.kind] += 1
                            cluster.crash_node(victim)
                            self.crashed_nodes.add(victim)
                            crashed[victim] = cluster.now + fault.hold
                    else:
                        self.figures.faults[fault.kind] += 1
                        cluster.faults.update(fault.values, cluster.now)
            for name, until in list(crashed.items()):
                if cluster.now >= until:
                    cluster.power.wake(cluster.nodes[name])  # the crashed node comes back
                    del crashed[name]
        sim.settle()

    @staticmethod
    def _crash_victim(cluster, *, endpoint: bool) -> str | None:
        """The first node, pvetop's first API endpoint (the client fails over to the next one),
        when it is online; else an online node other than the first: the one with the most guests."""
        nodes = list(cluster.nodes.values())
        if endpoint:
            return nodes[0].name if nodes[0].power == "online" else None
        names = [n.name for n in nodes[1:] if n.power == "online"]
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

    def _check_record(
        self, sim, rules: Rules, cooldown: float, caps: dict, path: str, watch: SecretWatch, *, first, store=None
    ) -> None:
        tasks = self.record.update(sim)
        moves = checks.automatic_migrations(tasks, TOKEN_USER)
        balancer_moves = self._balancer_moves(moves, path)
        self._record("rules respected", checks.rules_respected(moves, rules))
        self._record(
            "HA never moves a guest back",
            checks.ha_never_moves_back(tasks, moves, window=HA_MOVE_BACK_WINDOW, partners=ha_partners(sim)),
        )
        scan_files(str(Path(path).parent), watch)
        read, found = watch.take()
        self._record("no secret shown", found, read)
        self._record("no double migration", checks.no_double_migration(tasks))
        self._record("no repeat within cooldown", checks.no_repeat_within_cooldown(balancer_moves, cooldown))
        self._record("caps respected", checks.caps_respected(moves, **caps))
        self._record("no local-disk VM moved", checks.no_local_disk_moves(balancer_moves, local_disk_vms(sim)))
        self._record("writes journaled", checks.writes_journaled(tasks, journal_rows(path), TOKEN_USER))
        self._record("store integrity", checks.store_intact(path))
        done = [m for m in moves if m.end is not None]
        figures = self.figures
        figures.moves = sum(1 for m in done if m.exitstatus == "OK")
        figures.failed_moves = len(done) - figures.moves
        journal = journal_rows(path)
        figures.power_offs = sum(1 for r in journal if r.action == "power.off" and r.result == "ok")
        figures.wakes = sum(1 for r in journal if r.action == "power.wake" and r.result == "ok")
        figures.struck = Counter(sim.cluster.injected)
        figures.ram_failures = self.record.ram_failures
        figures.simulated = sim.cluster.now - self._start
        if first is not None:
            last = take_sample(sim)
            self._record("guests kept", checks.guests_kept(first, last, self._excused(sim, last, store)))
        elif self.progress_every and figures.simulated >= self._next_progress:
            self._next_progress += self.progress_every
            figures.rss_end_kib = settled_rss_kib()  # "at the end" of the run so far, read as the others are
            self.show(f"--- after {figures.simulated / HOUR:.0f} simulated hours\n{figures.report()}")

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
