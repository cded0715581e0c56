"""Pins the user may want, read from what the cluster already says: ProxLB's ``plb_pin_<node>``
tags and PVE HA node-affinity rules. Pure; the user accepts or ignores each suggestion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pvetop.model import ClusterSnapshot
from pvetop.policy.rules import parse_proxlb_tags


@dataclass(frozen=True, slots=True)
class PinSuggestion:
    vmid: int
    name: str
    nodes: frozenset[str]
    source: str  # "proxlb-tag" | "ha-rule:<rule id>"
    reason: str
    replaces: frozenset[str] | None = None  # the current pin's nodes when this one would change it

    @property
    def note(self) -> str:
        """What the pin's note says when the suggestion is accepted."""
        return f"from {self.source}"


def suggest_pins(snapshot: ClusterSnapshot, current: Mapping[int, frozenset[str]]) -> tuple[PinSuggestion, ...]:
    """One suggestion per source that would pin a guest differently from ``current`` (vmid -> nodes).

    Node names that are not in the cluster are dropped (a tag naming a retired node must not pin a
    guest to nowhere); a source naming no existing node suggests nothing.
    """
    known = {name.lower(): name for name in snapshot.node_by_name}
    found: list[PinSuggestion] = []

    def offer(vmid: int, wanted: set[str], source: str, reason: str) -> None:
        guest = snapshot.guest_by_vmid.get(vmid)
        nodes = frozenset(known[n.lower()] for n in wanted if n.lower() in known)
        if guest is None or not nodes or current.get(vmid) == nodes:
            return
        found.append(PinSuggestion(vmid, guest.name, nodes, source, reason, replaces=current.get(vmid)))

    for guest in snapshot.guests:
        tagged = parse_proxlb_tags(guest.tags).pins
        if tagged:
            offer(
                guest.vmid,
                set(tagged),
                "proxlb-tag",
                "ProxLB tag" + ("s " if len(tagged) > 1 else " ") + ", ".join(f"plb_pin_{n}" for n in sorted(tagged)),
            )
    for rule in snapshot.ha_rules:
        if rule.type != "node-affinity" or rule.disabled or not rule.nodes:
            continue
        wanted = {node for node, _priority in rule.nodes}
        kind = "strict" if rule.strict else "non-strict (preferred nodes)"
        for sid in rule.resources:
            _, _, number = sid.partition(":")
            if number.isdigit():
                offer(int(number), wanted, f"ha-rule:{rule.rule}", f"HA node-affinity rule {rule.rule}, {kind}")
    found.sort(key=lambda s: (s.vmid, s.source))
    return tuple(found)
