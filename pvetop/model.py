"""Immutable cluster snapshot: the one shape every room reads.

``pve`` builds a ``ClusterSnapshot`` from ``/cluster/resources`` + ``/cluster/status`` (and the
rarely fetched options and HA rules); ``ui`` renders it and ``policy`` plans on it. Units are
normalised here once: ``cpu`` is a fraction (0..1) of the entity's own ``maxcpu``, memory and
disk are bytes, times are seconds, and guests on an offline node keep ``status == "unknown"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

GuestType = Literal["qemu", "lxc"]
NodeStatus = Literal["online", "offline", "unknown"]
GuestStatus = Literal["running", "stopped", "paused", "unknown"]  # unknown: on an offline node
NODE_STATUSES: tuple[NodeStatus, ...] = ("online", "offline", "unknown")
GUEST_STATUSES: tuple[GuestStatus, ...] = ("running", "stopped", "paused", "unknown")
Actor = Literal["user", "balancer", "power", "instance"]
ACTORS: tuple[Actor, ...] = ("user", "balancer", "power", "instance")
"""Who changes the cluster or the rules, as the journal records it (``instance``: lease changes
between pvetop instances)."""


def fraction(used: float, total: float) -> float:
    """used/total, 0 when the total is unknown (offline nodes report no maximum)."""
    return used / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    status: NodeStatus
    cpu: float = 0.0  # fraction of maxcpu in use
    maxcpu: int = 0
    mem: int = 0
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    uptime: int = 0
    level: str = ""  # subscription level
    nodeid: int | None = None  # from /cluster/status
    ip: str | None = None
    votes: int = 1
    hastate: str = ""  # the HA manager's state of the node: online, maintenance, fence, unknown, gone

    @property
    def online(self) -> bool:
        return self.status == "online"

    @property
    def mem_fraction(self) -> float:
        return fraction(self.mem, self.maxmem)

    @property
    def disk_fraction(self) -> float:
        return fraction(self.disk, self.maxdisk)

    @property
    def load(self) -> float:
        """Share of CPU and memory in use, averaged: the load PVE 9.2's CRS computes per node."""
        return (self.cpu + self.mem_fraction) / 2


@dataclass(frozen=True, slots=True)
class NodeBasics:
    """What one node's ``GET /nodes/{node}/status`` adds to /cluster/resources (read per node,
    apart from the refresh, and only while something shows it). ``None``: PVE did not say."""

    loadavg: tuple[float, ...] = ()  # 1, 5 and 15 minutes
    io_delay: float | None = None  # share of CPU time spent waiting for IO (PVE's "wait")
    swap_used: int | None = None
    swap_total: int | None = None
    ksm_shared: int | None = None  # bytes KSM merged
    pressure: tuple[tuple[str, float], ...] = ()  # PSI figures where PVE gives them: ("cpusome", 1.25)
    pveversion: str = ""  # "pve-manager/9.1.1/…"
    kernel: str = ""  # the running kernel's release
    uptime: int | None = None

    @property
    def swap_fraction(self) -> float | None:
        return None if self.swap_used is None or not self.swap_total else self.swap_used / self.swap_total

    @property
    def pve_release(self) -> str:
        """``9.1.1`` out of ``pve-manager/9.1.1/abcdef``."""
        parts = self.pveversion.split("/")
        return parts[1] if len(parts) >= 2 else self.pveversion

    def psi(self, name: str) -> float | None:
        return next((value for key, value in self.pressure if key == name), None)


@dataclass(frozen=True, slots=True)
class Guest:
    vmid: int
    type: GuestType
    node: str
    status: GuestStatus
    name: str = ""
    template: bool = False
    cpu: float = 0.0  # fraction of the guest's own maxcpu
    maxcpu: float = 0.0
    mem: int = 0
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    netin: int = 0  # cumulative bytes since start; rates come from two snapshots
    netout: int = 0
    diskread: int = 0
    diskwrite: int = 0
    uptime: int = 0
    pool: str | None = None
    tags: tuple[str, ...] = ()
    lock: str | None = None
    hastate: str | None = None
    memhost: int = 0  # a VM's memory as its node pays it (QEMU's resident pages, PVE >= 9); 0: not reported

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def host_mem(self) -> int:
        """Memory its node frees when it leaves and pays where it lands: a VM's page cache and
        QEMU's overhead stay resident on the host, so ``memhost`` when PVE reports it."""
        return max(self.mem, self.memhost)

    @property
    def sid(self) -> str:
        """HA service id: ``vm:100`` or ``ct:101``."""
        return f"{'vm' if self.type == 'qemu' else 'ct'}:{self.vmid}"

    @property
    def ha_managed(self) -> bool:
        return bool(self.hastate)

    @property
    def cpu_cores_used(self) -> float:
        """Cores busy, the unit that adds up across guests on a node."""
        return self.cpu * self.maxcpu


@dataclass(frozen=True, slots=True)
class Storage:
    storage: str
    node: str
    plugintype: str = ""
    shared: bool = False
    disk: int = 0
    maxdisk: int = 0
    status: str = "available"
    content: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HaRule:
    rule: str
    type: str  # node-affinity | resource-affinity
    resources: tuple[str, ...] = ()  # "vm:100", "ct:101"
    nodes: tuple[tuple[str, int], ...] = ()  # (node, priority) for node-affinity
    strict: bool = False
    affinity: str | None = None  # positive | negative for resource-affinity
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class CrsOptions:
    """The datacenter ``crs`` option; PVE >= 9.2 can rebalance HA guests itself."""

    ha: str = "basic"
    ha_auto_rebalance: bool = False


@dataclass(frozen=True)
class ClusterSnapshot:
    cluster_name: str
    quorate: bool
    nodes: tuple[Node, ...]
    guests: tuple[Guest, ...]
    storage: tuple[Storage, ...] = ()
    ha_rules: tuple[HaRule, ...] = ()
    crs: CrsOptions = field(default_factory=CrsOptions)
    fetched_at: float = 0.0  # epoch seconds, set by whoever fetched it
    api_requests: int = 0  # requests this refresh cost (the budget: at most 2, whatever the cluster's size)
    tag_colors: tuple[tuple[str, str, str], ...] = ()  # tag-style color-map: (tag, background, foreground)
    warnings: tuple[str, ...] = ()  # API entries skipped as malformed, for the header and `status`

    @cached_property
    def node_by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def guest_by_vmid(self) -> dict[int, Guest]:
        return {g.vmid: g for g in self.guests}

    @cached_property
    def guests_by_node(self) -> dict[str, tuple[Guest, ...]]:
        grouped: dict[str, list[Guest]] = {n.name: [] for n in self.nodes}
        for guest in self.guests:
            grouped.setdefault(guest.node, []).append(guest)
        return {name: tuple(gs) for name, gs in grouped.items()}

    @property
    def online_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.online)

    @property
    def total_votes(self) -> int:
        return sum(n.votes for n in self.nodes)


@dataclass(frozen=True, slots=True)
class MigratePrecondition:
    """Proxmox VE's answer to ``GET .../migrate`` for one guest, normalised.

    ``allowed_nodes`` is None when the answer did not list them. ``not_allowed_nodes`` maps a
    node to why PVE refuses it; ``storage_refused`` are the nodes refused only because a disk's
    storage is not there (a migration with ``targetstorage`` can still go). ``local_resources``
    (PCI/USB passthrough) block every target. ``local_disk_bytes`` is the local disks' size.
    """

    running: bool = False
    allowed_nodes: frozenset[str] | None = None
    not_allowed_nodes: Mapping[str, str] = field(default_factory=dict)
    local_disks: tuple[str, ...] = ()
    local_resources: tuple[str, ...] = ()
    storage_refused: frozenset[str] = frozenset()
    local_disk_bytes: int = 0

    def local_volumes(self) -> LocalVolumes | None:
        """The VM's local disks as volumes to copy (None without any)."""
        if not self.local_disks:
            return None
        storages = tuple(dict.fromkeys(volid.partition(":")[0] for volid in self.local_disks))
        return LocalVolumes(storages, self.local_disk_bytes)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MigratePrecondition:
        """Read the qemu (underscores) or lxc (dashes) precondition answer."""

        def pick(name: str) -> Any:
            return data.get(name, data.get(name.replace("_", "-")))

        allowed = pick("allowed_nodes")
        not_allowed = pick("not_allowed_nodes") or {}
        disks = [disk if isinstance(disk, Mapping) else {"volid": str(disk)} for disk in pick("local_disks") or ()]
        # a local ISO in a CD-ROM drive is listed with the disks but cannot be copied: PVE refuses
        # the migration (qemu-server QemuMigrate.pm scan_local_volumes, "local cdrom image")
        cdroms = tuple(f"{disk.get('volid')} (local cdrom image)" for disk in disks if disk.get("cdrom"))
        return cls(
            running=bool(data.get("running")),
            allowed_nodes=None if allowed is None else frozenset(allowed),
            # PVE lists every other node here, the allowed ones with nothing against them ({})
            not_allowed_nodes={node: _describe_refusal(detail) for node, detail in not_allowed.items() if detail},
            local_disks=tuple(str(disk.get("volid")) for disk in disks if not disk.get("cdrom")),
            local_resources=tuple(str(resource) for resource in pick("local_resources") or ()) + cdroms,
            storage_refused=frozenset(
                node
                for node, detail in not_allowed.items()
                if isinstance(detail, Mapping)
                and detail.get("unavailable_storages")
                and set(detail) == {"unavailable_storages"}
            ),
            local_disk_bytes=sum(_int(disk.get("size")) for disk in disks if not disk.get("cdrom")),
        )


@dataclass(frozen=True, slots=True)
class LocalVolumes:
    """A guest's volumes on storage only its node has: what a move to another node must copy."""

    storages: tuple[str, ...]
    size: int  # bytes: the volumes' configured sizes (a thin copy may take less)


def _int(value: object) -> int:
    """An API number as int; 0 when it is missing or not a number."""
    if isinstance(value, (int, float, str)):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def _describe_refusal(detail: object) -> str:
    """``{"unavailable_storages": ["local-zfs"]}`` -> ``unavailable storages: local-zfs``."""
    if isinstance(detail, Mapping):
        parts = []
        for key, value in detail.items():
            shown = (
                ", ".join(str(item) for item in sorted(value))
                if isinstance(value, (list, tuple, set, frozenset))
                else str(value)
            )
            parts.append(f"{key.replace('_', ' ').replace('-', ' ')}: {shown}")
        return "; ".join(parts) or "refused"
    return str(detail) or "refused"
