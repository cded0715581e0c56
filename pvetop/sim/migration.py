"""Plans a migration: its timed log lines (as real PVE writes them) and its state changes.

Duration follows the bytes moved over the bandwidth: the guest's memory in use for a live qemu
migration, plus local disks when they are copied. The plan is written up front as timestamped
log lines and timers (lock at start, node flip near the end, unlock at the end); aborting
cancels the timers and cuts the log at the current time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pvetop.sim.entities import GIB, MIB, Disk, SimGuest, allocated_bytes
from pvetop.sim.load import noise
from pvetop.sim.tasks import duration

if TYPE_CHECKING:
    from pvetop.sim.cluster import Migration, SimCluster

SETUP_SECONDS = 2.0
FINISH_SECONDS = 1.0
CT_SHUTDOWN_SECONDS = 4.0
CT_START_SECONDS = 2.0
MAX_PROGRESS_LINES = 30  # real PVE logs every second; long moves get sparser lines
SSH_FAILURE = "Can't connect to destination address using public key"


def human(size: float) -> str:
    """PVE's render_bytes: 1.2 GiB, 500.0 MiB."""
    for unit, factor in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} B"


def _progress_times(start: float, seconds: float) -> list[float]:
    """When progress lines appear: about one per second, at most MAX_PROGRESS_LINES."""
    count = max(1, min(MAX_PROGRESS_LINES, int(seconds)))
    return [start + seconds * (i + 1) / count for i in range(count)]


def local_disks(cluster: SimCluster, guest: SimGuest) -> list[tuple[int, Disk]]:
    """(index, disk) of the guest's disks on storage the target node cannot see (copied on migration)."""
    return [(index, disk) for index, disk in enumerate(guest.disks) if not cluster.storage_by_id[disk.storage].shared]


def plan_migration(
    cluster: SimCluster,
    migration: Migration,
    *,
    online: bool,
    with_local_disks: bool,
    bandwidth: float,
    inject_failure: bool,
) -> list[tuple[float, Callable[[], None]]]:
    guest = migration.guest
    task = migration.task
    target = cluster.nodes[migration.target]
    t0 = cluster.now
    log = task.log
    label = "VM" if guest.type == "qemu" else "CT"
    actions: list[tuple[float, Callable[[], None]]] = []

    def fail_at(at: float, reason: str, *, phase: int = 1) -> list[tuple[float, Callable[[], None]]]:
        log(at, f"ERROR: {reason}")
        log(at, f"aborting phase {phase} - cleanup resources")
        log(at, f"ERROR: migration aborted (duration {duration(at - t0)}): {reason}")
        task.finish(at, "migration aborted")

        def aborted() -> None:
            if migration.restart:
                guest.status = "running"
                guest.started_at = cluster.now
            cluster.finish_migration(migration)

        return actions + [(at, aborted)]

    t = t0
    if migration.restart:
        log(t, f"shutdown CT {guest.vmid}")
        t += CT_SHUTDOWN_SECONDS

        def stopped() -> None:
            guest.status = "stopped"

        actions.append((t, stopped))
    log(t, f"starting migration of {label} {guest.vmid} to node '{target.name}' ({target.ip})")
    if not target.reachable:
        log(
            t,
            f"# /usr/bin/ssh -e none -o 'BatchMode=yes' -o 'HostKeyAlias={target.name}' "
            f"-o 'UserKnownHostsFile=/etc/pve/nodes/{target.name}/ssh_known_hosts' "
            f"-o 'GlobalKnownHostsFile=none' root@{target.ip} /bin/true",
        )
        log(t + 3, f"ssh: connect to host {target.ip} port 22: No route to host")
        return fail_at(t + 3, SSH_FAILURE)
    for disk in guest.disks:
        storage = cluster.storage_by_id[disk.storage]
        if not storage.on_node(target.name):
            return fail_at(t, f"storage '{storage.storage}' is not available on node '{target.name}'")
    locals_ = local_disks(cluster, guest)
    for index, disk in locals_:
        if guest.type == "qemu":
            log(t, f"found local disk '{disk.volid(guest.vmid, index)}' (attached)")
        else:
            log(t, f"found local volume '{disk.volid(guest.vmid, index)}' (in current VM config)")
    for index, disk in enumerate(guest.disks):
        if (index, disk) not in locals_ and guest.type == "lxc":
            log(t, f"volume '{disk.volid(guest.vmid, index)}' is on shared storage '{disk.storage}'")
    if online and locals_ and not with_local_disks:
        return fail_at(t, "can't live migrate attached local disks without with-local-disks option")

    failure_point = 0.3 + 0.5 * noise(cluster.seed, task.pid, 98) if inject_failure else None
    copy_bytes = sum(allocated_bytes(disk.size, cluster.storage_by_id[disk.storage].type) for _, disk in locals_)
    _, mem_used = cluster.guest_usage(guest, t0)
    ram_bytes = int(mem_used * 1.05) if online else 0
    copy_seconds = copy_bytes / bandwidth
    ram_seconds = ram_bytes / bandwidth
    total_transfer = copy_seconds + ram_seconds
    fail_time = t + SETUP_SECONDS + total_transfer * failure_point if failure_point is not None else None
    speed = human(bandwidth)

    if online:
        log(t, f"starting VM {guest.vmid} on remote node '{target.name}'")
    t += SETUP_SECONDS / 2
    if online:
        log(t, "start remote tunnel")
        log(t, "ssh tunnel ver 1")
    t += SETUP_SECONDS / 2
    for index, disk in locals_:
        volid = disk.volid(guest.vmid, index)
        size = allocated_bytes(disk.size, cluster.storage_by_id[disk.storage].type)
        seconds = size / bandwidth
        if online:
            log(
                t,
                f"{disk.key}: start migration to nbd:unix:/run/qemu-server/{guest.vmid}_nbd.migrate:"
                f"exportname=drive-{disk.key}",
            )
            log(t, f"drive mirror is starting for drive-{disk.key}")
        else:
            log(t, f"copying local disk image '{volid}'")
        for at in _progress_times(t, seconds):
            if fail_time is not None and at > fail_time:
                break
            copied = size * (at - t) / seconds if seconds else size
            if online:
                log(
                    at,
                    f"drive-{disk.key}: transferred {human(copied)} of {human(size)} "
                    f"({100 * copied / size:.2f}%) in {int(at - t)}s",
                )
            else:
                log(at, f"transferred {human(copied)} of {human(size)} ({100 * copied / size:.2f}%)")
        t += seconds
        if fail_time is not None and t > fail_time:
            return fail_at(
                fail_time,
                f"storage migration for '{volid}' to storage '{disk.storage}' failed - "
                "command 'pvesm import' failed: exit code 255",
            )
        if online:
            log(t, f"drive-{disk.key}: transferred {human(size)} of {human(size)} (100.00%) in {int(seconds)}s, ready")
    if online and locals_:
        log(t, "all 'mirror' jobs are ready")
    if online:
        log(t, f"starting online/live migration on unix:/run/qemu-server/{guest.vmid}.migrate")
        log(t, "set migration capabilities")
        log(t, "migration downtime limit: 100 ms")
        log(t, f"migration cachesize: {human(max(guest.memory // 8, 64 * MIB))}")
        log(t, "set migration parameters")
        log(t, f"start migrate command to unix:/run/qemu-server/{guest.vmid}.migrate")
        for at in _progress_times(t, ram_seconds):
            if fail_time is not None and at > fail_time:
                break
            copied = ram_bytes * (at - t) / ram_seconds if ram_seconds else ram_bytes
            log(at, f"migration active, transferred {human(copied)} of {human(guest.memory)} VM-state, {speed}/s")
        t += ram_seconds
        if fail_time is not None and t >= fail_time:
            log(fail_time, "migration status error: failed")
            return fail_at(fail_time, "online migrate failure - aborting", phase=2)
        log(t, f"average migration speed: {speed}/s - downtime {40 + int(noise(cluster.seed, task.pid, 97) * 80)} ms")
        log(t, "migration status: completed")
        for _, disk in locals_:
            log(t, f"{disk.key}: mirror-job finished")
    elif fail_time is not None:
        return fail_at(fail_time, "storage migration failed - command 'pvesm import' failed: exit code 255")

    flip_at = t + FINISH_SECONDS / 2
    end_at = t + FINISH_SECONDS + (CT_START_SECONDS if migration.restart else 0)

    def flip() -> None:
        guest.node = target.name
        migration.flipped = True

    actions.append((flip_at, flip))
    if guest.type == "lxc":
        log(flip_at, "start final cleanup")
        if migration.restart:
            log(flip_at, "start container on target node")
            log(
                flip_at,
                f"# /usr/bin/ssh -e none -o 'BatchMode=yes' -o 'HostKeyAlias={target.name}' "
                f"-o 'UserKnownHostsFile=/etc/pve/nodes/{target.name}/ssh_known_hosts' "
                f"-o 'GlobalKnownHostsFile=none' root@{target.ip} pct start {guest.vmid}",
            )
    log(end_at, f"migration finished successfully (duration {duration(end_at - t0)})")
    task.finish(end_at, "OK")

    def done() -> None:
        if migration.restart:
            guest.status = "running"
            guest.started_at = cluster.now
        if guest.ha:
            guest.ha_state = "started" if guest.status == "running" else "stopped"
        cluster.finish_migration(migration)

    actions.append((end_at, done))
    return actions
