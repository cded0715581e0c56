"""Why a node can or cannot receive a guest (the rules table in docs/design.md).

Every check yields a ``Finding``: a kind and a sentence for the user. Which kinds block depends
on who moves the guest: a user's **manual** move is only stopped by what makes the migration
fail (offline node, no memory, Proxmox VE's precondition); pins, locks and the other rules are
shown as warnings. An **automatic** move treats every rule as hard. Evacuation plans mix the
two (see ``placement``), which is why findings are kept apart from the mode that weighs them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Literal

from pvetop.errors import UsageError
from pvetop.model import ClusterSnapshot, Guest, HaRule, MigratePrecondition
from pvetop.policy.projection import Demand, ProjectedCluster
from pvetop.policy.rules import RuleSet, proxlb_tags

Mode = Literal["manual", "auto"]
MODES: tuple[Mode, ...] = ("manual", "auto")
GIB = 1024**3


class Kind(Enum):
    """What a finding is about; the mode decides whether it blocks or warns."""

    PLACEMENT = "placement"  # same node, unknown/offline node, guest not movable, no memory
    PVE = "pve"  # Proxmox VE's migrate precondition refuses
    LOCAL_DISKS = "local-disks"  # informative: disks are copied during the move
    PIN = "pin"
    LOCK = "lock"
    RESERVED_SOURCE = "reserved-source"
    RESERVED_TARGET = "reserved-target"
    MAINTENANCE = "maintenance"
    HA = "ha"  # strict node-affinity, resource affinity / anti-affinity
    HA_PREFERENCE = "ha-preference"  # node-affinity priorities: PVE's CRM moves it back to a higher group
    PROXLB_PIN = "proxlb-pin"
    PROXLB_IGNORE = "proxlb-ignore"
    PROXLB_GROUP = "proxlb-group"


BLOCKING: Mapping[Mode, frozenset[Kind]] = MappingProxyType(
    {
        # PVE's HA manager enforces strict node-affinity and resource-affinity rules for every move,
        # a user's too (pve-ha-manager refuses or drops it): only pvetop's own rules bind automation
        # alone. A move below a rule's top priority group is only warned of to a user; automation
        # must not make it, as the CRM would move the guest straight back.
        "manual": frozenset({Kind.PLACEMENT, Kind.PVE, Kind.HA}),
        "auto": frozenset(Kind) - {Kind.LOCAL_DISKS},
    }
)


def ha_preferred_nodes(rule: HaRule, online: Iterable[str]) -> frozenset[str] | None:
    """The nodes PVE's CRM keeps a service of node-affinity ``rule`` on: the highest-priority group
    of the rule's online nodes (pve-ha-manager Manager.pm select_service_node, failback on), or
    None when none of them is online (a non-strict rule then allows any node, a strict one none)."""
    up = set(online)
    listed = [(name, priority) for name, priority in rule.nodes if name in up]
    if not listed:
        return None
    top = max(priority for _name, priority in listed)
    return frozenset(name for name, priority in listed if priority == top)


def ha_comigrates(snapshot: ClusterSnapshot, leader: Guest, guest: Guest) -> bool:
    """Whether PVE's HA manager moves ``guest`` along when ``leader`` is asked to move: both are
    HA-managed in one enabled positive resource-affinity rule (pve-ha-manager Manager.pm
    queue_resource_motion)."""
    return (
        leader.ha_managed
        and guest.ha_managed
        and any(
            rule.type == "resource-affinity"
            and rule.affinity == "positive"
            and not rule.disabled
            and {leader.sid, guest.sid} <= set(rule.resources)
            for rule in snapshot.ha_rules
        )
    )


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    text: str
    about_guest: bool = False  # true whatever the target (e.g. a lock), so said once, not per node


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether ``node`` may receive the guest, and the reasons either way, in plain words."""

    node: str
    allowed: bool
    blocks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def weigh(cls, node: str, findings: Iterable[Finding], blocking: frozenset[Kind]) -> Verdict:
        blocks = tuple(f.text for f in findings if f.kind in blocking)
        warnings = tuple(f.text for f in findings if f.kind not in blocking)
        return cls(node, not blocks, blocks, warnings)


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise UsageError(f"mode must be 'manual' or 'auto', not {mode!r}")
    return mode


def gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


def _names(items: Iterable[Any]) -> str:
    return ", ".join(str(item) for item in sorted(items))


def ha_local_disks_problem(guest: Guest, precondition: MigratePrecondition | None) -> str | None:
    """Why an HA-managed VM with local disks cannot move: PVE's HA manager migrates it live but never
    with local disks (HA expects shared storage or replication), so the task would fail."""
    if guest.type != "qemu" or not guest.ha_managed or precondition is None or not precondition.local_disks:
        return None
    return (
        f"VM {guest.vmid} is HA-managed and has local disks ({', '.join(precondition.local_disks)}): "
        "PVE's HA manager does not copy local disks, so this migration would fail — "
        "move the disks to shared storage or set up replication"
    )


class Constraints:
    """The rules of one snapshot + rule set, indexed once, asked per guest and node."""

    def __init__(self, snapshot: ClusterSnapshot, rules: RuleSet):
        self.snapshot = snapshot
        self.rules = rules
        vmid_by_sid = {guest.sid: guest.vmid for guest in snapshot.guests}
        self._node_rules: dict[int, list[HaRule]] = defaultdict(list)
        self._resource_rules: dict[int, list[tuple[HaRule, tuple[int, ...]]]] = defaultdict(list)
        for rule in snapshot.ha_rules:
            if rule.disabled:
                continue
            members = tuple(vmid_by_sid[sid] for sid in rule.resources if sid in vmid_by_sid)
            for vmid in members:
                if rule.type == "node-affinity":
                    self._node_rules[vmid].append(rule)
                elif rule.type == "resource-affinity":
                    self._resource_rules[vmid].append((rule, members))
        self._plb_groups: dict[tuple[bool, str], list[int]] = defaultdict(list)
        if rules.import_proxlb_tags:
            for guest in snapshot.guests:
                tags = proxlb_tags(guest, rules)
                for name in tags.affinity:
                    self._plb_groups[True, name].append(guest.vmid)
                for name in tags.anti_affinity:
                    self._plb_groups[False, name].append(guest.vmid)

    def positive_partners(self, guest: Guest) -> frozenset[int]:
        """Guests that must run on the same node as this one (HA positive affinity, ProxLB)."""
        return self._partners(guest, together=True)

    def negative_partners(self, guest: Guest) -> frozenset[int]:
        """Guests that must not run on the same node as this one (HA negative affinity, ProxLB
        anti-affinity)."""
        return self._partners(guest, together=False)

    def _partners(self, guest: Guest, *, together: bool) -> frozenset[int]:
        affinity = "positive" if together else "negative"
        partners: set[int] = set()
        for rule, members in self._resource_rules.get(guest.vmid, ()):
            if rule.affinity == affinity:
                partners.update(members)
        tags = proxlb_tags(guest, self.rules)
        for name in tags.affinity if together else tags.anti_affinity:
            partners.update(self._plb_groups[together, name])
        partners.discard(guest.vmid)
        return frozenset(partners)

    def findings(
        self,
        guest: Guest,
        target: str,
        *,
        projection: ProjectedCluster,
        demand: Demand | None = None,
        mem_ceiling: float = 1.0,
        precondition: MigratePrecondition | None = None,
        companions: frozenset[int] = frozenset(),
    ) -> list[Finding]:
        """Everything that speaks for or against moving ``guest`` to ``target``.

        ``demand`` is what lands on the target (defaults to the guest's own; evacuation passes
        a whole affinity group's). ``companions`` move together with the guest, so positive
        affinity rules look past them (anti-affinity still sees where they are).
        """
        found = self._placement(guest, target, projection, demand or Demand.of(guest), mem_ceiling)
        found += self._precondition(guest, target, precondition)
        found += self._user_rules(guest, target, projection)
        found += self._ha_rules(guest, target, projection, companions)
        found += self._proxlb(guest, target, projection, companions)
        return found

    def verdict(
        self, guest: Guest, target: str, *, mode: Mode, projection: ProjectedCluster, **options: Any
    ) -> Verdict:
        findings = self.findings(guest, target, projection=projection, **options)
        return Verdict.weigh(target, findings, BLOCKING[check_mode(mode)])

    def _placement(
        self, guest: Guest, target: str, projection: ProjectedCluster, demand: Demand, mem_ceiling: float
    ) -> list[Finding]:
        found: list[Finding] = []

        def block(text: str, about_guest: bool = False) -> None:
            found.append(Finding(Kind.PLACEMENT, text, about_guest))

        source = projection.node_of(guest.vmid)
        node = projection.usage.get(target)
        if target == source:
            block("already on this node")
        elif node is None:
            block("no such node in the cluster")
        elif not node.online:
            block("offline")
        if not projection.usage_of(source).online:
            block(f"its node {source} is offline", about_guest=True)
        elif guest.status == "unknown":
            block("guest state is unknown", about_guest=True)
        if guest.lock:
            block(f"guest is locked by Proxmox VE ({guest.lock})", about_guest=True)
        if node is not None and node.online and target != source:
            free = node.free_mem_below(mem_ceiling)
            if demand.mem > free:
                below = "" if mem_ceiling >= 1.0 else f" below the {mem_ceiling:.0%} ceiling"
                block(f"needs {gib(demand.mem)}, {gib(free)} free{below}")
        return found

    @staticmethod
    def _precondition(guest: Guest, target: str, precondition: MigratePrecondition | None) -> list[Finding]:
        if precondition is None:
            return []
        found: list[Finding] = []
        refusal = precondition.not_allowed_nodes.get(target)
        if refusal is not None:
            found.append(Finding(Kind.PVE, f"Proxmox VE refuses: {refusal}"))
        elif precondition.allowed_nodes is not None and target not in precondition.allowed_nodes:
            found.append(Finding(Kind.PVE, "not in Proxmox VE's allowed nodes"))
        if precondition.local_resources:
            found.append(Finding(Kind.PVE, f"uses local resources: {_names(precondition.local_resources)}", True))
        ha_problem = ha_local_disks_problem(guest, precondition)
        if ha_problem is not None:
            found.append(Finding(Kind.PVE, ha_problem, True))
        elif precondition.local_disks and guest.type == "qemu":
            found.append(Finding(Kind.LOCAL_DISKS, f"local disks are copied: {_names(precondition.local_disks)}", True))
        return found

    def _user_rules(self, guest: Guest, target: str, projection: ProjectedCluster) -> list[Finding]:
        rules = self.rules
        found: list[Finding] = []
        pinned = rules.pinned_to(guest.vmid)
        if pinned is not None and target not in pinned:
            found.append(Finding(Kind.PIN, f"pinned to {_names(pinned)}"))
        if rules.is_locked(guest.vmid):
            found.append(Finding(Kind.LOCK, "locked against automatic moves", True))
        source = projection.node_of(guest.vmid)
        if source in rules.reserved:
            found.append(Finding(Kind.RESERVED_SOURCE, f"its node {source} is reserved", True))
        if target in rules.reserved:
            found.append(Finding(Kind.RESERVED_TARGET, "node is reserved"))
        if target in rules.maintenance:
            found.append(Finding(Kind.MAINTENANCE, "node is in maintenance"))
        return found

    def _ha_rules(
        self, guest: Guest, target: str, projection: ProjectedCluster, companions: frozenset[int]
    ) -> list[Finding]:
        found: list[Finding] = []
        for rule in self._node_rules.get(guest.vmid, ()):
            listed = {name for name, _priority in rule.nodes}
            if rule.strict and target not in listed:
                found.append(
                    Finding(
                        Kind.HA,
                        f"strict HA node-affinity rule '{rule.rule}' allows only {_names(listed)} "
                        "(PVE's HA manager enforces it for every move)",
                    )
                )
                continue
            online = (name for name, usage in projection.usage.items() if usage.online)
            preferred = ha_preferred_nodes(rule, online)
            if preferred is not None and target not in preferred:
                found.append(
                    Finding(
                        Kind.HA_PREFERENCE,
                        f"HA node-affinity rule '{rule.rule}' prefers {_names(preferred)} "
                        "(PVE's HA manager moves it back there)",
                    )
                )
        for rule, members in self._resource_rules.get(guest.vmid, ()):
            others = [vmid for vmid in members if vmid != guest.vmid]
            if rule.affinity == "negative":
                there = [vmid for vmid in others if projection.node_of(vmid) == target]
                if there:
                    found.append(Finding(Kind.HA, f"HA anti-affinity rule '{rule.rule}': {self._sids(there)} there"))
            elif rule.affinity == "positive":
                others = [vmid for vmid in others if vmid not in companions]
                elsewhere = {projection.node_of(vmid) for vmid in others} - {target}
                if elsewhere:
                    found.append(
                        Finding(
                            Kind.HA,
                            f"HA affinity rule '{rule.rule}' keeps it with {self._sids(others)} on {_names(elsewhere)}",
                        )
                    )
        return found

    def _sids(self, vmids: Iterable[int]) -> str:
        guest_by_vmid = self.snapshot.guest_by_vmid
        return ", ".join(guest_by_vmid[vmid].sid for vmid in sorted(vmids))

    def _proxlb(
        self, guest: Guest, target: str, projection: ProjectedCluster, companions: frozenset[int]
    ) -> list[Finding]:
        tags = proxlb_tags(guest, self.rules)
        if not tags.any:
            return []
        found: list[Finding] = []
        if tags.ignore:
            found.append(Finding(Kind.PROXLB_IGNORE, "ProxLB ignore tag: never moved automatically", True))
        if tags.pins and target not in tags.pins:
            found.append(Finding(Kind.PROXLB_PIN, f"ProxLB pin to {_names(tags.pins)}"))
        for together, names in ((False, tags.anti_affinity), (True, tags.affinity)):
            for name in sorted(names):
                others = [
                    vmid
                    for vmid in self._plb_groups[together, name]
                    if vmid != guest.vmid and not (together and vmid in companions)
                ]
                if together:
                    elsewhere = {projection.node_of(vmid) for vmid in others} - {target}
                    if elsewhere:
                        found.append(
                            Finding(
                                Kind.PROXLB_GROUP,
                                f"ProxLB affinity '{name}' keeps it with {_names(others)} on {_names(elsewhere)}",
                            )
                        )
                else:
                    there = [vmid for vmid in others if projection.node_of(vmid) == target]
                    if there:
                        found.append(
                            Finding(Kind.PROXLB_GROUP, f"ProxLB anti-affinity '{name}': {_names(there)} there")
                        )
        return found


def check_move(
    snapshot: ClusterSnapshot,
    guest: Guest,
    target: str,
    rules: RuleSet | None = None,
    *,
    mode: Mode = "manual",
    precondition: MigratePrecondition | None = None,
    projection: ProjectedCluster | None = None,
) -> Verdict:
    """One verdict, for callers asking about a single node; planners keep a ``Constraints``."""
    constraints = Constraints(snapshot, rules or RuleSet.empty())
    return constraints.verdict(
        guest, target, mode=mode, projection=projection or ProjectedCluster.of(snapshot), precondition=precondition
    )
