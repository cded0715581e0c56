"""Scenarios: clusters described as data (JSON files shipped here, or any file path).

A scenario lists nodes, storage, guests, pools, HA rules and options explicitly, and/or a
``generate`` block that expands deterministically (by scenario name and seed) into many nodes
and guests — how the 200- and 4000-guest clusters are described without listing each guest.

Format (sizes in GiB/MiB as named, times in seconds; see homelab.json and smb.json)::

    name, description, cluster_name, migration_bandwidth_mib (default 500),
    options        datacenter.cfg values as PVE writes them: {"crs": "ha=static,ha-auto-rebalance=0", ...}
    faults         initial faults: {"latency_ms", "error_rate", "drop_rate", "migration_failure_rate"}
    nodes          [{name, cpus, memory_gib, sockets?, cpu_model?, root_disk_gib?, votes?, ip?, mac?,
                     arc_gib? (ZFS ARC), services_gib? (Ceph and other daemons: memory the host keeps),
                     boot_seconds?, shutdown_seconds? (the OS once guests and HA are done), power: online|off,
                     base_cpu?, level?, description?}]
    storage        [{storage, type (dir, lvmthin, zfspool, nfs, rbd, cephfs), shared 0|1, content,
                     size_gib (per node when local), base_used_gib?, nodes? (default: all)}]
    pools          [{poolid, comment?}]
    guests         [{vmid, type qemu|lxc, name (unique), node, cores, memory_mib, disks [{storage, size_gib}],
                     status running|stopped, template?, tags?, pool?, ha?, lock?, onboot?, startup? "order=1,up=30",
                     shutdown_seconds? (how long its OS takes to power off; above 180 the stop is forced),
                     devices? {hostpci0|usb0|serial0...: config value} (qemu passthrough: ties it to its node),
                     cdrom? "storage:iso/NAME.iso" (qemu ide2),
                     balloon_mib? (qemu: the minimum auto-ballooning may shrink it to; below memory enables it),
                     load {curve steady|diurnal|bursty, cpu (fraction of its cores), mem (fraction),
                           night? (diurnal: cpu and memory at 02:00 as a share of their typical level)}}]
    ha_rules       [{rule, type node-affinity|resource-affinity, resources "vm:100,ct:101",
                     nodes? "pve1:2,pve2", strict?, affinity? positive|negative, disable?, comment?}]
    generate       {"nodes": {count, name "pve{n}", start, template {node fields; a list = pick one; mac_prefix}},
                    "guests": {count, first_vmid, lxc_share, template_share, stopped_share, ha_first, ha_storage,
                               roles, sizes [{cores, memory_mib, disk_gib, weight}], storage {id: weight},
                               balloon_share (VMs whose balloon minimum is half their memory),
                               curves {curve: weight}, tags, max_tags, pools, pool_share,
                               skew {node: placement weight factor}, cpu_range, mem_range, place {vmid: node}}}
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from pvetop.sim.errors import ScenarioError

SCENARIO_DIR = Path(__file__).parent
NODE_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")


@dataclass
class Scenario:
    name: str
    description: str
    cluster_name: str
    options: dict
    migration_bandwidth_mib: float
    nodes: list[dict]
    storage: list[dict]
    guests: list[dict]
    pools: list[dict] = field(default_factory=list)
    ha_rules: list[dict] = field(default_factory=list)
    faults: dict = field(default_factory=dict)


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios."""
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.json"))


def load_scenario(name_or_path: str | Path, seed: int = 1) -> Scenario:
    """A built-in scenario by name, or a scenario JSON file by path, expanded for ``seed``."""
    path = Path(name_or_path)
    if path.suffix != ".json" or not path.exists():
        builtin = SCENARIO_DIR / f"{name_or_path}.json"
        if not builtin.exists():
            raise ScenarioError(
                f"unknown scenario {str(name_or_path)!r}; "
                f"choose one of: {', '.join(list_scenarios())} (or a .json file path)"
            )
        path = builtin
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario file {path}: top level must be a JSON object")
    return expand(data, seed, source=str(path))


def expand(data: dict, seed: int, *, source: str = "<scenario>") -> Scenario:
    name = str(data.get("name") or Path(source).stem)
    nodes = [dict(node) for node in data.get("nodes", [])]
    guests = [dict(guest) for guest in data.get("guests", [])]
    generate = data.get("generate") or {}
    rng = random.Random(f"{name}:{seed}")
    if "nodes" in generate:
        nodes += _generate_nodes(generate["nodes"], rng)
    if "guests" in generate:
        generated = _generate_guests(
            generate["guests"], nodes, rng, first_free=max([g.get("vmid", 99) for g in guests] + [99]) + 1
        )
        _add_balloons(generated, float(generate["guests"].get("balloon_share", 0)), random.Random(f"{name}:{seed}:b"))
        guests += generated
    scenario = Scenario(
        name=name,
        description=str(data.get("description", "")),
        cluster_name=str(data.get("cluster_name", name)),
        options=dict(data.get("options", {})),
        migration_bandwidth_mib=float(data.get("migration_bandwidth_mib", 500)),
        nodes=nodes,
        storage=[dict(s) for s in data.get("storage", [])],
        guests=guests,
        pools=[dict(p) for p in data.get("pools", [])],
        ha_rules=[dict(r) for r in data.get("ha_rules", [])],
        faults=dict(data.get("faults", {})),
    )
    _validate(scenario, source)
    return scenario


def _pick(value, rng: random.Random):
    """A list means "one of these"; anything else is used as is."""
    return rng.choice(value) if isinstance(value, list) else value


def _generate_nodes(spec: dict, rng: random.Random) -> list[dict]:
    count = int(spec["count"])
    pattern = spec.get("name", "pve{n}")
    template = spec.get("template", {})
    nodes = []
    for index in range(count):
        number = int(spec.get("start", 1)) + index
        node = {key: _pick(value, rng) for key, value in template.items() if key != "mac_prefix"}
        node["name"] = pattern.format(n=number)
        if "mac_prefix" in template:  # one wake-on-LAN MAC per node: the prefix plus the node number
            node["mac"] = f"{template['mac_prefix']}:{number:02X}"
        nodes.append(node)
    return nodes


def _weighted(options: dict[str, float], rng: random.Random) -> str:
    keys = sorted(options)
    return rng.choices(keys, weights=[options[k] for k in keys])[0]


def _generate_guests(spec: dict, nodes: list[dict], rng: random.Random, first_free: int) -> list[dict]:
    count = int(spec["count"])
    vmid = int(spec.get("first_vmid", first_free))
    sizes = spec.get("sizes") or [{"cores": 2, "memory_mib": 4096, "disk_gib": 32, "weight": 1}]
    roles = spec.get("roles") or ["vm"]
    storage = spec.get("storage") or {"local-lvm": 1.0}
    curves = spec.get("curves") or {"steady": 1, "diurnal": 1, "bursty": 1}
    tags = spec.get("tags") or []
    pools = spec.get("pools") or []
    ha_first = int(spec.get("ha_first", 0))
    place = spec.get("place") or {}  # vmid -> node: guests pinned where the scenario's HA rules want them
    # placement weight per node: its memory, bent by "skew" so one node can be made the hot one
    skew = spec.get("skew") or {}
    node_names = [n["name"] for n in nodes]
    weights = [float(n.get("memory_gib", 64)) * float(skew.get(n["name"], 1.0)) for n in nodes]
    guests = []
    for index in range(count):
        size = rng.choices(sizes, weights=[s.get("weight", 1) for s in sizes])[0]
        kind = "lxc" if rng.random() < float(spec.get("lxc_share", 0.0)) else "qemu"
        role = rng.choice(roles)
        template = rng.random() < float(spec.get("template_share", 0.0))
        ha = index < ha_first  # the first ones are HA-managed VMs, so rules can name them for any seed
        if ha:
            kind, template = "qemu", False
        running = not template and rng.random() >= float(spec.get("stopped_share", 0.0))
        guest = {
            "vmid": vmid,
            "type": kind,
            "name": f"{role}-{vmid}",
            "node": place.get(str(vmid), rng.choices(node_names, weights=weights)[0]),
            "cores": size["cores"],
            "memory_mib": size["memory_mib"],
            "disks": [
                {
                    "storage": spec.get("ha_storage", _weighted(storage, rng)) if ha else _weighted(storage, rng),
                    "size_gib": size["disk_gib"],
                }
            ],
            "status": "running" if running else "stopped",
            "template": int(template),
            "load": {
                "curve": _weighted(curves, rng),
                "cpu": round(rng.uniform(*spec.get("cpu_range", [0.02, 0.4])), 3),
                "mem": round(rng.uniform(*spec.get("mem_range", [0.3, 0.8])), 3),
            },
        }
        picked = sorted({rng.choice(tags) for _ in range(rng.randint(0, int(spec.get("max_tags", 2))))}) if tags else []
        if picked:
            guest["tags"] = picked
        if pools and rng.random() < float(spec.get("pool_share", 0.5)):
            guest["pool"] = rng.choice(pools)
        if ha:
            guest["ha"] = True
        guests.append(guest)
        vmid += 1
    return guests


def _add_balloons(guests: list[dict], share: float, rng: random.Random) -> None:
    """Gives ``share`` of the generated VMs a ``balloon`` minimum of half their memory (a random
    source of its own, so the rest of the expansion stays as it was)."""
    for guest in guests:
        if guest["type"] == "qemu" and not guest["template"] and rng.random() < share:
            guest["balloon_mib"] = guest["memory_mib"] // 2


def _validate(scenario: Scenario, source: str) -> None:
    def fail(message: str) -> NoReturn:
        raise ScenarioError(f"scenario {source}: {message}")

    if not scenario.nodes:
        fail("needs at least one node")
    names = [node.get("name") for node in scenario.nodes]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and NODE_NAME.match(n) for n in names):
        fail("node names must be unique host names (letters, digits, dashes)")
    for node in scenario.nodes:
        for key in ("cpus", "memory_gib"):
            if not isinstance(node.get(key), (int, float)) or node[key] <= 0:
                fail(f"node {node['name']}: {key} must be a positive number")
        if node.get("power", "online") not in ("online", "off"):
            fail(f"node {node['name']}: power must be online or off")
    if not scenario.storage:
        fail("needs at least one storage")
    storage_ids = {s.get("storage") for s in scenario.storage}
    for storage in scenario.storage:
        unknown = sorted(set(storage.get("nodes") or []) - set(names))
        if unknown:
            fail(f"storage {storage.get('storage')!r}: unknown node(s) {', '.join(unknown)}")
    vmids: set[int] = set()
    guest_names: set[str] = set()
    pool_ids = {p.get("poolid") for p in scenario.pools}
    for guest in scenario.guests:
        vmid = guest.get("vmid")
        if not isinstance(vmid, int) or vmid < 100 or vmid in vmids:
            fail(f"guest vmid {vmid!r} must be a unique integer >= 100")
        vmids.add(vmid)
        if guest.get("type") not in ("qemu", "lxc"):
            fail(f"guest {vmid}: type must be qemu or lxc")
        if guest.get("node") not in names:
            fail(f"guest {vmid}: unknown node {guest.get('node')!r}")
        if not guest.get("name") or guest["name"] in guest_names:
            fail(f"guest {vmid}: name must be unique and non-empty")
        guest_names.add(guest["name"])
        for disk in guest.get("disks", []):
            if disk.get("storage") not in storage_ids:
                fail(f"guest {vmid}: unknown storage {disk.get('storage')!r}")
        if (guest.get("devices") or guest.get("cdrom")) and guest["type"] != "qemu":
            fail(f"guest {vmid}: devices and cdrom are for qemu guests")
        if guest.get("cdrom") and str(guest["cdrom"]).partition(":")[0] not in storage_ids:
            fail(f"guest {vmid}: cdrom {guest['cdrom']!r} is not on a known storage")
        if guest.get("pool") is not None and guest["pool"] not in pool_ids:
            fail(f"guest {vmid}: unknown pool {guest['pool']!r}")
        if guest.get("load", {}).get("curve", "steady") not in ("steady", "diurnal", "bursty"):
            fail(f"guest {vmid}: load curve must be steady, diurnal or bursty")
        night = guest.get("load", {}).get("night")
        if night is not None and not (isinstance(night, (int, float)) and 0 <= night <= 1):
            fail(f"guest {vmid}: load night must be a number between 0 and 1")
    ha_sids = {f"{'vm' if g['type'] == 'qemu' else 'ct'}:{g['vmid']}" for g in scenario.guests if g.get("ha")}
    for rule in scenario.ha_rules:
        if rule.get("type") not in ("node-affinity", "resource-affinity") or not rule.get("rule"):
            fail(f"HA rule {rule.get('rule')!r}: needs a name and type node-affinity or resource-affinity")
        missing = sorted(set(str(rule.get("resources", "")).split(",")) - ha_sids)
        if missing:
            fail(f"HA rule {rule['rule']!r}: {', '.join(missing)} are not HA-managed guests")
