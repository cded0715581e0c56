"""Plans a migration: its timed log lines (as real PVE writes them) and its state changes.

Duration follows the bytes moved over the bandwidth: the guest's memory in use for a live qemu
migration, plus local disks when they are copied. The plan is written up front as timestamped
log lines and timers (lock at start, node flip near the end, unlock at the end); aborting
cancels the timers and cuts the log at the current time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pvetop.sim.entities import GIB, MIB, Disk, SimGuest, SimStorage, allocated_bytes
from pvetop.sim.errors import PveApiError, param_error
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
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
ISO_SIZE = 650 * MIB


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


def local_cdrom(cluster: SimCluster, guest: SimGuest) -> str | None:
    """The guest's ISO volid when it sits on storage that is not shared (it blocks a migration)."""
    if not guest.cdrom:
        return None
    storage = cluster.storage_by_id.get(guest.cdrom.partition(":")[0])
    return guest.cdrom if storage is not None and not storage.shared else None


@dataclass(frozen=True)
class StorageMap:
    """``targetstorage`` / ``target-storage`` as pve-common JSONSchema parse_idmap reads it:
    ``1`` keeps every storage id, ``SRC:DST`` entries map one storage, a bare id is the default."""

    entries: dict[str, str] = field(default_factory=dict)
    default: str | None = None
    identity: bool = False

    def target_of(self, storage: str) -> str:
        """JSONSchema map_id: an entry, else the default, else the same id."""
        return self.entries.get(storage) or self.default or storage


def parse_storage_map(text: str, param: str) -> StorageMap:
    entries: dict[str, str] = {}
    default = None
    identity = False
    try:
        for entry in [part.strip() for part in re.split(r"[,;\s]+", text) if part.strip()]:
            if entry == "1":
                identity = True
            elif ":" in entry:
                source, _, target = entry.partition(":")
                if not (STORAGE_ID.match(source) and STORAGE_ID.match(target)):
                    raise ValueError(f"entry '{entry}' contains invalid ID - storage ID '{entry}' is not valid")
                if source in entries:
                    raise ValueError(f"duplicate mapping for source '{source}'")
                entries[source] = target
            else:
                if not STORAGE_ID.match(entry):
                    raise ValueError(f"entry '{entry}' contains invalid ID - storage ID '{entry}' is not valid")
                if default is not None:
                    raise ValueError("default target ID can only be provided once")
                default = entry
        if identity and (default or entries):
            raise ValueError("identity mapping cannot be combined with other mappings")
    except ValueError as exc:
        raise param_error({param: f"failed to parse storage map: {exc}"}) from None
    return StorageMap(entries, default, identity)


def storage_check_enabled(cluster: SimCluster, storage_id: str, node: str) -> SimStorage:
    """pve-storage storage_check_enabled: the storage exists and is configured on ``node``."""
    storage = cluster.storage_by_id.get(storage_id)
    if storage is None:
        raise PveApiError(500, f"storage '{storage_id}' does not exist")
    if not storage.on_node(node):
        raise PveApiError(500, f"storage '{storage_id}' is not available on node '{node}'")
    return storage


def check_target_storage(cluster: SimCluster, guest: SimGuest, target: str, storage_map: StorageMap | None) -> None:
    """The synchronous storage refusals of POST .../migrate (qemu-server API2/Qemu.pm migrate_vm,
    pve-container API2/LXC.pm migrate_vm): every mapped target storage must exist on the target
    and hold the guest's content; a VM without a map (or with ``1``) needs each disk's own storage
    on the target. A container without a map is checked in the task instead."""
    if storage_map is not None:
        for storage_id in [*storage_map.entries.values(), *([storage_map.default] if storage_map.default else [])]:
            storage = storage_check_enabled(cluster, storage_id, target)
            content = "images" if guest.type == "qemu" else "rootdir"
            if content not in storage.content.split(","):
                what = "vm images" if guest.type == "qemu" else "CT rootdirs"
                raise PveApiError(500, f"storage '{storage_id}' does not support {what}")
    if guest.type == "qemu" and (storage_map is None or storage_map.identity):
        for storage_id in [disk.storage for disk in guest.disks] + (
            [guest.cdrom.partition(":")[0]] if guest.cdrom else []
        ):
            storage_check_enabled(cluster, storage_id, target)


def _local_disk(volid: str, size: int, drivename: str, *, cdrom: bool = False) -> dict:
    """One ``local_disks`` entry of the VM precondition (an attached volume, as foreach_volid sees it)."""
    return {
        "volid": volid,
        "size": size,
        "drivename": drivename,
        "is_attached": 1,
        "is_unused": 0,
        "is_vmstate": 0,
        "is_tpmstate": 0,
        "replicated": 0,
        "cdrom": int(cdrom),
    }


def precondition(cluster: SimCluster, guest: SimGuest) -> dict:
    """GET .../{vmid}/migrate (qemu-server Qemu.pm / pve-container LXC.pm migrate_vm_precondition):
    every other node is listed; for a VM each one is in ``not_allowed_nodes`` (``{}`` when nothing
    blocks it, QemuServer.pm check_local_storage_availability) and also in ``allowed_nodes`` when
    it is empty. Containers get no storage check. ``dependent-ha-resources`` only for HA guests."""
    others = [name for name in cluster.nodes if name != guest.node]
    result: dict = {"running": int(guest.status == "running")}
    blocking: dict[str, list[dict]] = {}
    if guest.ha:  # HA/Config.pm get_resource_motion_info
        result["dependent-ha-resources"], blocking = cluster.ha.motion_info(guest.sid)
    if guest.type == "lxc":
        refused = {name: {"blocking-ha-resources": blocking[name]} for name in others if blocking.get(name)}
        result.update({"allowed-nodes": [n for n in others if n not in refused], "not-allowed-nodes": refused})
        return result
    not_allowed: dict[str, dict] = {}
    volumes = [disk.storage for disk in guest.disks] + ([guest.cdrom.partition(":")[0]] if guest.cdrom else [])
    for name in others:
        missing = sorted({s for s in volumes if not cluster.storage_by_id[s].on_node(name)})
        not_allowed[name] = {"unavailable_storages": missing} if missing else {}
        if blocking.get(name):
            not_allowed[name]["blocking-ha-resources"] = blocking[name]
    disks = [
        _local_disk(disk.volid(guest.vmid, index), disk.size, disk.key) for index, disk in local_disks(cluster, guest)
    ]
    cdrom = local_cdrom(cluster, guest)
    if cdrom is not None:
        disks.append(_local_disk(cdrom, ISO_SIZE, "ide2", cdrom=True))
    result.update(
        {
            "allowed_nodes": [name for name in others if not not_allowed[name]],
            "not_allowed_nodes": not_allowed,
            "local_disks": disks,
            "local_resources": guest.local_resources,
            "mapped-resources": [],
            "mapped-resource-info": {},
            "has-dbus-vmstate": 1,
        }
    )
    return result


def prepare_error(
    cluster: SimCluster,
    guest: SimGuest,
    target: str,
    *,
    online_requested: bool,
    force: bool,
    storage_map: StorageMap | None,
) -> str | None:
    """Why the task's prepare step dies before anything is locked or copied, if it does.

    Containers (pve-container LXC/Migrate.pm prepare): the lock, ``online`` (never supported,
    even with ``restart``) and each volume's target storage. VMs (qemu-server QemuMigrate.pm
    prepare): local devices, unless the VM is stopped and root passed ``force``.
    """
    running = guest.status == "running"
    if guest.type == "lxc":
        if guest.lock:
            return f"CT is locked ({guest.lock})"
        if running and online_requested:
            return "lxc live migration is currently not implemented"
        for disk in guest.disks:
            source = cluster.storage_by_id[disk.storage]
            target_id = disk.storage if source.shared else (storage_map or StorageMap()).target_of(disk.storage)
            try:
                storage = storage_check_enabled(cluster, target_id, target)
            except PveApiError as exc:
                return exc.message
            if "rootdir" not in storage.content.split(","):
                return f"{disk.volid(guest.vmid, 0)}: content type 'rootdir' is not available on storage '{target_id}'"
        return None
    if guest.local_resources and (running or not force):
        return f"can't migrate VM which uses local devices: {', '.join(guest.local_resources)}"
    return None


def plan_failed_prepare(cluster: SimCluster, task, reason: str) -> None:
    """A migration task that dies in prepare: AbstractMigrate.pm logs only the final line."""
    task.log(cluster.now, f"ERROR: migration aborted (duration {duration(0)}): {reason}")
    task.finish(cluster.now, "migration aborted")


def plan_migration(
    cluster: SimCluster,
    migration: Migration,
    *,
    online: bool,
    with_local_disks: bool,
    bandwidth: float,
    failure: str | None,
    storage_map: StorageMap | None = None,
) -> list[tuple[float, Callable[[], None]]]:
    """The migration's log and timed actions; ``failure`` injects one: ``"any"`` at a random point
    of the transfer, ``"ram"`` during a live migration's memory copy (nothing without one)."""
    guest = migration.guest
    task = migration.task
    target = cluster.nodes[migration.target]
    t0 = cluster.now
    log = task.log
    label = "VM" if guest.type == "qemu" else "CT"
    actions: list[tuple[float, Callable[[], None]]] = []

    def fail_at(at: float, reason: str) -> list[tuple[float, Callable[[], None]]]:
        log(at, f"ERROR: {reason}")
        log(at, "aborting phase 1 - cleanup resources")
        log(at, f"ERROR: migration aborted (duration {duration(at - t0)}): {reason}")
        task.finish(at, "migration aborted")

        def aborted() -> None:
            if migration.restart:
                guest.status = "running"
                guest.started_at = cluster.now
            cluster.finish_migration(migration)

        return actions + [(at, aborted)]

    def ram_phase_failed(at: float) -> list[tuple[float, Callable[[], None]]]:
        """AbstractMigrate.pm: a phase-2 error is logged, phase2_cleanup cancels the migration and
        the VM keeps running on its source; the task ends "migration problems" (QemuMigrate.pm)."""
        log(at, "migration status error: failed")
        log(at, "ERROR: online migrate failure - aborting")
        log(at, "aborting phase 2 - cleanup resources")
        log(at, "migrate_cancel")
        log(at, f"ERROR: migration finished with problems (duration {duration(at - t0)})")
        task.finish(at, "migration problems")
        return actions + [(at, lambda: cluster.finish_migration(migration))]

    t = t0
    if migration.restart:
        log(t, f"shutdown CT {guest.vmid}")
        t += CT_SHUTDOWN_SECONDS

        def stopped() -> None:
            guest.status = "stopped"
            guest.lock = "migrate"

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
    mapping = storage_map or StorageMap()
    for disk in guest.disks:
        storage = cluster.storage_by_id[disk.storage]
        target_id = disk.storage if storage.shared else mapping.target_of(disk.storage)
        if not cluster.storage_by_id[target_id].on_node(target.name):
            return fail_at(t, f"storage '{target_id}' is not available on node '{target.name}'")
    cdrom = local_cdrom(cluster, guest)
    if cdrom is not None:
        log(t, f"can't migrate local disk '{cdrom}': local cdrom image")
        return fail_at(t, "Problem found while scanning volumes - can't migrate VM - check log")
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

    failure_point = 0.3 + 0.5 * noise(cluster.seed, task.pid, 98)
    copy_bytes = sum(allocated_bytes(disk.size, cluster.storage_by_id[disk.storage].type) for _, disk in locals_)
    _, mem_used = cluster.guest_usage(guest, t0)
    ram_bytes = int(mem_used * 1.05) if online else 0
    copy_seconds = copy_bytes / bandwidth
    ram_seconds = ram_bytes / bandwidth
    fail_time = None
    if failure == "ram" and online:  # within the memory copy, after every disk is mirrored
        fail_time = t + SETUP_SECONDS + copy_seconds + ram_seconds * failure_point
    elif failure == "any":
        fail_time = t + SETUP_SECONDS + (copy_seconds + ram_seconds) * failure_point
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
            return ram_phase_failed(fail_time)
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
        for _, disk in locals_:  # copied to the mapped storage (same id without a map)
            disk.storage = mapping.target_of(disk.storage)
        if online:  # a new QEMU process on the target: uptime and its counters start again
            guest.started_at = cluster.now

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
    if migration.restart:  # final_cleanup: 'pct unlock' on the target, then 'pct start'

        def unlocked() -> None:
            guest.lock = None

        actions.append((t + FINISH_SECONDS, unlocked))

    def done() -> None:
        if migration.restart:
            guest.status = "running"
            guest.started_at = cluster.now
        if guest.ha:
            guest.ha_state = "started" if guest.status == "running" else "stopped"
        cluster.finish_migration(migration)

    actions.append((end_at, done))
    return actions
