"""Reconcile: which stored rules no longer match the cluster, and what to do about each.

Pure: it compares a ``ClusterSnapshot`` with the stored rules and proposes changes; the store
applies them only after the user confirmed (and only to entries unchanged since the review).
Nothing here drops a rule silently: every proposal names the entry, the problem and the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pvetop.model import ClusterSnapshot

RuleKind = Literal["pin", "lock", "reservation", "maintenance", "node_power"]
Problem = Literal["guest_gone", "vmid_reused", "nodes_gone", "node_gone"]
ChangeAction = Literal["remove", "narrow"]


class GuestRule(Protocol):
    vmid: int
    name: str


class PinRule(GuestRule, Protocol):
    nodes: frozenset[str]


class NodeRule(Protocol):
    node: str


class StoredRulesLike(Protocol):
    pins: Sequence[PinRule]
    locks: Sequence[GuestRule]
    reservations: Sequence[NodeRule]
    maintenance: Sequence[NodeRule]
    node_power: Sequence[NodeRule]


@dataclass(frozen=True, slots=True)
class ReconcileChange:
    """One proposed change: ``remove`` the entry, or ``narrow`` a pin to ``new_nodes``."""

    kind: RuleKind
    target: str  # guest/100 | node/pve3
    problem: Problem
    action: ChangeAction
    entry: object  # the stored record as it was reviewed
    detail: str
    new_nodes: frozenset[str] = frozenset()


def _guest_problem(rule: GuestRule, snapshot: ClusterSnapshot) -> tuple[Problem, str] | None:
    guest = snapshot.guest_by_vmid.get(rule.vmid)
    if guest is None:
        return "guest_gone", f"guest {rule.vmid} ({rule.name or 'unnamed'}) no longer exists"
    # guests on an offline node come back without a name: unknown is not "different"
    if rule.name and guest.name and guest.name != rule.name:
        return "vmid_reused", f"vmid {rule.vmid} now belongs to {guest.name!r}, not {rule.name!r}"
    return None


def reconcile(snapshot: ClusterSnapshot, rules: StoredRulesLike) -> tuple[ReconcileChange, ...]:
    """Every stored rule that refers to a missing guest or node, or to a reused vmid."""
    if not snapshot.nodes:
        raise ValueError("the snapshot lists no nodes: refusing to judge rules against an empty cluster")
    nodes = set(snapshot.node_by_name)
    changes: list[ReconcileChange] = []
    for pin in rules.pins:
        target = f"guest/{pin.vmid}"
        problem = _guest_problem(pin, snapshot)
        if problem:
            changes.append(ReconcileChange("pin", target, problem[0], "remove", pin, f"{problem[1]}: remove its pin"))
            continue
        kept = frozenset(pin.nodes) & nodes
        gone = sorted(set(pin.nodes) - nodes)
        if not gone:
            continue
        if kept:
            changes.append(
                ReconcileChange(
                    "pin",
                    target,
                    "nodes_gone",
                    "narrow",
                    pin,
                    f"pin of {pin.vmid} ({pin.name}) names missing node(s) {', '.join(gone)}: "
                    f"keep only {', '.join(sorted(kept))}",
                    new_nodes=kept,
                )
            )
        else:
            changes.append(
                ReconcileChange(
                    "pin",
                    target,
                    "nodes_gone",
                    "remove",
                    pin,
                    f"every node of the pin of {pin.vmid} ({pin.name}) is gone ({', '.join(gone)}): remove the pin",
                )
            )
    for lock in rules.locks:
        problem = _guest_problem(lock, snapshot)
        if problem:
            changes.append(
                ReconcileChange(
                    "lock", f"guest/{lock.vmid}", problem[0], "remove", lock, f"{problem[1]}: remove its lock"
                )
            )
    node_rules: tuple[tuple[RuleKind, Sequence[NodeRule], str], ...] = (
        ("reservation", rules.reservations, "reservation"),
        ("maintenance", rules.maintenance, "maintenance flag"),
        ("node_power", rules.node_power, "power settings"),
    )
    for kind, entries, label in node_rules:
        for entry in entries:
            if entry.node not in nodes:
                changes.append(
                    ReconcileChange(
                        kind,
                        f"node/{entry.node}",
                        "node_gone",
                        "remove",
                        entry,
                        f"node {entry.node} is no longer in the cluster: remove its {label}",
                    )
                )
    return tuple(changes)
