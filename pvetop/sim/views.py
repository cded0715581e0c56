"""The JSON shapes of PVE's API answers, built from the cluster's state at its current time.

Field names, units and 0/1 booleans follow the PVE 9.2 schema (see pve-api-subset in the
project's reference notes). Callers hold the cluster lock and have synced it.
"""

from __future__ import annotations

import hashlib
import time as _time
from typing import TYPE_CHECKING

from pvetop.sim.cluster import PVE_RELEASE, PVE_REPOID, PVE_VERSION, node_uptime
from pvetop.sim.entities import GIB, MIB, SimGuest, SimNode
from pvetop.sim.errors import PveApiError
from pvetop.sim.load import noise
from pvetop.sim.memory import GuestMemory, host_resident
from pvetop.sim.validate import parse_property_string

if TYPE_CHECKING:
    from pvetop.sim.cluster import SimCluster

KERNEL = "6.14.11-4-pve"
# PVE 9's rrd layout (pve-cluster RRD.pm create_rrd_data, pve-*-9.0 files): (step seconds, points)
RRD_LAYOUT = {
    "hour": (60, 60),
    "day": (60, 1440),
    "week": (1800, 336),
    "month": (1800, 1440),
    "year": (21600, 1440),
    "decade": (604800, 570),
}
# pmxcfs keeps a node's last status broadcast this long after it stops sending (status.c rrd_entry_is_old)
RRD_EXPIRE_SECONDS = 300


# ----- versions ---------------------------------------------------------------------------
def version() -> dict:
    return {"version": PVE_VERSION, "release": PVE_RELEASE, "repoid": PVE_REPOID, "console": "xtermjs"}


def node_version() -> dict:
    return {"version": PVE_VERSION, "release": PVE_RELEASE, "repoid": PVE_REPOID}


# ----- guests -----------------------------------------------------------------------------
def hastate(cluster: SimCluster, guest: SimGuest) -> str:
    return cluster.ha.state_of(guest)


def stats_time(cluster: SimCluster, node: SimNode) -> float | None:
    """When the figures shown for ``node`` and its guests were sampled: now while it is up; the
    moment it went down for ``RRD_EXPIRE_SECONDS`` after that (pmxcfs still serves its last
    broadcast); None once that has expired."""
    if node.reachable:
        return cluster.now
    went_down = node.power_history[-1][0] if node.power_history else None
    if went_down is not None and cluster.now - went_down <= RRD_EXPIRE_SECONDS:
        return went_down
    return None


def guest_counters(
    cluster: SimCluster, guest: SimGuest, usage: tuple[float, int] | None = None, at: float | None = None
) -> dict:
    """cpu, memory and the cumulative byte counters since the guest started, at ``at`` (now)."""
    now = cluster.now if at is None else at
    cpu, mem = usage if usage is not None else cluster.guest_usage(guest, now)
    running = guest.status == "running"
    uptime = int(now - guest.started_at) if running else 0
    netin, netout, diskread, diskwrite = guest.rates if running else (0, 0, 0, 0)
    return {
        "cpu": round(cpu, 6),
        "mem": mem,
        "uptime": uptime,
        "netin": int(netin * uptime),
        "netout": int(netout * uptime),
        "diskread": int(diskread * uptime),
        "diskwrite": int(diskwrite * uptime),
    }


def guest_memory(cluster: SimCluster, guest: SimGuest, at: float) -> GuestMemory | None:
    """The guest's memory at ``at`` as its node sees it (None when it is not running)."""
    return cluster.node_load(cluster.nodes[guest.node], at)[2].get(guest.vmid)


def guest_resource(
    cluster: SimCluster,
    guest: SimGuest,
    usage: tuple[float, int] | None = None,
    at: float | None = None,
    memory: GuestMemory | None = None,
) -> dict:
    """One qemu/lxc entry of /cluster/resources, with the figures sampled at ``at`` (see
    ``stats_time``); once a dead node's figures expired only config-derived fields are left.
    ``mem`` is what the guest reports, ``memhost`` (VMs) what its node pays (``memory``)."""
    if at is None:
        at = stats_time(cluster, cluster.nodes[guest.node])
    entry: dict = {"id": guest.resource_id, "type": guest.type, "vmid": guest.vmid, "node": guest.node}
    if at is None:
        entry["status"] = "unknown"
    else:
        counters = guest_counters(cluster, guest, usage, at)
        if memory is None and guest.status == "running":
            memory = guest_memory(cluster, guest, at)
        entry.update(
            {
                "name": guest.name,
                "status": guest.status,
                "template": int(guest.template),
                "cpu": counters["cpu"],
                "maxcpu": guest.cores,
                "mem": memory.mem if memory else 0,
                "maxmem": guest.memory,
                "disk": guest.disk_used,
                "maxdisk": guest.root_size,
                "netin": counters["netin"],
                "netout": counters["netout"],
                "diskread": counters["diskread"],
                "diskwrite": counters["diskwrite"],
                "uptime": counters["uptime"],
            }
        )
        if guest.type == "qemu":
            entry["memhost"] = memory.memhost if memory else 0
    if guest.pool:  # from user.cfg, so it outlives the node's figures
        entry["pool"] = guest.pool
    if guest.tags:
        entry["tags"] = ";".join(guest.tags)
    if guest.lock:
        entry["lock"] = guest.lock
    if guest.ha:
        entry["hastate"] = hastate(cluster, guest)
    return entry


def guest_list_entry(cluster: SimCluster, guest: SimGuest, memory: GuestMemory | None, *, full: bool) -> dict:
    """One entry of GET /nodes/{n}/qemu or /lxc (``memory``: the guest's, None when stopped).

    qemu-server Qemu.pm vmlist → vmstatus(undef, full): without ``full`` there is no QMP query,
    so a VM's ``mem`` is its cgroup figure (``memhost``) and block counters are missing; with it
    ``mem`` is what the balloon driver reports and ``balloon`` its current size."""
    counters = guest_counters(cluster, guest)
    reported = memory.mem if memory else 0
    host = memory.memhost if memory else 0
    entry = {
        "vmid": guest.vmid,
        "name": guest.name,
        "status": guest.status,
        "cpu": counters["cpu"],
        "cpus": guest.cores,
        "mem": reported if full or guest.type == "lxc" else host,
        "maxmem": guest.memory,
        "disk": guest.disk_used,
        "maxdisk": guest.root_size,
        "netin": counters["netin"],
        "netout": counters["netout"],
        "uptime": counters["uptime"],
    }
    if full or guest.type == "lxc":
        entry.update({"diskread": counters["diskread"], "diskwrite": counters["diskwrite"]})
    if guest.type == "qemu":
        entry["memhost"] = host
        if guest.status == "running":
            entry["pid"] = 10000 + guest.vmid
            if full and memory is not None:
                entry["balloon"] = memory.balloon
    else:
        entry["maxswap"] = 512 * MIB
        entry["type"] = "lxc"
    if guest.template:
        entry["template"] = 1
    if guest.tags:
        entry["tags"] = ";".join(guest.tags)
    if guest.lock:
        entry["lock"] = guest.lock
    if guest.status == "running":
        entry.update(pressures(cluster, guest.vmid, cluster.now, guest=True))
    return entry


def pressures(cluster: SimCluster, key: int, t: float, *, guest: bool) -> dict:
    base = noise(cluster.seed, key, 50, int(t // 60))
    values = {
        "pressurecpusome": round(base * 2.0, 2),
        "pressureiosome": round(base * 1.2, 2),
        "pressureiofull": round(base * 0.8, 2),
        "pressurememorysome": round(base * 0.3, 2),
        "pressurememoryfull": round(base * 0.1, 2),
    }
    if guest:
        values["pressurecpufull"] = round(base * 0.6, 2)
    return values


def guest_status(cluster: SimCluster, guest: SimGuest) -> dict:
    """GET .../{vmid}/status/current: vmstatus($vmid, 1), the full answer."""
    memory = guest_memory(cluster, guest, cluster.now) if guest.status == "running" else None
    entry = guest_list_entry(cluster, guest, memory, full=True)
    entry.pop("type", None)
    entry["ha"] = {"managed": 1, "state": hastate(cluster, guest)} if guest.ha else {"managed": 0}
    if guest.type == "qemu":
        entry["qmpstatus"] = guest.status
        entry["agent"] = 1
        if guest.status == "running":
            entry["running-machine"] = "pc-i440fx-10.0+pve1"
            entry["running-qemu"] = "10.0.2"
    return entry


def guest_config(cluster: SimCluster, guest: SimGuest) -> dict:
    """GET .../{vmid}/config: a plausible config file as PVE parses it."""
    config: dict = {"digest": guest.digest(), "cores": guest.cores}
    if guest.type == "qemu":
        config.update(
            {
                "name": guest.name,
                "memory": str(guest.memory // MIB),
                "sockets": 1,
                "ostype": guest.ostype,
                "scsihw": "virtio-scsi-single",
                "boot": "order=scsi0;net0",
                "cpu": "x86-64-v2-AES",
                "net0": f"virtio={guest.mac},bridge=vmbr0,firewall=1",
                "agent": "1",
                "smbios1": f"uuid=00000000-0000-4000-8000-{guest.vmid:012d}",
                "vmgenid": f"11111111-0000-4000-8000-{guest.vmid:012d}",
                "meta": "creation-qemu=10.0.2,ctime=1750000000",
            }
        )
        for index, disk in enumerate(guest.disks):
            config[disk.key] = f"{disk.volid(guest.vmid, index)},iothread=1,size={disk.size // GIB}G"
        if guest.balloon:
            config["balloon"] = guest.balloon // MIB
        if guest.cdrom:
            config["ide2"] = f"{guest.cdrom},media=cdrom"
        config.update(guest.devices)
    else:
        config.update(
            {
                "hostname": guest.name,
                "memory": guest.memory // MIB,
                "swap": 512,
                "ostype": guest.ostype,
                "arch": "amd64",
                "unprivileged": 1,
                "net0": f"name=eth0,bridge=vmbr0,hwaddr={guest.mac},ip=dhcp,type=veth",
            }
        )
        for index, disk in enumerate(guest.disks):
            mount = "" if disk.key == "rootfs" else f",mp=/mnt/data{index}"
            config[disk.key] = f"{disk.volid(guest.vmid, index)}{mount},size={disk.size // GIB}G"
    if guest.onboot:
        config["onboot"] = 1
    if guest.tags:
        config["tags"] = ";".join(guest.tags)
    if guest.description:
        config["description"] = guest.description
    if guest.lock:
        config["lock"] = guest.lock
    if guest.template:
        config["template"] = 1
    return config


# ----- nodes ------------------------------------------------------------------------------
def node_resource(cluster: SimCluster, node: SimNode, load: tuple[float, int] | None = None) -> dict:
    """One node entry of /cluster/resources; ``load`` is its (cpu, mem) when already computed."""
    entry: dict = {"id": f"node/{node.name}", "type": "node", "node": node.name}
    if node.name in cluster.ha.node_state:  # the CRM's node_status, once HA is in use
        entry["hastate"] = cluster.ha.node_state[node.name]
    if not node.reachable:
        entry["status"] = "offline"
        if stats_time(cluster, node) is not None:  # its last broadcast still carries the sizes
            entry.update({"level": node.level, "maxcpu": node.cpus, "maxmem": node.memory, "maxdisk": node.root_disk})
        return entry
    cpu, mem = load if load is not None else cluster.node_usage(node, cluster.now)
    entry.update(
        {
            "status": "online",
            "cpu": round(cpu, 6),
            "maxcpu": node.cpus,
            "mem": mem,
            "maxmem": node.memory,
            "disk": root_used(cluster, node),
            "maxdisk": node.root_disk,
            "uptime": int(node_uptime(node, cluster.now)),
            "level": node.level,
            "cgroup-mode": 2,
        }
    )
    return entry


def root_used(cluster: SimCluster, node: SimNode) -> int:
    return int(node.root_disk * (0.08 + 0.1 * noise(cluster.seed, node.nodeid, 41)))


def nodes_index(cluster: SimCluster) -> list[dict]:
    result = []
    for node in cluster.nodes.values():
        entry = node_resource(cluster, node)
        entry.pop("cgroup-mode", None)
        entry.pop("hastate", None)
        if node.reachable:
            entry["ssl_fingerprint"] = cluster.fingerprint
        result.append(entry)
    return result


def node_status(cluster: SimCluster, node: SimNode) -> dict:
    guests = [g for g in cluster.guests.values() if g.node == node.name]
    cpu, mem = cluster.node_usage(node, cluster.now, guests)
    load = cpu * node.cpus
    used_root = root_used(cluster, node)
    return {
        "cpu": round(cpu, 6),
        "wait": round(0.002 + 0.01 * noise(cluster.seed, node.nodeid, 42), 4),
        "uptime": int(node_uptime(node, cluster.now)),
        "idle": 0,
        "loadavg": [f"{load:.2f}", f"{load * 0.95:.2f}", f"{load * 0.9:.2f}"],
        "cpuinfo": {
            "cores": node.cpus // 2 // node.sockets or 1,
            "cpus": node.cpus,
            "sockets": node.sockets,
            "model": node.cpu_model,
            "mhz": "3000.000",
            "hvm": "1",
            "user_hz": 100,
            "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov",
        },
        "memory": {"total": node.memory, "used": mem, "free": node.memory - mem, "available": node.memory - mem},
        "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
        "rootfs": {
            "total": node.root_disk,
            "used": used_root,
            "free": node.root_disk - used_root,
            "avail": node.root_disk - used_root,
        },
        "ksm": {"shared": 0},
        "pveversion": f"pve-manager/{PVE_VERSION}/{PVE_REPOID}",
        "kversion": f"Linux {KERNEL} #1 SMP PREEMPT_DYNAMIC PMX {KERNEL} (2026-01-01T00:00Z)",
        "current-kernel": {
            "sysname": "Linux",
            "release": KERNEL,
            "machine": "x86_64",
            "version": f"#1 SMP PREEMPT_DYNAMIC PMX {KERNEL} (2026-01-01T00:00Z)",
        },
        "boot-info": {"mode": "efi", "secureboot": 0},
    }


def node_config(cluster: SimCluster, node: SimNode, prop: str | None) -> dict:
    config: dict = {"digest": cluster.node_config_digest(node)}
    if node.wakeonlan:
        config["wakeonlan"] = node.wakeonlan
    if node.description:
        config["description"] = node.description
    if node.ballooning_target is not None:
        config["ballooning-target"] = node.ballooning_target
    if prop:
        return {k: v for k, v in config.items() if k == prop}
    return config


def node_storage(cluster: SimCluster, node: SimNode, params: dict) -> list[dict]:
    result = []
    for storage in cluster.storages:
        if not storage.on_node(node.name):
            continue
        if params.get("storage") and storage.storage != params["storage"]:
            continue
        if params.get("content") and params["content"] not in storage.content.split(","):
            continue
        target = params.get("target")
        if target and target != node.name and not (storage.shared and storage.on_node(target)):
            continue
        used = cluster.storage_used(storage, node.name)
        result.append(
            {
                "storage": storage.storage,
                "type": storage.type,
                "content": storage.content,
                "shared": int(storage.shared),
                "active": 1,
                "enabled": 1,
                "total": storage.size,
                "used": used,
                "avail": storage.size - used,
                "used_fraction": round(used / storage.size, 6) if storage.size else 0,
            }
        )
    return result


def storage_resource(cluster: SimCluster, storage, node: SimNode) -> dict:
    entry = {
        "id": f"storage/{node.name}/{storage.storage}",
        "type": "storage",
        "storage": storage.storage,
        "node": node.name,
        "plugintype": storage.type,
        "shared": int(storage.shared),
        "content": storage.content,
    }
    if stats_time(cluster, node) is not None:
        entry.update({"status": "available", "disk": cluster.storage_used(storage, node.name), "maxdisk": storage.size})
    else:
        entry["status"] = "unknown"
    return entry


# ----- cluster-wide -----------------------------------------------------------------------
def cluster_resources(cluster: SimCluster, kind: str | None) -> list[dict]:
    """GET /cluster/resources in PVE's order: pools (unfiltered only), guests, nodes, storage,
    then the ``localnetwork`` zone of every node (unfiltered only; 9.x nodes broadcast ``network``
    entries instead of ``sdn`` ones, so ``type=sdn`` is empty)."""
    result: list[dict] = []
    pools = {poolid: {"id": f"/pool/{poolid}", "type": "pool", "pool": poolid} for poolid in cluster.pools}
    if kind is None:
        result.extend(pools.values())
    sampled = {name: stats_time(cluster, node) for name, node in cluster.nodes.items()}
    by_node: dict[str, list[SimGuest]] = {name: [] for name in cluster.nodes}
    usage = {}
    for guest in cluster.guests.values():
        by_node[guest.node].append(guest)
        at = sampled[guest.node]
        usage[guest.vmid] = cluster.guest_usage(guest, at) if at is not None else (0.0, 0)
    loads: dict[str, tuple[float, int]] = {}
    memory: dict[int, GuestMemory] = {}
    for name, node in cluster.nodes.items():
        at = sampled[name]
        if at is not None:
            cpu, mem, figures = cluster.node_load(node, at, by_node[name], usage)
            loads[name] = (cpu, mem)
            memory.update(figures)
    if kind in (None, "vm"):
        for guest in cluster.guests.values():
            entry = guest_resource(cluster, guest, usage[guest.vmid], sampled[guest.node], memory.get(guest.vmid))
            result.append(entry)
            if guest.pool in pools and entry.get("uptime"):
                _add_to_pool(pools[guest.pool], entry)
    if kind in (None, "node"):
        result.extend(node_resource(cluster, node, loads.get(name)) for name, node in cluster.nodes.items())
    if kind in (None, "storage"):
        for node in cluster.nodes.values():
            for storage in cluster.storages:
                if storage.on_node(node.name):
                    result.append(storage_resource(cluster, storage, node))
    if kind is None:
        result.extend(
            {
                "id": f"network/{name}/zone/localnetwork",
                "type": "network",
                "network-type": "zone",
                "network": "localnetwork",
                "node": name,
                "status": "ok",
            }
            for name in cluster.nodes
        )
    return result


def _add_to_pool(pool: dict, entry: dict) -> None:
    """Sums a running member into its pool entry as PVE does: longest uptime, summed memory and
    CPUs, cpu as the CPU-weighted mean of the members' fractions."""
    pool["uptime"] = max(pool.get("uptime", 0), entry["uptime"])
    pool["mem"] = pool.get("mem", 0) + entry["mem"]
    pool["maxmem"] = pool.get("maxmem", 0) + entry["maxmem"]
    maxcpu = pool.get("maxcpu", 0)
    total = maxcpu + entry["maxcpu"]
    pool["cpu"] = (pool.get("cpu", 0) * maxcpu + entry["cpu"] * entry["maxcpu"]) / total if total else 0
    pool["maxcpu"] = total


def cluster_status(cluster: SimCluster, local: str) -> list[dict]:
    """GET /cluster/status as ``local``'s pveproxy answers it (``local: 1`` on that node)."""
    result = [
        {
            "id": "cluster",
            "type": "cluster",
            "name": cluster.cluster_name,
            "nodes": len(cluster.nodes),
            "quorate": int(cluster.quorate),
            "version": cluster.config_version,
        }
    ]
    for node in cluster.nodes.values():
        result.append(
            {
                "id": f"node/{node.name}",
                "type": "node",
                "name": node.name,
                "nodeid": node.nodeid,
                "ip": node.ip,
                "online": int(node.reachable),
                "local": int(node.name == local),
                "level": node.level,
            }
        )
    return result


def cluster_config_nodes(cluster: SimCluster) -> list[dict]:
    return [
        {
            "node": node.name,
            "name": node.name,
            "nodeid": str(node.nodeid),
            "quorum_votes": str(node.votes),
            "ring0_addr": node.ip,
        }
        for node in cluster.nodes.values()
    ]


# datacenter.cfg properties PVE returns parsed (property string -> object), with their default keys
PROPERTY_STRING_OPTIONS = {
    "crs": "ha",
    "migration": "type",
    "ha": "shutdown_policy",
    "next-id": None,
    "notify": None,
    "u2f": None,
    "webauthn": None,
    "tag-style": None,
    "bwlimit": None,
    "replication": "type",
    "user-tag-access": None,
}


def cluster_options(cluster: SimCluster) -> dict:
    """GET /cluster/options as PVE parses datacenter.cfg: property strings become objects."""
    raw = {
        "keyboard": "en-us",
        "console": "xtermjs",
        "migration": "type=secure",
        "crs": "ha=static,ha-auto-rebalance=0",
        "ha": "shutdown_policy=conditional",
    }
    raw.update(cluster.options)
    options: dict = {"mac_prefix": "BC:24:11", "description": ""}
    for key, value in raw.items():
        if key in PROPERTY_STRING_OPTIONS and isinstance(value, str):
            options[key] = parse_property_string(value, PROPERTY_STRING_OPTIONS[key])
        elif key == "registered-tags" and isinstance(value, str):
            options[key] = [tag for tag in value.split(";") if tag]
        else:
            options[key] = value
    return options


def ha_resources(cluster: SimCluster, kind: str | None) -> list[dict]:
    result = []
    for guest in cluster.guests.values():
        if not guest.ha or (kind and guest.sid.split(":")[0] != kind):
            continue
        result.append(
            {
                "sid": guest.sid,
                "type": guest.sid.split(":")[0],
                "state": guest.ha_state,
                "max_restart": 1,
                "max_relocate": 1,
                "failback": 1,
                "digest": guest.digest(),
            }
        )
    return result


def ha_resource(cluster: SimCluster, sid: str) -> dict:
    wanted = sid if ":" in sid else f"vm:{sid}"
    for entry in ha_resources(cluster, None):
        if entry["sid"] == wanted:
            return entry
    raise PveApiError(500, f"no such resource '{wanted}'")


def ha_rules(cluster: SimCluster, params: dict) -> list[dict]:
    result = []
    for order, rule in enumerate(cluster.ha_rules, start=1):
        if params.get("type") and rule.type != params["type"]:
            continue
        if params.get("resource") and not rule.covers(params["resource"]):
            continue
        result.append(rule.as_api(order))
    return result


def ha_rule(cluster: SimCluster, name: str) -> dict:
    for order, rule in enumerate(cluster.ha_rules, start=1):
        if rule.rule == name:
            return rule.as_api(order)
    raise PveApiError(500, f"no such ha rule '{name}'")


def _age_text(cluster: SimCluster, timestamp: float) -> str:
    """API2/HA/Status.pm timestamp_to_status."""
    return "old timestamp - dead?" if cluster.now - timestamp > 30 else "active"


def _localtime(timestamp: float) -> str:
    return _time.asctime(_time.gmtime(timestamp))  # Perl's scalar localtime (the sim runs in UTC)


def _verbose_state(guest: SimGuest, state: str, running: bool) -> str:
    """Tools.pm get_verbose_service_state: quick feedback for pending starts and stops."""
    if state == "stopped" and guest.ha_state == "started":
        return "starting"
    if state == "started":
        return "stopping" if guest.ha_state == "stopped" else ("started" if running else "starting")
    return state


def ha_status_current(cluster: SimCluster) -> list[dict]:
    """GET /cluster/ha/status/current (API2/HA/Status.pm status)."""
    ha = cluster.ha
    local = cluster.entry_node.name
    result: list[dict] = [
        {
            "id": "quorum",
            "type": "quorum",
            "node": local,
            "status": "OK" if cluster.quorate else f"No quorum on node '{local}'!",
            "quorate": int(cluster.quorate),
        }
    ]
    if ha.master is None or ha.master_timestamp is None:
        return result
    crm = _age_text(cluster, ha.master_timestamp)
    scheduler = ha.crs_settings()[0]
    extra = f" - {scheduler} load CRS" if scheduler != "basic" else ""
    result.append(
        {
            "id": "master",
            "type": "master",
            "node": ha.master,
            "status": f"{ha.master} ({crm}, {_localtime(ha.master_timestamp)}){extra}",
            "timestamp": int(ha.master_timestamp),
        }
    )
    armed = "armed" if crm == "active" else "standby"
    result.append(
        {
            "id": "fencing",
            "type": "fencing",
            "node": ha.master,
            "status": f"{armed} (CRM watchdog {'active' if armed == 'armed' else 'standby'})",
            "armed-state": armed,
        }
    )
    for name in sorted(ha.node_state):
        lrm = ha.lrms[name]
        if lrm.timestamp is None:
            result.append(
                {"id": f"lrm:{name}", "type": "lrm", "node": name, "status": f"{name} (unable to read lrm status)"}
            )
            continue
        age = _age_text(cluster, lrm.timestamp)
        watchdog = (
            "watchdog active" if age == "active" and lrm.state in ("active", "maintenance") else "watchdog standby"
        )
        text = age
        if age == "active":
            if lrm.mode != "active":
                text = f"{lrm.mode} mode"
            elif lrm.state == "wait_for_agent_lock" and not ha.active_count(name):
                text = "idle"
            else:
                text = lrm.state
        elif lrm.mode == "maintenance":
            text = "maintenance mode"
        result.append(
            {
                "id": f"lrm:{name}",
                "type": "lrm",
                "node": name,
                "status": f"{name} ({text}, {watchdog}, {_localtime(lrm.timestamp)})",
                "timestamp": int(lrm.timestamp),
            }
        )
    for sid in sorted(ha.services):
        sd = ha.services[sid]
        guest = ha.guest(sid)
        state = _verbose_state(guest, sd.state, sd.running)
        result.append(
            {
                "id": f"service:{sid}",
                "type": "service",
                "sid": sid,
                "node": sd.node,
                "crm_state": sd.state,
                "state": state,
                "status": f"{sid} ({sd.node}, {state})",
                "request_state": guest.ha_state,
                "max_restart": 1,
                "max_relocate": 1,
                "failback": 1,
            }
        )
    return result


def ha_manager_status(cluster: SimCluster) -> dict:
    ha = cluster.ha
    status: dict = {}
    if ha.master is not None and ha.master_timestamp is not None:
        status = {
            "master_node": ha.master,
            "timestamp": int(ha.master_timestamp),
            "node_status": dict(sorted(ha.node_state.items())),
            "service_status": {},
        }
        for sid in sorted(ha.services):
            sd = ha.services[sid]
            entry: dict = {
                "node": sd.node,
                "state": sd.state,
                "uid": hashlib.md5(f"{sid}:{sd.state}".encode()).hexdigest()[:22],
            }
            if sd.target:
                entry["target"] = sd.target
            if sd.state == "started" and sd.running:
                entry["running"] = 1
            if sd.maintenance_node:
                entry["maintenance_node"] = sd.maintenance_node
            status["service_status"][sid] = entry
    lrm_status = {}
    for name in sorted(ha.node_state):
        lrm = ha.lrms[name]
        if lrm.timestamp is not None:
            lrm_status[name] = {"mode": lrm.mode, "state": lrm.state, "timestamp": int(lrm.timestamp), "results": {}}
    return {
        "manager_status": status,
        "lrm_status": lrm_status,
        "quorum": {"node": cluster.entry_node.name, "quorate": str(int(cluster.quorate))},
    }


def pools(cluster: SimCluster) -> list[dict]:
    result = []
    for poolid, comment in cluster.pools.items():
        entry = {"poolid": poolid}
        if comment:
            entry["comment"] = comment
        result.append(entry)
    return result


def pool(cluster: SimCluster, poolid: str) -> dict:
    if poolid not in cluster.pools:
        raise PveApiError(500, f"pool '{poolid}' does not exist")
    members = [guest_resource(cluster, g) for g in cluster.guests.values() if g.pool == poolid]
    result: dict = {"members": members}
    if cluster.pools[poolid]:
        result["comment"] = cluster.pools[poolid]
    return result


# ----- history ----------------------------------------------------------------------------
def _rrd_times(cluster: SimCluster, timeframe: str) -> tuple[int, list[int]]:
    step, points = RRD_LAYOUT[timeframe]
    last = int(cluster.now // step) * step
    return step, [last - step * (points - 1 - i) for i in range(points)]


def _samples(t: int, step: int) -> list[float]:
    """Instants averaged (or maxed) into one rrd row: one per minute-long row, a few spread over
    longer rows (cheap enough for 1440-row answers)."""
    if step <= 60:
        return [float(t)]
    return [t - step + step * (k + 1) / 3 for k in range(3)]


def guest_rrddata(cluster: SimCluster, guest: SimGuest, timeframe: str, cf: str) -> list[dict]:
    step, times = _rrd_times(cluster, timeframe)
    reduce = max if cf == "MAX" else (lambda values: sum(values) / len(values))
    rates = guest.rates
    rows: list[dict] = []
    running_now = guest.status == "running"
    for t in times:
        if not (running_now and t >= guest.started_at and cluster.nodes[guest.node].online_at(t)):
            rows.append(
                {
                    "time": t,
                    "maxcpu": guest.cores,
                    "maxmem": guest.memory,
                    "maxdisk": guest.root_size,
                    "cpu": 0,
                    "mem": 0,
                    "disk": 0,
                    "netin": 0,
                    "netout": 0,
                    "diskread": 0,
                    "diskwrite": 0,
                }
            )
            continue
        samples = _samples(t, step)
        cpu = reduce([guest.curve.cpu_at(s) for s in samples])
        mem = reduce([guest.memory * guest.curve.mem_at(s) for s in samples])
        row = {
            "time": t,
            "cpu": round(cpu, 6),
            "maxcpu": guest.cores,
            "mem": round(mem, 2),
            "maxmem": guest.memory,
            "memhost": host_resident(guest, int(mem), guest.memory),
            "disk": guest.disk_used,
            "maxdisk": guest.root_size,
            "netin": round(rates[0] * (0.5 + cpu), 2),
            "netout": round(rates[1] * (0.5 + cpu), 2),
            "diskread": round(rates[2] * (0.5 + cpu), 2),
            "diskwrite": round(rates[3] * (0.5 + cpu), 2),
        }
        row.update(pressures(cluster, guest.vmid, t, guest=True))
        if guest.type == "lxc":
            row.pop("memhost")
        rows.append(row)
    return rows


def node_rrddata(cluster: SimCluster, node: SimNode, timeframe: str, cf: str) -> list[dict]:
    step, times = _rrd_times(cluster, timeframe)
    guests = [g for g in cluster.guests.values() if g.node == node.name]
    reduce = max if cf == "MAX" else (lambda values: sum(values) / len(values))
    rows: list[dict] = []
    for t in times:
        if not node.online_at(t):
            rows.append({"time": t})
            continue
        usage = [cluster.node_usage(node, s, guests) for s in _samples(t, step)]
        cpu = reduce([u[0] for u in usage])
        mem = reduce([u[1] for u in usage])
        used_root = root_used(cluster, node)
        traffic = sum(g.rates[0] for g in guests if g.status == "running")
        row = {
            "time": t,
            "cpu": round(cpu, 6),
            "maxcpu": node.cpus,
            "iowait": round(0.01 * cpu, 6),
            "loadavg": round(cpu * node.cpus, 2),
            "memtotal": node.memory,
            "memused": round(mem, 2),
            "memavailable": round(node.memory - mem, 2),
            "arcsize": node.arc,
            "swaptotal": 8 * GIB,
            "swapused": 0,
            "roottotal": node.root_disk,
            "rootused": used_root,
            "netin": round(traffic, 2),
            "netout": round(traffic * 0.6, 2),
        }
        row.update(pressures(cluster, node.nodeid + 1_000_000, t, guest=False))
        rows.append(row)
    return rows
