"""Where guests can go: the migrate dialog's preview, node evacuation and bulk moves.

All three read one snapshot, account capacity on a ``ProjectedCluster`` and ask ``Constraints``
why a node may or may not take a guest. Plans are deterministic: the same snapshot and rules
always give the same moves in the same order, so a plan shown in ``advise`` mode is the plan run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from pvetop.errors import UsageError
from pvetop.model import ClusterSnapshot, Guest, GuestType, LocalVolumes, MigratePrecondition
from pvetop.policy.constraints import (
    BLOCKING,
    Constraints,
    Finding,
    Kind,
    Mode,
    Verdict,
    check_mode,
    gib,
    ha_comigrates,
)
from pvetop.policy.metrics import Balance
from pvetop.policy.projection import Demand, NodeUsage, ProjectedCluster
from pvetop.policy.rules import RuleSet

EVACUATION_MEM_CEILING = 0.9

# A user evacuating a node by hand may override pins and locks (the plan asks, see
# ``needs_decision``) but never sends guests to reserved, maintenance or offline nodes, and
# never breaks HA rules, ProxLB groups or what makes the migration itself fail.
EVACUATION_SOFT: Mapping[Mode, frozenset[Kind]] = MappingProxyType(
    {
        "manual": frozenset({Kind.PIN, Kind.LOCK, Kind.PROXLB_PIN, Kind.PROXLB_IGNORE}),
        "auto": frozenset(),
    }
)
EVACUATION_HARD: Mapping[Mode, frozenset[Kind]] = MappingProxyType(
    {
        "manual": frozenset(
            {Kind.PLACEMENT, Kind.PVE, Kind.RESERVED_TARGET, Kind.MAINTENANCE, Kind.HA, Kind.PROXLB_GROUP}
        ),
        "auto": BLOCKING["auto"],
    }
)


@dataclass(frozen=True, slots=True)
class NodeAfter:
    """One node's usage before and after a move, for the migrate dialog's fit preview."""

    node: str
    before: NodeUsage
    after: NodeUsage


@dataclass(frozen=True, slots=True)
class MovePreview:
    vmid: int
    source: NodeAfter
    target: NodeAfter
    verdict: Verdict
    imbalance_before: float
    imbalance_after: float


@dataclass(frozen=True, slots=True)
class PlannedMove:
    """One migration as the engine will ask Proxmox VE for it."""

    vmid: int
    name: str
    type: GuestType
    source: str
    target: str
    online: bool  # live migration of a running VM
    restart: bool  # restart migration of a running container
    with_local_disks: bool | None  # None: a running VM whose precondition was not fetched
    reason: str
    warnings: tuple[str, ...] = ()
    target_storage: str | None = None  # where local disks are copied when the target lacks their storage


def comigrating(
    snapshot: ClusterSnapshot, moves: Iterable[PlannedMove]
) -> tuple[list[PlannedMove], list[tuple[PlannedMove, int]]]:
    """The moves to ask for, and those PVE's HA manager makes along with an earlier one from the
    same node to the same node (each with that one's vmid): a request of its own for a partner
    already on its way fails once the partner has left its node."""
    guests = snapshot.guest_by_vmid
    asked: list[PlannedMove] = []
    along: list[tuple[PlannedMove, int]] = []
    for move in moves:
        leader = next(
            (
                earlier
                for earlier in asked
                if (earlier.source, earlier.target) == (move.source, move.target)
                and earlier.vmid in guests
                and move.vmid in guests
                and ha_comigrates(snapshot, guests[earlier.vmid], guests[move.vmid])
            ),
            None,
        )
        if leader is None:
            asked.append(move)
        else:
            along.append((move, leader.vmid))
    return asked, along


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A guest a plan does not move, and why; ``alternatives`` are nodes a user override allows."""

    vmid: int
    name: str
    source: str
    reason: str
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvacuationPlan:
    node: str
    mode: Mode
    moves: tuple[PlannedMove, ...]
    needs_decision: tuple[Unplaced, ...]  # manual mode: pinned/locked guests the user must decide on
    unplaceable: tuple[Unplaced, ...]
    before: Balance
    after: Balance
    projection: ProjectedCluster  # the cluster after every planned move
    planned_at: float | None = None

    @property
    def complete(self) -> bool:
        """True when the plan empties the node."""
        return not self.needs_decision and not self.unplaceable

    @property
    def loads_after(self) -> Mapping[str, float]:
        return self.after.loads


@dataclass(frozen=True)
class BulkPlan:
    target: str
    moves: tuple[PlannedMove, ...]
    refused: tuple[Unplaced, ...]
    target_before: NodeUsage
    target_after: NodeUsage
    after: Balance
    projection: ProjectedCluster


def planned_move(
    guest: Guest,
    source: str,
    target: str,
    reason: str,
    precondition: MigratePrecondition | None = None,
    warnings: Iterable[str] = (),
    target_storage: str | None = None,
) -> PlannedMove:
    """How to migrate this guest: live for running VMs, restart for running containers."""
    live_vm = guest.type == "qemu" and guest.running
    if not live_vm:
        local_disks: bool | None = False
    else:
        local_disks = None if precondition is None else bool(precondition.local_disks)
    return PlannedMove(
        vmid=guest.vmid,
        name=guest.name,
        type=guest.type,
        source=source,
        target=target,
        online=live_vm,
        restart=guest.type == "lxc" and guest.running,
        with_local_disks=local_disks,
        reason=reason,
        warnings=tuple(warnings),
        target_storage=target_storage,
    )


def _require_node(snapshot: ClusterSnapshot, node: str) -> None:
    if node not in snapshot.node_by_name:
        known = ", ".join(sorted(snapshot.node_by_name)) or "none"
        raise UsageError(f"no node {node!r} in cluster {snapshot.cluster_name!r} (nodes: {known})")


def _require_ceiling(mem_ceiling: float) -> None:
    if not 0 < mem_ceiling <= 1:
        raise UsageError(f"memory ceiling must be a fraction in (0, 1], not {mem_ceiling}")


# ---------------------------------------------------------------------------------------------
# the migrate dialog


def _preview(
    constraints: Constraints,
    projection: ProjectedCluster,
    before: Balance,
    guest: Guest,
    target: str,
    mode: Mode,
    precondition: MigratePrecondition | None,
) -> MovePreview:
    source = projection.node_of(guest.vmid)
    verdict = constraints.verdict(guest, target, mode=mode, projection=projection, precondition=precondition)
    after = projection.apply((guest.vmid,), target)
    return MovePreview(
        vmid=guest.vmid,
        source=NodeAfter(source, projection.usage_of(source), after.usage_of(source)),
        target=NodeAfter(target, projection.usage_of(target), after.usage_of(target)),
        verdict=verdict,
        imbalance_before=before.imbalance,
        imbalance_after=after.balance().imbalance,
    )


def preview_move(
    snapshot: ClusterSnapshot,
    guest: Guest,
    target: str,
    rules: RuleSet | None = None,
    *,
    mode: Mode = "manual",
    precondition: MigratePrecondition | None = None,
) -> MovePreview:
    """How the guest's node and ``target`` would look after the move, and whether it is allowed."""
    _require_node(snapshot, target)
    projection = ProjectedCluster.of(snapshot)
    constraints = Constraints(snapshot, rules or RuleSet.empty())
    return _preview(constraints, projection, projection.balance(), guest, target, check_mode(mode), precondition)


def preview_candidates(
    snapshot: ClusterSnapshot,
    guest: Guest,
    rules: RuleSet | None = None,
    *,
    mode: Mode = "manual",
    precondition: MigratePrecondition | None = None,
) -> tuple[MovePreview, ...]:
    """A preview for every other node: allowed first, offline last, then by the target's load after."""
    check_mode(mode)
    projection = ProjectedCluster.of(snapshot)
    constraints = Constraints(snapshot, rules or RuleSet.empty())
    before = projection.balance()
    previews = [
        _preview(constraints, projection, before, guest, node.name, mode, precondition)
        for node in snapshot.nodes
        if node.name != guest.node
    ]
    previews.sort(key=lambda p: (not p.verdict.allowed, not p.target.before.online, p.target.after.load, p.target.node))
    return tuple(previews)


# ---------------------------------------------------------------------------------------------
# evacuation


def affinity_units(constraints: Constraints, guests: tuple[Guest, ...]) -> list[tuple[Guest, ...]]:
    """Guests that must stay together (positive affinity) form one unit; the others are units of one."""
    parent = {guest.vmid: guest.vmid for guest in guests}

    def root(vmid: int) -> int:
        while parent[vmid] != vmid:
            parent[vmid] = parent[parent[vmid]]
            vmid = parent[vmid]
        return vmid

    for guest in guests:
        for partner in constraints.positive_partners(guest):
            if partner in parent:
                a, b = root(guest.vmid), root(partner)
                parent[max(a, b)] = min(a, b)
    units: dict[int, list[Guest]] = {}
    for guest in guests:
        units.setdefault(root(guest.vmid), []).append(guest)
    return [tuple(unit) for unit in units.values()]


def _unit_order(unit: tuple[Guest, ...]) -> tuple[int, int, int]:
    """Largest running memory first, then largest configured memory, then lowest vmid."""
    demand = sum((Demand.of(g) for g in unit), Demand())
    return (-demand.mem, -sum(g.maxmem for g in unit), min(g.vmid for g in unit))


def _dedupe(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(texts))


@dataclass
class LocalDiskCopies:
    """Where a plan copies local volumes whose storage the target lacks (PVE's migrate with
    ``with-local-disks`` and ``targetstorage``/``target-storage``): a local storage on the target
    that takes the guest's content and has room for the volumes' full size, after the copies the
    plan already sent there. Without ``allowed`` such a guest cannot go to that target at all."""

    snapshot: ClusterSnapshot
    volumes: Mapping[int, LocalVolumes]
    allowed: bool
    taken: dict[tuple[str, str], int] = field(default_factory=dict)

    def missing(self, guest: Guest, target: str) -> tuple[str, ...]:
        """The guest's local storages that ``target`` does not have."""
        volumes = self.volumes.get(guest.vmid)
        if volumes is None:
            return ()
        there = {s.storage for s in self.snapshot.storage if s.node == target and s.status == "available"}
        return tuple(storage for storage in volumes.storages if storage not in there)

    def storage_for(self, guest: Guest, target: str, also: int = 0) -> str | None:
        """The target's local storage with the most room left, if it holds the volumes (and ``also``)."""
        volumes = self.volumes.get(guest.vmid)
        if volumes is None or not self.allowed:
            return None
        content = "images" if guest.type == "qemu" else "rootdir"
        room = {
            s.storage: s.maxdisk - s.disk - self.taken.get((target, s.storage), 0)
            for s in self.snapshot.storage
            if s.node == target and not s.shared and s.status == "available" and content in s.content
        }
        fitting = [storage for storage, free in room.items() if free >= volumes.size + also]
        return max(fitting, key=lambda storage: (room[storage], storage), default=None)

    def take(self, vmid: int, target: str, storage: str) -> None:
        key = (target, storage)
        self.taken[key] = self.taken.get(key, 0) + self.volumes[vmid].size


def _storage_copied(precondition: MigratePrecondition, target: str) -> MigratePrecondition:
    """PVE's precondition with its missing-storage refusal of ``target`` lifted (the copy maps it)."""
    return replace(
        precondition,
        not_allowed_nodes={n: why for n, why in precondition.not_allowed_nodes.items() if n != target},
        allowed_nodes=None if precondition.allowed_nodes is None else precondition.allowed_nodes | {target},
    )


@dataclass(frozen=True, slots=True)
class _Option:
    """One candidate node for a unit, its findings sorted by how they weigh in this plan."""

    node: str
    hard: tuple[str, ...]
    soft: tuple[str, ...]
    warnings: tuple[str, ...]
    about_guest: frozenset[str]  # texts that hold for every node
    after: NodeUsage
    storages: Mapping[int, str] = field(default_factory=dict)  # vmid -> where its local disks are copied

    @property
    def fit(self) -> tuple[float, float, str]:
        return (self.after.load, self.after.committed_fraction, self.node)


def _weigh_targets(
    constraints: Constraints,
    projection: ProjectedCluster,
    unit: tuple[Guest, ...],
    targets: list[str],
    *,
    hard_kinds: frozenset[Kind],
    soft_kinds: frozenset[Kind],
    mem_ceiling: float,
    preconditions: Mapping[int, MigratePrecondition],
    copies: LocalDiskCopies | None = None,
) -> list[_Option]:
    """Every target's findings for a unit, with the unit's whole demand landing there."""
    companions = frozenset(g.vmid for g in unit)
    demand = sum((Demand.of(g) for g in unit), Demand())
    options = []
    for target in targets:
        findings: list[Finding] = []
        storages: dict[int, str] = {}
        for guest in unit:
            precondition = preconditions.get(guest.vmid)
            missing = copies.missing(guest, target) if copies is not None else ()
            if missing and copies is not None:
                also = sum(copies.volumes[v].size for v in storages)  # rough: the unit's earlier copies
                storage = copies.storage_for(guest, target, also)
                if storage is not None:
                    storages[guest.vmid] = storage
                    if precondition is not None and target in precondition.storage_refused:
                        precondition = _storage_copied(precondition, target)
                elif copies.allowed:
                    size = gib(copies.volumes[guest.vmid].size)
                    findings.append(Finding(Kind.PLACEMENT, f"no local storage with room for its disks ({size})"))
                elif guest.type == "lxc":  # a VM's precondition says it; a container's task would fail
                    findings.append(Finding(Kind.PVE, f"storage {', '.join(missing)} is not available here"))
            findings += constraints.findings(
                guest,
                target,
                projection=projection,
                demand=demand,
                mem_ceiling=mem_ceiling,
                precondition=precondition,
                companions=companions,
            )
        options.append(
            _Option(
                node=target,
                hard=_dedupe(f.text for f in findings if f.kind in hard_kinds),
                soft=_dedupe(f.text for f in findings if f.kind in soft_kinds),
                warnings=_dedupe(f.text for f in findings if f.kind not in hard_kinds | soft_kinds),
                about_guest=frozenset(f.text for f in findings if f.about_guest),
                after=projection.usage_of(target).plus(demand, len(unit)),
                storages=storages,
            )
        )
    return options


def _explain(options: list[_Option], texts_of: Callable[[_Option], tuple[str, ...]]) -> str:
    """Reasons shared by several nodes said once, then the rest grouped by node."""
    if not options:
        return "no other node in the cluster"
    common = set(texts_of(options[0])) if len(options) > 1 else set(options[0].about_guest)
    for option in options[1:]:
        common &= set(texts_of(option))
    parts = [text for text in texts_of(options[0]) if text in common]
    by_reason: dict[str, list[str]] = {}
    for option in options:
        rest = "; ".join(text for text in texts_of(option) if text not in common)
        if rest:
            by_reason.setdefault(rest, []).append(option.node)
    parts += [f"{', '.join(nodes)}: {reason}" for reason, nodes in by_reason.items()]
    return "; ".join(parts)


def plan_evacuation(
    snapshot: ClusterSnapshot,
    node: str,
    rules: RuleSet | None = None,
    *,
    mode: Mode = "manual",
    now: float | None = None,
    mem_ceiling: float = EVACUATION_MEM_CEILING,
    preconditions: Mapping[int, MigratePrecondition] | None = None,
    local_volumes: Mapping[int, LocalVolumes] | None = None,
    copy_local_disks: bool = False,
) -> EvacuationPlan:
    """Place every guest of ``node`` elsewhere: a deterministic greedy plan.

    Largest memory first, each to the allowed node with the lowest load after it, never above
    ``mem_ceiling`` of a node's memory, never to reserved, maintenance or offline nodes, keeping
    affinity groups together and anti-affinity groups apart. Stopped guests and templates move
    too (offline). In ``manual`` mode a guest held only by a pin or lock lands in
    ``needs_decision`` with the nodes an override would allow; in ``auto`` mode, and whenever no
    node can take a guest at all, it lands in ``unplaceable``. ``now`` stamps the plan.
    ``local_volumes`` (vmid -> volumes on storage only ``node`` has) tells where a move needs its
    disks' storage on the target; with ``copy_local_disks`` a target without it may take the
    guest if one of its local storages has room for a copy (the move's ``target_storage``).
    """
    mode = check_mode(mode)
    _require_node(snapshot, node)
    _require_ceiling(mem_ceiling)
    preconditions = preconditions or {}
    constraints = Constraints(snapshot, rules or RuleSet.empty())
    projection = ProjectedCluster.of(snapshot)
    before = projection.balance()
    hard_kinds, soft_kinds = EVACUATION_HARD[mode], EVACUATION_SOFT[mode]
    targets = sorted(name for name in snapshot.node_by_name if name != node)
    copies = LocalDiskCopies(snapshot, local_volumes, copy_local_disks) if local_volumes else None

    moves: list[PlannedMove] = []
    needs_decision: list[Unplaced] = []
    unplaceable: list[Unplaced] = []
    units = sorted(affinity_units(constraints, snapshot.guests_by_node.get(node, ())), key=_unit_order)
    for unit in units:
        options = _weigh_targets(
            constraints,
            projection,
            unit,
            targets,
            hard_kinds=hard_kinds,
            soft_kinds=soft_kinds,
            mem_ceiling=mem_ceiling,
            preconditions=preconditions,
            copies=copies,
        )
        together = "" if len(unit) == 1 else f"moves together with {', '.join(str(g.vmid) for g in unit)}: "
        free = sorted((o for o in options if not o.hard and not o.soft), key=lambda o: o.fit)
        overridable = sorted((o for o in options if not o.hard), key=lambda o: o.fit)
        if free:
            best = free[0]
            for guest in unit:
                reason = f"{together}evacuate {node}: {best.node} has the lowest load after ({best.after.load:.0%})"
                storage = best.storages.get(guest.vmid)
                if storage is not None and copies is not None:
                    reason += f"; local disks copied to {storage}"
                    copies.take(guest.vmid, best.node, storage)
                move = planned_move(
                    guest, node, best.node, reason, preconditions.get(guest.vmid), best.warnings, storage
                )
                moves.append(move)
            projection = projection.apply((g.vmid for g in unit), best.node)
        elif overridable and soft_kinds:
            blocked_within = [o for o in options if o.hard and not o.soft]
            reason = "; ".join(_dedupe(text for o in overridable for text in o.soft))
            if blocked_within:  # nodes the pin allows, but which cannot take the guest
                reason += "; " + _explain(blocked_within, lambda o: o.hard)
            needs_decision += [
                Unplaced(g.vmid, g.name, node, together + reason, tuple(o.node for o in overridable)) for g in unit
            ]
        else:
            reason = _explain(options, lambda o: o.hard + o.soft)
            unplaceable += [Unplaced(g.vmid, g.name, node, together + reason) for g in unit]

    return EvacuationPlan(
        node=node,
        mode=mode,
        moves=tuple(moves),
        needs_decision=tuple(needs_decision),
        unplaceable=tuple(unplaceable),
        before=before,
        after=projection.balance(),
        projection=projection,
        planned_at=now,
    )


# ---------------------------------------------------------------------------------------------
# bulk moves


def plan_bulk_move(
    snapshot: ClusterSnapshot,
    vmids: Iterable[int],
    target: str,
    rules: RuleSet | None = None,
    *,
    mode: Mode = "manual",
    mem_ceiling: float = 1.0,
    preconditions: Mapping[int, MigratePrecondition] | None = None,
) -> BulkPlan:
    """Move the chosen guests (e.g. all with one tag) to ``target``, in vmid order.

    Each guest is checked against the target as it fills up: the guests that fit become moves,
    the others are refused with the verdict's reasons. Positive affinity rules treat the other
    chosen guests as coming along.
    """
    mode = check_mode(mode)
    _require_node(snapshot, target)
    _require_ceiling(mem_ceiling)
    preconditions = preconditions or {}
    constraints = Constraints(snapshot, rules or RuleSet.empty())
    start = projection = ProjectedCluster.of(snapshot)
    chosen = sorted(set(vmids))
    companions = frozenset(chosen)
    moves: list[PlannedMove] = []
    refused: list[Unplaced] = []
    for vmid in chosen:
        guest = snapshot.guest_by_vmid.get(vmid)
        if guest is None:
            refused.append(Unplaced(vmid, "", "", f"no guest {vmid} in the cluster"))
            continue
        precondition = preconditions.get(vmid)
        verdict = constraints.verdict(
            guest,
            target,
            mode=mode,
            projection=projection,
            mem_ceiling=mem_ceiling,
            precondition=precondition,
            companions=companions,
        )
        if not verdict.allowed:
            refused.append(Unplaced(vmid, guest.name, guest.node, "; ".join(verdict.blocks)))
            continue
        moves.append(planned_move(guest, guest.node, target, f"bulk move to {target}", precondition, verdict.warnings))
        projection = projection.apply((vmid,), target)
    return BulkPlan(
        target=target,
        moves=tuple(moves),
        refused=tuple(refused),
        target_before=start.usage_of(target),
        target_after=projection.usage_of(target),
        after=projection.balance(),
        projection=projection,
    )
