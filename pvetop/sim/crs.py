"""PVE 9.2's automatic HA rebalancing (``crs: ha-auto-rebalance=1``), one CRM round at a time.

Node load = (cpu share + memory share) / 2; imbalance = coefficient of variation of the online
nodes' loads / sqrt(n - 1), in [0, 1]. When it stays above the threshold for ``hold-duration``
rounds, the CRM moves the one HA guest whose move lowers imbalance the most, if that improves it
by at least ``margin`` (relative). Only HA-managed guests move, as in PVE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CrsSettings:
    enabled: bool
    threshold: float = 0.3
    hold_rounds: int = 3
    margin: float = 0.1

    @classmethod
    def from_option(cls, crs: dict) -> CrsSettings:
        return cls(
            enabled=bool(crs.get("ha-auto-rebalance", 0)),
            threshold=float(crs.get("ha-auto-rebalance-threshold", 0.3)),
            hold_rounds=int(crs.get("ha-auto-rebalance-hold-duration", 3)),
            margin=float(crs.get("ha-auto-rebalance-margin", 0.1)),
        )


def imbalance(loads: list[float]) -> float:
    """Coefficient of variation / sqrt(n-1): 0 when even, 1 when one node carries everything."""
    if len(loads) < 2:
        return 0.0
    mean = sum(loads) / len(loads)
    if mean <= 0:
        return 0.0
    deviation = math.sqrt(sum((load - mean) ** 2 for load in loads) / len(loads))
    return deviation / mean / math.sqrt(len(loads) - 1)


@dataclass(frozen=True)
class Candidate:
    """A movable guest: its node and how much of each node's load it would add (per node)."""

    vmid: int
    node: str
    load_on: dict[str, float]  # node -> the load this guest puts on that node
    allowed: tuple[str, ...]  # nodes the HA rules allow it on


def best_move(loads: dict[str, float], candidates: list[Candidate]) -> tuple[int, str, float] | None:
    """(vmid, target, new imbalance) of the move that lowers imbalance the most, if any."""
    names = list(loads)
    best = None
    for candidate in candidates:
        for target in candidate.allowed:
            if target == candidate.node or target not in loads:
                continue
            trial = dict(loads)
            trial[candidate.node] -= candidate.load_on[candidate.node]
            trial[target] += candidate.load_on[target]
            value = imbalance([trial[name] for name in names])
            if best is None or value < best[2]:
                best = (candidate.vmid, target, value)
    return best
