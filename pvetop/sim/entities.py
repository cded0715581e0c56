"""Mutable state of the simulated cluster: nodes, guests, storage, HA rules and tasks.

Plain dataclasses owned by ``SimCluster`` and only touched under its lock. Sizes are bytes,
times are simulated seconds since the epoch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pvetop.sim.load import LoadCurve, noise

GIB = 1024**3
MIB = 1024**2

# Node power states. Only "online" and "shutting-down" answer API calls; the others are offline.
ONLINE, SHUTTING_DOWN, OFF, BOOTING, CRASHED = "online", "shutting-down", "off", "booting", "crashed"
POWER_STATES = (ONLINE, SHUTTING_DOWN, OFF, BOOTING, CRASHED)
THIN_TYPES = {"lvmthin", "zfspool", "rbd"}
THIN_FILL = 0.55  # share of a thin-provisioned disk's size actually allocated
# power states older than the longest RRD archive (year: 1440 points of 6 h) are never drawn again
POWER_HISTORY_SECONDS = 400 * 86400


def allocated_bytes(size: int, storage_type: str) -> int:
    """Space a disk of ``size`` takes on its storage (thin pools allocate only what is written)."""
    return int(size * THIN_FILL) if storage_type in THIN_TYPES else size


@dataclass
class SimNode:
    name: str
    nodeid: int
    ip: str
    cpus: int  # logical CPUs (maxcpu)
    sockets: int
    cpu_model: str
    memory: int
    root_disk: int
    votes: int
    boot_seconds: float
    shutdown_seconds: float
    power: str
    booted_at: float
    wakeonlan: str | None = None  # node config value: "mac=AA:BB:..[,bind-interface=..]"
    description: str | None = None
    level: str = ""
    base_cpu: float = 0.02
    arc: int = 0  # ZFS ARC: cache the kernel does not count as available
    services: int = 0  # host daemons beyond PVE's own (Ceph OSDs and monitors)
    ballooning_target: int | None = None  # node config 'ballooning-target' (percent); None = PVE's 80
    # (time, online) pairs so rrddata can show the gaps when the node was down
    power_history: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def mac(self) -> str | None:
        if not self.wakeonlan:
            return None
        for part in self.wakeonlan.split(","):
            key, _, value = part.partition("=")
            if not value:  # "mac" is the default key: "AA:BB:..." alone is allowed
                return key.strip().upper()
            if key.strip() == "mac":
                return value.strip().upper()
        return None

    @property
    def reachable(self) -> bool:
        """Whether the node answers API calls (it still does while shutting down)."""
        return self.power in (ONLINE, SHUTTING_DOWN)

    @property
    def base_memory(self) -> int:
        """Memory the host itself uses (kernel, pve services, page tables, ARC, other daemons)."""
        return int(1.5 * GIB + 0.02 * self.memory) + self.arc + self.services

    def power_changed(self, when: float, online: bool) -> None:
        """Records the change; states older than ``POWER_HISTORY_SECONDS`` go, like RRD's fixed-size
        archives (the last one before the horizon stays: it is the state at the horizon)."""
        self.power_history.append((when, online))
        horizon = when - POWER_HISTORY_SECONDS
        while len(self.power_history) > 1 and self.power_history[1][0] <= horizon:
            del self.power_history[0]

    def online_at(self, t: float) -> bool:
        state = True
        for when, online in self.power_history:
            if when > t:
                break
            state = online
        return state


@dataclass
class Disk:
    key: str  # scsi0, virtio1, rootfs, mp0
    storage: str
    size: int

    def volid(self, vmid: int, index: int) -> str:
        return f"{self.storage}:vm-{vmid}-disk-{index}"


@dataclass
class SimGuest:
    vmid: int
    type: str  # qemu | lxc
    name: str
    node: str
    cores: int
    memory: int
    disks: list[Disk]
    status: str  # running | stopped
    curve: LoadCurve
    tags: list[str] = field(default_factory=list)
    pool: str | None = None
    template: bool = False
    lock: str | None = None
    ha: bool = False
    ha_state: str = "started"  # requested HA state while managed
    onboot: bool = True
    started_at: float = 0.0
    description: str | None = None
    mac: str = ""
    ostype: str = "l26"
    config_version: int = 0
    # host devices passed through (hostpci0, usb0, serial0...: config value); they tie a VM to its node
    devices: dict[str, str] = field(default_factory=dict)
    cdrom: str | None = None  # ISO volid in ide2, e.g. "local:iso/debian-13.iso"
    # fixed per guest, derived from the seed when the cluster is built
    rates: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # netin, netout, diskread, diskwrite B/s
    disk_used: int = 0  # bytes used inside an lxc root filesystem (qemu reports 0 without an agent)
    balloon: int = 0  # config 'balloon' (bytes): the minimum auto-ballooning may shrink a VM to; 0 = off
    cache_share: float = 0.0  # share of its free RAM a VM has touched (page cache): resident on the host

    @property
    def sid(self) -> str:
        return f"{'vm' if self.type == 'qemu' else 'ct'}:{self.vmid}"

    @property
    def resource_id(self) -> str:
        return f"{self.type}/{self.vmid}"

    @property
    def local_resources(self) -> list[str]:
        """Config keys PVE lists as local resources (QemuMigrate::Helpers check_local_resources):
        usb/hostpci/serial/parallel devices; a serial socket is recreated on the target, so it is not."""
        return sorted(
            key for key, value in self.devices.items() if not (key.startswith("serial") and value == "socket")
        )

    @property
    def root_size(self) -> int:
        return self.disks[0].size if self.disks else 0

    def digest(self) -> str:
        """SHA1 of the config, as PVE returns it, changing whenever the config changes."""
        text = f"{self.vmid}:{self.name}:{self.node}:{self.config_version}:{self.lock}:{';'.join(self.tags)}"
        return hashlib.sha1(text.encode()).hexdigest()

    def derive_constants(self, seed: int) -> None:
        self.rates = (
            2e4 + 2e6 * noise(seed, self.vmid, 20) ** 3,
            1e4 + 1e6 * noise(seed, self.vmid, 21) ** 3,
            5e3 + 4e6 * noise(seed, self.vmid, 22) ** 3,
            5e3 + 2e6 * noise(seed, self.vmid, 23) ** 3,
        )
        self.disk_used = int(self.root_size * (0.15 + 0.55 * noise(seed, self.vmid, 24))) if self.type == "lxc" else 0
        self.cache_share = 0.1 + 0.3 * noise(seed, self.vmid, 25) if self.type == "qemu" else 0.0


@dataclass
class SimStorage:
    storage: str
    type: str  # dir, lvmthin, zfspool, nfs, rbd, cephfs...
    shared: bool
    content: str
    size: int  # per node for local storage, total for shared
    nodes: list[str] | None = None  # None = every node
    base_used: int = 0

    def on_node(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


@dataclass
class HaRule:
    rule: str
    type: str  # node-affinity | resource-affinity
    resources: str
    nodes: str | None = None
    strict: bool | None = None
    affinity: str | None = None
    disable: bool = False
    comment: str | None = None

    def as_api(self, order: int) -> dict:
        entry: dict = {
            "rule": self.rule,
            "type": self.type,
            "resources": self.resources,
            "order": order,
            "digest": hashlib.sha1(repr(self).encode()).hexdigest(),
        }
        if self.nodes is not None:
            entry["nodes"] = self.nodes
        if self.strict is not None:
            entry["strict"] = int(self.strict)
        if self.affinity is not None:
            entry["affinity"] = self.affinity
        if self.disable:
            entry["disable"] = 1
        if self.comment:
            entry["comment"] = self.comment
        return entry

    def covers(self, sid: str) -> bool:
        return sid in [part.strip() for part in self.resources.split(",")]
