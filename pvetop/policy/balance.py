"""The balancer's decisions: how uneven the cluster is, whether to act, and which guests to move.

Node load is Proxmox VE's CRS figure, the share of CPU and memory in use averaged (the weights
are settings); imbalance is the coefficient of variation of the node loads divided by √(n−1),
0 when even and 1 when one node carries everything. Because that figure shrinks as nodes are
added, the threshold and the minimum gain per move are stated for three nodes and scaled to the
node count (the same spread of loads triggers, the same move counts); a wide memory spread with
a hot node triggers balancing too. Once auto mode has started moving guests it balances on, plan
after plan, until no plan is left (or imbalance is below ``balancer.settle`` of the threshold):
a plan is cut at ``MAX_MOVES`` and the worker re-plans after each batch, so without this auto
would drop the rest of the plan it showed as soon as the cluster read just below the threshold.

The planner is greedy on gain per GiB moved (a live migration copies the guest's memory): at
every step it takes the allowed move that lowers imbalance most per GiB (within ``CLOSE_ENOUGH``
of it, so a plan of a hundred moves on a thousand guests stays well under a second), re-projects
the cluster and goes on while some move still gains at least ``min_gain``; an earlier move can free the room
a later one needs. A greedy plan is then polished: moves the others made unnecessary are dropped
and big moves are replaced by cheaper ones that reach the same imbalance (or any below ``EVEN``,
where the cluster counts as even), the result is put in an order where each move gains, and the
greedy finishes it. Beside the greedy runs, a plan is built by trading GiB for evenness at a
rising price, where no move is final (small guests taken early give way to bigger ones that pay
better). Balancing on below the threshold, where auto stops once below ``balancer.settle`` of
it, the plan is the cheapest one found that gets there. Every rule is hard here: pins,
locks, reserved and maintenance nodes, PVE's HA rules (an HA guest only goes to its
highest-priority nodes, or the HA manager moves it back), ProxLB tags, PVE's migrate
precondition, the memory cap, and the destination staying below the source's load. Guests
that would have helped but may not move are returned with the reason. Pure: plain data in and
out, time is an argument.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from pvetop.model import ClusterSnapshot, Guest, MigratePrecondition, Node
from pvetop.policy.constraints import (
    BLOCKING,
    Constraints,
    Kind,
    ha_comigrates,
    ha_local_disks_problem,
    ha_preferred_nodes,
)
from pvetop.policy.metrics import imbalance as imbalance_of
from pvetop.policy.metrics import imbalance_change, imbalance_text
from pvetop.policy.placement import PlannedMove, affinity_units, planned_move
from pvetop.policy.projection import Demand, ProjectedCluster
from pvetop.policy.rules import RuleSet, proxlb_tags
from pvetop.policy.settings import SettingSpec, boolean, choice, fraction, number

GIB = 1024**3
MIN_GIB_COST = 0.25  # a guest using almost no memory still costs a migration: never divide by ~0
MAX_MOVES = 100  # one plan never runs away; the engine re-plans after every move anyway
EVEN_ENOUGH = 0.01  # imbalance two plans may differ by and still count as reaching the same
# imbalance below which a cluster counts as even: polishing may give up the rest of it for fewer
# GiB (the greedy that finishes a polished plan still takes what is cheap below it)
EVEN = EVEN_ENOUGH / 2
CLOSE_ENOUGH = 0.02  # a move whose gain per GiB is this close to the best one judged before may be taken
TARGETS_PER_STEP = 8  # coolest nodes with room a freely movable guest is tried on at each step
POLISH_ROUNDS = 3  # polish, re-order and finish a greedy plan at most this often
WORK_BUDGET = 150_000  # candidate moves one plan may judge, two greedy runs made whatever (~0.1 s at 200 guests)
OTHER_FIRST_MOVES = 3  # greedy runs that start with another of the best first moves, budget allowing
PAIRS_OF = 6  # polishing tries replacing each pair among this many biggest moves
CLOSING_PAIRS_OF = 12  # a refill tries closing the gap with two of this many best moves
TRADE_STEP = 2.0  # trading: the price of evenness doubles from one round to the next …
TRADE_ROUNDS = 16  # … at most this often before the goal is given up
SETTLE_PRICE = 0.25  # a plan for the settle level starts at this share of the price the full plan paid
MODES = ("off", "advise", "auto")


def _percent(text: str) -> float:
    return float(number(1, 100)(text))


BALANCER_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("balancer.mode", "advise", "off, advise (show a plan to apply) or auto (act)", choice(*MODES), MODES),
    SettingSpec(
        "balancer.threshold",
        0.25,
        "imbalance that calls for balancing: 0.25 or 25% (0 even .. 1 all on one node), on 3 nodes; "
        "on n > 3 nodes × √(2/(n−1)), the same spread of loads (6.6% at 30 nodes)",
        fraction(0.01, 1),
    ),
    SettingSpec(
        "balancer.settle",
        0.5,
        "once auto has started moving guests, it goes on until imbalance is below this share of the "
        "threshold (0: until no plan is left, as far as the plan shown; 0.5 or 50%: half of it)",
        fraction(0, 1),
    ),
    SettingSpec(
        "balancer.memory_spread", 20.0, "memory spread (max − min, points) that calls for balancing …", number(1, 100)
    ),
    SettingSpec("balancer.hot_node", 60.0, "… when the hottest node's memory is above this %", number(1, 100)),
    SettingSpec(
        "balancer.hold", 3, "evaluations in a row the trigger must hold before auto acts", number(1, 100, integer=True)
    ),
    SettingSpec(
        "balancer.min_cut", 0.10, "a plan must cut imbalance by this fraction of it (0.1 or 10%)", fraction(0, 1)
    ),
    SettingSpec(
        "balancer.min_gain",
        0.001,
        "a move must lower imbalance by at least this much, on 3 nodes; on n > 3 nodes × 6/(n·(n−1)), "
        "what the same move gains there",
        number(0, 1),
    ),
    SettingSpec("balancer.memory_cap", 80.0, "a destination's memory stays below this % after a move", _percent),
    SettingSpec("balancer.cooldown_minutes", 30.0, "a moved guest stays put this long", number(0, 10080)),
    SettingSpec(
        "balancer.cooldown_backoff", 2.0, "each repeat move within a day multiplies the cooldown by this", number(1, 10)
    ),
    SettingSpec("balancer.cpu_weight", 1.0, "weight of the CPU share in a node's load", number(0, 10)),
    SettingSpec("balancer.mem_weight", 1.0, "weight of the memory share in a node's load", number(0, 10)),
    SettingSpec("balancer.restart_containers", False, "move running containers (restart migration: downtime)", boolean),
    SettingSpec("balancer.local_disks", False, "move VMs with local disks (copies the disks along)", boolean),
    SettingSpec(
        "balancer.proxlb_tags", True, "honour ProxLB tags (plb_pin_*, plb_ignore*, plb_(anti_)affinity_*)", boolean
    ),
    SettingSpec(
        "balancer.smoothing", 5, "polls averaged into the loads the balancer plans on", number(1, 60, integer=True)
    ),
)


@dataclass(frozen=True, slots=True)
class BalancerConfig:
    """The settings the planner and the worker read, in the units they compute with."""

    mode: str = "advise"
    threshold: float = 0.25
    settle: float = 0.5  # share of the threshold a started balancing goes down to (0: to the end)
    memory_spread: float = 20.0  # points
    hot_node: float = 0.60  # fraction
    hold: int = 3
    min_cut: float = 0.10
    min_gain: float = 0.001
    memory_cap: float = 0.80  # fraction
    cooldown_minutes: float = 30.0
    cooldown_backoff: float = 2.0
    cpu_weight: float = 1.0
    mem_weight: float = 1.0
    restart_containers: bool = False
    local_disks: bool = False
    proxlb_tags: bool = True
    smoothing: int = 5

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> BalancerConfig:
        """From ``SettingsRegistry.effective`` values (``balancer.*`` keys; percents become fractions)."""

        percent = {"hot_node", "memory_cap"}
        fields = {}
        for spec in BALANCER_SETTINGS:
            name = spec.key.removeprefix("balancer.")
            value = values.get(spec.key, spec.default)
            fields[name] = value / 100 if name in percent else value
        config = cls(**fields)
        if config.cpu_weight + config.mem_weight <= 0:
            return replace(config, cpu_weight=1.0, mem_weight=1.0)
        return config


# ---------------------------------------------------------------------------------------------
# figures


@dataclass(frozen=True)
class Measure:
    """Load and memory of the balanced nodes (online, not reserved, not in maintenance)."""

    loads: Mapping[str, float]
    memory: Mapping[str, float]  # fraction in use
    imbalance: float
    memory_spread: float  # points
    hottest: str | None  # by memory
    mean: float

    @property
    def hottest_memory(self) -> float:
        return self.memory[self.hottest] if self.hottest is not None else 0.0


def node_load(cpu_fraction: float, mem_fraction: float, config: BalancerConfig) -> float:
    weights = config.cpu_weight + config.mem_weight
    return (config.cpu_weight * cpu_fraction + config.mem_weight * mem_fraction) / weights


def balanced_nodes(snapshot: ClusterSnapshot, rules: RuleSet) -> tuple[str, ...]:
    """Nodes the balancer evens out: online ones the user did not set aside (reserved, maintenance)."""
    kept_out = rules.reserved | rules.maintenance
    return tuple(sorted(node.name for node in snapshot.nodes if node.online and node.name not in kept_out))


def measure_projection(projection: ProjectedCluster, nodes: Sequence[str], config: BalancerConfig) -> Measure:
    loads = {}
    memory = {}
    for name in nodes:
        usage = projection.usage_of(name)
        loads[name] = node_load(usage.cpu_fraction, usage.mem_fraction, config)
        memory[name] = usage.mem_fraction
    values = list(loads.values())
    hottest = max(sorted(memory), key=lambda name: memory[name]) if memory else None
    spread = (max(memory.values()) - min(memory.values())) * 100 if memory else 0.0
    return Measure(
        loads=MappingProxyType(loads),
        memory=MappingProxyType(memory),
        imbalance=imbalance_of(values),
        memory_spread=spread,
        hottest=hottest,
        mean=sum(values) / len(values) if values else 0.0,
    )


def measure(snapshot: ClusterSnapshot, rules: RuleSet, config: BalancerConfig) -> Measure:
    return measure_projection(ProjectedCluster.of(snapshot), balanced_nodes(snapshot, rules), config)


def trigger_threshold(config: BalancerConfig, nodes: int) -> float:
    """``balancer.threshold`` for a cluster of ``nodes`` balanced nodes.

    The setting is stated for three nodes. Imbalance is the loads' coefficient of variation over
    √(n−1), so the same relative spread of loads reads lower on more nodes; a larger cluster
    triggers at the same coefficient of variation as three nodes at the threshold, i.e. at
    threshold · √(2 / (n − 1)) (0.066 at 30 nodes for 0.25). Two nodes keep it as set.
    """
    return config.threshold * min(1.0, math.sqrt(2 / (nodes - 1))) if nodes > 1 else config.threshold


def move_gain_floor(config: BalancerConfig, nodes: int) -> float:
    """``balancer.min_gain`` for a cluster of ``nodes`` balanced nodes.

    The setting is stated for three nodes. The same move (the same load taken from a node as
    far above the mean to one as far below) lowers imbalance by about 1 / (n · (n − 1)) as much
    at the same imbalance, so on n nodes a move must gain min_gain · 6 / (n · (n − 1)) (1/145 of
    it at 30 nodes). Two nodes keep it as set.
    """
    return config.min_gain * min(1.0, 6 / (nodes * (nodes - 1))) if nodes > 1 else config.min_gain


def _digits(threshold: float) -> int:
    """Decimals of a percentage beside a scaled threshold (6.6 % at 30 nodes), none beside a whole one."""
    return 0 if abs(threshold * 100 - round(threshold * 100)) < 1e-6 else 1


def memory_triggered(figures: Measure, config: BalancerConfig) -> bool:
    """A wide memory spread with a hot node: imbalance alone misses it on many nodes (30 nodes with
    one at 85 % memory and the rest near 10 % read 0.10)."""
    return figures.memory_spread > config.memory_spread and figures.hottest_memory > config.hot_node


def trigger_reason(figures: Measure, config: BalancerConfig, *, balancing: bool = False) -> str | None:
    """Why the cluster needs balancing now, or None when it is even enough.

    ``balancing``: the worker has started moving guests for an earlier trigger, which then holds
    until imbalance is below ``balancer.settle`` of the threshold (the rest of what it started)."""
    threshold = trigger_threshold(config, len(figures.loads))
    if figures.imbalance > threshold:
        digits = _digits(threshold)
        now, limit = imbalance_text(figures.imbalance, digits=digits), imbalance_text(threshold, digits=digits)
        return f"imbalance {now} above {limit}"
    if memory_triggered(figures, config):
        return (
            f"memory spread {figures.memory_spread:.0f} points (over {config.memory_spread:.0f}) with "
            f"{figures.hottest} at {figures.hottest_memory:.0%} (over {config.hot_node:.0%})"
        )
    settle = threshold * config.settle
    if balancing and figures.imbalance > settle:
        now, limit = imbalance_text(figures.imbalance, digits=1), imbalance_text(settle, digits=1)
        return f"balancing on: imbalance {now} above {limit} ({config.settle:.0%} of the threshold)"
    return None


@dataclass(frozen=True, slots=True)
class TriggerState:
    """How many evaluations in a row found the trigger, so auto acts only on a lasting imbalance,
    and whether auto is balancing (it moved guests for this trigger: it goes on to ``settle``)."""

    held: int = 0
    reason: str | None = None
    balancing: bool = False

    def next(self, reason: str | None, *, moves: bool = True) -> TriggerState:
        """After an evaluation that found ``reason`` and a plan with or without ``moves``: a
        balancing that has nothing left to move is over."""
        if reason is None:
            return TriggerState()
        return TriggerState(self.held + 1, reason, self.balancing and moves)

    def acted(self) -> TriggerState:
        return replace(self, balancing=True)

    def ready(self, config: BalancerConfig) -> bool:
        return self.reason is not None and self.held >= config.hold


def smooth(snapshots: Sequence[ClusterSnapshot]) -> ClusterSnapshot:
    """The newest snapshot with node and guest CPU and memory averaged over ``snapshots``.

    A burst in one poll does not move guests. Only entities that sit where they sat in the
    newest snapshot are averaged (a guest that moved meanwhile counts only from its new node);
    callers start a fresh window after a migration so node figures never mix before and after.
    """
    if not snapshots:
        raise ValueError("nothing to smooth")
    latest = snapshots[-1]
    if len(snapshots) == 1:
        return latest
    node_sums: dict[str, list[float]] = {node.name: [0.0, 0.0, 0] for node in latest.nodes}
    guest_sums: dict[int, list[float]] = {guest.vmid: [0.0, 0.0, 0] for guest in latest.guests}
    latest_node_of = {guest.vmid: guest.node for guest in latest.guests}
    for snap in snapshots:
        for node in snap.nodes:
            sums = node_sums.get(node.name)
            if sums is not None and node.online:
                sums[0] += node.cpu
                sums[1] += node.mem
                sums[2] += 1
        for guest in snap.guests:
            sums = guest_sums.get(guest.vmid)
            if sums is not None and guest.running and latest_node_of[guest.vmid] == guest.node:
                sums[0] += guest.cpu
                sums[1] += guest.mem
                sums[2] += 1

    def node_avg(node: Node) -> Node:
        cpu, mem, count = node_sums[node.name]
        return replace(node, cpu=cpu / count, mem=int(mem / count)) if node.online and count else node

    def guest_avg(guest: Guest) -> Guest:
        cpu, mem, count = guest_sums[guest.vmid]
        return replace(guest, cpu=cpu / count, mem=int(mem / count)) if guest.running and count else guest

    return replace(
        latest,
        nodes=tuple(node_avg(node) for node in latest.nodes),
        guests=tuple(guest_avg(guest) for guest in latest.guests),
    )


def cooldown_until(moved_at: Sequence[float], config: BalancerConfig) -> float:
    """When a guest the balancer moved at ``moved_at`` (epoch seconds) may move again.

    Each move within a day of the previous one multiplies the cooldown by the backoff, so a guest
    that keeps being the best candidate settles instead of travelling.
    """
    if not moved_at:
        return 0.0
    times = sorted(moved_at)
    repeats = 0
    for earlier, later in zip(times, times[1:], strict=False):
        repeats = repeats + 1 if later - earlier < 86400 else 0
    return times[-1] + config.cooldown_minutes * 60 * config.cooldown_backoff**repeats


# ---------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True, slots=True)
class BalanceMove:
    """One step of the plan, with the figure it leads to."""

    move: PlannedMove
    gib: float
    imbalance_after: float
    # PVE's HA manager migrates positive-affinity partners along with the guest asked for
    # (pve-ha-manager Manager.pm queue_resource_motion): this one then needs no request of its own
    follows: int | None = None

    @property
    def vmid(self) -> int:
        return self.move.vmid


@dataclass(frozen=True, slots=True)
class Held:
    """A guest that would have helped but is left alone, and why."""

    vmid: int
    name: str
    node: str
    reason: str


@dataclass(frozen=True)
class BalancePlan:
    before: Measure
    after: Measure
    moves: tuple[BalanceMove, ...]
    held: tuple[Held, ...]
    trigger: str | None  # why the cluster needs balancing; None when even
    summary: str  # one sentence for the UI and the journal
    unchecked: frozenset[int] = frozenset()  # planned VMs whose migrate precondition was not read
    planned_at: float = 0.0
    projection: ProjectedCluster | None = field(default=None, compare=False, repr=False)

    @property
    def gib(self) -> float:
        return sum(move.gib for move in self.moves)

    def as_json(self) -> dict[str, Any]:
        """The shape ``pvetop plan --json`` prints."""
        return {
            "imbalance_before": round(self.before.imbalance, 4),
            "imbalance_after": round(self.after.imbalance, 4),
            "moves": [
                {
                    "vmid": step.move.vmid,
                    "name": step.move.name,
                    "from": step.move.source,
                    "to": step.move.target,
                    "gib": round(step.gib, 2),
                    "reason": step.move.reason,
                    "imbalance_after": round(step.imbalance_after, 4),
                }
                for step in self.moves
            ],
            "held": [{"vmid": item.vmid, "name": item.name, "reason": item.reason} for item in self.held],
        }


@dataclass(slots=True)
class _Path:
    """A plan being built: the units moved (position, target) in order, their moves, where it leads."""

    steps: list[tuple[int, str]]
    moves: list[BalanceMove]
    projection: ProjectedCluster

    @property
    def gib(self) -> float:
        return sum(step.gib for step in self.moves)


@dataclass(frozen=True, slots=True)
class _Unit:
    """Guests that move together (positive affinity), with what they take along."""

    guests: tuple[Guest, ...]
    source: str
    cores: float
    mem: int
    targets: tuple[str, ...]  # nodes the static rules allow, its own included (pins, HA priorities, ProxLB pins)
    narrowed_by: str | None = None  # the rule that keeps it off the other nodes
    gib: float = field(init=False)  # what moving it costs; read in the search's inner loops, so kept

    def __post_init__(self) -> None:
        object.__setattr__(self, "gib", max(self.mem / GIB, MIN_GIB_COST))

    @property
    def vmids(self) -> tuple[int, ...]:
        return tuple(guest.vmid for guest in self.guests)


class _Planner:
    """One planning run: the rules indexed once, the projection advanced move by move."""

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        rules: RuleSet,
        config: BalancerConfig,
        *,
        now: float,
        cooldowns: Mapping[int, float],
        preconditions: Mapping[int, MigratePrecondition],
        max_moves: int = MAX_MOVES,
    ) -> None:
        if config.proxlb_tags and not rules.import_proxlb_tags:
            rules = replace(rules, import_proxlb_tags=True)
        self.snapshot = snapshot
        self.rules = rules
        self.config = config
        self.now = now
        self.cooldowns = cooldowns
        self.preconditions = preconditions
        self.max_moves = max_moves
        self.constraints = Constraints(snapshot, rules)
        self.nodes = balanced_nodes(snapshot, rules)
        # every rule is hard for an automatic move; copying local disks only when the user allows it
        self.blocking = BLOCKING["auto"] if config.local_disks else BLOCKING["auto"] | {Kind.LOCAL_DISKS}
        self.ha_targets = self._ha_targets()
        self.held: dict[int, str] = {}  # vmid -> why it may not move at all
        self.movable: list[_Unit] = []
        self.reach: list[tuple[int, ...]] = []  # per movable unit: indexes of the nodes its static rules allow
        self.on_node: list[list[int]] = []  # per node index: the movable units on it
        self.budget = WORK_BUDGET  # candidate moves the search may still judge
        self.floor = 0  # the budget the current polishing leaves untouched
        self.resuming = False  # the plan found is the rest of the one being carried out (``search``)

    # --- who may move where, whatever the load ---------------------------------------------------

    def _ha_targets(self) -> dict[int, frozenset[str]]:
        """Per guest in an HA node-affinity rule: its highest-priority online nodes.

        PVE's CRM keeps a service only on the top priority group of its rule among online nodes
        and migrates it there otherwise (pve-ha-manager Manager.pm select_service_node), so any
        other node would be undone; a non-strict rule with none of its nodes online allows any.
        """
        online = {node.name for node in self.snapshot.online_nodes}
        vmid_by_sid = {guest.sid: guest.vmid for guest in self.snapshot.guests}
        allowed: dict[int, frozenset[str]] = {}
        for rule in self.snapshot.ha_rules:
            if rule.disabled or rule.type != "node-affinity":
                continue
            nodes = ha_preferred_nodes(rule, online)
            if nodes is None:
                nodes = frozenset() if rule.strict else frozenset(online)
            for sid in rule.resources:
                vmid = vmid_by_sid.get(sid)
                if vmid is not None:
                    allowed[vmid] = allowed.get(vmid, nodes) & nodes
        return allowed

    def _guest_hold(self, guest: Guest) -> str | None:
        """Why this guest may not move anywhere, or None."""
        rules, config = self.rules, self.config
        if guest.vmid in rules.locks:
            return "locked"
        if guest.lock:
            return f"locked by Proxmox VE ({guest.lock})"
        if guest.node in rules.reserved:
            return f"on reserved node {guest.node}"
        if guest.node in rules.maintenance:
            return f"on maintenance node {guest.node} (evacuation moves it)"
        if guest.node not in self.nodes:  # PVE lists a dead node's guests as they were last seen
            return f"on {guest.node}, which is not online"
        tags = proxlb_tags(guest, rules)
        if tags.ignore:
            return "ProxLB tag plb_ignore"
        if guest.ha_managed and self.snapshot.crs.ha_auto_rebalance:
            return "HA guest: PVE rebalances it (crs ha-auto-rebalance)"
        until = self.cooldowns.get(guest.vmid, 0.0)
        if until > self.now:
            return f"cooldown ({math.ceil((until - self.now) / 60)} min left)"
        if guest.type == "lxc" and not config.restart_containers:
            return "container (restart migration is off: balancer.restart_containers)"
        precondition = self.preconditions.get(guest.vmid)
        if precondition is not None:
            if precondition.local_resources:
                return f"local resources ({', '.join(precondition.local_resources)})"
            if ha_local_disks_problem(guest, precondition) is not None:
                return "local disk (HA guest)"
            if precondition.local_disks and guest.type == "qemu" and not config.local_disks:
                return "local disk"
        return None

    def _static_targets(self, guest: Guest) -> tuple[frozenset[str], str | None]:
        """Nodes the guest's own rules allow (its own node included), and the rule that narrowed them."""
        allowed = frozenset(self.nodes)
        why = None
        pinned = self.rules.pinned_to(guest.vmid)
        if pinned is not None:
            allowed &= pinned
            why = f"pinned to {', '.join(sorted(pinned))}"
        tags = proxlb_tags(guest, self.rules)
        if tags.pins:
            allowed &= tags.pins
            why = why or f"ProxLB pin to {', '.join(sorted(tags.pins))}"
        ha = self.ha_targets.get(guest.vmid)
        if ha is not None:
            if not (allowed & ha) - {guest.node}:
                rule = next(
                    (r.rule for r in self.snapshot.ha_rules if r.type == "node-affinity" and guest.sid in r.resources),
                    "?",
                )
                why = f"HA rule '{rule}'"
            allowed &= ha
        return allowed, why

    def units(self) -> list[_Unit]:
        """Movable units, each with its statically allowed targets; holds go to ``self.held``."""
        units = []
        running = tuple(g for g in self.snapshot.guests if g.running and g.node in self.snapshot.node_by_name)
        for group in affinity_units(self.constraints, running):
            sources = {guest.node for guest in group}
            # a partner that is stopped or elsewhere makes the group immovable as a whole
            members = {g.vmid for g in group}
            partners = set().union(*(self.constraints.positive_partners(g) for g in group))
            reason = None
            if len(sources) > 1 or partners - members:
                reason = "affinity partners not together on one node"
            # moved as one, they land on one node: anti-affinity among them is broken wherever they go
            apart = [g.vmid for g in group if len(group) > 1 and self.constraints.negative_partners(g) & members]
            if apart:
                reason = f"affinity and anti-affinity rules conflict ({', '.join(map(str, sorted(apart)))})"
            for guest in group:
                reason = reason or self._guest_hold(guest)
            targets = frozenset(self.nodes)
            narrowed_by = None
            for guest in group:
                allowed, why = self._static_targets(guest)
                targets &= allowed
                narrowed_by = narrowed_by or why
                if not targets - {guest.node} and reason is None:
                    reason = why or "no other node to go to"
            if reason is not None:
                for guest in group:
                    self.held[guest.vmid] = reason
                continue
            demand = sum((Demand.of(g) for g in group), Demand())
            units.append(
                _Unit(
                    guests=tuple(sorted(group, key=lambda g: g.vmid)),
                    source=group[0].node,
                    cores=demand.cpu_cores,
                    mem=demand.mem,
                    targets=tuple(sorted(targets)),
                    narrowed_by=narrowed_by,
                )
            )
        units.sort(key=lambda unit: unit.guests[0].vmid)
        return units

    # --- the dynamic rules: anti-affinity, partners, memory, PVE's precondition ------------------

    def blocks(self, unit: _Unit, target: str, projection: ProjectedCluster) -> list[str]:
        companions = frozenset(unit.vmids)
        demand = Demand(unit.cores, unit.mem, 0)
        found: list[str] = []
        for guest in unit.guests:
            for finding in self.constraints.findings(
                guest,
                target,
                projection=projection,
                demand=demand,
                mem_ceiling=self.config.memory_cap,
                precondition=self.preconditions.get(guest.vmid),
                companions=companions,
            ):
                if finding.kind in self.blocking and finding.text not in found:
                    found.append(finding.text)
        return found

    # --- the search ------------------------------------------------------------------------------

    def search(
        self, settle: float | None = None, resume: Mapping[int, str] | None = None
    ) -> tuple[list[BalanceMove], ProjectedCluster]:
        """Greedy runs, the promising ones polished to fewer GiB at the imbalance they reached, then
        finished greedily.

        The greedy by gain per GiB moves small guests first and can strand the plan above what a few
        bigger moves reach, so the greedy by plain gain runs too, and while the work budget lasts the
        greedy by gain per √GiB and greedy runs that start with another of the best first moves (each
        only when the budget left covers what the last run took: one started on the last crumbs overruns
        it by most of a run). Then the runs that can win (within ``EVEN_ENOUGH`` of the lowest
        imbalance) are polished, the fewest GiB first, while the budget lasts: moves dropped or replaced
        by cheaper ones while the imbalance reached (or ``EVEN``) still holds, put back in an order
        where every move gains, and continued greedily until no unmoved guest gains: planning again on
        the result finds nothing. A run stranded higher is not polished: no polishing makes it win, and
        the budget it would take is short where it counts. Of the plans within ``EVEN_ENOUGH`` of the
        lowest imbalance, the one moving the fewest GiB wins (then the fewest moves); where those are
        all cut at the move cap, the cut plan that lowers imbalance most per GiB (a first instalment:
        the worker plans on from its end, and the plan that goes furthest in 100 moves does so with big
        guests). Beside the greedy runs, a plan built by trading (``trade``) competes.

        ``settle``: balancing on, auto stops below this imbalance; the plan is the cheapest one
        that gets there (``_to_settle``).

        ``resume``: the moves (vmid -> node) left of the plan auto is carrying out. They compete as
        one more plan, so that planning again after a batch never costs more than finishing the
        plan it started: each fresh search goes its own way, and following a new one after every
        batch adds up to more GiB than any of them. That rest need not cut imbalance by
        ``min_cut`` on its own: the plan it is the rest of did, as a whole.
        """
        start = ProjectedCluster.of(self.snapshot)
        self.movable = self.units()
        if len(self.nodes) < 2:
            return [], start
        index = {name: i for i, name in enumerate(self.nodes)}
        self.reach = [tuple(index[name] for name in unit.targets) for unit in self.movable]
        self.on_node = [[] for _name in self.nodes]
        for position, unit in enumerate(self.movable):
            self.on_node[index[unit.source]].append(position)
        self.budget = WORK_BUDGET
        empty = _Path([], [], start)
        settled: _Path | None = None  # the plan traded for the settle level
        starts: list[tuple[_Path, float]] = [(empty, 1.0), (empty, 0.0), (empty, 0.5)]
        # the best first moves by plain gain after the one the greedy by gain takes
        for position, target in self.best_moves(empty, 0.0, 1 + OTHER_FIRST_MOVES)[1:]:
            first = self.sequence({position: target})
            starts += [(first, 1.0), (first, 0.0)]
        runs: list[tuple[_Path, float]] = []
        last_run = 0  # the budget the last greedy run took: the next one takes about as much
        for run, (seed, alpha) in enumerate(starts):
            if run >= 2 and self.budget < last_run:
                break
            left = self.budget
            runs.append((self.greedy(seed, alpha), alpha))
            last_run = left - self.budget
            if run == 2:  # the three greedy runs from scratch are in: trading aims where they got
                traded = self._traded(runs)
                if traded is not None:
                    runs.append((traded, 1.0))
                if settle is not None:
                    settled = self._settle_traded(settle, min((path for path, _alpha in runs), key=lambda p: p.gib))
        resumed = self._resumed(resume) if resume else None
        options = [(path, self.imbalance_of(path)) for path, _alpha in runs]
        # polishing goes to the plans that can win, the fewest GiB first: a plan ending more than
        # EVEN_ENOUGH above the lowest is never chosen, however few GiB polishing leaves it
        lowest = min(imbalance for _path, imbalance in options)
        promising = sorted(
            (run for run, (_path, imbalance) in zip(runs, options, strict=True) if imbalance <= lowest + EVEN_ENOUGH),
            key=lambda run: run[0].gib,
        )
        for path, alpha in promising:
            self.floor = self.budget // 2  # polishing one plan leaves half of what is left to the others
            for _round in range(POLISH_ROUNDS):
                placed = self.polish(dict(path.steps)) if self.budget > self.floor else None
                if placed is None:
                    break
                path = self.greedy(self.sequence(placed), alpha)
                options.append((path, self.imbalance_of(path)))
                lowest = min(lowest, options[-1][1])
        if resumed is not None:
            options.append((resumed, self.imbalance_of(resumed)))
        lowest = min(imbalance for _path, imbalance in options)
        eligible = [path for path, imbalance in options if imbalance <= lowest + EVEN_ENOUGH]
        best = min(eligible, key=lambda path: (path.gib, len(path.moves)))
        if all(len(path.moves) >= self.max_moves for path in eligible):
            # the cap binds: the plan is a first instalment (the worker plans on from where it
            # ends), and the instalment that lowers imbalance most per GiB is worth most
            initial = self.imbalance_of(empty)
            cut = [(path, imbalance) for path, imbalance in options if len(path.moves) >= self.max_moves]
            best = max(cut, key=lambda option: ((initial - option[1]) / option[0].gib, -len(option[0].moves)))[0]
        # the same moves, the best gain per GiB first: any first few of them are worth their GiB
        ordered = self.sequence(dict(best.steps))
        if len(ordered.steps) == len(best.steps):
            best = ordered
        if settle is not None:
            best = self._to_settle(best, settle, settled)
            if resumed is not None:
                finishing = self._to_settle(resumed, settle, None, fresh=False)
                if self._settles(finishing, self._settle_goal(settle, fresh=False)) and (
                    finishing.gib <= best.gib or not self._settles(best, self._settle_goal(settle))
                ):
                    best = finishing
        self.resuming = resumed is not None and set(best.steps) <= set(resumed.steps)
        return best.moves, best.projection

    def _resumed(self, resume: Mapping[int, str]) -> _Path | None:
        """The moves left of the plan being carried out that are still allowed, in an order where
        each gains; None when none is."""
        position_of = {unit.guests[0].vmid: position for position, unit in enumerate(self.movable)}
        placed = {position_of[vmid]: node for vmid, node in resume.items() if vmid in position_of}
        placed = {position: node for position, node in placed.items() if node in self.movable[position].targets}
        path = self.sequence(placed) if placed else None
        return path if path is not None and path.moves else None

    def _traded(self, runs: Sequence[tuple[_Path, float]]) -> _Path | None:
        """A plan built by trading (``trade``) towards the lowest imbalance the greedy runs reached
        (or ``EVEN``), cheaper than the cheapest of them that gets as low, finished greedily by gain
        per GiB; None when trading does not get there. Half of the budget left is kept for the rest."""
        reached = [(self.imbalance_of(path), path) for path, _alpha in runs]
        lowest = min(imbalance for imbalance, _path in reached)
        limit = min((path for imbalance, path in reached if imbalance <= lowest + EVEN_ENOUGH), key=lambda p: p.gib)
        placed = self._trade_keeping_half(max(lowest, EVEN), limit)
        return self.greedy(self.sequence(placed), 1.0) if placed is not None else None

    def _trade_keeping_half(self, goal: float, limit: _Path, start: float = 1.0) -> dict[int, str] | None:
        """``trade``, leaving half of the budget left to the rest of the search."""
        self.floor = self.budget // 2
        try:
            return self.trade(goal, limit, start)
        finally:
            self.floor = 0

    def _settle_goal(self, settle: float, *, fresh: bool = True) -> float:
        """Where balancing on stops: below ``settle``, and for a fresh plan ``min_cut`` lower than
        now (a plan cutting less is not made; the rest of a started plan was, as a whole)."""
        if not fresh:
            return settle * (1 - 1e-6)
        before = self.imbalance_of(_Path([], [], ProjectedCluster.of(self.snapshot)))
        return min(settle, before * (1 - self.config.min_cut)) * (1 - 1e-6)

    def _settle_traded(self, settle: float, limit: _Path) -> _Path | None:
        """A plan traded (``trade``) for the settle level, not finished: auto stops there."""
        placed = self._trade_keeping_half(self._settle_goal(settle), limit, SETTLE_PRICE)
        return self.sequence(placed) if placed is not None else None

    def _to_settle(self, best: _Path, settle: float, traded: _Path | None, *, fresh: bool = True) -> _Path:
        """Balancing on, where auto stops once imbalance is below ``settle``: the cheaper of the head
        of ``best`` that gets there and the plan ``traded`` for it; ``best`` itself when neither
        does. Auto starts only the head of a plan and plans again, so the moves after the level
        it stops at were never going to run: what counts is how few GiB get it there, and the
        head of a plan made for the lowest imbalance is not that (its last move may be a big one
        that overshoots the level by far). ``fresh``: ``best`` is a new plan, not the rest of one
        started (``_settle_goal``)."""
        goal = self._settle_goal(settle, fresh=fresh)
        chosen = best if self._settles(best, goal) else None
        done = 0
        for count, (position, _target) in enumerate(best.steps, 1):
            done += len(self.movable[position].guests)
            if best.moves[done - 1].imbalance_after <= goal:
                head = self.sequence(dict(best.steps[:count]))
                if self._settles(head, goal):
                    if chosen is None or head.gib < chosen.gib:
                        chosen = head
                    break
        if traded is not None and self._settles(traded, goal):
            if chosen is None or traded.gib < chosen.gib:
                chosen = traded
        return chosen or best

    def _settles(self, path: _Path, goal: float) -> bool:
        """Balancing on stops where ``path`` leads: imbalance below ``goal`` and no hot node with a
        wide memory spread left (that triggers on its own)."""
        figures = measure_projection(path.projection, self.nodes, self.config)
        return figures.imbalance <= goal and not memory_triggered(figures, self.config)

    def imbalance_of(self, path: _Path) -> float:
        return measure_projection(path.projection, self.nodes, self.config).imbalance

    def value_of(self, path: _Path) -> float:
        """n · Σload² / (Σload)² where ``path`` leads (imbalance² · (n − 1) + 1)."""
        return _Figures(path.projection, self.nodes, self.config).value()

    def greedy(self, path: _Path, alpha: float, wanted: Mapping[int, str] | None = None) -> _Path:
        """``path`` continued move by move, each time with the allowed move of a unit it has not moved
        that gains ``min_gain`` and has the best gain / GiB^alpha (1: gain per GiB, 0: plain gain),
        until none is left. With ``wanted`` (unit position -> node) only those units move, each to
        its node: that puts a set of moves in an order where each one gains when it runs.

        Lazy, so that a plan of hundreds of moves stays linear: candidates wait in a heap under
        the gain they had when judged, in n · Σload² / (Σload)², where a move between two nodes
        gains the same whatever moves between others (up to Σload changing when a move crosses
        nodes of other sizes). The best is judged again before it is taken; after each move only
        the candidates it made better are judged again (units on the node that received, moves
        to the node that gave); when the heap runs dry every candidate is judged afresh once
        more, so the plan ends only when no move gains."""
        units = self.movable
        path = _Path(list(path.steps), list(path.moves), path.projection)
        figures = _Figures(path.projection, self.nodes, self.config)
        moved = {position for position, _target in path.steps}
        pending = [p for p in range(len(units)) if p not in moved and (wanted is None or p in wanted)]
        heap: list[tuple[float, int, int, int]] = []
        cost = [unit.gib**alpha for unit in units]
        vmid = [unit.guests[0].vmid for unit in units]

        def judge(positions: Iterable[int], only: int | None = None) -> None:
            """Puts the moves of these units that gain now in the heap (only to node ``only``)."""
            value = figures.value()
            batches: dict[tuple[int, tuple[int, ...]], list[tuple[int, _Unit]]] = {}
            for position in positions:
                if position in moved or (wanted is not None and position not in wanted):
                    continue
                unit = units[position]
                targets = self.reach[position] if wanted is None else (figures.index[wanted[position]],)
                if only is not None:
                    if only not in targets:
                        continue
                    targets = (only,)
                batches.setdefault((figures.index[unit.source], targets), []).append((position, unit))
            found: list[tuple[int, int, float, float]] = []
            for (source, targets), batch in batches.items():
                self.budget -= len(batch) * len(targets)
                found += figures.moves_from(source, batch, targets)
            n = figures.n
            entries = [
                (-(value - n * squares / (total * total)) / cost[p], vmid[p], t, p) for p, t, total, squares in found
            ]
            if len(entries) > len(heap):
                heap.extend(entries)
                heapq.heapify(heap)
            else:
                for entry in entries:
                    heapq.heappush(heap, entry)

        judge(pending)
        fresh = True  # the heap holds every candidate, judged on the current loads
        while len(path.moves) < self.max_moves:
            chosen = self._take(heap, figures, path, alpha, moved)
            if chosen is None:
                if fresh:
                    break
                judge(pending)
                fresh = True
                continue
            fresh = False
            position, target, after = chosen
            unit = units[position]
            source = figures.index[unit.source]
            name = self.nodes[target]
            moved.add(position)
            path.steps.append((position, name))
            path.moves.extend(self._moves_of(unit, name, figures, after))
            path.projection = path.projection.apply(unit.vmids, name)
            figures.shift(unit, source, target)
            judge(self.on_node[target])
            hotter = [node for node in range(figures.n) if figures.loads[node] > figures.loads[source]]
            judge((p for node in hotter for p in self.on_node[node]), only=source)
        return path

    def _take(
        self, heap: list[tuple[float, int, int, int]], figures: _Figures, path: _Path, alpha: float, moved: set[int]
    ) -> tuple[int, int, float] | None:
        """The best move in ``heap`` that still gains ``min_gain``, judged again on the current loads
        and allowed by the rules: (unit position, target, imbalance after it), or None. A move
        within ``CLOSE_ENOUGH`` of the best gain judged before is taken without judging that one."""
        units = self.movable
        bound = figures.imbalance - figures.min_gain
        if bound <= 0:
            return None
        limit = bound * bound * (figures.n - 1) + 1
        value = figures.value()
        while heap:
            _key, vmid, target, position = heapq.heappop(heap)
            if position in moved:
                continue
            unit = units[position]
            source = figures.index[unit.source]
            self.budget -= 1
            after = figures.value_if_allowed(unit, source, target)
            if after is None or after > limit:
                continue  # judged afresh when the heap runs dry
            key = -(value - after) / unit.gib**alpha
            if heap and (
                key > heap[0][0] * (1 - CLOSE_ENOUGH) or (key == heap[0][0] and (vmid, target) > heap[0][1:3])
            ):
                heapq.heappush(heap, (key, vmid, target, position))  # worse than it was (or tied): back in line
                continue
            if not self.blocks(unit, self.nodes[target], path.projection):
                return position, target, figures.imbalance_of_value(after)
        return None

    def best_moves(self, path: _Path, alpha: float, count: int) -> list[tuple[int, str]]:
        """The ``count`` best allowed moves (unit position, target) of units ``path`` has not moved,
        by gain / GiB^alpha, each unit once."""
        units = self.movable
        figures = _Figures(path.projection, self.nodes, self.config)
        index = figures.index
        moved = {position for position, _target in path.steps}  # a guest moves at most once per plan
        # A unit free to go anywhere is tried on the coolest nodes with room only: the best
        # destination is nearly always among them, and it keeps a step linear in the guests.
        coolest = figures.coolest_indexes(TARGETS_PER_STEP)
        floor = figures.loads[coolest[0]] if coolest else math.inf  # no node is cooler than this
        free: dict[int, list[tuple[int, _Unit]]] = {}
        found: list[tuple[int, int, float, float]] = []
        for position, unit in enumerate(units):
            source = index.get(unit.source)
            if position in moved or source is None:
                continue
            if len(unit.targets) < figures.n:
                targets = [index[name] for name in unit.targets]
                found += figures.moves_from(source, ((position, unit),), targets)
            elif figures.loads[source] > floor:  # else nowhere cooler to go
                free.setdefault(source, []).append((position, unit))
        for source, batch in free.items():
            self.budget -= len(batch) * len(coolest)
            found += figures.moves_from(source, batch, coolest)
        candidates = []
        for position, node, total, squares in found:
            gain = figures.imbalance - _imbalance(total, squares, figures.n)
            score = gain / units[position].gib ** alpha
            candidates.append((-score, units[position].guests[0].vmid, self.nodes[node], position))
        candidates.sort(key=lambda c: c[:3])
        chosen: list[tuple[int, str]] = []
        for _score, _vmid, target, position in candidates:
            if len(chosen) >= count:
                break
            if all(position != other for other, _t in chosen) and not self.blocks(
                units[position], target, path.projection
            ):
                chosen.append((position, target))
        return chosen

    def sequence(self, placed: Mapping[int, str]) -> _Path:
        """The moves of ``placed`` (unit position -> target) in an order where each one is allowed
        when it runs and gains ``min_gain``, the best gain per GiB first; moves that find no such
        place in the order (an exchange between two nodes, say) are left out."""
        return self.greedy(_Path([], [], ProjectedCluster.of(self.snapshot)), 1.0, placed)

    def _moves_of(self, unit: _Unit, target: str, figures: _Figures, after: float) -> list[BalanceMove]:
        reason = self._reason(unit, unit.source, target, figures, after)
        leader = unit.guests[0]
        moves = []
        for guest in unit.guests:
            move = planned_move(guest, unit.source, target, reason, self.preconditions.get(guest.vmid))
            follows = leader.vmid if guest is not leader and self._comigrates(leader, guest) else None
            moves.append(BalanceMove(move, Demand.of(guest).mem / GIB, after, follows))
        return moves

    # --- trading: GiB for evenness at a rising price ---------------------------------------------

    def trade(self, goal: float, limit: _Path, start: float = 1.0) -> dict[int, str] | None:
        """Moves (unit position -> target) reaching imbalance ``goal`` for fewer GiB than the plan
        ``limit``, or None.

        Evenness gets a price in GiB (per unit of n · Σload² / (Σload)²) and the moves change while
        that lowers GiB + price · value: a move no longer worth its GiB goes back, the moves worth
        most per GiB come in (judged lazily, as in the greedy), a move is exchanged for another
        unit's from the same node to the same node where that pays, and moved units go where they
        do most. Then the price doubles, from what the ``limit`` plan paid on average, until
        the goal holds. Unlike the greedy, no move is final: the small guests taken first at a low
        price give way to the bigger ones that pay better at a higher one, where the greedy by gain
        per GiB is stranded and polishing only finds what one or two changes reach. Where no
        change pays at any price the gap is closed as polishing's refill does. Judged on the end
        state; ``sequence`` orders it. Stops where the budget reaches ``floor``.
        """
        units = self.movable
        figures = _Figures(ProjectedCluster.of(self.snapshot), self.nodes, self.config)
        target = figures.limit_for(goal)
        paid = figures.value() - self.value_of(limit)
        if figures.within(target) or self.budget <= self.floor or paid <= 0:
            return None
        current: dict[int, int] = {}
        price = limit.gib / paid * start
        limit_gib = limit.gib
        last: list[tuple[int, int]] | None = None
        for _round in range(TRADE_ROUNDS):
            while self.budget > self.floor and self._trade_round(figures, current, price):
                pass
            spent = sum(units[position].gib for position in current)
            if self.budget <= self.floor or spent >= limit_gib:
                return None
            if figures.within(target):
                return {position: self.nodes[node] for position, node in current.items()}
            state = sorted(current.items())
            if state == last:  # nothing pays at twice the price: close the gap directly, or give up
                if self._refill(figures, current, target, limit_gib - spent, frozenset()):
                    return {position: self.nodes[node] for position, node in current.items()}
                return None
            last = state
            price *= TRADE_STEP
        return None

    def _trade_round(self, figures: _Figures, current: dict[int, int], price: float) -> bool:
        """One pass of ``trade`` at ``price``: True when it changed the moves."""
        units = self.movable
        index = figures.index
        changed = False
        for position in sorted(current, key=lambda p: (-units[p].gib, p)):  # no longer worth it: back
            home = index[units[position].source]
            self.budget -= 1
            worth = price * (figures.value_after(units[position], current[position], home) - figures.value())
            if units[position].gib > worth:
                figures.shift(units[position], current.pop(position), home)
                changed = True
        if self._trade_adds(figures, current, price):
            return True
        value = figures.value()
        for moved in sorted(current, key=lambda p: (-units[p].gib, p)):  # exchanges, the biggest first
            if self.budget <= self.floor:
                break
            home, there = index[units[moved].source], current.pop(moved)
            figures.shift(units[moved], there, home)
            back = figures.value()
            others = [(p, units[p]) for p in self.on_node[home] if p not in current and p != moved]
            others = [(p, unit) for p, unit in others if there in self.reach[p]]
            self.budget -= len(others)
            best: tuple[float, int] | None = None
            for position, _target, total, squares in figures.moves_from(home, others, (there,)):
                cost = units[position].gib + price * (figures.n * squares / (total * total) - back)
                if best is None or cost < best[0]:
                    best = (cost, position)
            saving = units[moved].gib - price * (back - value)
            if best is not None and best[0] < saving - 1e-9:
                figures.shift(units[best[1]], home, there)
                current[best[1]] = there
                changed = True
            else:
                figures.shift(units[moved], home, there)
                current[moved] = there
            value = figures.value()
        return self._retarget(figures, current) or changed

    def _trade_adds(self, figures: _Figures, current: dict[int, int], price: float) -> bool:
        """Adds the moves of unmoved units worth more than their GiB at ``price``, the best first
        (candidates judged once, then again when taken, lazily): True when any was added."""
        units = self.movable
        coolest = figures.coolest_indexes(TARGETS_PER_STEP)
        floor = figures.loads[coolest[0]] if coolest else math.inf
        batches: dict[int, list[tuple[int, _Unit]]] = {}
        for position, unit in enumerate(units):
            if position not in current:
                source = figures.index[unit.source]
                if figures.loads[source] > floor:
                    batches.setdefault(source, []).append((position, unit))
        value = figures.value()
        heap: list[tuple[float, int, int]] = []
        for source, batch in batches.items():
            free = [(position, unit) for position, unit in batch if len(unit.targets) == figures.n]
            self.budget -= len(free) * len(coolest)
            found = figures.moves_from(source, free, coolest)
            for position, unit in batch:
                if len(unit.targets) < figures.n:
                    self.budget -= len(unit.targets)
                    found += figures.moves_from(source, ((position, unit),), self.reach[position])
            for position, target, total, squares in found:
                cost = units[position].gib + price * (figures.n * squares / (total * total) - value)
                if cost < 0:
                    heap.append((cost, position, target))
        heapq.heapify(heap)
        added = False
        while heap:
            _cost, position, target = heapq.heappop(heap)
            self.budget -= 1
            unit = units[position]
            source = figures.index[unit.source]
            after = None if position in current else figures.value_if_allowed(unit, source, target)
            if after is None:
                continue
            cost = unit.gib + price * (after - figures.value())
            if cost >= -1e-9:
                continue
            if heap and cost > heap[0][0]:
                heapq.heappush(heap, (cost, position, target))  # worse than it was: back in line
                continue
            figures.shift(unit, source, target)
            current[position] = target
            added = True
        return added

    # --- polishing: the same imbalance for fewer GiB -------------------------------------------------

    def polish(self, placed: Mapping[int, str]) -> dict[int, str] | None:
        """``placed`` (unit position -> target) changed to move fewer GiB and still reach its imbalance
        (or ``EVEN``, whichever is higher), or None when nothing cheaper was found.

        Three changes are tried, the biggest moves first: sending a moved unit to a better node
        (free), dropping a move the others no longer need, and replacing one move, or two, by cheaper
        moves of unmoved units (a refill by gain per GiB that ends with the cheapest move closing the
        gap). Judged on the end state only; ``sequence`` then checks that an order exists.
        """
        units = self.movable
        figures = _Figures(ProjectedCluster.of(self.snapshot), self.nodes, self.config)
        index = figures.index
        current = {position: index[target] for position, target in placed.items()}
        for position, target in current.items():
            figures.shift(units[position], index[units[position].source], target)
        # below EVEN the cluster counts as even: the polished plan may end anywhere below it for
        # fewer GiB, and the greedy that finishes it goes lower again where that is cheap
        goal = figures.limit_for(max(figures.imbalance, EVEN))
        before = sum(units[position].gib for position in current)

        def drop(positions: Sequence[int]) -> bool:
            """Takes ``positions`` back home, sends the other moved units where they now do most and
            refills below the GiB dropped; puts everything back if the goal is not reached."""
            saved = dict(current)
            for position in positions:
                figures.shift(units[position], current.pop(position), index[units[position].source])
            self._retarget(figures, current)
            budget = sum(units[position].gib for position in positions)
            if figures.within(goal) or self._refill(figures, current, goal, budget, frozenset(positions)):
                return True
            for position in set(current) | set(saved):
                home = index[units[position].source]
                figures.shift(units[position], current.get(position, home), saved.get(position, home))
            current.clear()
            current.update(saved)
            return False

        improved = True
        while improved and self.budget > self.floor:
            improved = self._retarget(figures, current)
            biggest = sorted(current, key=lambda position: (-units[position].gib, position))
            for position in biggest:
                if position in current and self.budget > self.floor and drop((position,)):
                    improved = True
            if improved:
                continue
            biggest = sorted(current, key=lambda position: (-units[position].gib, position))[:PAIRS_OF]
            for first, second in itertools.combinations(biggest, 2):
                if first in current and second in current and self.budget > self.floor and drop((first, second)):
                    improved = True
        after = sum(units[position].gib for position in current)
        if after >= before - 1e-9:
            return None
        return {position: self.nodes[target] for position, target in current.items()}

    def _targets(self, unit: _Unit, coolest: Sequence[int], figures: _Figures) -> Iterable[int]:
        if len(unit.targets) == figures.n:
            return coolest
        return (figures.index[name] for name in unit.targets)

    def _retarget(self, figures: _Figures, current: dict[int, int]) -> bool:
        """Sends each moved unit to the node where the cluster ends most even: it moves anyway."""
        units = self.movable
        coolest = figures.coolest_indexes(TARGETS_PER_STEP)
        changed = False
        for position, target in sorted(current.items()):
            unit = units[position]
            home = figures.index[unit.source]
            home_load = figures.loads[home] + figures.load_of_unit(unit, home)  # with the unit back
            best, best_value = target, figures.value()
            for other in self._targets(unit, coolest, figures):
                self.budget -= 1
                if other == home or other == target or not figures.allows(unit, home_load, other):
                    continue
                value = figures.value_after(unit, target, other)
                if value < best_value - 1e-12:
                    best, best_value = other, value
            if best != target:
                figures.shift(unit, target, best)
                current[position] = best
                changed = True
        return changed

    def _refill(
        self, figures: _Figures, current: dict[int, int], goal: float, budget: float, excluded: frozenset[int]
    ) -> bool:
        """Adds moves of unmoved units to ``current`` until ``goal`` holds, spending less than
        ``budget`` GiB: the cheapest move, or pair of moves, that closes the gap, else the best
        gain per GiB; the units moved already go where they do most after each. False when that
        is not possible (the caller puts everything back)."""
        units = self.movable
        spent = 0.0
        while not figures.within(goal):
            coolest = figures.coolest_indexes(TARGETS_PER_STEP)
            floor = figures.loads[coolest[0]] if coolest else math.inf
            closing: tuple[float, float, tuple[tuple[int, int], ...]] | None = None
            ranked: list[tuple[float, int, int]] = []
            room = budget - spent - 1e-9
            mean = figures.total / figures.n  # what evens out goes from above the mean to below it
            batches: dict[int, list[tuple[int, _Unit]]] = {}
            for position, unit in enumerate(units):
                if position in current or position in excluded or unit.gib >= room:
                    continue
                source = figures.index[unit.source]
                if figures.loads[source] > max(floor, mean):
                    batches.setdefault(source, []).append((position, unit))
            found: list[tuple[int, int, float, float]] = []
            for source, batch in batches.items():
                self.budget -= len(batch) * len(coolest)
                free = [(position, unit) for position, unit in batch if len(unit.targets) == figures.n]
                found += figures.moves_from(source, free, coolest)
                for position, unit in batch:
                    if len(unit.targets) < figures.n:
                        targets = [figures.index[name] for name in unit.targets]
                        found += figures.moves_from(source, ((position, unit),), targets)
            now = figures.imbalance
            for position, target, total, squares in found:
                gib = units[position].gib
                value = figures.n * squares / (total * total)
                if value <= goal:
                    if closing is None or (gib, value) < closing[:2]:
                        closing = (gib, value, ((position, target),))
                else:
                    ranked.append(((now - figures.imbalance_of_value(value)) / gib, position, target))
            ranked = heapq.nlargest(CLOSING_PAIRS_OF, ranked)
            pair = self._closing_pair(figures, ranked, goal, room)
            if pair is not None and (closing is None or pair[:2] < closing[:2]):
                closing = pair
            if closing is not None:
                chosen = closing[2]
            elif ranked and self.budget > self.floor:
                chosen = ((ranked[0][1], ranked[0][2]),)
            else:
                return False
            for position, target in chosen:
                figures.shift(units[position], figures.index[units[position].source], target)
                current[position] = target
                spent += units[position].gib
        return True

    def _closing_pair(
        self, figures: _Figures, ranked: Sequence[tuple[float, int, int]], goal: float, room: float
    ) -> tuple[float, float, tuple[tuple[int, int], ...]] | None:
        """The cheapest two of the ``ranked`` moves that reach ``goal`` together, within ``room`` GiB:
        a gap no single move closes exactly is often closed by two smaller ones."""
        units = self.movable
        best: tuple[float, float, tuple[tuple[int, int], ...]] | None = None
        for (_r1, first, to_first), (_r2, second, to_second) in itertools.combinations(ranked, 2):
            gib = units[first].gib + units[second].gib
            if first == second or gib >= room or (best is not None and gib > best[0]):
                continue
            self.budget -= 5  # two shifts and a judgement
            home = figures.index[units[first].source]
            figures.shift(units[first], home, to_first)
            source = figures.index[units[second].source]
            value = figures.value_if_allowed(units[second], source, to_second)
            if value is not None and value <= goal and (best is None or (gib, value) < best[:2]):
                best = (gib, value, ((first, to_first), (second, to_second)))
            figures.shift(units[first], to_first, home)
        return best

    def _comigrates(self, leader: Guest, guest: Guest) -> bool:
        """Whether PVE's HA manager moves ``guest`` along when ``leader`` is asked to move."""
        return ha_comigrates(self.snapshot, leader, guest)

    def _reason(self, unit: _Unit, source: str, target: str, figures: _Figures, after: float) -> str:
        together = f" with {', '.join(str(v) for v in unit.vmids[1:])}" if len(unit.guests) > 1 else ""
        return (
            f"{source} load {figures.load_of(source):.0%} → {target} {figures.load_of(target):.0%}{together}: "
            f"imbalance {imbalance_change(figures.imbalance, after)} for {unit.mem / GIB:.1f} GiB"
        )

    # --- who would have helped -------------------------------------------------------------------

    def held_that_would_help(self, projection: ProjectedCluster) -> tuple[Held, ...]:
        """Guests left where they are although moving them (to a balanced node with room) would
        still gain after the plan, each with the rule that stopped it."""
        if len(self.nodes) < 2:
            return ()
        figures = _Figures(projection, self.nodes, self.config)
        everywhere = range(figures.n)
        held_on: dict[int, list[tuple[int, _Unit]]] = {}  # node index -> held guests on it, each as a unit
        for guest in self.snapshot.guests:
            source = projection.node_of(guest.vmid)
            if guest.vmid in self.held and source in figures.index:
                demand = Demand.of(guest)
                alone = _Unit((guest,), source, demand.cpu_cores, demand.mem, ())
                held_on.setdefault(figures.index[source], []).append((guest.vmid, alone))
        reasons: dict[int, str] = {}
        for node, guests in held_on.items():
            for vmid, _target, _total, _squares in figures.moves_from(node, guests, everywhere):
                reasons[vmid] = self.held[vmid]
        for unit in self.movable:
            source = projection.node_of(unit.guests[0].vmid)
            if source != unit.source:  # the plan moves it
                continue
            found = figures.moves_from(figures.index[source], ((0, unit),), everywhere)
            gaining = [figures.names[target] for _position, target, _total, _squares in found]
            if not gaining:
                continue
            allowed = [target for target in gaining if target in unit.targets]
            blocks = self.blocks(unit, allowed[0], projection) if allowed else []
            reason = blocks[0] if blocks else unit.narrowed_by
            if reason is not None:
                for guest in unit.guests:
                    reasons[guest.vmid] = reason
        by_vmid = self.snapshot.guest_by_vmid
        return tuple(
            Held(vmid, by_vmid[vmid].name, projection.node_of(vmid), reason) for vmid, reason in sorted(reasons.items())
        )


class _Figures:
    """Node loads of one projection as flat lists, so a candidate move is judged in O(1)."""

    def __init__(self, projection: ProjectedCluster, nodes: Sequence[str], config: BalancerConfig) -> None:
        self.config = config
        self.names = tuple(nodes)
        self.index = {name: i for i, name in enumerate(nodes)}
        weights = config.cpu_weight + config.mem_weight
        self.wc, self.wm = config.cpu_weight / weights, config.mem_weight / weights
        usages = [projection.usage_of(name) for name in nodes]
        self.cores = [u.cpu_cores for u in usages]
        self.mem = [float(u.mem) for u in usages]
        self.inv_cpu = [1 / u.maxcpu if u.maxcpu else 0.0 for u in usages]
        self.inv_mem = [1 / u.maxmem if u.maxmem else 0.0 for u in usages]
        self.cap = [config.memory_cap * u.maxmem for u in usages]
        # a node's load is cpu_weight·cores + mem_weight·bytes, the weights folding in its size
        self.cpu_weight = [self.wc * inverse for inverse in self.inv_cpu]
        self.mem_weight = [self.wm * inverse for inverse in self.inv_mem]
        self.loads = [
            cw * c + mw * m for cw, c, mw, m in zip(self.cpu_weight, self.cores, self.mem_weight, self.mem, strict=True)
        ]
        self.n = len(nodes)
        self.min_gain = max(move_gain_floor(config, self.n), 1e-9)
        self.total = sum(self.loads)
        self.squares = sum(load * load for load in self.loads)

    @property
    def imbalance(self) -> float:
        return _imbalance(self.total, self.squares, self.n)

    def load_of(self, node: str) -> float:
        return self.loads[self.index[node]]

    def coolest(self, count: int) -> tuple[str, ...]:
        """The ``count`` least loaded nodes still below the memory cap."""
        return tuple(self.names[i] for i in self.coolest_indexes(count))

    def coolest_indexes(self, count: int) -> list[int]:
        roomy = [i for i in range(self.n) if self.mem[i] < self.cap[i]]
        roomy.sort(key=lambda i: (self.loads[i], i))
        return roomy[:count]

    # The polishing search moves units back and forth on these lists in place, and compares end
    # states by value = n · Σload² / (Σload)² = imbalance² · (n − 1) + 1 (no root taken).

    def shift(self, unit: _Unit, source: int, target: int) -> None:
        """Moves ``unit`` from node ``source`` to ``target`` (indexes) in place."""
        if source == target:
            return
        for node, sign in ((source, -1), (target, 1)):
            before = self.loads[node]
            self.cores[node] += sign * unit.cores
            self.mem[node] += sign * unit.mem
            after = self.loads[node] = self.cpu_weight[node] * self.cores[node] + self.mem_weight[node] * self.mem[node]
            self.total += after - before
            self.squares += after * after - before * before

    def value_after(self, unit: _Unit, source: int, target: int) -> float:
        """The value if ``unit`` went from ``source`` to ``target``."""
        ls, lt = self.loads[source], self.loads[target]
        return self._value_with(ls, lt, ls - self.load_of_unit(unit, source), lt + self.load_of_unit(unit, target))

    def _value_with(self, ls: float, lt: float, ls_after: float, lt_after: float) -> float:
        """The value once two nodes' loads went from ``ls``, ``lt`` to ``ls_after``, ``lt_after``."""
        total = self.total - ls - lt + ls_after + lt_after
        squares = self.squares - ls * ls - lt * lt + ls_after * ls_after + lt_after * lt_after
        return self.n * squares / (total * total) if total > 0 else 1.0

    def limit_for(self, imbalance: float) -> float:
        """The value of ``imbalance``, a hair looser so that reaching it again counts."""
        return (imbalance * imbalance * (self.n - 1) + 1) * (1 + 1e-12)

    def within(self, limit: float) -> bool:
        return self.total <= 0 or self.n * self.squares <= limit * self.total * self.total

    def imbalance_of_value(self, value: float) -> float:
        return min(1.0, math.sqrt(max(0.0, value - 1) / (self.n - 1)))

    def fits(self, unit: _Unit, target: int) -> bool:
        return self.mem[target] + unit.mem <= self.cap[target]

    def allows(self, unit: _Unit, source_load: float, target: int) -> bool:
        """What ``gains`` asks of a move besides its gain: room below the cap, the target cooler
        than the source (at ``source_load`` before the move) before and after."""
        lt = self.loads[target]
        return lt < source_load and lt + self.load_of_unit(unit, target) < source_load and self.fits(unit, target)

    def value_if_allowed(self, unit: _Unit, source: int, target: int) -> float | None:
        """``value_after`` for a move ``allows`` (the source at its load now), else None: the search's
        hottest check (every candidate the greedy takes from its heap), so the two nodes' loads and
        the target's load after are worked out once for both."""
        ls, lt = self.loads[source], self.loads[target]
        if lt >= ls or not self.fits(unit, target):
            return None
        lt_after = lt + self.load_of_unit(unit, target)
        if lt_after >= ls:
            return None
        return self._value_with(ls, lt, ls - self.load_of_unit(unit, source), lt_after)

    def load_of_unit(self, unit: _Unit, node: int) -> float:
        return self.cpu_weight[node] * unit.cores + self.mem_weight[node] * unit.mem

    def value(self) -> float:
        return self.n * self.squares / (self.total * self.total) if self.total > 0 else 1.0

    def moves_from(
        self, s: int, batch: Iterable[tuple[int, _Unit]], targets: Sequence[int]
    ) -> list[tuple[int, int, float, float]]:
        """The moves of many units on node ``s`` (each with a position of the caller's) to ``targets``
        that gain at least ``min_gain``, fit below the memory cap and leave the target below the
        source's load before the move: (position, target, Σload, Σload²) after each."""
        # imbalance² · (n − 1) + 1 = n · Σload² / (Σload)²: compare that before taking any root
        bound = self.imbalance - self.min_gain
        if bound <= 0:
            return []
        n = self.n
        limit = bound * bound * (n - 1) + 1
        loads = self.loads
        ls = loads[s]
        mem, cap = self.mem, self.cap
        # per target: its load, the memory room left below the cap, its weights (the inner loop reads locals)
        open_targets = [
            (t, loads[t], cap[t] - mem[t], self.cpu_weight[t], self.mem_weight[t])
            for t in targets
            if t != s and loads[t] < ls
        ]
        if not open_targets:
            return []
        source_cores, source_mem = self.cores[s], mem[s]
        source_cpu_weight, source_mem_weight = self.cpu_weight[s], self.mem_weight[s]
        other_total = self.total - ls
        other_squares = self.squares - ls * ls
        found: list[tuple[int, int, float, float]] = []
        append = found.append
        for position, unit in batch:
            cores, size = unit.cores, unit.mem
            cores_left, mem_left = source_cores - cores, source_mem - size
            ls_after = source_cpu_weight * (cores_left if cores_left > 0 else 0.0) + source_mem_weight * (
                mem_left if mem_left > 0 else 0.0
            )
            base_total = other_total + ls_after
            base_squares = other_squares + ls_after * ls_after
            for t, lt, room_t, cpu_weight_t, mem_weight_t in open_targets:
                if size > room_t:
                    continue
                lt_after = lt + cpu_weight_t * cores + mem_weight_t * size
                if lt_after >= ls:
                    continue
                total = base_total - lt + lt_after
                squares = base_squares - lt * lt + lt_after * lt_after
                if total > 0 and n * squares <= limit * total * total:
                    append((position, t, total, squares))
        return found


def _imbalance(total: float, squares: float, n: int) -> float:
    mean = total / n
    if mean <= 0:
        return 0.0
    variance = max(0.0, squares / n - mean * mean)
    return min(1.0, math.sqrt(variance) / mean / math.sqrt(n - 1))


def plan_balance(
    snapshot: ClusterSnapshot,
    rules: RuleSet | None = None,
    config: BalancerConfig | None = None,
    *,
    now: float = 0.0,
    cooldowns: Mapping[int, float] | None = None,
    preconditions: Mapping[int, MigratePrecondition] | None = None,
    max_moves: int = MAX_MOVES,
    balancing: bool = False,
    auto: bool = False,
    resume: Mapping[int, str] | None = None,
) -> BalancePlan:
    """The moves that even the cluster out, or none with the reason.

    ``cooldowns`` maps a vmid to the epoch second it may move again; ``preconditions`` are PVE's
    migrate answers known so far (a planned VM without one is listed in ``unchecked``: fetch it
    and plan again, it may have local disks). ``max_moves`` caps the plan (the worker plans
    again after every move, so the rest follows). ``balancing``: the worker is moving guests
    for an earlier trigger, which holds down to ``balancer.settle`` of the threshold; where
    nothing else triggers, the plan is the cheapest found that gets below that level (auto
    stops there), not one to the lowest imbalance. ``auto``: the plan is for auto mode, which
    carries out a plan only down to that level: it aims there whatever triggered (the moves past
    it would never run, and the head of a plan made for the lowest imbalance is not the cheapest
    way there). ``resume``: the moves (vmid -> node) left of the plan auto is carrying out;
    finishing them competes with the plans found afresh.
    """
    rules = rules or RuleSet.empty()
    config = config or BalancerConfig()
    planner = _Planner(
        snapshot,
        rules,
        config,
        now=now,
        cooldowns=cooldowns or {},
        preconditions=preconditions or {},
        max_moves=max_moves,
    )
    start = ProjectedCluster.of(snapshot)
    before = measure_projection(start, planner.nodes, config)
    reason = trigger_reason(before, config, balancing=balancing) if len(planner.nodes) >= 2 else None
    if not snapshot.quorate:
        return _empty(before, "no quorum: nothing moves", now, start)
    threshold = trigger_threshold(config, len(planner.nodes))
    digits = _digits(threshold)
    even = (
        f"balanced: imbalance {imbalance_text(before.imbalance, digits=digits)} "
        f"(threshold {imbalance_text(threshold, digits=digits)})"
    )
    if reason is None:
        return _empty(before, even, now, start)
    settle = None  # auto stops below settle, the plan aims there
    if config.settle > 0 and (auto or (balancing and before.imbalance <= threshold)):
        settle = threshold * config.settle
    moves, projection = planner.search(settle, resume)
    after = measure_projection(projection, planner.nodes, config)
    cut = (before.imbalance - after.imbalance) / before.imbalance if before.imbalance > 0 else 0.0
    held = planner.held_that_would_help(projection)
    if (not moves or (cut < config.min_cut and not planner.resuming)) and trigger_reason(before, config) is None:
        return _empty(before, even, now, start)  # balancing on found nothing more worth doing: it is over
    if not moves or (cut < config.min_cut and not planner.resuming):
        text = (
            "no move lowers imbalance within the rules"
            if not moves
            else f"the best plan cuts imbalance only {cut:.0%} (less than {config.min_cut:.0%}): not proposed"
        )
        return BalancePlan(before, before, (), held, reason, f"{reason}; {text}", frozenset(), now, start)
    unchecked = frozenset(
        step.vmid for step in moves if step.move.type == "qemu" and step.vmid not in planner.preconditions
    )
    summary = (
        f"{reason}: {len(moves)} move{'s' if len(moves) != 1 else ''} "
        f"({sum(m.gib for m in moves):.1f} GiB) take imbalance {imbalance_change(before.imbalance, after.imbalance)}"
    )
    return BalancePlan(before, after, tuple(moves), held, reason, summary, unchecked, now, projection)


def _empty(before: Measure, summary: str, now: float, projection: ProjectedCluster) -> BalancePlan:
    return BalancePlan(before, before, (), (), None, summary, frozenset(), now, projection)


def apply_plan(snapshot: ClusterSnapshot, moves: Iterable[BalanceMove]) -> ClusterSnapshot:
    """The snapshot as it would read after the moves: guests on their new nodes, node figures moved.

    For tests and the benchmark (planning again on the result must find nothing to do).
    """
    projection = ProjectedCluster.of(snapshot)
    for step in moves:
        projection = projection.apply((step.vmid,), step.move.target)
    nodes = []
    for node in snapshot.nodes:
        usage = projection.usage_of(node.name)
        cpu = usage.cpu_cores / node.maxcpu if node.maxcpu else node.cpu
        nodes.append(replace(node, cpu=cpu, mem=usage.mem))
    guests = tuple(
        replace(guest, node=projection.moved[guest.vmid]) if guest.vmid in projection.moved else guest
        for guest in snapshot.guests
    )
    return replace(snapshot, nodes=tuple(nodes), guests=guests)
