"""Writes to the cluster: migrations, guest start/stop, node shutdown and wake-up; thin, faithful wrappers.

Each call is one PVE endpoint with PVE's own parameters; the only logic is what PVE would
otherwise refuse: a running qemu VM needs ``online=1``, a running container ``restart=1``.
HA-managed guests go through the same migrate endpoint — PVE then starts a ``hamigrate`` task
that asks the HA manager to move the guest (its real ``qmigrate``/``vzmigrate`` task follows,
see ``find_followup_migration``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pvetop.config import format_host
from pvetop.errors import ApiError, PvetopError, UsageError
from pvetop.model import Guest, LocalVolumes, MigratePrecondition
from pvetop.pve.client import PveClient, guest_path
from pvetop.pve.tasks import cluster_tasks, node_tasks, parse_upid


def migrate_precondition(client: PveClient, guest: Guest, target: str | None = None) -> MigratePrecondition:
    """``GET .../migrate``, normalised by ``model.MigratePrecondition`` (qemu ``_`` / lxc ``-`` keys)."""
    data = client.get(f"{guest_path(guest)}/migrate", target=target)
    if not isinstance(data, dict):
        raise ApiError(200, f"unexpected migrate precondition answer for {guest.vmid}: {data!r:.120}")
    return MigratePrecondition.from_api(data)


def migrate(
    client: PveClient,
    guest: Guest,
    target: str,
    *,
    online: bool | None = None,
    with_local_disks: bool = False,
    bwlimit_kib: int | None = None,
    restart: bool | None = None,
    restart_timeout: int | None = None,
    target_storage: str | None = None,
) -> str:
    """Starts a migration and returns its UPID (``qmigrate``, ``vzmigrate`` or ``hamigrate``).

    ``online`` (qemu) and ``restart`` (lxc) default to "the guest is running", which is what PVE
    requires to move a running guest at all. ``target_storage`` is where the guest's local
    volumes land on the target (PVE's ``targetstorage`` / ``target-storage``, one id for all).
    """
    if target == guest.node:
        raise UsageError(f"guest {guest.vmid} is already on {target}")
    if guest.type == "qemu":
        if restart is not None or restart_timeout is not None:
            raise UsageError("restart migration is for containers; a VM migrates live (online)")
        params: dict[str, Any] = {
            "target": target,
            "online": guest.running if online is None else online,
            "with-local-disks": with_local_disks or None,
            "targetstorage": target_storage,
            "bwlimit": bwlimit_kib,
        }
    else:
        if online:
            raise UsageError("containers cannot migrate live; use restart migration (restart=True)")
        if with_local_disks:
            raise UsageError("with-local-disks is for VMs; container volumes are copied as part of the migration")
        params = {
            "target": target,
            "restart": guest.running if restart is None else restart,
            "timeout": restart_timeout,
            "target-storage": target_storage,
            "bwlimit": bwlimit_kib,
        }
    upid = client.post(f"{guest_path(guest)}/migrate", **params)
    return _upid(upid, f"migrate {guest.vmid}")


def container_local_volumes(client: PveClient, guest: Guest, shared: Iterable[str]) -> LocalVolumes | None:
    """A container's volumes (``rootfs``, ``mpN``) on storage not in ``shared``, from its config;
    sizes as written there (``size=8G``). Bind mounts (a host path) are not volumes."""
    config = client.guest_config(guest)
    storages: list[str] = []
    size = 0
    for key, value in config.items():
        if not (key == "rootfs" or re.fullmatch(r"mp\d+", key)) or not isinstance(value, str):
            continue
        volume, *options = value.split(",")
        storage, colon, _name = volume.partition(":")
        if not colon or storage in shared or volume.startswith("/"):
            continue
        storages.append(storage)
        size += next((disk_size(o.partition("=")[2]) for o in options if o.startswith("size=")), 0)
    return LocalVolumes(tuple(dict.fromkeys(storages)), size) if storages else None


SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def disk_size(text: str) -> int:
    """PVE's disk size notation (``32G``, ``512M``, bytes without a unit) in bytes; 0 if unreadable."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip().upper())
    return int(float(match[1]) * SIZE_UNITS[match[2]]) if match else 0


def find_followup_migration(client: PveClient, guest: Guest, *, since: int) -> str | None:
    """The ``qmigrate``/``vzmigrate`` task the HA manager started for ``guest`` after ``since`` (epoch s)."""
    return find_followup_task(client, guest, ("qmigrate" if guest.type == "qemu" else "vzmigrate",), since=since)


HA_CRM_ROUND_SECONDS = 10  # pve-ha-crm's loop: a queued command is decided within one round


def ha_move_refusal(client: PveClient, guest: Guest, target: str, *, since: int) -> str | None:
    """Why PVE's HA manager did not move ``guest`` to ``target`` after a request made at ``since``
    (epoch s): its CRM drops a move to a node that is not online ("crm command error - node not
    online") and refuses one onto a negative-affinity partner's node, both only in its syslog,
    leaving the service where it was. None while the move may still come: the CRM has not yet run
    a full round since the request, or the service is in its 'migrate'/'relocate' state."""
    status = client.get("cluster/ha/status/current")
    if not isinstance(status, list):
        return None
    sid = f"{'vm' if guest.type == 'qemu' else 'ct'}:{guest.vmid}"
    master = next((e for e in status if isinstance(e, dict) and e.get("type") == "master"), None)
    service = next((e for e in status if isinstance(e, dict) and e.get("sid") == sid), None)
    if master is None or service is None or int(master.get("timestamp") or 0) < since + HA_CRM_ROUND_SECONDS:
        return None
    if service.get("crm_state") in ("migrate", "relocate") or service.get("node") == target:
        return None
    nodes = client.get("cluster/ha/status/manager_status").get("manager_status", {}).get("node_status", {})
    if nodes.get(target, "online") != "online":
        return f"the HA manager dropped the move: node '{target}' is {nodes[target]}, not online"
    reason = "the HA manager refused the move"
    if guest.type == "qemu":
        blocked = client.get(f"{guest_path(guest)}/migrate").get("not_allowed_nodes", {}).get(target, {})
        partners = [
            str(b["sid"]) for b in blocked.get("blocking-ha-resources") or [] if isinstance(b, dict) and b.get("sid")
        ]
        if partners:
            return f"{reason}: {', '.join(partners)} on '{target}' in negative affinity with {sid}"
    return f"{reason} (the guest is still {service.get('crm_state')} on {service.get('node')})"


GUEST_ACTIONS = ("start", "shutdown", "stop", "reboot")
HA_REQUEST_TASKS = ("hastart", "hastop")


def guest_power(
    client: PveClient, guest: Guest, action: str, *, timeout: int | None = None, force_stop: bool = False
) -> str:
    """``POST .../{vmid}/status/{action}``; returns the task's UPID.

    For an HA-managed guest PVE forwards start, shutdown and stop to the HA manager: the task is a
    short ``hastart``/``hastop`` that sets the resource's requested state, and the node's LRM runs
    the real ``qm*``/``vz*`` task shortly after (see ``find_followup_task``); reboot is never
    forwarded. ``timeout`` is the seconds a shutdown or reboot may take; ``force_stop`` makes a
    shutdown that runs out of time stop the guest hard instead of failing.
    """
    if action not in GUEST_ACTIONS:
        raise UsageError(f"unknown guest action {action!r}", hint=f"one of {', '.join(GUEST_ACTIONS)}")
    if timeout is not None and (action not in ("shutdown", "reboot") or timeout < 0):
        raise UsageError("a timeout is for shutdown and reboot, in whole seconds (0 or more)")
    if force_stop and action != "shutdown":
        raise UsageError("force-stop is for shutdown")
    params = {"timeout": timeout, "forceStop": force_stop or None}
    upid = client.post(f"{guest_path(guest)}/status/{action}", **params)
    return _upid(upid, f"{action} {guest.vmid}")


def lifecycle_task_types(guest: Guest, action: str) -> tuple[str, ...]:
    """The ``qm*``/``vz*`` task types the HA manager's LRM may run for an HA ``action``
    (a stop request with a timeout is carried out as a shutdown that ends hard)."""
    prefix = "qm" if guest.type == "qemu" else "vz"
    kinds = ("start",) if action == "start" else ("shutdown", "stop")
    return tuple(prefix + kind for kind in kinds)


def find_followup_task(client: PveClient, guest: Guest, types: tuple[str, ...], *, since: int) -> str | None:
    """The newest task of one of ``types`` for ``guest`` on its node started at or after ``since``
    (epoch s): the real task the HA manager started after a ``hamigrate``/``hastart``/``hastop``."""
    typefilter = types[0] if len(types) == 1 else None
    found = node_tasks(client, guest.node, vmid=guest.vmid, typefilter=typefilter, source="all", since=since)
    upids = [t["upid"] for t in found if isinstance(t, dict) and t.get("upid") and t.get("type") in types]
    return max(upids, key=lambda u: parse_upid(u).starttime) if upids else None


def qdevice_status(client: PveClient) -> dict[str, Any]:
    """``GET /cluster/config/qdevice``: empty when the cluster has no QDevice (or this PVE lacks the call)."""
    try:
        data = client.get("cluster/config/qdevice")
    except ApiError as exc:
        if exc.status in (404, 500, 501):
            return {}
        raise
    return data if isinstance(data, dict) else {}


def api_endpoint(client: PveClient) -> tuple[str | None, bool]:
    """(the node answering at pvetop's active API host — ``local`` in its ``/cluster/status`` —
    or None when it does not answer; whether another configured endpoint answers as another
    node): powering the first off cuts pvetop off unless the second holds.

    The other hosts are asked in their configured order only until one answers as another node:
    one such answer settles it, and the power worker asks on every round (asking every host was
    one request per node per round, most of the worker's requests on a cluster of a few nodes)."""
    hosts = client.settings.hosts
    active = client.active_host
    first = [i for i, (host, port) in enumerate(hosts) if format_host(host, port) == active]
    api_node = _local_node(client, first[0]) if first else None
    for index in range(len(hosts)):
        if index in first:
            continue
        node = _local_node(client, index)
        if node is not None and node != api_node:
            return api_node, True
    return api_node, False


def _local_node(client: PveClient, index: int) -> str | None:
    """The node answering at configured host ``index`` (``local`` in its ``/cluster/status``); None
    when it does not answer."""
    try:
        items = client.get_from_host(index, "cluster/status")
    except PvetopError:
        return None
    local = [i.get("name") for i in items or () if isinstance(i, dict) and i.get("type") == "node" and i.get("local")]
    return str(local[0]) if local else None


MIGRATION_TASK_TYPES = ("qmigrate", "vzmigrate", "hamigrate")


def task_owner(entry: dict[str, Any]) -> tuple[str, str]:
    """(user, token name or "") of a task list entry, whether PVE split a token's owner into
    ``user`` and ``tokenid`` (newer releases) or kept ``user!token`` whole."""
    user, _, token = str(entry.get("user", "")).partition("!")
    return user, token or str(entry.get("tokenid") or "")


def started_migration(client: PveClient, guest: Guest, *, since: float, cluster_wide: bool = False) -> str | None:
    """The UPID of a migration of ``guest`` by this client's user on its node that still runs or
    started at ``since`` or later, if any: whether a migrate POST whose answer was lost (a timeout,
    a dropped connection, a proxy's 500) reached the cluster after all. A short migration (or an
    HA request, done within a second) may have ended by the time the answer is given up on.
    Tokens run tasks as ``user!token`` (listed as ``user`` plus ``tokenid``): a token's request
    is told apart from the HA manager's migration it leads to, which runs as the bare user.

    ``cluster_wide`` reads PVE's cluster task list (``/cluster/tasks``: any node answers it with
    what every node broadcast) instead of the node's own, for when the node cannot be reached
    (it crashed after taking the request); a task not broadcast yet is missing from it."""
    if cluster_wide:
        entries = [
            entry
            for entry in cluster_tasks(client)
            if isinstance(entry, dict) and entry.get("node") == guest.node and entry.get("id") == str(guest.vmid)
        ]
    else:
        entries = node_tasks(client, guest.node, vmid=guest.vmid, source="all", limit=50)
    ours = (client.settings.user, (client.settings.token_name or "").rpartition("!")[2])
    started = [
        entry["upid"]
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("upid"), str)
        and entry.get("type") in MIGRATION_TASK_TYPES
        and ("endtime" not in entry or parse_upid(entry["upid"]).starttime >= since)
        and task_owner(entry) == ours
    ]
    return max(started, key=lambda upid: parse_upid(upid).starttime) if started else None


def shutdown_node(client: PveClient, node: str) -> None:
    """``POST /nodes/{node}/status command=shutdown``: PVE returns no task for it."""
    client.post(f"nodes/{node}/status", command="shutdown")


def wake_node(client: PveClient, target: str) -> str:
    """``POST /nodes/{target}/wakeonlan``: the answering node sends the packet; returns the MAC used.

    The path names the node to wake (it must have ``wakeonlan: mac=...`` in its node config);
    the request must therefore reach another, online node — any of our API hosts but the target.
    """
    mac = client.post(f"nodes/{target}/wakeonlan")
    if not isinstance(mac, str):
        raise ApiError(200, f"unexpected wakeonlan answer for {target}: {mac!r:.120}")
    return mac


_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")


def parse_wakeonlan(value: str | None) -> dict[str, str]:
    """``"mac=AA:..,bind-interface=vmbr0"`` (or a bare MAC) -> dict; empty when unset."""
    if not value:
        return {}
    fields = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if sep:
            fields[key.strip()] = val.strip()
        else:
            fields["mac"] = key.strip()
    return fields


def node_wakeonlan_mac(client: PveClient, node: str) -> str | None:
    """The MAC address PVE has for waking ``node`` (read from its node config; node must be online)."""
    return parse_wakeonlan(client.node_config(node).get("wakeonlan")).get("mac")


def set_node_wakeonlan(client: PveClient, node: str, mac: str) -> None:
    """Sets the node's wake-on-LAN MAC, keeping its bind-interface / broadcast-address settings."""
    if not _MAC.match(mac):
        raise UsageError(f"not a MAC address: {mac!r}", hint="write six hex pairs, e.g. AA:BB:CC:DD:EE:FF")
    fields = parse_wakeonlan(client.node_config(node).get("wakeonlan"))
    fields["mac"] = mac.upper()
    value = ",".join([f"mac={fields.pop('mac')}", *(f"{k}={v}" for k, v in fields.items())])
    client.put(f"nodes/{node}/config", wakeonlan=value)


def _upid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("UPID:"):
        raise ApiError(200, f"{what}: expected a task id, got {value!r:.120}")
    return value
