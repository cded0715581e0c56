"""What binds whom (the rules table in docs/design.md), as plain data the planners read.

The store keeps pins, locks and node flags as rows; it hands policy one immutable ``RuleSet``.
PVE's own HA rules are not copied here: they travel with the ``ClusterSnapshot`` they were
fetched with, so a plan never mixes rules and state from different moments. ProxLB tags also
live on the guests; ``proxlb_tags`` reads them when ``RuleSet.import_proxlb_tags`` is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pvetop.model import Guest

PLB_PIN = "plb_pin_"
PLB_IGNORE = "plb_ignore"
PLB_AFFINITY = "plb_affinity_"
PLB_ANTI_AFFINITY = "plb_anti_affinity_"


@dataclass(frozen=True)
class RuleSet:
    """The user's rules for one cluster; set fields accept any iterable and keep a frozenset."""

    pins: Mapping[int, frozenset[str]] = field(default_factory=dict, hash=False)
    locks: frozenset[int] = frozenset()
    reserved: frozenset[str] = frozenset()
    maintenance: frozenset[str] = frozenset()
    import_proxlb_tags: bool = False

    def __post_init__(self) -> None:
        pins: dict[int, frozenset[str]] = {}
        for vmid, nodes in dict(self.pins).items():
            if isinstance(nodes, str):
                raise ValueError(f"pin of guest {vmid}: give a set of node names, not a string")
            allowed = frozenset(nodes)
            if not allowed:
                raise ValueError(f"pin of guest {vmid} names no node")
            pins[int(vmid)] = allowed
        object.__setattr__(self, "pins", MappingProxyType(pins))
        for name in ("locks", "reserved", "maintenance"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"{name}: give a set, not the string {value!r}")
            object.__setattr__(self, name, frozenset(value))

    @classmethod
    def empty(cls) -> RuleSet:
        return cls()

    def pinned_to(self, vmid: int) -> frozenset[str] | None:
        """The nodes a guest is pinned to, or None when it is free to go anywhere."""
        return self.pins.get(vmid)

    def is_locked(self, vmid: int) -> bool:
        return vmid in self.locks


@dataclass(frozen=True, slots=True)
class ProxlbTags:
    """ProxLB's tag language on one guest (``plb_pin_<node>``, ``plb_ignore*``, groups)."""

    pins: frozenset[str] = frozenset()
    ignore: bool = False
    affinity: frozenset[str] = frozenset()
    anti_affinity: frozenset[str] = frozenset()

    @property
    def any(self) -> bool:
        return bool(self.pins or self.ignore or self.affinity or self.anti_affinity)


NO_PROXLB_TAGS = ProxlbTags()


def parse_proxlb_tags(tags: Iterable[str]) -> ProxlbTags:
    """Read ProxLB's tags; several ``plb_pin_`` tags mean "any of these nodes", as in ProxLB."""
    pins: set[str] = set()
    affinity: set[str] = set()
    anti_affinity: set[str] = set()
    ignore = False
    for tag in tags:
        tag = tag.strip()
        if tag.startswith(PLB_PIN) and len(tag) > len(PLB_PIN):
            pins.add(tag[len(PLB_PIN) :])
        elif tag.startswith(PLB_IGNORE):
            ignore = True
        elif tag.startswith(PLB_ANTI_AFFINITY) and len(tag) > len(PLB_ANTI_AFFINITY):
            anti_affinity.add(tag[len(PLB_ANTI_AFFINITY) :])
        elif tag.startswith(PLB_AFFINITY) and len(tag) > len(PLB_AFFINITY):
            affinity.add(tag[len(PLB_AFFINITY) :])
    if not (pins or ignore or affinity or anti_affinity):
        return NO_PROXLB_TAGS
    return ProxlbTags(frozenset(pins), ignore, frozenset(affinity), frozenset(anti_affinity))


def proxlb_tags(guest: Guest, rules: RuleSet) -> ProxlbTags:
    """The guest's ProxLB tags when the rules import them, otherwise none."""
    if not rules.import_proxlb_tags or not guest.tags:
        return NO_PROXLB_TAGS
    return parse_proxlb_tags(guest.tags)
