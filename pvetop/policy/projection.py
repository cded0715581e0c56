"""Node-capacity accounting for "what if these guests moved": the planners' shared scratchpad.

A ``ProjectedCluster`` starts from a snapshot and applies moves without touching it, returning
a new projection each time, so a planner can try a move, compare, and keep or drop it. CPU is
counted in busy cores (they add up across nodes of different sizes), memory in bytes of running
guests (what a live move carries; a stopped guest needs none until it starts), and committed
memory as the ``maxmem`` of running guests (what they may grow to).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from pvetop.model import ClusterSnapshot, Guest, Node, fraction
from pvetop.policy.metrics import Balance, balance_of


@dataclass(frozen=True, slots=True)
class Demand:
    """What a guest takes with it to another node."""

    cpu_cores: float = 0.0
    mem: int = 0
    committed: int = 0

    @classmethod
    def of(cls, guest: Guest) -> Demand:
        if not guest.running:
            return NO_DEMAND
        return cls(guest.cpu_cores_used, guest.mem, guest.maxmem)

    def __add__(self, other: Demand) -> Demand:
        return Demand(self.cpu_cores + other.cpu_cores, self.mem + other.mem, self.committed + other.committed)


NO_DEMAND = Demand()


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """One node's capacity and use, now or after some moves."""

    name: str
    online: bool
    maxcpu: int
    maxmem: int
    cpu_cores: float
    mem: int
    committed: int
    guests: int

    @classmethod
    def of(cls, node: Node, guests: Iterable[Guest]) -> NodeUsage:
        guests = tuple(guests)
        return cls(
            name=node.name,
            online=node.online,
            maxcpu=node.maxcpu,
            maxmem=node.maxmem,
            cpu_cores=node.cpu * node.maxcpu,
            mem=node.mem,
            committed=sum(Demand.of(guest).committed for guest in guests),
            guests=len(guests),
        )

    @classmethod
    def absent(cls, name: str) -> NodeUsage:
        """A node the snapshot does not know: no capacity, never a target."""
        return cls(name, False, 0, 0, 0.0, 0, 0, 0)

    @property
    def cpu_fraction(self) -> float:
        return fraction(self.cpu_cores, self.maxcpu)

    @property
    def mem_fraction(self) -> float:
        return fraction(self.mem, self.maxmem)

    @property
    def committed_fraction(self) -> float:
        return fraction(self.committed, self.maxmem)

    @property
    def load(self) -> float:
        return (self.cpu_fraction + self.mem_fraction) / 2

    @property
    def free_mem(self) -> int:
        return max(0, self.maxmem - self.mem)

    def free_mem_below(self, ceiling: float) -> int:
        """Memory still free before use would pass ``ceiling`` (a fraction of maxmem)."""
        return max(0, int(self.maxmem * ceiling) - self.mem)

    def plus(self, demand: Demand, guests: int = 1) -> NodeUsage:
        return replace(
            self,
            cpu_cores=self.cpu_cores + demand.cpu_cores,
            mem=self.mem + demand.mem,
            committed=self.committed + demand.committed,
            guests=self.guests + guests,
        )

    def minus(self, demand: Demand, guests: int = 1) -> NodeUsage:
        # Clamped at zero: a node's own figures can lag its guests' by a refresh.
        return replace(
            self,
            cpu_cores=max(0.0, self.cpu_cores - demand.cpu_cores),
            mem=max(0, self.mem - demand.mem),
            committed=max(0, self.committed - demand.committed),
            guests=max(0, self.guests - guests),
        )


@dataclass(frozen=True)
class ProjectedCluster:
    """A snapshot with some guests moved on paper; ``apply`` returns a new projection."""

    snapshot: ClusterSnapshot
    usage: Mapping[str, NodeUsage]
    moved: Mapping[int, str]  # vmid -> node, only for guests this projection moved

    @classmethod
    def of(cls, snapshot: ClusterSnapshot) -> ProjectedCluster:
        by_node = snapshot.guests_by_node
        usage = {node.name: NodeUsage.of(node, by_node.get(node.name, ())) for node in snapshot.nodes}
        return cls(snapshot, MappingProxyType(usage), MappingProxyType({}))

    def usage_of(self, node: str) -> NodeUsage:
        return self.usage.get(node) or NodeUsage.absent(node)

    def node_of(self, vmid: int) -> str:
        """Where the guest is in this projection (KeyError for a vmid the snapshot lacks)."""
        moved = self.moved.get(vmid)
        return moved if moved is not None else self.snapshot.guest_by_vmid[vmid].node

    def apply(self, vmids: Iterable[int], target: str) -> ProjectedCluster:
        """Move the guests to ``target`` on paper (guests already there are left alone)."""
        usage = dict(self.usage)
        moved = dict(self.moved)
        guest_by_vmid = self.snapshot.guest_by_vmid
        for vmid in vmids:
            source = self.node_of(vmid)
            if source == target:
                continue
            demand = Demand.of(guest_by_vmid[vmid])
            if source in usage:
                usage[source] = usage[source].minus(demand)
            if target not in usage:
                raise ValueError(f"cannot move guest {vmid} to unknown node {target!r}")
            usage[target] = usage[target].plus(demand)
            if guest_by_vmid[vmid].node == target:
                moved.pop(vmid, None)
            else:
                moved[vmid] = target
        return ProjectedCluster(self.snapshot, MappingProxyType(usage), MappingProxyType(moved))

    def loads(self) -> dict[str, float]:
        """Load of every online node in this projection."""
        return {name: usage.load for name, usage in self.usage.items() if usage.online}

    def balance(self) -> Balance:
        return balance_of(self.loads())
