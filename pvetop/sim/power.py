"""Guest and node power as PVE runs it: graceful stops, bulk start/stop/migrate, node shutdown,
boot and the watchdog reset.

A node shutdown (``POST /nodes/{n}/status command=shutdown``, pve-manager Nodes.pm node_cmd)
is ``(sleep 2; poweroff)``: systemd first stops ``pve-guests`` (its ``stopall``: every non-HA
guest shut down gracefully in reverse startup order, 180 s each, then forced), then
``pve-ha-lrm`` (its ``shutdown_request`` applies ``ha: shutdown_policy``; with ``migrate`` the
CRM live-migrates every HA service away before the LRM exits), then the rest of the OS
(``shutdown_seconds`` of the node). A boot brings the node online and runs ``startall``: onboot
guests in startup order, VMs 3 s apart; HA guests come back through their LRM.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pvetop.sim import lifecycle, migration
from pvetop.sim.entities import BOOTING, CRASHED, OFF, ONLINE, SHUTTING_DOWN, SimGuest, SimNode
from pvetop.sim.errors import PveApiError
from pvetop.sim.load import noise
from pvetop.sim.tasks import Task

if TYPE_CHECKING:
    from pvetop.sim.cluster import SimCluster

STOPALL_TIMEOUT = 180  # pve-guests stopall: seconds per guest before the hard stop
SHUTDOWN_START_DELAY = 2.0  # node_cmd: "(sleep 2;/sbin/poweroff)&"
VM_START_DELAY = 3  # startall: "$default_delay = 3; # to reduce load" (VMs only)
POLL_SECONDS = 1.0  # how often the bulk workers look at their children (PVE: sleep(1))
LONG_MAX = sys.maxsize  # startall/stopall: guests without a startup order come last


def label(guest: SimGuest) -> str:
    return "VM" if guest.type == "qemu" else "CT"


@dataclass
class _Bulk:
    """One startall/stopall/migrateall worker: a queue of guests and the child tasks it waits for."""

    task: Task
    queue: list[SimGuest]
    max_workers: int
    workers: list[Task] = field(default_factory=list)
    started: int = 0


class Power:
    def __init__(self, cluster: SimCluster):
        self.cluster = cluster
        specs = {g["vmid"]: g for g in cluster.scenario.guests}
        self.startup = {vmid: _parse_startup(spec.get("startup")) for vmid, spec in specs.items()}
        self.os_shutdown = {vmid: spec.get("shutdown_seconds") for vmid, spec in specs.items()}

    # ----- one guest ----------------------------------------------------------------------
    def shutdown_seconds(self, guest: SimGuest) -> float:
        """How long the guest OS takes to power off after the ACPI request (scenario
        ``shutdown_seconds``, else a seeded 4–24 s for a VM and 2–6 s for a container)."""
        configured = self.os_shutdown.get(guest.vmid)
        if configured is not None:
            return float(configured)
        spread = noise(self.cluster.seed, guest.vmid, 61)
        return round(4 + 20 * spread, 1) if guest.type == "qemu" else round(2 + 4 * spread, 1)

    def agent_power(self, guest: SimGuest, action: str, *, timeout: int | None = None) -> Task:
        """The LRM's own start/stop of an HA guest (as root@pam, not redirected to HA again)."""
        params = {"timeout": timeout, "forceStop": 1} if action == "shutdown" else {}
        return lifecycle.run_task(self.cluster, guest, action, "root@pam", params)

    def _api_power(self, guest: SimGuest, action: str, user: str, params: dict) -> Task:
        """What startall/stopall call per guest: the guest's own status endpoint (HA guests
        become hastart/hastop requests there)."""
        upid = lifecycle.guest_power(self.cluster, guest.type, guest.node, guest.vmid, action, user, params)
        return self.cluster.tasks_by_upid[upid]

    # ----- bulk actions -------------------------------------------------------------------
    def max_workers(self, node: SimNode, given: int | None) -> int:
        """Nodes.pm get_max_workers: the parameter, datacenter ``max_workers``, else the
        node's threads minus one, between 1 and 8."""
        if given:
            return int(given)
        configured = self.cluster.options.get("max_workers")
        if configured:
            return int(configured)
        return min(max(1, node.cpus - 1), 8)

    def start_stop_list(self, node: str, *, autostart: bool, vmids: set[int] | None) -> list[SimGuest]:
        """Nodes.pm get_start_stop_list: the node's guests (no templates), HA-managed ones only
        when ``vms`` names them, onboot ones only for an autostart; in startup order."""
        guests = [
            g
            for g in self.cluster.guests.values()
            if g.node == node
            and not g.template
            and (vmids is None or g.vmid in vmids)
            and (vmids is not None or not g.ha)
            and (g.onboot or not autostart)
        ]
        return sorted(guests, key=lambda g: (self.startup[g.vmid].get("order", LONG_MAX), g.vmid))

    def start_all(
        self,
        node: str,
        user: str,
        *,
        vmids: set[int] | None = None,
        force: bool = False,
        max_workers: int | None = None,
    ) -> Task:
        """POST /nodes/{node}/startall (and pve-guests at boot): waits for quorum, then starts the
        list in order; each VM is followed by a 3 s pause (or its startup ``up`` delay)."""
        cluster = self.cluster
        owner = cluster.reachable_node(node)
        task = cluster.new_task(node, "startall", "", user)
        bulk = _Bulk(task, [], self.max_workers(owner, max_workers))

        def begin() -> None:
            if not cluster.quorate:
                if not any(text == "waiting for quorum ..." for _, text in task.lines):
                    task.log(cluster.now, "waiting for quorum ...", stamped=False)
                cluster.schedule(cluster.now + POLL_SECONDS, begin)
                return
            if task.lines:
                task.log(cluster.now, "got quorum", stamped=False)
            bulk.queue = self.start_stop_list(node, autostart=not force, vmids=vmids)
            next_guest()

        def next_guest() -> None:
            if not cluster.nodes[node].reachable:
                return
            self._reap(bulk)
            if len(bulk.workers) >= bulk.max_workers:
                cluster.schedule(cluster.now + POLL_SECONDS, next_guest)
                return
            while bulk.queue:
                guest = bulk.queue.pop(0)
                if guest.node != node or guest.status == "running":
                    continue
                if not cluster.quorate:
                    task.log(cluster.now, "cluster not ready - no quorum?", stamped=False)
                    continue
                task.log(cluster.now, f"Starting {label(guest)} {guest.vmid}", stamped=False)
                try:
                    child = self._api_power(guest, "start", user, {})
                except PveApiError as exc:
                    task.log(cluster.now, exc.message, stamped=False)
                    continue
                bulk.workers.append(child)
                up = self.startup[guest.vmid].get("up")
                delay = int(up) if up is not None else (VM_START_DELAY if guest.type == "qemu" else 0)
                if up is not None and delay:
                    task.log(cluster.now, f"Waiting for {delay} seconds (startup delay)", stamped=False)
                if delay or len(bulk.workers) >= bulk.max_workers:
                    cluster.schedule(cluster.now + max(delay, POLL_SECONDS), next_guest)
                    return
            self._when_reaped(bulk, lambda: task.finish(cluster.now, "OK"))

        begin()
        cluster.revision += 1
        return task

    def stop_all(
        self,
        node: str,
        user: str,
        *,
        vmids: set[int] | None = None,
        timeout: int | None = None,
        force_stop: bool = True,
        max_workers: int | None = None,
        then: Callable[[], None] = lambda: None,
    ) -> Task:
        """POST /nodes/{node}/stopall (and pve-guests at shutdown): graceful shutdowns in reverse
        startup order, one order group at a time, each with its timeout (180 s), then forced."""
        cluster = self.cluster
        owner = cluster.reachable_node(node)
        task = cluster.new_task(node, "stopall", "", user)
        guests = list(reversed(self.start_stop_list(node, autostart=False, vmids=vmids)))
        groups: list[list[SimGuest]] = []
        for guest in guests:
            order = self.startup[guest.vmid].get("order", LONG_MAX)
            if groups and self.startup[groups[-1][0].vmid].get("order", LONG_MAX) == order:
                groups[-1].append(guest)
            else:
                groups.append([guest])
        bulk = _Bulk(task, [], self.max_workers(owner, max_workers))

        def next_group() -> None:
            if not groups:
                task.finish(cluster.now, "OK")
                then()
                return
            bulk.queue = groups.pop(0)
            next_guest()

        def next_guest() -> None:
            self._reap(bulk)
            while bulk.queue and len(bulk.workers) < bulk.max_workers:
                guest = bulk.queue.pop(0)
                if guest.node != node or guest.status != "running":
                    continue
                down = self.startup[guest.vmid].get("down")
                seconds = int(down if down is not None else (timeout if timeout is not None else STOPALL_TIMEOUT))
                task.log(
                    cluster.now, f"Stopping {label(guest)} {guest.vmid} (timeout = {seconds} seconds)", stamped=False
                )
                try:
                    child = self._api_power(guest, "shutdown", user, {"timeout": seconds, "forceStop": int(force_stop)})
                except PveApiError as exc:
                    task.log(cluster.now, exc.message, stamped=False)
                    continue
                bulk.workers.append(child)
            if bulk.queue:
                cluster.schedule(cluster.now + POLL_SECONDS, next_guest)
            else:
                self._when_reaped(bulk, next_group)

        next_group()
        cluster.revision += 1
        return task

    def migrate_all(
        self,
        node: str,
        target: str,
        user: str,
        *,
        max_workers: int | None,
        vmids: set[int] | None,
        with_local_disks: bool,
    ) -> str:
        """POST /nodes/{node}/migrateall (Nodes.pm migrateall): every guest of the node, HA-managed
        and templates included; VMs pass the migrate precondition first (local disks without
        ``with-local-disks``, local resources, storage the target lacks) or are skipped."""
        cluster = self.cluster
        cluster.check_migration_target(node, target)
        workers = max_workers or cluster.options.get("max_workers")
        if not workers:
            raise PveApiError(500, "either 'max-workers' parameter or max_workers in datacenter.cfg must be set!")
        task = cluster.new_task(node, "migrateall", "", user)
        guests = [g for g in cluster.guests.values() if g.node == node and (vmids is None or g.vmid in vmids)]
        if not guests:
            task.log(cluster.now, "no virtual guests matched, nothing to do..", stamped=False)
            task.finish(cluster.now, "OK")
            return task.upid
        bulk = _Bulk(task, sorted(guests, key=lambda g: str(g.vmid)), int(workers))

        def next_guest() -> None:
            self._reap(bulk)
            while bulk.queue and len(bulk.workers) < bulk.max_workers:
                guest = bulk.queue.pop(0)
                child = self._migrate_one(task, guest, node, target, user, with_local_disks)
                if child is not None:
                    bulk.workers.append(child)
                    bulk.started += 1
            if bulk.queue:
                cluster.schedule(cluster.now + POLL_SECONDS, next_guest)
            else:
                self._when_reaped(bulk, finish)

        def finish() -> None:
            if bulk.started:
                task.log(cluster.now, f"All jobs finished, used {bulk.started} workers in total.", stamped=False)
                task.finish(cluster.now, "OK")
            else:
                task.finish(cluster.now, "no migrations worker started...")

        next_guest()
        return task.upid

    def _migrate_one(
        self, task: Task, guest: SimGuest, node: str, target: str, user: str, with_local_disks: bool
    ) -> Task | None:
        cluster = self.cluster
        now = cluster.now
        online = guest.status == "running"
        if guest.type == "qemu":
            precondition = migration.precondition(cluster, guest)
            problems = []
            if online and not with_local_disks and precondition["local_disks"]:
                problems.append("Has local disks: " + ", ".join(d["volid"] for d in precondition["local_disks"]))
            if precondition["local_resources"]:
                problems.append("Has local resources: " + ", ".join(precondition["local_resources"]))
            missing = (precondition.get("not_allowed_nodes") or {}).get(target, {})
            if missing.get("unavailable_storages"):
                problems.append("Has unavailable storages: " + ", ".join(missing["unavailable_storages"]))
            if missing.get("unavailable-resources"):
                problems.append("Has unavailable resources: " + ", ".join(missing["unavailable-resources"]))
            if problems:
                task.log(
                    now, f"Check VM {guest.vmid}: skip VM {guest.vmid} - precondition check failed:", stamped=False
                )
                for problem in problems:
                    task.log(now, f"  {problem}", stamped=False)
                return None
            task.log(now, f"Check VM {guest.vmid}: precondition check passed", stamped=False)
            task.log(now, f"Migrating VM {guest.vmid}", stamped=False)
            params = {"target": target, "online": int(online)}
            if with_local_disks:
                params["with-local-disks"] = 1
        else:
            task.log(now, f"Migrating CT {guest.vmid}", stamped=False)
            params = {"target": target, "restart": int(online)}
        try:
            upid = cluster.migrate(guest.type, node, guest.vmid, params, user)
        except PveApiError as exc:
            task.log(now, exc.message, stamped=False)
            return None
        return cluster.tasks_by_upid[upid]

    def _reap(self, bulk: _Bulk) -> None:
        now = self.cluster.now
        bulk.workers = [w for w in bulk.workers if w.running(now) or self._migrating(w)]

    def _migrating(self, task: Task) -> bool:
        migration = self.cluster.migrations.get(int(task.id)) if task.id.isdigit() else None
        return migration is not None and migration.task is task

    def _when_reaped(self, bulk: _Bulk, then: Callable[[], None]) -> None:
        """Waits (1 s polls, as PVE's bulk workers do) until every child task stopped, then ``then``."""
        cluster = self.cluster

        def check() -> None:
            self._reap(bulk)
            if bulk.workers:
                cluster.schedule(cluster.now + POLL_SECONDS, check)
            else:
                then()

        check()

    # ----- nodes --------------------------------------------------------------------------
    def shutdown_node(self, name: str, *, reboot: bool) -> None:
        """POST /nodes/{n}/status command=shutdown|reboot: returns at once; the node goes down
        when its guests are stopped or moved away, however long that takes."""
        cluster = self.cluster
        node = cluster.reachable_node(name)
        if node.power == SHUTTING_DOWN:
            return
        cluster.set_power(node, SHUTTING_DOWN)

        def stop_guests() -> None:
            self.stop_all(name, "root@pam", then=stop_lrm)

        def stop_lrm() -> None:
            cluster.ha.shutdown_request(name, reboot=reboot, on_exit=stop_the_rest)

        def stop_the_rest() -> None:
            cluster.ha.crm_stops(name)
            cluster.schedule(cluster.now + node.shutdown_seconds, power_off)

        def power_off() -> None:
            if node.power != SHUTTING_DOWN:
                return
            cluster.lose_node(node, OFF)
            if reboot:
                self.boot(node)

        cluster.schedule(cluster.now + SHUTDOWN_START_DELAY, stop_guests)

    def reset_node(self, name: str) -> None:
        """The watchdog fired: the node dies at once and boots again."""
        node = self.cluster.nodes[name]
        if node.power in (ONLINE, SHUTTING_DOWN):
            self.cluster.lose_node(node, CRASHED)
            self.boot(node)

    def boot(self, node: SimNode) -> None:
        """Power on: online after ``boot_seconds``, then the HA daemons and pve-guests' startall."""
        cluster = self.cluster
        cluster.set_power(node, BOOTING)

        def booted() -> None:
            if node.power != BOOTING:
                return
            node.booted_at = cluster.now
            cluster.set_power(node, ONLINE)
            for guest in cluster.guests.values():
                if guest.node == node.name:
                    guest.status = "stopped"
            cluster.ha.node_booted(node.name)
            self.start_all(node.name, "root@pam")

        cluster.schedule(cluster.now + node.boot_seconds, booted)

    def wake(self, node: SimNode) -> None:
        if node.power in (OFF, CRASHED):
            self.boot(node)


def _parse_startup(value) -> dict:
    """``order=1,up=30,down=60`` -> {"order": 1, "up": 30, "down": 60}."""
    result: dict = {}
    for part in str(value or "").split(","):
        key, _, number = part.partition("=")
        if key.strip() in ("order", "up", "down") and number.strip().isdigit():
            result[key.strip()] = int(number)
    return result
