"""PVE's HA stack between API calls: the CRM (cluster resource manager) and one LRM per node.

Modelled on pve-ha-manager 5.2 (``HA/Manager.pm``, ``HA/NodeStatus.pm``, ``HA/LRM.pm``): the
CRM master runs a round every 10 s of simulated time — node states, queued commands (``migrate``,
``relocate``, ``stop``), optional automatic rebalancing, then each service's state machine and
fencing. Each LRM runs 5 s out of phase with it and makes its node match the CRM's service
states (start, stop, migrate), holds the node's agent lock and watchdog while it has active
services, and resets its node when it loses the lock for 60 s (no quorum): the self-fence.
The CRM's log lines (syslog in real PVE) are kept in ``log`` for tests and tools.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pvetop.sim.crs import Candidate, CrsSettings, best_move, imbalance
from pvetop.sim.entities import SimGuest
from pvetop.sim.errors import PveApiError
from pvetop.sim.tasks import Task
from pvetop.sim.validate import parse_property_string

if TYPE_CHECKING:
    from pvetop.sim.cluster import SimCluster

CRM_ROUND_SECONDS = 10.0  # pve-ha-crm's loop
LRM_PHASE_SECONDS = 5.0  # the LRMs run their loop half a round after the CRM
FENCE_DELAY = 60.0  # NodeStatus.pm $fence_delay: a node offline this long gets fenced
LOCK_TIMEOUT = 120.0  # pmxcfs lock lifetime: a dead node's agent lock (or the manager lock) frees after it
WATCHDOG_TIMEOUT = 60.0  # watchdog-mux: a client that stops updating resets the node after this
MAX_ACTIVE_IDLE_ROUNDS = 60  # LRM.pm: an LRM without services gives up its lock after ~10 min
LOG_ENTRIES = 5000  # the manager's syslog lines kept: journald's journal is bounded too
ACTIVE_STATES = ("stopped", "freeze", "error", "request_start")  # Tools::count_active_services skips these


@dataclass
class Service:
    """One entry of the manager status's ``service_status`` (``$sd``)."""

    sid: str
    state: str
    node: str
    target: str | None = None
    cmd: tuple[str, str] | None = None  # a queued crm command: ("migrate"|"relocate"|"stop", target|timeout)
    maintenance_node: str | None = None
    running: bool = False  # the LRM reported a successful start in this 'started' period
    result: bool | None = None  # the LRM's result for the current state (True = success)
    timeout: int | None = None  # request_stop's graceful timeout


@dataclass
class Lrm:
    """One node's pve-ha-lrm: what its status file says and whether it holds lock and watchdog."""

    mode: str = "active"  # active | maintenance | shutdown | restart
    state: str = "wait_for_agent_lock"  # wait_for_agent_lock | active | maintenance | lost_agent_lock
    timestamp: float | None = None  # last lrm_status write
    lock_renewed: float | None = None  # None: the agent lock is released
    watchdog: float | None = None  # last watchdog update; None: closed
    alive: bool = False  # the daemon runs (node up, not yet stopped by a shutdown)
    shutdown_request: bool = False
    idle_rounds: int = 0
    workers: dict[str, Task] = field(default_factory=dict)  # sid -> the task running for it
    stop_jobs: dict[str, Task] = field(default_factory=dict)  # shutdown stop jobs (no CRM result)
    on_exit: Callable[[], None] | None = None


class HaManager:
    def __init__(self, cluster: SimCluster):
        self.cluster = cluster
        self.log: deque[tuple[float, str, str]] = deque(maxlen=LOG_ENTRIES)
        self.commands: list[str] = []
        self.services: dict[str, Service] = {}
        self.node_state: dict[str, str] = {}
        self.last_online: dict[str, float] = {}
        self.lrms = {name: Lrm() for name in cluster.nodes}
        self.master: str | None = None
        self.master_timestamp: float | None = None
        self.manager_lock_renewed: float | None = None
        self.crm_watchdog: float | None = None
        self.crm_stopped: set[str] = set()  # nodes whose pve-ha-crm stopped for a shutdown
        self.hold_rounds = 0  # CRS: consecutive rounds above the imbalance threshold
        self._online: list[str] | None = None  # cache of online_nodes(), reset when a node state changes
        self._at: dict[str, list[Service]] | None = None  # services by node, during an LRM round
        self._rules_key: tuple = ()
        self._rules_stamp: tuple = ()
        self._rules: tuple[dict, dict] = ({}, {})
        now = cluster.now
        for guest in self.guests():
            node = cluster.nodes[guest.node]
            started = guest.ha_state == "started" and node.reachable
            self.services[guest.sid] = Service(guest.sid, "started" if started else "stopped", guest.node)
            self.services[guest.sid].running = started and guest.status == "running"
        if self.services:
            for name, node in cluster.nodes.items():
                self.node_state[name] = "online" if node.reachable else "unknown"
                self.last_online[name] = now
                if node.reachable:
                    self._lrm_starts(name)
            self.master = self._first_crm_node()
            self.master_timestamp = now
            self.manager_lock_renewed = now
            self.crm_watchdog = now
        first = (now // CRM_ROUND_SECONDS + 1) * CRM_ROUND_SECONDS
        cluster.schedule(first, self._crm_round)
        cluster.schedule(first + LRM_PHASE_SECONDS, self._lrm_round)

    # ----- helpers ------------------------------------------------------------------------
    def guests(self) -> list[SimGuest]:
        return [g for g in self.cluster.guests.values() if g.ha]

    def guest(self, sid: str) -> SimGuest:
        return self.cluster.guests[int(sid.partition(":")[2])]

    def say(self, level: str, text: str) -> None:
        self.log.append((self.cluster.now, level, text))

    def online_nodes(self) -> list[str]:
        if self._online is None:
            self._online = sorted(n for n, state in self.node_state.items() if state == "online")
        return self._online

    def _services_at(self, node: str) -> list[Service]:
        """Services on ``node`` or migrating to it (indexed during an LRM round)."""
        if self._at is not None:
            return self._at.get(node, [])
        return [sd for sd in self.services.values() if node in (sd.node, sd.target)]

    def active_count(self, node: str) -> int:
        return sum(1 for sd in self._services_at(node) if sd.state not in ACTIVE_STATES)

    def state_of(self, guest: SimGuest) -> str:
        """``hastate`` in /cluster/resources: the CRM's service state."""
        sd = self.services.get(guest.sid)
        return sd.state if sd else guest.ha_state

    def motion_info(self, sid: str) -> tuple[list[str], dict[str, list[dict]]]:
        """HA/Config.pm get_resource_motion_info: positive partners that would comigrate, and per
        online node the negative-affinity partners that block a move there."""
        together, separate = self.affinitive(sid)
        dependent = [c for c in sorted(together) if c in self.services]
        blocking: dict[str, list[dict]] = {}
        for node in self.online_nodes():
            for csid in sorted(separate):
                sd = self.services.get(csid)
                if sd is None or (sd.node and sd.node != node) or (sd.target and sd.target != node):
                    continue
                blocking.setdefault(node, []).append({"sid": csid, "cause": "resource-affinity"})
        return dependent, blocking

    def queue_command(self, command: str) -> None:
        """ha-manager crm-command / migrate: written to the CRM's command file, read next round."""
        self.commands.append(command)

    def set_requested_state(self, guest: SimGuest, state: str) -> None:
        guest.ha_state = state
        self.cluster.revision += 1

    # ----- rules --------------------------------------------------------------------------
    def _compiled(self) -> tuple[dict[str, tuple[dict[str, int], bool]], dict[str, tuple[set[str], set[str]]]]:
        """Rules.pm compile, redone when the rules change: per sid its node priorities (a
        non-strict rule adds every other node at -1, NodeAffinity.pm plugin_compile) and its
        positive and negative resource-affinity partners."""
        stamp = (self.cluster.now, len(self.cluster.ha_rules))
        if stamp == self._rules_stamp:
            return self._rules
        self._rules_stamp = stamp
        key = tuple(
            (r.rule, r.type, r.resources, r.nodes, r.strict, r.affinity, r.disable) for r in self.cluster.ha_rules
        )
        if self._rules_key != key:
            nodes: dict[str, tuple[dict[str, int], bool]] = {}
            partners: dict[str, tuple[set[str], set[str]]] = {}
            for rule in self.cluster.ha_rules:
                if rule.disable:
                    continue
                sids = [part.strip() for part in rule.resources.split(",") if part.strip()]
                if rule.type == "node-affinity" and rule.nodes:
                    priorities: dict[str, int] = {}
                    for part in rule.nodes.split(","):
                        name, _, priority = part.strip().partition(":")
                        priorities[name] = int(priority or 0)
                    if not rule.strict:
                        for name in self.cluster.nodes:
                            priorities.setdefault(name, -1)
                    for sid in sids:
                        nodes.setdefault(sid, (priorities, bool(rule.strict)))
                elif rule.type == "resource-affinity":
                    for sid in sids:
                        together, separate = partners.setdefault(sid, (set(), set()))
                        (together if rule.affinity == "positive" else separate).update(set(sids) - {sid})
            self._rules_key, self._rules = key, (nodes, partners)
        return self._rules

    def node_affinity(self, sid: str, online: list[str]) -> tuple[set[str], set[str]]:
        """Rules/NodeAffinity.pm get_node_affinity: (allowed, highest-priority) online nodes."""
        rule = self._compiled()[0].get(sid)
        if rule is None:
            return set(online), set(online)
        priorities = rule[0]
        allowed = {n for n in online if n in priorities}
        if not allowed:
            return set(), set()
        top = max(priorities[n] for n in allowed)
        return allowed, {n for n in allowed if priorities[n] == top}

    def affinitive(self, sid: str) -> tuple[set[str], set[str]]:
        """The sids ``sid`` must run with (positive) and apart from (negative)."""
        together, separate = self._compiled()[1].get(sid, (set(), set()))
        return set(together), set(separate)

    def _used_nodes(self, sd: Service, online: set[str]) -> tuple[str | None, str | None]:
        """Usage.pm get_used_service_nodes."""
        if sd.state in ("stopped", "request_start"):
            return None, None
        current = sd.node if sd.node in online else None
        target = sd.target if sd.state in ("migrate", "relocate") and sd.target in online else None
        return current, target

    def resource_affinity(self, sid: str, online: list[str]) -> tuple[dict[str, int], set[str]]:
        together_sids, separate_sids = self.affinitive(sid)
        nodes = set(online)
        together: dict[str, int] = {}
        separate: set[str] = set()
        for csid in together_sids:
            if csid in self.services:
                current, target = self._used_nodes(self.services[csid], nodes)
                node = target or current
                if node:
                    together[node] = together.get(node, 0) + 1
        for csid in separate_sids:
            if csid in self.services:
                current, target = self._used_nodes(self.services[csid], nodes)
                separate.update(n for n in (current, target) if n)
        return together, separate

    def select_service_node(self, sid: str, preference: str) -> str | None:
        """Manager.pm select_service_node (failback is on, PVE's default)."""
        sd = self.services[sid]
        online = self.online_nodes()
        nodes, partners = self._compiled()
        if preference == "none" and sid not in nodes and sid not in partners and not sd.maintenance_node:
            if sd.node in online:  # no rule binds it: it stays where it runs
                return sd.node
        _, preferred = self.node_affinity(sid, online)
        if not preferred:
            return None
        together, separate = self.resource_affinity(sid, online)
        preferred -= separate
        candidates = {n for n in together if n in preferred}
        if candidates:
            majority = max(sorted(candidates), key=lambda n: together[n])
            preferred &= {majority}
        if sd.maintenance_node and sd.maintenance_node in preferred:
            return sd.maintenance_node
        if preference == "none" and sd.node in preferred:
            return sd.node
        if not preferred:
            return None
        scores = self._scores(sid)
        return min(preferred, key=lambda n: (scores.get(n, 0.0), n))

    def _scores(self, sid: str) -> dict[str, float]:
        """How loaded each online node would be with the service added (lower is better)."""
        guest = self.guest(sid)
        loads = self.node_loads()
        result = {}
        for name in self.online_nodes():
            node = self.cluster.nodes[name]
            cpu, mem = loads.get(name, (0.0, 0.0))
            if name != guest.node:
                cpu += guest.cores / node.cpus
                mem += guest.memory / node.memory
            result[name] = (cpu + mem) / 2
        return result

    def node_loads(self) -> dict[str, tuple[float, float]]:
        """(cpu, memory) share per online node the CRS scheduler sees: configured cores and memory
        of the running guests for ``static`` (HA/Usage/Static.pm), live usage for ``dynamic``."""
        cluster = self.cluster
        static = self.crs_settings()[0] != "dynamic"
        loads: dict[str, tuple[float, float]] = {}
        for name in self.online_nodes():
            node = cluster.nodes[name]
            guests = [g for g in cluster.guests.values() if g.node == name and g.status == "running"]
            if static:
                loads[name] = (
                    sum(g.cores for g in guests) / node.cpus,
                    sum(g.memory for g in guests) / node.memory,
                )
            else:
                cpu, mem = cluster.node_usage(node, cluster.now, guests)
                loads[name] = (cpu, mem / node.memory)
        return loads

    def crs_settings(self) -> tuple[str, CrsSettings]:
        crs = parse_property_string(str(self.cluster.options.get("crs", "")), "ha")
        return str(crs.get("ha", "basic")), CrsSettings.from_option(crs)

    # ----- the CRM ------------------------------------------------------------------------
    def _first_crm_node(self) -> str | None:
        for name, node in self.cluster.nodes.items():
            if node.reachable and name not in self.crm_stopped:
                return name
        return None

    def _crm_round(self) -> None:
        cluster = self.cluster
        cluster.schedule(cluster.now + CRM_ROUND_SECONDS, self._crm_round)
        if not self.services:
            return
        if not cluster.quorate:
            self._crm_lost_quorum()
            return
        master = self.master
        if master is None or not cluster.nodes[master].reachable or master in self.crm_stopped:
            # a new master needs the manager lock: free at once after a clean stop, else after it expires
            if (
                master is not None
                and master not in self.crm_stopped
                and self.manager_lock_renewed is not None
                and cluster.now - self.manager_lock_renewed < LOCK_TIMEOUT
            ):
                return
            self.master = self._first_crm_node()
            if self.master is None:
                return
            self.say("info", f"successfully acquired lock 'ha_manager_lock' ({self.master} is the new master)")
        self.manager_lock_renewed = cluster.now
        self.crm_watchdog = cluster.now
        self._update_node_status()
        self._process_commands()
        self._load_balance()
        for _ in range(10):
            changed = False
            for sid in sorted(self.services):
                sd = self.services[sid]
                before = sd.state
                self._next_state(sd)
                changed |= sd.state != before
            changed |= self._fence()
            if not changed:
                break
        self.master_timestamp = cluster.now
        cluster.revision += 1

    def _crm_lost_quorum(self) -> None:
        """The master loses its lock without quorum; its watchdog then resets the node."""
        master = self.master
        if master is None or self.crm_watchdog is None or not self.cluster.nodes[master].reachable:
            return
        due = self.crm_watchdog + WATCHDOG_TIMEOUT
        if self.cluster.now >= due:
            self.say("err", f"lost lock 'ha_manager_lock' - watchdog resets node '{master}'")
            self.crm_watchdog = None
            self.master = None
            self.cluster.power.reset_node(master)

    def _change(self, sd: Service, state: str, **params) -> None:
        """Manager.pm change_service_state: keeps node, failed nodes and maintenance node only."""
        old = sd.state
        sd.state = state
        sd.target = params.get("target")
        sd.node = params.get("node", sd.node)
        sd.cmd = None if state != old else sd.cmd
        sd.result = None
        sd.running = False
        sd.timeout = params.get("timeout")
        text = ", ".join(f"{k} = {v}" for k, v in sorted(params.items()))
        self.say(
            "info", f"service '{sd.sid}': state changed from '{old}' to '{state}'" + (f"  ({text})" if text else "")
        )

    def _update_node_status(self) -> None:
        """NodeStatus.pm update: online/maintenance from membership and the LRM's mode."""
        now = self.cluster.now
        for name, node in self.cluster.nodes.items():
            state = self.node_state.get(name, "unknown")
            mode = self.lrms[name].mode
            if node.reachable:
                self.last_online[name] = now
                if state == "online" and mode == "maintenance":
                    self._set_node_state(name, "maintenance")
                elif state in ("unknown", "gone"):
                    self._set_node_state(name, "online")
                elif state == "maintenance" and mode != "maintenance":
                    self._set_node_state(name, "online")
            elif state == "online" or (state == "maintenance" and mode != "maintenance"):
                self._set_node_state(name, "unknown")

    def _set_node_state(self, node: str, state: str) -> None:
        old = self.node_state.get(node, "unknown")
        if old != state:
            self.node_state[node] = state
            self._online = None
            self.say("info", f"node '{node}': state changed from '{old}' => '{state}'")

    def offline_delayed(self, node: str) -> bool:
        if self.node_state.get(node) == "online":
            return False
        return self.cluster.now - self.last_online.get(node, self.cluster.now) >= FENCE_DELAY

    def _process_commands(self) -> None:
        """Manager.pm update_crm_commands."""
        commands, self.commands = self.commands, []
        for command in commands:
            task, sid, arg = command.split()
            sd = self.services.get(sid)
            if sd is None:
                self.say("err", f"crm command error - no such service: {command}")
            elif task == "stop":
                self.say("info", f"got crm command: {command}")
                sd.cmd = ("stop", arg)
            elif self.node_state.get(arg) != "online":
                self.say("err", f"crm command error - node not online: {command}")
            elif arg == sd.node:
                self.say("info", f"ignore crm command - service already on target node: {command}")
            else:
                self.queue_resource_motion(command, task, sid, arg)

    def queue_resource_motion(self, command: str, task: str, sid: str, target: str) -> None:
        """Refused when a negative-affinity partner is (or goes) there; positive partners follow."""
        together, separate = self.affinitive(sid)
        for csid in sorted(separate):
            sd = self.services.get(csid)
            if sd is None or (sd.node and sd.node != target) or (sd.target and sd.target != target):
                continue
            self.say(
                "err",
                f"crm command '{command}' error - service '{csid}' on node '{target}' in"
                f" negative affinity with service '{sid}'",
            )
            return
        self.say("info", f"got crm command: {command}")
        self.services[sid].cmd = (task, target)
        for csid in sorted(together):
            sd = self.services.get(csid)
            if sd is None or sd.node == target or sd.target == target:
                continue
            self.say(
                "info",
                f"crm command '{command}' - {task} service '{csid}' to node '{target}'"
                f" (service '{csid}' in positive affinity with service '{sid}')",
            )
            sd.cmd = (task, target)

    def motion_queued_or_running(self) -> bool:
        return any(
            sd.state in ("migrate", "relocate") or (sd.cmd and sd.cmd[0] in ("migrate", "relocate"))
            for sd in self.services.values()
        )

    def _load_balance(self) -> None:
        """Manager.pm load_balance (crs ha-auto-rebalance): after ``hold-duration`` rounds above the
        threshold, the best single move of a stationary service, if it improves by ``margin``."""
        scheduler, settings = self.crs_settings()
        if not settings.enabled or scheduler not in ("static", "dynamic") or self.motion_queued_or_running():
            return
        loads = {name: (cpu + mem) / 2 for name, (cpu, mem) in self.node_loads().items()}
        if len(loads) < 2:
            return
        current = imbalance(list(loads.values()))
        if current <= settings.threshold:
            self.hold_rounds = 0
            return
        self.hold_rounds += 1
        if self.hold_rounds < settings.hold_rounds:
            return
        self.hold_rounds = 0
        candidates = []
        online = list(loads)
        static = scheduler == "static"
        for sid in sorted(self.services):
            sd = self.services[sid]
            together, _ = self.affinitive(sid)
            if sd.state != "started" or together:
                continue
            guest = self.guest(sid)
            if guest.lock or guest.status != "running":
                continue
            allowed, _ = self.node_affinity(sid, online)
            _, separate = self.resource_affinity(sid, online)
            targets = tuple(sorted(allowed - separate - {sd.node}))
            if not targets:
                continue
            cpu, mem = self.cluster.guest_usage(guest, self.cluster.now)
            load_on = {}
            for name in online:
                node = self.cluster.nodes[name]
                if static:
                    load_on[name] = (guest.cores / node.cpus + guest.memory / node.memory) / 2
                else:
                    load_on[name] = (cpu * guest.cores / node.cpus + mem / node.memory) / 2
            candidates.append(Candidate(guest.vmid, sd.node, load_on, targets + (sd.node,)))
        move = best_move(loads, candidates)
        if move is None or (current - move[2]) / current < settings.margin:
            return
        guest = self.cluster.guests[move[0]]
        task = "migrate" if guest.type == "qemu" else "relocate"
        self.say(
            "info",
            f"auto rebalance - {task} {guest.sid} to {move[1]} "
            f"(expected change for imbalance from {current:.2f} to {move[2]:.2f})",
        )
        self.queue_resource_motion(f"{task} {guest.sid} {move[1]}", task, guest.sid, move[1])

    def _next_state(self, sd: Service) -> None:
        state = sd.state
        guest = self.guest(sd.sid)
        requested = guest.ha_state
        if state == "stopped":
            self._next_stopped(sd, requested)
        elif state == "request_start":
            self._change(sd, "started", node=sd.node)
        elif state == "started":
            self._next_started(sd, requested, guest)
        elif state in ("migrate", "relocate"):
            if sd.result is not None:
                after = "started" if requested == "started" else "request_stop"
                if sd.result:
                    self._change(sd, after, node=sd.target)
                else:
                    self.say("err", f"service '{sd.sid}' - migration failed (exit code 1)")
                    self._change(sd, after, node=sd.node)
            elif self.offline_delayed(sd.node):
                self._change(sd, "fence")
        elif state == "request_stop":
            if sd.result:
                self._change(sd, "stopped")
            elif self.offline_delayed(sd.node):
                self._change(sd, "fence")
        elif state == "recovery":
            self._next_recovery(sd, requested)
        elif state == "freeze":
            lrm = self.lrms[sd.node]
            if lrm.alive and lrm.mode == "active":
                self._change(sd, "started" if requested == "started" else "request_stop")
        if sd.state in ("started", "stopped", "request_stop") and self.lrms[sd.node].mode == "restart":
            self._change(sd, "freeze")

    def _next_stopped(self, sd: Service, requested: str) -> None:
        if sd.cmd:
            task, target = sd.cmd
            sd.cmd = None
            if task in ("migrate", "relocate"):
                if self.node_state.get(target) != "online":
                    self.say("err", f"ignore service '{sd.sid}' {task} request - node '{target}' not online")
                elif sd.node != target:
                    self._change(sd, task, node=sd.node, target=target)
                    return
        if self.offline_delayed(sd.node) and self.node_state.get(sd.node) != "maintenance":
            self._change(sd, "fence")
        elif requested == "started":
            self._change(sd, "request_start", node=sd.node)

    def _next_started(self, sd: Service, requested: str, guest: SimGuest) -> None:
        if self.node_state.get(sd.node) != "online":
            if self.offline_delayed(sd.node):
                self._change(sd, "fence")
            if self.node_state.get(sd.node) != "maintenance":
                return
            sd.maintenance_node = sd.node
        if requested != "started":
            self._change(sd, "request_stop")
            return
        if sd.cmd:
            task, arg = sd.cmd
            sd.cmd = None
            if task == "stop":
                self.say("info", f"request graceful stop with timeout '{arg}' for service '{sd.sid}'")
                self._change(sd, "request_stop", timeout=int(arg))
                self.set_requested_state(guest, "stopped")
            elif self.node_state.get(arg) != "online":
                self.say("err", f"ignore service '{sd.sid}' {task} request - node '{arg}' not online")
            elif sd.node != arg:
                self.say("info", f"{task} service '{sd.sid}' to node '{arg}'")
                self._change(sd, task, node=sd.node, target=arg)
            return
        if sd.result is not None:
            sd.running = sd.result
            sd.result = None
        node = self.select_service_node(sd.sid, "none")
        if node and node != sd.node:
            fallback = sd.maintenance_node
            if fallback is not None and (node == fallback or sd.node != fallback):
                sd.maintenance_node = None
            task = "migrate" if guest.type == "qemu" else "relocate"
            self.say(
                "info", f"{task} service '{sd.sid}' to node '{node}'" + (" (running)" if task == "migrate" else "")
            )
            self._change(sd, task, node=sd.node, target=node)
        elif sd.maintenance_node and sd.node == sd.maintenance_node and self.node_state.get(sd.node) == "online":
            sd.maintenance_node = None

    def _next_recovery(self, sd: Service, requested: str) -> None:
        fenced = sd.node
        node = self.select_service_node(sd.sid, "best-score")
        if node is None:
            self.say("err", f"recovering service '{sd.sid}' from fenced node '{fenced}' failed, no recovery node found")
            return
        self.say("info", f"recover service '{sd.sid}' from fenced node '{fenced}' to node '{node}'")
        guest = self.guest(sd.sid)
        if guest.lock:
            self.say(
                "warning", f"removed leftover lock '{guest.lock}' from recovered service '{sd.sid}' to allow its start."
            )
            guest.lock = None
        guest.node = node
        guest.status = "stopped"
        guest.config_version += 1
        self._change(sd, "started" if requested == "started" else "request_stop", node=node)

    def _fence(self) -> bool:
        """Fences nodes with services in 'fence' once their agent lock is free (fence_node)."""
        changed = False
        fenced: dict[str, bool] = {}
        for sid in sorted(self.services):
            sd = self.services[sid]
            if sd.state != "fence":
                continue
            if sd.node not in fenced:
                fenced[sd.node] = self._fence_node(sd.node)
            if fenced[sd.node]:
                self._change(sd, "recovery")
                changed = True
        for node, state in sorted(self.node_state.items()):
            if state == "fence" and node not in fenced and self._fence_node(node):
                changed = True
        return changed

    def _fence_node(self, node: str) -> bool:
        if self.node_state.get(node) != "fence":
            self._set_node_state(node, "fence")
            self.say("info", f"Try to fence node '{node}'")
        lrm = self.lrms[node]
        held = lrm.lock_renewed is not None and self.cluster.now - lrm.lock_renewed < LOCK_TIMEOUT
        if held:
            return False
        lrm.lock_renewed = None
        self.say("info", f"fencing: acknowledged - got agent lock for node '{node}'")
        self._set_node_state(node, "unknown")
        return True

    # ----- the LRMs -----------------------------------------------------------------------
    def _lrm_starts(self, node: str) -> None:
        lrm = self.lrms[node]
        lrm.alive = True
        lrm.mode = "active"
        lrm.shutdown_request = False
        lrm.on_exit = None
        lrm.workers.clear()
        lrm.stop_jobs.clear()
        lrm.idle_rounds = 0
        lrm.timestamp = self.cluster.now
        if lrm.state != "wait_for_agent_lock":
            lrm.state = "wait_for_agent_lock"
        if self.active_count(node) and self.cluster.quorate and not self._fence_requested(node):
            self._acquire(lrm)
            lrm.state = "active"

    def node_booted(self, node: str) -> None:
        """The node's HA daemons start with it."""
        self.crm_stopped.discard(node)
        if self.services:
            self._lrm_starts(node)

    def node_down(self, node: str) -> None:
        """Power is gone: the daemons die without releasing anything."""
        lrm = self.lrms[node]
        lrm.alive = False
        lrm.workers.clear()
        lrm.stop_jobs.clear()

    def _acquire(self, lrm: Lrm) -> None:
        lrm.lock_renewed = self.cluster.now
        lrm.watchdog = self.cluster.now

    def _release(self, lrm: Lrm) -> None:
        lrm.lock_renewed = None
        lrm.watchdog = None

    def _fence_requested(self, node: str) -> bool:
        return self.node_state.get(node) == "fence" or any(
            sd.node == node and sd.state == "fence" for sd in self._services_at(node)
        )

    def _lrm_round(self) -> None:
        cluster = self.cluster
        cluster.schedule(cluster.now + CRM_ROUND_SECONDS, self._lrm_round)
        if not self.services:
            return
        self._at = {}
        for sd in self.services.values():
            for node in {sd.node, sd.target}:
                if node is not None:
                    self._at.setdefault(node, []).append(sd)
        try:
            for name in cluster.nodes:
                lrm = self.lrms[name]
                if lrm.alive and cluster.nodes[name].reachable:
                    self._lrm_work(name, lrm)
        finally:
            self._at = None
        cluster.revision += 1

    def _lrm_work(self, node: str, lrm: Lrm) -> None:
        """LRM.pm work: state changes first, then the work of that state."""
        cluster = self.cluster
        quorate = cluster.quorate
        fence = self._fence_requested(node)
        self._collect(node, lrm)
        if lrm.state == "wait_for_agent_lock":
            if not fence and self.active_count(node) and quorate:
                self._acquire(lrm)
                lrm.state = "active"
        elif lrm.state == "lost_agent_lock":
            if not fence and quorate:
                self._acquire(lrm)
                lrm.state = "active"
        elif lrm.state == "active":
            if fence or not quorate:
                self._lose_lock(node, lrm)
            elif lrm.mode == "maintenance":
                self._acquire(lrm)
                lrm.state = "maintenance"
            else:
                self._acquire(lrm)
                if not any(sd.node == node for sd in self._services_at(node)) and not lrm.workers:
                    lrm.idle_rounds += 1
                    if lrm.idle_rounds > MAX_ACTIVE_IDLE_ROUNDS:
                        self._release(lrm)
                        lrm.state = "wait_for_agent_lock"
                        lrm.idle_rounds = 0
                else:
                    lrm.idle_rounds = 0
        elif lrm.state == "maintenance":
            if fence or not quorate:
                self._lose_lock(node, lrm)
            elif self.active_count(node) or lrm.workers:
                self._acquire(lrm)
            elif lrm.mode != "maintenance":
                self._acquire(lrm)
                lrm.state = "active"
        if quorate:
            lrm.timestamp = cluster.now
        if lrm.state == "wait_for_agent_lock":
            if lrm.shutdown_request:
                self._lrm_exits(node, lrm)
        elif lrm.state == "active":
            if lrm.shutdown_request:
                if lrm.mode == "restart":
                    if not self.active_count(node) and not lrm.workers and not lrm.stop_jobs:
                        self._release(lrm)
                        self._lrm_exits(node, lrm)
                elif not lrm.workers and not lrm.stop_jobs:
                    self._release(lrm)
                    self._lrm_exits(node, lrm)
            else:
                self._manage(node, lrm)
        elif lrm.state == "maintenance":
            if not self.active_count(node) and not lrm.workers:
                self._release(lrm)
                if lrm.shutdown_request:
                    self._lrm_exits(node, lrm)
                    return
            self._manage(node, lrm)
        elif lrm.state == "lost_agent_lock" and lrm.shutdown_request and not self.active_count(node):
            self._release(lrm)
            self._lrm_exits(node, lrm)

    def _lose_lock(self, node: str, lrm: Lrm) -> None:
        """No quorum or a fence request: the lock is gone and the watchdog is no longer fed."""
        lrm.state = "lost_agent_lock"
        lrm.lock_renewed = None
        self.say("err", f"lost agent lock on node '{node}' - watchdog will reset it unless the lock comes back")
        if lrm.watchdog is not None:
            self.cluster.schedule(lrm.watchdog + WATCHDOG_TIMEOUT, lambda: self._watchdog_expires(node, lrm))

    def _watchdog_expires(self, node: str, lrm: Lrm) -> None:
        due = lrm.watchdog
        if due is None or lrm.state != "lost_agent_lock" or not lrm.alive:
            return
        if self.cluster.now - due < WATCHDOG_TIMEOUT:
            return
        self.say("emerg", f"watchdog expired on node '{node}' - self-fence (reset)")
        lrm.watchdog = None
        self.cluster.power.reset_node(node)

    def _lrm_exits(self, node: str, lrm: Lrm) -> None:
        lrm.alive = False
        lrm.watchdog = None
        callback, lrm.on_exit = lrm.on_exit, None
        if callback is not None:
            callback()

    def _collect(self, node: str, lrm: Lrm) -> None:
        """Finished workers report their result to the CRM (through the LRM status)."""
        now = self.cluster.now
        for sid, task in list(lrm.workers.items()):
            guest = self.guest(sid)
            if task.running(now) or guest.vmid in self.cluster.migrations:
                continue
            del lrm.workers[sid]
            sd = self.services.get(sid)
            if sd is not None:
                sd.result = task.exitstatus == "OK"
        for sid, task in list(lrm.stop_jobs.items()):
            if not task.running(now):
                del lrm.stop_jobs[sid]

    def _manage(self, node: str, lrm: Lrm) -> None:
        """LRM.pm manage_resources: make the node's guests match their service state."""
        for sd in sorted(self._services_at(node), key=lambda sd: sd.sid):
            sid = sd.sid
            if sd.node != node or sid in lrm.workers or sd.result is not None:
                continue
            guest = self.guest(sid)
            if guest.node != node:
                continue
            task = None
            try:
                if sd.state == "started":
                    if guest.status == "running":
                        if not sd.running:
                            sd.result = True
                        continue
                    task = self.cluster.power.agent_power(guest, "start")
                elif sd.state in ("request_stop", "stopped"):
                    if guest.status != "running":
                        if sd.state == "request_stop":
                            sd.result = True
                        continue
                    task = self.cluster.power.agent_power(guest, "shutdown", timeout=sd.timeout or 60)
                elif sd.state in ("migrate", "relocate") and sd.target:
                    task = self.cluster.ha_motion(guest, sd.target, relocate=sd.state == "relocate")
            except PveApiError as exc:
                self.say("err", f"service {sid}: {exc.message}")
                sd.result = False
                continue
            if task is not None:
                lrm.workers[sid] = task

    # ----- node shutdown ------------------------------------------------------------------
    def shutdown_request(self, node: str, *, reboot: bool, on_exit: Callable[[], None]) -> None:
        """LRM.pm shutdown_request: what ``ha: shutdown_policy`` does with the node's services."""
        lrm = self.lrms[node]
        if not self.services or not lrm.alive:
            on_exit()
            return
        policy = self.shutdown_policy()
        self.say("info", f"got shutdown request with shutdown policy '{policy}'")
        lrm.shutdown_request = True
        lrm.on_exit = on_exit
        if policy == "migrate":
            lrm.mode = "maintenance"
            self.say(
                "info",
                f"{'reboot' if reboot else 'shutdown'} LRM, doing maintenance, removing this node from active list",
            )
        else:
            freeze = policy == "freeze" or (policy == "conditional" and reboot)
            lrm.mode = "restart" if freeze else "shutdown"
            for sid in sorted(self.services):
                guest = self.guest(sid)
                if self.services[sid].node == node and guest.node == node and guest.status == "running":
                    lrm.stop_jobs[sid] = self.cluster.power.agent_power(guest, "shutdown", timeout=60)
        self._lrm_work(node, lrm)

    def shutdown_policy(self) -> str:
        ha = parse_property_string(str(self.cluster.options.get("ha", "")), "shutdown_policy")
        policy = str(ha.get("shutdown_policy", "conditional"))
        return policy if policy in ("conditional", "freeze", "failover", "migrate") else "conditional"

    def crm_stops(self, node: str) -> None:
        """pve-ha-crm stops with its node: a master hands the manager lock over at once."""
        self.crm_stopped.add(node)
