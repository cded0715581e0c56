"""The simulated cluster's state machine: time, power, migrations, tasks and faults.

Everything observable is a function of the scenario, the seed and simulated time, so two
clusters built alike and stepped alike answer byte-identically. Timed effects (a migration's
node flip, a node going offline after its shutdown delay) are timers processed in order when
time advances; reads first catch up with the clock (``sync``). One re-entrant lock guards it all:
the HTTP thread and a test thread may both call in.
"""

from __future__ import annotations

import calendar
import hashlib
import heapq
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pvetop.sim import lifecycle
from pvetop.sim.clock import SimClock
from pvetop.sim.entities import (
    CRASHED,
    GIB,
    MIB,
    OFF,
    ONLINE,
    SHUTTING_DOWN,
    Disk,
    HaRule,
    SimGuest,
    SimNode,
    SimStorage,
    allocated_bytes,
)
from pvetop.sim.errors import PveApiError, ScenarioError, param_error
from pvetop.sim.faults import Faults
from pvetop.sim.ha import HaManager
from pvetop.sim.load import LoadCurve, default_curve, noise
from pvetop.sim.memory import BALLOONING_TARGET, GuestMemory, node_memory
from pvetop.sim.migration import (
    StorageMap,
    check_target_storage,
    parse_storage_map,
    plan_failed_prepare,
    plan_migration,
    prepare_error,
)
from pvetop.sim.power import Power
from pvetop.sim.scenarios import Scenario, load_scenario
from pvetop.sim.tasks import Task, duration, make_upid, parse_upid
from pvetop.sim.validate import normalize_tags

DEFAULT_START = calendar.timegm((2026, 1, 1, 0, 0, 0))
# pve-common RESTEnvironment active_workers appends finished tasks to a node's task index and
# renames it to index.1 past 50000 bytes (about 1000 entries), replacing the older index.1: a
# node lists between one and two thousand finished tasks, however long it runs
TASK_INDEX_ENTRIES = 1000
PVE_VERSION = "9.2.0"
PVE_RELEASE = "9.2"
PVE_REPOID = "5e1f7a3c9b2d4e60"


def parse_start_time(value) -> float | None:
    """Epoch seconds from a number, an ISO 8601 string (``Z`` allowed) or a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ScenarioError(f"start time {value!r} is not an ISO 8601 timestamp") from exc


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


@dataclass
class Migration:
    """A migration in flight: its task, the timers still to fire and whether the node flipped."""

    guest: SimGuest
    source: str
    target: str
    task: Task
    timers: list[_Timer] = field(default_factory=list)
    flipped: bool = False
    restart: bool = False  # lxc restart mode: the container is stopped during the move


class SimCluster:
    def __init__(
        self,
        scenario: Scenario | str = "homelab",
        *,
        seed: int = 1,
        speed: float = 1.0,
        manual_clock: bool = False,
        start_time=None,
    ):
        if isinstance(scenario, str):
            scenario = load_scenario(scenario, seed)
        self.lock = threading.RLock()
        self.scenario = scenario
        self.seed = int(seed)
        start = parse_start_time(start_time)
        if start is None:
            start = DEFAULT_START if manual_clock else float(int(time.time()))
        self.clock = SimClock(start, speed=speed, manual=manual_clock)
        self.now = start
        self.start_time = start
        self.revision = 0  # bumped on every state change; keys response caches
        self._storage_cache: tuple[int, dict] = (-1, {})
        self.fault_rng = random.Random(f"faults:{seed}")
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._pid = itertools.count(0x1000 + int(noise(self.seed, 7) * 0x80000))
        self.tasks: list[Task] = []
        self.tasks_by_upid: dict[str, Task] = {}
        self._task_index: dict[str, tuple[list[Task], list[Task]]] = {}  # node -> (index, index.1)
        self.migrations: dict[int, Migration] = {}
        self.faults = Faults()
        self.faults.update(scenario.faults, start)
        self.injected: Counter[str] = Counter()  # how often each fault struck (what a soak reports)
        self.options = dict(scenario.options)
        self.bandwidth = scenario.migration_bandwidth_mib * MIB
        self.cluster_name = scenario.cluster_name
        self.fingerprint = ""  # the API certificate's, set by the server (shown in GET /nodes)
        # called (under the lock, from any thread) when a node starts or stops answering: the
        # runner opens or closes that node's API port
        self.power_listeners: list[Callable[[SimNode], None]] = []
        self.config_version = 3 + len(scenario.nodes)
        self._build(scenario)
        self.power = Power(self)
        self.ha = HaManager(self)

    # ----- construction -------------------------------------------------------------------
    def _build(self, scenario: Scenario) -> None:
        self.nodes: dict[str, SimNode] = {}
        for index, spec in enumerate(scenario.nodes, start=1):
            power = spec.get("power", "online")
            uptime = float(spec.get("uptime_seconds", 86400 * (3 + noise(self.seed, index, 30) * 40)))
            mac = spec.get("mac")
            node = SimNode(
                name=spec["name"],
                nodeid=index,
                ip=spec.get("ip", f"10.10.0.{10 + index}"),
                cpus=int(spec["cpus"]),
                sockets=int(spec.get("sockets", 1)),
                cpu_model=spec.get("cpu_model", "AMD EPYC 7302P 16-Core Processor"),
                memory=int(float(spec["memory_gib"]) * GIB),
                root_disk=int(float(spec.get("root_disk_gib", 100)) * GIB),
                votes=int(spec.get("votes", 1)),
                boot_seconds=float(spec.get("boot_seconds", 90)),
                shutdown_seconds=float(spec.get("shutdown_seconds", 30)),
                power=ONLINE if power == "online" else OFF,
                booted_at=self.now - uptime,
                wakeonlan=spec.get("wakeonlan") or (f"mac={mac.upper()}" if mac else None),
                description=spec.get("description"),
                level=spec.get("level", ""),
                base_cpu=float(spec.get("base_cpu", 0.02)),
                arc=int(float(spec.get("arc_gib", 0)) * GIB),
                services=int(float(spec.get("services_gib", 0)) * GIB),
            )
            node.power_changed(self.now - uptime, power == "online")
            self.nodes[node.name] = node
        self.storages = [
            SimStorage(
                storage=s["storage"],
                type=s.get("type", "dir"),
                shared=bool(s.get("shared", 0)),
                content=s.get("content", "images,rootdir"),
                size=int(float(s.get("size_gib", 500)) * GIB),
                nodes=s.get("nodes"),
                base_used=int(float(s.get("base_used_gib", 0)) * GIB),
            )
            for s in scenario.storage
        ]
        self.storage_by_id = {s.storage: s for s in self.storages}
        self.pools = {p["poolid"]: p.get("comment") for p in scenario.pools}
        self.ha_rules = [
            HaRule(
                rule=r["rule"],
                type=r["type"],
                resources=r["resources"],
                nodes=r.get("nodes"),
                strict=r.get("strict"),
                affinity=r.get("affinity"),
                disable=bool(r.get("disable", 0)),
                comment=r.get("comment"),
            )
            for r in scenario.ha_rules
        ]
        self.guests: dict[int, SimGuest] = {}
        for spec in sorted(scenario.guests, key=lambda g: g["vmid"]):
            vmid = spec["vmid"]
            load = spec.get("load")
            curve = (
                LoadCurve(
                    self.seed,
                    vmid,
                    load.get("curve", "steady"),
                    float(load.get("cpu", 0.1)),
                    float(load.get("mem", 0.5)),
                    float(load["night"]) if load.get("night") is not None else None,
                )
                if load
                else default_curve(self.seed, vmid)
            )
            kind = spec["type"]
            disks = []
            for index, disk in enumerate(spec.get("disks") or [{"storage": self.storages[0].storage, "size_gib": 8}]):
                key = ("rootfs" if index == 0 else f"mp{index - 1}") if kind == "lxc" else f"scsi{index}"
                disks.append(Disk(key=key, storage=disk["storage"], size=int(float(disk.get("size_gib", 32)) * GIB)))
            memory = int(spec.get("memory_mib", float(spec.get("memory_gib", 2)) * 1024)) * MIB
            template = bool(spec.get("template", 0))
            running = spec.get("status", "running") == "running" and not template
            node = self.nodes[spec["node"]]
            guest = SimGuest(
                vmid=vmid,
                type=kind,
                name=spec["name"],
                node=node.name,
                cores=int(spec.get("cores", 1)),
                memory=memory,
                disks=disks,
                status="running" if running and node.power == ONLINE else "stopped",
                curve=curve,
                tags=sorted(spec.get("tags", [])),
                pool=spec.get("pool"),
                template=template,
                lock=spec.get("lock"),
                ha=bool(spec.get("ha", False)),
                ha_state="started" if running else "stopped",
                onboot=bool(spec.get("onboot", running)),
                started_at=self.now - min(node_uptime(node, self.now), 3600 * (1 + noise(self.seed, vmid, 31) * 500)),
                description=spec.get("description"),
                mac=f"BC:24:11:{vmid >> 16 & 0xFF:02X}:{vmid >> 8 & 0xFF:02X}:{vmid & 0xFF:02X}",
                ostype=spec.get("ostype", "l26" if kind == "qemu" else "debian"),
                devices=dict(spec.get("devices", {})),
                cdrom=spec.get("cdrom"),
            )
            guest.balloon = int(spec.get("balloon_mib", 0)) * MIB
            guest.derive_constants(self.seed)
            self.guests[vmid] = guest

    # ----- time ---------------------------------------------------------------------------
    def sync(self) -> None:
        """Catches up with the clock: fires every timer due by now, in order."""
        with self.lock:
            self._advance_to(self.clock.now())

    def step(self, seconds: float) -> None:
        """Moves simulated time forward by ``seconds`` (the way tests move time)."""
        with self.lock:
            self.clock.advance(float(seconds))
            self._advance_to(self.clock.now())

    def set_speed(self, speed: float) -> None:
        with self.lock:
            self.sync()
            self.clock.set_speed(speed)

    def _advance_to(self, target: float) -> None:
        while self._timers and self._timers[0].due <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = max(self.now, timer.due)
            timer.action()
            self.revision += 1
        self.now = max(self.now, target)

    def schedule(self, at: float, action: Callable[[], None]) -> _Timer:
        timer = _Timer(at, next(self._seq), action)
        heapq.heappush(self._timers, timer)
        return timer

    # ----- lookups ------------------------------------------------------------------------
    def node(self, name: str) -> SimNode:
        node = self.nodes.get(name)
        if node is None:
            raise PveApiError(
                500,
                f"hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known",
            )
        return node

    def reachable_node(self, name: str) -> SimNode:
        """A node that must answer the call itself (pveproxy forwards to it): 595 when it is down."""
        node = self.node(name)
        if not node.reachable:
            raise PveApiError(595, "Errors during connection establishment, proxy handshake: No route to host")
        return node

    def guest_on(self, node: str, vmid: int, kind: str) -> SimGuest:
        """The guest whose config lives on ``node`` — PVE's answer when it lives elsewhere."""
        self.reachable_node(node)
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.type != kind:
            directory = "qemu-server" if kind == "qemu" else "lxc"
            raise PveApiError(500, f"Configuration file 'nodes/{node}/{directory}/{vmid}.conf' does not exist")
        return guest

    @property
    def entry_node(self) -> SimNode:
        """The first reachable node: where the HA manager's master runs."""
        for node in self.nodes.values():
            if node.reachable:
                return node
        return next(iter(self.nodes.values()))

    @property
    def total_votes(self) -> int:
        return sum(node.votes for node in self.nodes.values())

    @property
    def online_votes(self) -> int:
        return sum(node.votes for node in self.nodes.values() if node.reachable)

    @property
    def quorate(self) -> bool:
        return 2 * self.online_votes > self.total_votes

    def require_quorum(self) -> None:
        if not self.quorate:
            raise PveApiError(500, "cluster not ready - no quorum?")

    # ----- load figures -------------------------------------------------------------------
    def guest_usage(self, guest: SimGuest, t: float) -> tuple[float, int]:
        """(cpu fraction of the guest's cores, memory bytes) at time ``t``; zero when stopped."""
        if guest.status != "running":
            return 0.0, 0
        return guest.curve.cpu_at(t), int(guest.memory * guest.curve.mem_at(t))

    def node_usage(
        self,
        node: SimNode,
        t: float,
        guests: list[SimGuest] | None = None,
        usage: dict[int, tuple[float, int]] | None = None,
    ) -> tuple[float, int]:
        """(cpu fraction of the node's CPUs, memory bytes) at ``t`` from the guests running on it.

        ``usage`` may hold the guests' figures at ``t`` already computed (the resources view)."""
        cpu, mem, _ = self.node_load(node, t, guests, usage)
        return cpu, mem

    def node_load(
        self,
        node: SimNode,
        t: float,
        guests: list[SimGuest] | None = None,
        usage: dict[int, tuple[float, int]] | None = None,
    ) -> tuple[float, int, dict[int, GuestMemory]]:
        """``node_usage`` plus each running guest's memory as the host sees it (``memory``)."""
        if guests is None:
            guests = [g for g in self.guests.values() if g.node == node.name]
        busy = node.base_cpu * node.cpus * (0.7 + 0.6 * noise(self.seed, node.nodeid, 40, int(t // 10)))
        used: dict[int, int] = {}
        for guest in guests:
            if guest.status == "running":
                cpu, used[guest.vmid] = usage[guest.vmid] if usage is not None else self.guest_usage(guest, t)
                busy += cpu * guest.cores
        target = BALLOONING_TARGET if node.ballooning_target is None else node.ballooning_target
        mem, figures = node_memory(node, guests, used, target)
        return min(1.0, busy / node.cpus), mem, figures

    def storage_used(self, storage: SimStorage, node: str) -> int:
        """Bytes used on a storage as seen from ``node`` (shared storage: the same everywhere)."""
        if self._storage_cache[0] != self.revision:
            usage: dict[tuple[str, str | None], int] = {}
            for guest in self.guests.values():
                for disk in guest.disks:
                    owner = self.storage_by_id[disk.storage]
                    key = (disk.storage, None if owner.shared else guest.node)
                    usage[key] = usage.get(key, 0) + allocated_bytes(disk.size, owner.type)
            self._storage_cache = (self.revision, usage)
        used = storage.base_used + self._storage_cache[1].get((storage.storage, None if storage.shared else node), 0)
        return min(used, storage.size)

    # ----- tasks --------------------------------------------------------------------------
    def new_task(self, node: str, task_type: str, task_id: str, user: str, at: float | None = None) -> Task:
        at = self.now if at is None else at
        owner = self.nodes[node]
        pid = next(self._pid)
        pstart = int((at - owner.booted_at) * 100) & 0xFFFFFFFF
        upid = make_upid(node, pid, pstart, int(at), task_type, task_id, user)
        task = Task(
            upid=upid, node=node, pid=pid, pstart=pstart, starttime=int(at), type=task_type, id=task_id, user=user
        )
        self.tasks.append(task)
        self.tasks_by_upid[upid] = task
        index, _ = self._task_index.setdefault(node, ([], []))
        index.append(task)
        if len(index) >= TASK_INDEX_ENTRIES:
            self._rotate_task_index(node)
        return task

    def _rotate_task_index(self, node: str) -> None:
        """The node's index becomes index.1; the finished tasks of the older index.1 are gone
        (a task still running stays listed, as PVE keeps it in its active file)."""
        index, older = self._task_index[node]
        gone = {task.upid for task in older if not task.running(self.now)}
        self._task_index[node] = ([task for task in older if task.upid not in gone], index)
        if gone:
            self.tasks = [task for task in self.tasks if task.upid not in gone]
            for upid in gone:
                del self.tasks_by_upid[upid]

    def stop_task(self, node: str, upid: str) -> None:
        """DELETE /nodes/{node}/tasks/{upid}: aborts a running migration, ignores finished tasks."""
        task = self.task_on(node, upid)
        if not task.running(self.now):
            return
        for migration in list(self.migrations.values()):
            if migration.task is task:
                self._abort_migration(migration, "interrupted by signal")
                return
        task.log(self.now, "received interrupt", stamped=False)
        task.finish(self.now, "unexpected status")
        self.revision += 1

    def task_on(self, node: str, upid: str) -> Task:
        self.reachable_node(node)
        if parse_upid(upid) is None:
            raise param_error({"upid": "unable to parse worker upid"})
        task = self.tasks_by_upid.get(upid)
        if task is None or task.node != node:
            raise param_error({"upid": "no such task"})
        return task

    # ----- migrations ---------------------------------------------------------------------
    def check_migration_target(self, node: str, target: str) -> None:
        """PVE's synchronous refusals shared by migrate and migrateall, in PVE's order."""
        if target == node:
            raise param_error({"target": "target is local node."})
        self.reachable_node(node)
        self.require_quorum()
        if target not in self.nodes:
            raise PveApiError(500, f"no such cluster node '{target}'")

    ROOT_ONLY_MIGRATE_PARAMS = ("force", "migration_type", "migration_network")

    def migrate(self, kind: str, node: str, vmid: int, params: dict, user: str) -> str:
        """POST .../{vmid}/migrate: PVE's synchronous refusals in its order (qemu-server Qemu.pm /
        pve-container LXC.pm migrate_vm), else a task's UPID; what PVE checks only inside the
        task (a container's lock and target storage, a VM's local devices) fails the task."""
        target = params["target"]
        self.check_migration_target(node, target)
        if kind == "qemu":  # checked against 'root@pam' itself: API tokens are refused too
            for key in self.ROOT_ONLY_MIGRATE_PARAMS:
                if params.get(key) and user != "root@pam":
                    raise param_error({key: "Only root may use this option."})
        guest = self.guest_on(node, vmid, kind)
        running = guest.status == "running"
        map_param = "targetstorage" if kind == "qemu" else "target-storage"
        storage_map = parse_storage_map(params[map_param], map_param) if params.get(map_param) else None
        if kind == "qemu":
            if guest.lock:
                raise PveApiError(500, f"VM is locked ({guest.lock})")
            if running and not params.get("online"):
                raise PveApiError(500, "can't migrate running VM without --online")
        elif running and not params.get("online") and not params.get("restart"):
            raise PveApiError(500, "can't migrate running container without --online or --restart")
        check_target_storage(self, guest, target, storage_map)
        if guest.ha:
            return self._request_ha_migration(guest, target, user)
        refusal = prepare_error(
            self,
            guest,
            target,
            online_requested=bool(params.get("online")),
            force=bool(params.get("force")),
            storage_map=storage_map,
        )
        if refusal is not None:
            task = self.new_task(node, "qmigrate" if kind == "qemu" else "vzmigrate", str(vmid), user)
            plan_failed_prepare(self, task, refusal)
            self.revision += 1
            return task.upid
        bwlimit = params.get("bwlimit")
        task = self._start_migration(
            guest,
            target,
            user,
            online=running and kind == "qemu",
            restart=running and kind == "lxc",
            with_local_disks=bool(params.get("with-local-disks")),
            bwlimit_kib=float(bwlimit) if bwlimit else None,
            storage_map=storage_map,
        )
        return task.upid

    def ha_migrate(self, sid: str, target: str, user: str) -> dict:
        """POST /cluster/ha/resources/{sid}/migrate: queues the move for the CRM and says which
        partners would comigrate and what blocks the target (HA/Config.pm get_resource_motion_info)."""
        guest = self.ha_guest(sid)
        self.require_quorum()
        self.ha.queue_command(f"migrate {guest.sid} {target}")
        result: dict = {"sid": guest.sid, "requested-node": target}
        comigrated, blocking = self.ha.motion_info(guest.sid)
        if comigrated:
            result["comigrated-resources"] = comigrated
        if blocking.get(target):
            result["blocking-resources"] = blocking[target]
        return result

    def ha_guest(self, sid: str) -> SimGuest:
        kind, colon, number = sid.partition(":")
        if not colon and sid.isdigit():  # a bare vmid means a VM, as ha-manager accepts it
            kind, number = "vm", sid
        guest = self.guests.get(int(number)) if number.isdigit() else None
        if guest is None or not guest.ha or (kind == "vm") != (guest.type == "qemu"):
            raise PveApiError(500, f"service '{sid}' not defined")
        return guest

    def _request_ha_migration(self, guest: SimGuest, target: str, user: str) -> str:
        """qemu-server/pve-container migrate_vm for an HA guest: an 'hamigrate' task that runs
        ``ha-manager migrate``; the CRM decides on its next round (and may drop the request)."""
        task = self.new_task(guest.node, "hamigrate", str(guest.vmid), user)
        task.log(
            self.now,
            f"Requesting HA migration for {'VM' if guest.type == 'qemu' else 'CT'} {guest.vmid} to node {target}",
            stamped=False,
        )
        task.finish(self.now + 1, "OK")
        self.ha.queue_command(f"{'migrate' if guest.type == 'qemu' else 'relocate'} {guest.sid} {target}")
        self.revision += 1
        return task.upid

    def ha_motion(self, guest: SimGuest, target: str, *, relocate: bool) -> Task:
        """The LRM runs the CRM's migrate (live) or relocate (restart) as root@pam."""
        running = guest.status == "running"
        return self._start_migration(
            guest,
            target,
            "root@pam",
            online=running and guest.type == "qemu",
            restart=running and (relocate or guest.type == "lxc"),
            with_local_disks=False,
            bwlimit_kib=None,
        )

    def _start_migration(
        self,
        guest: SimGuest,
        target: str,
        user: str,
        *,
        online: bool,
        restart: bool,
        with_local_disks: bool,
        bwlimit_kib: float | None,
        storage_map: StorageMap | None = None,
    ) -> Task:
        source = guest.node
        task = self.new_task(source, "qmigrate" if guest.type == "qemu" else "vzmigrate", str(guest.vmid), user)
        migration = Migration(guest=guest, source=source, target=target, task=task, restart=restart)
        if not restart:  # a container is shut down first and locked after (LXC/Migrate.pm prepare, phase1)
            guest.lock = "migrate"
        self.migrations[guest.vmid] = migration
        bandwidth = self.bandwidth if not bwlimit_kib else min(self.bandwidth, bwlimit_kib * 1024)
        failure = None
        if noise(self.seed, task.pid, 99) < self.faults.migration_failure_rate:
            failure = "any"
        elif online and (
            self.faults.take("ram_failures") or noise(self.seed, task.pid, 96) < self.faults.ram_failure_rate
        ):
            failure = "ram"
        if failure is not None:
            self.injected[f"migration failure ({failure})"] += 1
        plan = plan_migration(
            self,
            migration,
            online=online,
            with_local_disks=with_local_disks,
            bandwidth=bandwidth,
            failure=failure,
            storage_map=storage_map,
        )
        for at, action in plan:
            migration.timers.append(self.schedule(at, action))
        self.revision += 1
        return task

    def finish_migration(self, migration: Migration) -> None:
        guest = migration.guest
        guest.lock = None
        guest.config_version += 1
        self.migrations.pop(guest.vmid, None)

    def _abort_migration(self, migration: Migration, reason: str) -> None:
        """Stops a migration now: the guest stays where it is (the source unless flipped)."""
        for timer in migration.timers:
            timer.cancelled = True
        task = migration.task
        guest = migration.guest
        if migration.flipped:
            task.log(self.now, f"ERROR: {reason}")
            task.log(
                self.now, f"ERROR: migration finished with problems (duration {duration(self.now - task.starttime)})"
            )
            exitstatus = "migration problems"
        else:
            task.log(self.now, f"ERROR: {reason}")
            task.log(
                self.now,
                "aborting phase 2 - cleanup resources"
                if migration.guest.type == "qemu"
                else "aborting phase 1 - cleanup resources",
            )
            task.log(self.now, f"ERROR: migration aborted (duration {duration(self.now - task.starttime)}): {reason}")
            exitstatus = "migration aborted"
        if migration.restart and guest.status != "running" and self.nodes[guest.node].reachable:
            guest.status = "running"
            guest.started_at = self.now
        task.finish(self.now, exitstatus)
        self.finish_migration(migration)
        self.revision += 1

    # ----- guest and node power (pvetop.sim.power) -----------------------------------------
    def guest_power(self, kind: str, node: str, vmid: int, action: str, user: str, params: dict | None = None) -> str:
        """POST .../{vmid}/status/{start|stop|shutdown|reboot}: see ``lifecycle``."""
        return lifecycle.guest_power(self, kind, node, vmid, action, user, params or {})

    def set_power(self, node: SimNode, power: str) -> None:
        was_online = node.reachable
        node.power = power
        if node.reachable != was_online:
            node.power_changed(self.now, node.reachable)
            for listener in self.power_listeners:
                listener(node)
        self.revision += 1

    def shutdown_node(self, name: str, *, reboot: bool = False) -> None:
        self.power.shutdown_node(name, reboot=reboot)

    def crash_node(self, name: str) -> None:
        """The node dies at once (control API); the HA manager fences and recovers its services."""
        node = self.node(name)
        if node.reachable:
            self.lose_node(node, CRASHED)

    def lose_node(self, node: SimNode, power: str) -> None:
        for migration in list(self.migrations.values()):
            if node.name in (migration.source, migration.target) and migration.task.running(self.now):
                self._abort_migration(migration, f"node '{node.name}' went offline")
        self.ha.node_down(node.name)
        self.set_power(node, power)

    def wake_by_mac(self, mac: str) -> str | None:
        """A magic packet arrived: boots the powered-off node with that MAC; returns its name."""
        with self.lock:
            self.sync()
            if self.fault_rng.random() < self.faults.wol_drop_rate:
                self.injected["magic packet lost"] += 1
                return None  # lost on the wire: nothing boots, nobody is told
            for node in self.nodes.values():
                if node.mac == mac.upper() and node.power in (OFF, CRASHED):
                    self.power.boot(node)
                    return node.name
        return None

    def wakeonlan(self, name: str, local: str) -> str:
        """POST /nodes/{name}/wakeonlan, sent by ``local``, the node answering the API."""
        if name in ("localhost", local):
            raise PveApiError(500, f"'{name}' is local node, cannot wake my self!")
        if name not in self.nodes:
            raise PveApiError(500, f"no such cluster node '{name}'")
        node = self.nodes[name]
        if not node.mac:
            raise PveApiError(500, f"No wake on LAN MAC address defined for '{name}'!")
        self.power.wake(node)
        return node.mac

    # ----- configuration ------------------------------------------------------------------
    def update_guest_config(self, guest: SimGuest, params: dict) -> None:
        self.require_quorum()  # /etc/pve is read-only without quorum
        if params.get("digest") and params["digest"] != guest.digest():
            raise PveApiError(500, "detected modified configuration - file changed by other user? Try again.")
        if guest.lock and not params.get("skiplock"):
            raise PveApiError(500, f"{'VM' if guest.type == 'qemu' else 'CT'} is locked ({guest.lock})")
        for key in [k.strip() for k in str(params.get("delete", "")).split(",") if k.strip()]:
            if key == "tags":
                guest.tags = []
            elif key == "description":
                guest.description = None
            elif key == "onboot":
                guest.onboot = False
            elif key == "lock":
                guest.lock = None
        if "tags" in params:
            guest.tags = normalize_tags(params["tags"])
        if "description" in params:
            guest.description = params["description"] or None
        if "onboot" in params:
            guest.onboot = bool(params["onboot"])
        name_key = "name" if guest.type == "qemu" else "hostname"
        if name_key in params:
            guest.name = params[name_key]
        if "cores" in params:
            guest.cores = int(params["cores"])
        if "memory" in params:
            memory = params["memory"]
            current = str(memory).split(",")[0].split("=")[-1]
            guest.memory = int(current) * MIB
        if "balloon" in params:
            guest.balloon = int(params["balloon"]) * MIB
        guest.config_version += 1
        self.revision += 1

    def update_options(self, params: dict) -> None:
        """PUT /cluster/options: datacenter.cfg values stored as written (property strings)."""
        self.require_quorum()
        for key in [k.strip() for k in str(params.get("delete", "")).split(",") if k.strip()]:
            self.options.pop(key, None)
        for key, value in params.items():
            if key != "delete":
                self.options[key] = value
        self.revision += 1

    def create_ha_rule(self, params: dict) -> None:
        """POST /cluster/ha/rules: every resource must be HA-managed, the rule id new."""
        self.require_quorum()
        if any(rule.rule == params["rule"] for rule in self.ha_rules):
            raise PveApiError(500, f"ha rule '{params['rule']}' already defined")
        sids = [sid.strip() for sid in params["resources"].split(",") if sid.strip()]
        managed = {g.sid for g in self.guests.values() if g.ha}
        unknown = [sid for sid in sids if sid not in managed]
        if unknown:
            raise param_error({"resources": f"HA resource '{unknown[0]}' is not configured"})
        if params["type"] == "node-affinity" and not params.get("nodes"):
            raise param_error({"nodes": "property is missing and it is not optional"})
        if params["type"] == "resource-affinity" and not params.get("affinity"):
            raise param_error({"affinity": "property is missing and it is not optional"})
        self.ha_rules.append(
            HaRule(
                rule=params["rule"],
                type=params["type"],
                resources=",".join(sids),
                nodes=params.get("nodes"),
                strict=bool(params["strict"]) if "strict" in params else None,
                affinity=params.get("affinity"),
                disable=bool(params.get("disable", 0)),
                comment=params.get("comment"),
            )
        )
        self.revision += 1

    def update_node_config(self, node: SimNode, params: dict) -> None:
        self.require_quorum()
        if params.get("digest") and params["digest"] != self.node_config_digest(node):
            raise PveApiError(500, "detected modified configuration - file changed by other user? Try again.")
        for key in [k.strip() for k in str(params.get("delete", "")).split(",") if k.strip()]:
            if key == "wakeonlan":
                node.wakeonlan = None
            elif key == "description":
                node.description = None
            elif key == "ballooning-target":
                node.ballooning_target = None
        if "wakeonlan" in params:
            node.wakeonlan = params["wakeonlan"]
        if "description" in params:
            node.description = params["description"] or None
        if "ballooning-target" in params:
            node.ballooning_target = int(params["ballooning-target"])
        self.revision += 1

    def node_config_digest(self, node: SimNode) -> str:
        return hashlib.sha1(f"{node.wakeonlan}:{node.description}:{node.ballooning_target}".encode()).hexdigest()


def node_uptime(node: SimNode, now: float) -> float:
    return max(0.0, now - node.booted_at) if node.power in (ONLINE, SHUTTING_DOWN) else 0.0
