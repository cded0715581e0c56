"""A small, fixed cluster for UI tests and snapshot tests: nothing in it moves unless told."""

from __future__ import annotations

from dataclasses import replace

from pvetop.model import ClusterSnapshot, Guest, Node, Storage
from pvetop.ui.source import MemorySource

GIB = 1024**3
FIXED_NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: what the tests' clock always says


def fixed_clock() -> float:
    return FIXED_NOW


def small_cluster(fetched_at: float = FIXED_NOW) -> ClusterSnapshot:
    nodes = (
        Node(
            "big",
            "online",
            cpu=0.62,
            maxcpu=32,
            mem=96 * GIB,
            maxmem=128 * GIB,
            disk=200 * GIB,
            maxdisk=900 * GIB,
            uptime=86400 * 12 + 3600 * 5,
            level="c",
            nodeid=1,
            ip="10.0.0.1",
        ),
        Node(
            "small1",
            "online",
            cpu=0.11,
            maxcpu=4,
            mem=5 * GIB,
            maxmem=16 * GIB,
            disk=40 * GIB,
            maxdisk=230 * GIB,
            uptime=86400 * 40,
            nodeid=2,
            ip="10.0.0.2",
        ),
        Node("small2", "offline", nodeid=3, ip="10.0.0.3"),
    )
    guests = (
        Guest(
            100,
            "qemu",
            "big",
            "running",
            name="web-1",
            cpu=0.35,
            maxcpu=4,
            mem=3 * GIB,
            maxmem=4 * GIB,
            maxdisk=32 * GIB,
            netin=10_000_000,
            netout=50_000_000,
            uptime=7200,
            tags=("prod", "web"),
            hastate="started",
        ),
        Guest(
            101,
            "qemu",
            "big",
            "running",
            name="web-2",
            cpu=0.92,
            maxcpu=4,
            mem=2 * GIB,
            maxmem=4 * GIB,
            maxdisk=32 * GIB,
            netin=20_000_000,
            netout=10_000_000,
            uptime=7100,
            tags=("prod", "web"),
        ),
        Guest(102, "qemu", "big", "stopped", name="db-old", maxcpu=8, maxmem=16 * GIB, maxdisk=100 * GIB),
        Guest(
            103,
            "lxc",
            "small1",
            "running",
            name="dns",
            cpu=0.02,
            maxcpu=1,
            mem=200 * 1024**2,
            maxmem=512 * 1024**2,
            disk=2 * GIB,
            maxdisk=8 * GIB,
            netin=1_000_000,
            netout=900_000,
            uptime=86400 * 3,
            tags=("infra",),
        ),
        Guest(
            104,
            "qemu",
            "small1",
            "running",
            name="backup",
            cpu=0.4,
            maxcpu=2,
            mem=1 * GIB,
            maxmem=2 * GIB,
            maxdisk=500 * GIB,
            netin=5_000_000,
            netout=1_000_000,
            uptime=3600,
            lock="backup",
        ),
        Guest(105, "lxc", "small2", "unknown", tags=("lab",)),
        Guest(
            9000,
            "qemu",
            "big",
            "stopped",
            name="tmpl-debian",
            template=True,
            maxcpu=2,
            maxmem=2 * GIB,
            maxdisk=10 * GIB,
        ),
    )
    storage = (
        Storage("local", "big", "dir", disk=20 * GIB, maxdisk=100 * GIB),
        Storage("ceph", "big", "rbd", shared=True, disk=800 * GIB, maxdisk=3000 * GIB),
    )
    return ClusterSnapshot("homelab", True, nodes, guests, storage, fetched_at=fetched_at, api_requests=2)


def advanced(snapshot: ClusterSnapshot, seconds: float) -> ClusterSnapshot:
    """The same cluster ``seconds`` later: running guests moved 1 MB/s in and 0.5 MB/s out."""
    guests = tuple(
        replace(g, netin=g.netin + int(1_000_000 * seconds), netout=g.netout + int(500_000 * seconds))
        if g.running
        else g
        for g in snapshot.guests
    )
    return replace(snapshot, guests=guests, fetched_at=snapshot.fetched_at + seconds)


def history(points: int = 60) -> list[dict]:
    """An hour of rrddata with a recognisable shape (a ramp and a step)."""
    return [
        {
            "time": FIXED_NOW - 60 * (points - i),
            "cpu": i / points,
            "maxcpu": 4,
            "mem": (1 + (i > 30)) * GIB,
            "maxmem": 4 * GIB,
            "netin": 1000.0 * i,
            "netout": 500.0 * (points - i),
        }
        for i in range(points)
    ]


def memory_source(snapshot: ClusterSnapshot | None = None) -> MemorySource:
    snapshot = snapshot or small_cluster()
    rrd = {f"guest/{g.vmid}": history() for g in snapshot.guests}
    rrd |= {f"node/{n.name}": history() for n in snapshot.nodes}
    configs = {
        "guest/100": {
            "cores": 4,
            "memory": 4096,
            "name": "web-1",
            "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
            "scsi0": "ceph:vm-100-disk-0,size=32G",
            "ostype": "l26",
            "digest": "abc",
        },
        "node/big": {"wakeonlan": "mac=aa:bb:cc:dd:ee:ff"},
    }
    return MemorySource(snapshot, rrddata=rrd, configs=configs)
