"""Figures the header, the balancer and the planners agree on (docs/design.md, "Balancer").

Node load is the share of CPU and memory in use, averaged. Imbalance is the coefficient of
variation of the online nodes' loads divided by √(n−1): 0 when every node carries the same load,
1 when one node carries everything — the figure Proxmox VE 9.2 shows, so both tell the same story.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pvetop.model import ClusterSnapshot, fraction


@dataclass(frozen=True, slots=True)
class Balance:
    """How evenly load is spread over the online nodes."""

    loads: Mapping[str, float]  # node -> load fraction (0..1), online nodes only
    imbalance: float  # 0 = even .. 1 = all on one node
    spread: float  # max - min load, in percentage points
    mean: float
    hottest: str | None
    coolest: str | None


def imbalance_text(value: float, *, digits: int = 0) -> str:
    """The one way imbalance is written everywhere (header, dialogs, CLI, plans, the journal): a
    percentage, whole unless ``digits`` asks for more."""
    return f"{value * 100:.{digits}f}%"


def imbalance_change(before: float, after: float) -> str:
    """``before → after`` as percentages; one decimal when whole ones would read the same (a small
    move on a big cluster changes imbalance by tenths of a point)."""
    digits = 0 if round(before * 100) != round(after * 100) else 1
    return f"{imbalance_text(before, digits=digits)} → {imbalance_text(after, digits=digits)}"


def imbalance(loads: list[float] | tuple[float, ...]) -> float:
    """Coefficient of variation (population std / mean) / √(n−1), clamped to [0, 1]."""
    n = len(loads)
    if n <= 1:
        return 0.0
    mean = sum(loads) / n
    if mean <= 0:
        return 0.0
    variance = sum((load - mean) ** 2 for load in loads) / n
    return min(1.0, max(0.0, math.sqrt(variance) / mean / math.sqrt(n - 1)))


def balance_of(loads: Mapping[str, float]) -> Balance:
    """Balance of given per-node loads; the planners pass projected loads here."""
    frozen = MappingProxyType(dict(loads))
    if not frozen:
        return Balance(frozen, 0.0, 0.0, 0.0, None, None)
    values = tuple(frozen.values())
    # Ties go to the first name in sorted order so the figure never flickers between equals.
    ordered = sorted(frozen.items(), key=lambda item: item[0])
    hottest = max(ordered, key=lambda item: item[1])[0]
    coolest = min(ordered, key=lambda item: item[1])[0]
    return Balance(
        loads=frozen,
        imbalance=imbalance(values),
        spread=(max(values) - min(values)) * 100,
        mean=sum(values) / len(values),
        hottest=hottest,
        coolest=coolest,
    )


def cluster_balance(snapshot: ClusterSnapshot) -> Balance:
    """Balance of the snapshot's online nodes, as they are now."""
    return balance_of({node.name: node.load for node in snapshot.online_nodes})


@dataclass(frozen=True, slots=True)
class ClusterTotals:
    """The header line: what the online nodes have and use, and how many guests run."""

    nodes_online: int
    nodes_total: int
    cores_used: float
    maxcpu: int
    mem: int
    maxmem: int
    guests_running: int
    guests_total: int

    @property
    def cpu_fraction(self) -> float:
        """Busy cores over all cores, so a 64-core node weighs more than a 4-core one."""
        return fraction(self.cores_used, self.maxcpu)

    @property
    def mem_fraction(self) -> float:
        return fraction(self.mem, self.maxmem)


def cluster_totals(snapshot: ClusterSnapshot) -> ClusterTotals:
    online = snapshot.online_nodes
    return ClusterTotals(
        nodes_online=len(online),
        nodes_total=len(snapshot.nodes),
        cores_used=sum(node.cpu * node.maxcpu for node in online),
        maxcpu=sum(node.maxcpu for node in online),
        mem=sum(node.mem for node in online),
        maxmem=sum(node.maxmem for node in online),
        guests_running=sum(1 for guest in snapshot.guests if guest.running),
        guests_total=len(snapshot.guests),
    )


@dataclass(frozen=True, slots=True)
class GuestRates:
    """Bytes per second between two snapshots."""

    netin: float
    netout: float
    diskread: float
    diskwrite: float


COUNTERS = ("netin", "netout", "diskread", "diskwrite")


def _counter_rate(before: int, after: int, seconds: float) -> float:
    # A counter that went down was reset (guest restarted or migrated) within the interval:
    # everything it counts now was counted since then, so after/seconds is a safe lower bound.
    delta = after - before if after >= before else after
    return delta / seconds


def guest_rates(
    previous: ClusterSnapshot, current: ClusterSnapshot, seconds: float | None = None
) -> dict[int, GuestRates]:
    """Net and disk rates per vmid for guests present and reporting in both snapshots.

    ``seconds`` defaults to the difference of the snapshots' ``fetched_at``. When no time passed
    there is no rate to tell, so the result is empty rather than an error; new guests and guests
    whose node is offline (status ``unknown``, no counters) are left out until they report twice.
    """
    if seconds is None:
        seconds = current.fetched_at - previous.fetched_at
    if seconds <= 0:
        return {}
    before_by_vmid = previous.guest_by_vmid
    rates: dict[int, GuestRates] = {}
    for guest in current.guests:
        before = before_by_vmid.get(guest.vmid)
        if before is None or guest.status == "unknown" or before.status == "unknown":
            continue
        rates[guest.vmid] = GuestRates(
            *(_counter_rate(getattr(before, name), getattr(guest, name), seconds) for name in COUNTERS)
        )
    return rates
