"""The HTTPS side: PVE's JSON API under /api2/json plus a small control API under /sim.

Requests are matched against a route table (501 for anything else, as PVE answers), then
authenticated, permission-checked and parameter-checked in PVE's order before the handler reads
or changes the cluster under its lock. Faults (latency, 500s, dropped connections, outages,
lost answers to migrate POSTs) apply to /api2 only; /sim stays reachable so tests can turn them off again.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aiohttp import web

from pvetop.sim import content, migration, views
from pvetop.sim.auth import Auth, Identity
from pvetop.sim.cluster import SimCluster
from pvetop.sim.errors import PveApiError, ScenarioError, param_error
from pvetop.sim.validate import NODE_RE, P, check, check_wakeonlan, parse_property_string

logger = logging.getLogger(__name__)
SERVER_HEADER = "pve-api-daemon/3.0"
JSON_TYPE = "application/json;charset=UTF-8"
TIMEFRAMES = ("hour", "day", "week", "month", "year", "decade")
GUEST_TIMEFRAMES = TIMEFRAMES[:-1]
CF = P(enum=("AVERAGE", "MAX"))
LOST_ANSWER_SECONDS = 60.0  # real seconds a lost answer holds its connection at most (the client times out first)


@dataclass
class Call:
    """One API call as a handler sees it."""

    cluster: SimCluster
    auth: Auth
    caller: Identity | None  # None only on the routes that need no login
    path: dict[str, str]
    params: dict
    encoded_resources: Callable[[str | None], web.Response]
    local: str  # the node whose pveproxy answers this call

    @property
    def node(self) -> str:
        return self.path["node"]

    @property
    def vmid(self) -> int:
        return int(self.path["vmid"])

    @property
    def kind(self) -> str:
        return self.path["kind"]

    @property
    def identity(self) -> Identity:
        """Who is calling; a route that needs no login and still asks gets PVE's 401."""
        if self.caller is None:
            raise PveApiError(401, "No ticket")
        return self.caller

    def require(self, path: str, *privileges: str) -> None:
        self.identity.require(path, *privileges)


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[[Call], object]
    params: Mapping[str, P] | None  # None: the handler checks its parameters itself
    world: bool = False  # no authentication (PVE's "user": "world")
    perm: tuple[str, str] | None = None  # (ACL path, privilege); None: the handler checks its own

    def check_permission(self, call: Call) -> None:
        """PVE's ``permissions => { check => ['perm', PATH, [PRIVILEGE]] }``: checked once the
        parameters are valid and before the handler runs; ``{node}`` and ``{vmid}`` come from the path."""
        if self.perm is not None:
            path, privilege = self.perm
            values = dict(call.path, vmid=call.vmid) if "vmid" in call.path else call.path
            call.require(path.format_map(values), privilege)


ROUTES: list[Route] = []


NO_PARAMS: Mapping[str, P] = MappingProxyType({})


def route(
    method: str,
    path: str,
    params: Mapping[str, P] | None = NO_PARAMS,
    *,
    world: bool = False,
    perm: tuple[str, str] | None = None,
):
    """Registers a handler; ``{name}`` path segments become path parameters, and ``perm`` is the
    (ACL path, privilege) the caller needs, its path filled from them."""
    regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>{'qemu|lxc' if m.group(1) == 'kind' else '[^/]+'})", path)

    def register(handler):
        ROUTES.append(Route(method, re.compile(f"^{regex}$"), handler, params, world, perm))
        return handler

    return register


# ----- access -----------------------------------------------------------------------------
@route("GET", "/version")
def get_version(call: Call):
    return views.version()


@route("GET", "/access/ticket", world=True)
def get_ticket(call: Call):
    return None


@route(
    "POST",
    "/access/ticket",
    {
        "username": P(required=True),
        "password": P(required=True),
        "realm": P(),
        "otp": P(),
        "path": P(),
        "privs": P(),
        "new-format": P("boolean"),
        "tfa-challenge": P(),
    },
    world=True,
)
def post_ticket(call: Call):
    return call.auth.login(
        call.params["username"], call.params["password"], call.params.get("realm"), call.cluster.cluster_name
    )


@route("GET", "/access/permissions", {"path": P(), "userid": P()})
def get_permissions(call: Call):
    permissions = call.identity.permissions()
    if call.params.get("path"):
        return {call.params["path"]: permissions.get(call.params["path"], permissions["/"])}
    return permissions


# ----- cluster ----------------------------------------------------------------------------
@route("GET", "/cluster/resources", {"type": P(enum=("vm", "storage", "node", "sdn"))})
def get_resources(call: Call):
    return call.encoded_resources(call.params.get("type"))


@route("GET", "/cluster/status", perm=("/", "Sys.Audit"))
def get_cluster_status(call: Call):
    return views.cluster_status(call.cluster, call.local)


@route("GET", "/cluster/config/nodes", perm=("/", "Sys.Audit"))
def get_config_nodes(call: Call):
    return views.cluster_config_nodes(call.cluster)


@route("GET", "/cluster/options", perm=("/", "Sys.Audit"))
def get_options(call: Call):
    return views.cluster_options(call.cluster)


CRS_KEYS = {
    "ha",
    "ha-auto-rebalance",
    "ha-auto-rebalance-hold-duration",
    "ha-auto-rebalance-margin",
    "ha-auto-rebalance-method",
    "ha-auto-rebalance-threshold",
    "ha-rebalance-on-start",
}


@route(
    "PUT",
    "/cluster/options",
    {
        "crs": P(),
        "migration": P(),
        "ha": P(),
        "description": P(),
        "delete": P(),
        "keyboard": P(),
        "language": P(),
        "console": P(),
        "max_workers": P("integer", minimum=1),
        "bwlimit": P(),
        "tag-style": P(),
        "registered-tags": P(),
        "next-id": P(),
        "mac_prefix": P(),
        "email_from": P(),
        "fencing": P(enum=("watchdog", "hardware", "both")),
    },
    perm=("/", "Sys.Modify"),
)
def put_options(call: Call):
    if "crs" in call.params:
        crs = parse_property_string(call.params["crs"], "ha")
        unknown = sorted(set(crs) - CRS_KEYS)
        if unknown:
            raise param_error({"crs": f"invalid format - property '{unknown[0]}' not defined"})
        if crs.get("ha", "basic") not in ("basic", "static", "dynamic"):
            raise param_error(
                {
                    "crs": f"invalid format - value '{crs['ha']}' does not have a value in the "
                    "enumeration 'basic, static, dynamic'"
                }
            )
    call.cluster.update_options(call.params)
    return None


@route("GET", "/cluster/nextid", {"vmid": P("integer", minimum=100)})
def get_nextid(call: Call):
    wanted = call.params.get("vmid")
    if wanted is not None:
        if wanted in call.cluster.guests:
            raise param_error({"vmid": f"VM {wanted} already exists"})
        return wanted
    vmid = 100
    while vmid in call.cluster.guests:
        vmid += 1
    return vmid


CLUSTER_TASKS_FINISHED_PER_NODE = 25  # pve-common RESTEnvironment active_workers keeps this many


@route("GET", "/cluster/tasks")
def get_cluster_tasks(call: Call):
    """What pvestatd broadcasts: every running task plus each node's 25 newest finished ones;
    finished entries carry no pid and no entry carries pstart."""
    now = call.cluster.now
    finished_per_node: dict[str, int] = {}
    result = []
    for task in sorted(call.cluster.tasks, key=lambda t: (t.starttime, t.pid), reverse=True):
        entry = task.list_entry(now)
        del entry["pstart"]
        if not task.running(now):
            shown = finished_per_node.get(task.node, 0)
            if shown >= CLUSTER_TASKS_FINISHED_PER_NODE:
                continue
            finished_per_node[task.node] = shown + 1
            del entry["pid"]
        entry["saved"] = int(not task.running(now))
        result.append(entry)
    return result


@route("GET", "/cluster/ha/resources", {"type": P(enum=("ct", "vm"))}, perm=("/", "Sys.Audit"))
def get_ha_resources(call: Call):
    return views.ha_resources(call.cluster, call.params.get("type"))


@route("GET", "/cluster/ha/resources/{sid}", perm=("/", "Sys.Audit"))
def get_ha_resource(call: Call):
    return views.ha_resource(call.cluster, call.path["sid"])


@route("POST", "/cluster/ha/resources/{sid}/migrate", {"node": P(required=True)}, perm=("/", "Sys.Console"))
def post_ha_migrate(call: Call):
    return call.cluster.ha_migrate(call.path["sid"], call.params["node"], call.identity.userid)


@route(
    "GET",
    "/cluster/ha/rules",
    {"type": P(enum=("node-affinity", "resource-affinity")), "resource": P()},
    perm=("/", "Sys.Audit"),
)
def get_ha_rules(call: Call):
    return views.ha_rules(call.cluster, call.params)


@route(
    "POST",
    "/cluster/ha/rules",
    {
        "rule": P(required=True),
        "type": P(required=True, enum=("node-affinity", "resource-affinity")),
        "resources": P(required=True),
        "nodes": P(),
        "strict": P("boolean"),
        "affinity": P(enum=("positive", "negative")),
        "disable": P("boolean"),
        "comment": P(),
    },
    perm=("/", "Sys.Console"),
)
def post_ha_rule(call: Call):
    call.cluster.create_ha_rule(call.params)
    return None


@route("GET", "/cluster/ha/rules/{rule}", perm=("/", "Sys.Audit"))
def get_ha_rule(call: Call):
    return views.ha_rule(call.cluster, call.path["rule"])


@route("GET", "/cluster/ha/groups", perm=("/", "Sys.Audit"))
def get_ha_groups(call: Call):
    return []


@route("GET", "/cluster/ha/status/current", perm=("/", "Sys.Audit"))
def get_ha_status(call: Call):
    return views.ha_status_current(call.cluster)


@route("GET", "/cluster/ha/status/manager_status", perm=("/", "Sys.Audit"))
def get_ha_manager_status(call: Call):
    return views.ha_manager_status(call.cluster)


@route("GET", "/pools", {"poolid": P(), "type": P(enum=("qemu", "lxc", "storage"))})
def get_pools(call: Call):
    if call.params.get("poolid"):
        detail = views.pool(call.cluster, call.params["poolid"])
        return [dict(detail, poolid=call.params["poolid"])]
    return views.pools(call.cluster)


@route("GET", "/pools/{poolid}", {"type": P(enum=("qemu", "lxc", "storage"))})
def get_pool(call: Call):
    return views.pool(call.cluster, call.path["poolid"])


# ----- nodes ------------------------------------------------------------------------------
@route("GET", "/nodes")
def get_nodes(call: Call):
    return views.nodes_index(call.cluster)


@route("GET", "/nodes/{node}/status", perm=("/nodes/{node}", "Sys.Audit"))
def get_node_status(call: Call):
    return views.node_status(call.cluster, call.cluster.reachable_node(call.node))


@route(
    "POST",
    "/nodes/{node}/status",
    {"command": P(required=True, enum=("reboot", "shutdown"))},
    perm=("/nodes/{node}", "Sys.PowerMgmt"),
)
def post_node_status(call: Call):
    call.cluster.shutdown_node(call.node, reboot=call.params["command"] == "reboot")
    return None


@route("POST", "/nodes/{node}/wakeonlan", perm=("/nodes/{node}", "Sys.PowerMgmt"))
def post_wakeonlan(call: Call):
    return call.cluster.wakeonlan(call.node, call.local)


NODE_CONFIG_PROPERTIES = (
    "acme",
    "acmedomain0",
    "acmedomain1",
    "acmedomain2",
    "acmedomain3",
    "acmedomain4",
    "acmedomain5",
    "ballooning-target",
    "description",
    "startall-onboot-delay",
    "wakeonlan",
)


@route("GET", "/nodes/{node}/config", {"property": P(enum=NODE_CONFIG_PROPERTIES)}, perm=("/", "Sys.Audit"))
def get_node_config(call: Call):
    node = call.cluster.reachable_node(call.node)
    return views.node_config(call.cluster, node, call.params.get("property"))


@route(
    "PUT",
    "/nodes/{node}/config",
    {
        "wakeonlan": P(),
        "description": P(),
        "delete": P(),
        "digest": P(),
        "startall-onboot-delay": P("integer", minimum=0, maximum=300),
        "ballooning-target": P("integer", minimum=0, maximum=100),
    },
    perm=("/", "Sys.Modify"),
)
def put_node_config(call: Call):
    node = call.cluster.reachable_node(call.node)
    if "wakeonlan" in call.params:
        check_wakeonlan(call.params["wakeonlan"])
    call.cluster.update_node_config(node, call.params)
    return None


def _vmid_list(text: str | None) -> set[int] | None:
    if not text:
        return None
    try:
        return {int(v) for v in re.split(r"[,;\s]+", text) if v}
    except ValueError:
        raise param_error({"vms": "invalid format - value does not look like a valid VMID list"}) from None


@route(
    "POST",
    "/nodes/{node}/migrateall",
    {
        "target": P(required=True),
        "max-workers": P("integer", minimum=1, maximum=64),
        "maxworkers": P("integer", minimum=1, maximum=64),
        "vms": P(),
        "with-local-disks": P("boolean"),
    },
)
def post_migrateall(call: Call):
    params = call.params
    vms = _vmid_list(params.get("vms"))
    for vmid in vms or ():
        call.require(f"/vms/{vmid}", "VM.Migrate")
    if vms is None:
        call.require("/", "VM.Migrate")
    return call.cluster.power.migrate_all(
        call.node,
        params["target"],
        call.identity.userid,
        max_workers=params.get("max-workers") or params.get("maxworkers"),
        vmids=vms,
        with_local_disks=bool(params.get("with-local-disks")),
    )


ALL_PARAMS = {
    "vms": P(),
    "force": P("boolean"),
    "max-workers": P("integer", minimum=1, maximum=64),
    "timeout": P("integer", minimum=0, maximum=7200),
    "force-stop": P("boolean"),
}


def _all(action: str):
    def handler(call: Call):
        vms = _vmid_list(call.params.get("vms"))
        for vmid in sorted(vms) if vms else ["/"]:
            call.require(f"/vms/{vmid}" if vms else "/", "VM.PowerMgmt")
        power = call.cluster.power
        workers = call.params.get("max-workers")
        if action == "start":
            task = power.start_all(
                call.node, call.identity.userid, vmids=vms, force=bool(call.params.get("force")), max_workers=workers
            )
        else:
            task = power.stop_all(
                call.node,
                call.identity.userid,
                vmids=vms,
                timeout=call.params.get("timeout"),
                force_stop=bool(call.params.get("force-stop", 1)),
                max_workers=workers,
            )
        return task.upid

    return handler


route("POST", "/nodes/{node}/startall", ALL_PARAMS)(_all("start"))
route("POST", "/nodes/{node}/stopall", ALL_PARAMS)(_all("stop"))


@route("GET", "/nodes/{node}/version")
def get_node_version(call: Call):
    call.cluster.reachable_node(call.node)
    return views.node_version()


@route(
    "GET",
    "/nodes/{node}/rrddata",
    {"timeframe": P(required=True, enum=TIMEFRAMES), "cf": CF},
    perm=("/nodes/{node}", "Sys.Audit"),
)
def get_node_rrddata(call: Call):
    node = call.cluster.node(call.node)
    return views.node_rrddata(call.cluster, node, call.params["timeframe"], call.params.get("cf", "AVERAGE"))


@route(
    "GET",
    "/nodes/{node}/storage",
    {"content": P(), "enabled": P("boolean"), "format": P("boolean"), "storage": P(), "target": P()},
)
def get_node_storage(call: Call):
    node = call.cluster.reachable_node(call.node)
    return views.node_storage(call.cluster, node, call.params)


@route("GET", "/nodes/{node}/storage/{storage}/content", {"content": P(), "vmid": P("integer", minimum=100)})
def get_storage_content(call: Call):
    call.require(f"/storage/{call.path['storage']}", "Datastore.Audit")
    volumes = content.storage_content(call.cluster, call.node, call.path["storage"], call.params.get("content"))
    vmid = call.params.get("vmid")
    return [volume for volume in volumes if vmid is None or volume["vmid"] == int(vmid)]


@route("GET", "/nodes/{node}/{kind}", {"full": P("boolean")})
def get_guests(call: Call):
    node = call.cluster.reachable_node(call.node)
    memory = call.cluster.node_load(node, call.cluster.now)[2]
    return [
        views.guest_list_entry(call.cluster, guest, memory.get(guest.vmid), full=bool(call.params.get("full")))
        for guest in call.cluster.guests.values()
        if guest.node == call.node and guest.type == call.kind
    ]


def _guest(call: Call):
    return call.cluster.guest_on(call.node, call.vmid, call.kind)


@route("GET", "/nodes/{node}/{kind}/{vmid}/status/current", perm=("/vms/{vmid}", "VM.Audit"))
def get_guest_status(call: Call):
    return views.guest_status(call.cluster, _guest(call))


@route(
    "GET",
    "/nodes/{node}/{kind}/{vmid}/config",
    {"current": P("boolean"), "snapshot": P()},
    perm=("/vms/{vmid}", "VM.Audit"),
)
def get_guest_config(call: Call):
    return views.guest_config(call.cluster, _guest(call))


GUEST_CONFIG_PARAMS = {
    "tags": P(),
    "description": P(),
    "delete": P(),
    "digest": P(),
    "onboot": P("boolean"),
    "cores": P("integer", minimum=1),
    "skiplock": P("boolean"),
    "revert": P(),
}
QEMU_CONFIG_PARAMS = dict(
    GUEST_CONFIG_PARAMS, name=P(), memory=P(), sockets=P("integer", minimum=1), balloon=P("integer", minimum=0)
)
LXC_CONFIG_PARAMS = dict(GUEST_CONFIG_PARAMS, hostname=P(), memory=P("integer", minimum=16))
CONFIG_PRIVILEGES = ("VM.Config.Options", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Disk")


def _update_config(call: Call) -> None:
    call.require(f"/vms/{call.vmid}", *CONFIG_PRIVILEGES)
    spec = QEMU_CONFIG_PARAMS if call.kind == "qemu" else LXC_CONFIG_PARAMS
    values = check(spec, call.params)
    call.cluster.update_guest_config(_guest(call), values)


@route("PUT", "/nodes/{node}/{kind}/{vmid}/config", None)
def put_guest_config(call: Call):
    _update_config(call)
    return None


@route("POST", "/nodes/{node}/qemu/{vmid}/config", None)
def post_guest_config(call: Call):
    call.path["kind"] = "qemu"
    _update_config(call)
    task = call.cluster.new_task(call.node, "qmconfig", str(call.vmid), call.identity.userid)
    task.finish(call.cluster.now, "OK")
    return task.upid


@route("GET", "/nodes/{node}/{kind}/{vmid}/migrate", {"target": P()}, perm=("/vms/{vmid}", "VM.Migrate"))
def get_migrate(call: Call):
    """PVE checks quorum, then the config, then the lock; ``target`` changes nothing."""
    call.cluster.reachable_node(call.node)
    call.cluster.require_quorum()
    guest = _guest(call)
    if guest.lock:
        raise PveApiError(500, f"{'VM' if guest.type == 'qemu' else 'CT'} is locked ({guest.lock})")
    return migration.precondition(call.cluster, guest)


QEMU_MIGRATE_PARAMS = {
    "target": P(required=True),
    "online": P("boolean"),
    "with-local-disks": P("boolean"),
    "bwlimit": P("integer", minimum=0),
    "force": P("boolean"),
    "migration_network": P(),
    "migration_type": P(enum=("secure", "insecure")),
    "targetstorage": P(),
    "with-conntrack-state": P("boolean"),
}
LXC_MIGRATE_PARAMS = {
    "target": P(required=True),
    "online": P("boolean"),
    "restart": P("boolean"),
    "bwlimit": P("number", minimum=0),
    "target-storage": P(),
    "timeout": P("integer"),
}


@route("POST", "/nodes/{node}/{kind}/{vmid}/migrate", None, perm=("/vms/{vmid}", "VM.Migrate"))
def post_migrate(call: Call):
    values = check(QEMU_MIGRATE_PARAMS if call.kind == "qemu" else LXC_MIGRATE_PARAMS, call.params)
    return call.cluster.migrate(call.kind, call.node, call.vmid, values, call.identity.userid)


@route(
    "GET",
    "/nodes/{node}/{kind}/{vmid}/rrddata",
    {"timeframe": P(required=True, enum=GUEST_TIMEFRAMES), "cf": CF},
    perm=("/vms/{vmid}", "VM.Audit"),
)
def get_guest_rrddata(call: Call):
    # rrd files are keyed by vmid alone and the call is not proxied: any node answers for any guest
    guest = call.cluster.guests.get(call.vmid)
    if guest is None or guest.type != call.kind:
        guest = _guest(call)  # raises PVE's error for the mismatch
    return views.guest_rrddata(call.cluster, guest, call.params["timeframe"], call.params.get("cf", "AVERAGE"))


GUEST_POWER_PARAMS = {
    "skiplock": P("boolean"),
    "timeout": P("integer", minimum=0),
    "forceStop": P("boolean"),
    "keepActive": P("boolean"),
    "force-cpu": P(),
    "machine": P(),
    "migratedfrom": P(),
    "migration_network": P(),
    "migration_type": P(enum=("secure", "insecure")),
    "stateuri": P(),
    "targetstorage": P(),
    "overrule-shutdown": P("boolean"),
    "debug": P("boolean"),
}


@route("GET", "/nodes/{node}/{kind}/{vmid}/status", perm=("/vms/{vmid}", "VM.Audit"))
def get_guest_status_index(call: Call):
    _guest(call)
    return [{"subdir": name} for name in ("current", "start", "stop", "shutdown", "reboot")]


def _power(action: str):
    def handler(call: Call):
        return call.cluster.guest_power(call.kind, call.node, call.vmid, action, call.identity.userid, call.params)

    return handler


for _action in ("start", "stop", "shutdown"):
    route(
        "POST",
        f"/nodes/{{node}}/{{kind}}/{{vmid}}/status/{_action}",
        GUEST_POWER_PARAMS,
        perm=("/vms/{vmid}", "VM.PowerMgmt"),
    )(_power(_action))
route(
    "POST",
    "/nodes/{node}/{kind}/{vmid}/status/reboot",
    {"timeout": P("integer", minimum=0)},
    perm=("/vms/{vmid}", "VM.PowerMgmt"),
)(_power("reboot"))


# ----- tasks ------------------------------------------------------------------------------
TASK_LIST_PARAMS = {
    "errors": P("boolean"),
    "limit": P("integer", minimum=0),
    "since": P("integer"),
    "source": P(enum=("archive", "active", "all")),
    "start": P("integer", minimum=0),
    "statusfilter": P(),
    "typefilter": P(),
    "until": P("integer"),
    "userfilter": P(),
    "vmid": P("integer", minimum=100),
}


@route("GET", "/nodes/{node}/tasks", TASK_LIST_PARAMS)
def get_tasks(call: Call):
    cluster = call.cluster
    cluster.reachable_node(call.node)
    p = call.params
    now = cluster.now
    source = p.get("source", "archive")
    selected = []
    for task in sorted(cluster.tasks, key=lambda t: (t.starttime, t.pid), reverse=True):
        running = task.running(now)
        if task.node != call.node or (source == "archive" and running) or (source == "active" and not running):
            continue
        if p.get("typefilter") and task.type != p["typefilter"]:
            continue
        if p.get("vmid") is not None and task.id != str(p["vmid"]):
            continue
        if p.get("userfilter") and p["userfilter"] not in task.user:
            continue
        if p.get("since") is not None and task.starttime < p["since"]:
            continue
        if p.get("until") is not None and task.starttime > p["until"]:
            continue
        if p.get("errors") and not task.failed(now):
            continue
        if p.get("statusfilter"):
            wanted = {s.strip().lower() for s in p["statusfilter"].split(",")}
            state = (
                "running"
                if running
                else (
                    "ok"
                    if task.exitstatus == "OK"
                    else "warning"
                    if str(task.exitstatus).startswith("WARNINGS")
                    else "error"
                )
            )
            if state not in wanted:
                continue
        selected.append(task)
    start, limit = p.get("start", 0), p.get("limit", 50)
    return [t.list_entry(now) for t in selected[start : start + limit]], len(selected)


@route("GET", "/nodes/{node}/tasks/{upid}")
def get_task_index(call: Call):
    call.cluster.task_on(call.node, call.path["upid"])
    return [{"name": "log"}, {"name": "status"}]


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def get_task_status(call: Call):
    return call.cluster.task_on(call.node, call.path["upid"]).status(call.cluster.now)


@route(
    "GET",
    "/nodes/{node}/tasks/{upid}/log",
    {"start": P("integer", minimum=0), "limit": P("integer", minimum=0), "download": P("boolean")},
)
def get_task_log(call: Call):
    task = call.cluster.task_on(call.node, call.path["upid"])
    lines = task.visible_lines(call.cluster.now) or ["no content"]
    start, limit = call.params.get("start", 0), call.params.get("limit", 50)
    chosen = lines[start : start + limit] if limit else lines[start:]
    return [{"n": start + i + 1, "t": text} for i, text in enumerate(chosen)], len(lines)


@route("DELETE", "/nodes/{node}/tasks/{upid}")
def delete_task(call: Call):
    task = call.cluster.task_on(call.node, call.path["upid"])
    if task.user != call.identity.userid:
        call.require(f"/nodes/{call.node}", "Sys.Modify")
    call.cluster.stop_task(call.node, call.path["upid"])
    return None


# ----- dispatch ---------------------------------------------------------------------------
def _error_response(error: PveApiError) -> web.Response:
    reason = error.message.splitlines()[0] if error.message else "error"
    if error.status == 401:
        return web.Response(status=401, reason=reason, body=b"")
    body: dict = {"data": None, "message": error.message.rstrip("\n") + "\n"}
    if error.errors:
        body["errors"] = error.errors
    response = web.Response(status=error.status, reason=reason, body=json.dumps(body).encode())
    response.headers["Content-Type"] = JSON_TYPE
    return response


def _ok(data, total: int | None = None) -> web.Response:
    payload = {"data": data}
    if total:  # pve-http-server Formatter/Standard.pm prepare_response_data leaves out a 0 total
        payload["total"] = total
    return _json_bytes(json.dumps(payload, separators=(",", ":")).encode())


def _json_bytes(body: bytes) -> web.Response:
    response = web.Response(body=body)
    response.headers["Content-Type"] = JSON_TYPE
    return response


class SimServer:
    """Builds the aiohttp applications around one cluster and its accounts: one API application
    per node (each node's pveproxy is its own endpoint) and the control application."""

    def __init__(
        self,
        cluster: SimCluster,
        auth: Auth,
        *,
        auth_failure_delay: float = 0.0,
        lost_answer_hold: float = LOST_ANSWER_SECONDS,
    ):
        self.cluster = cluster
        self.auth = auth
        self.auth_failure_delay = auth_failure_delay  # real PVE waits 3 s before every 401
        self.lost_answer_hold = lost_answer_hold
        self._resources_cache: dict[str | None, tuple[tuple, bytes]] = {}

    def app(self, node: str) -> web.Application:
        """The API as ``node`` serves it: ``local`` is that node, and while it is down every
        request on a connection opened before has that connection dropped."""
        app = web.Application(client_max_size=1024**2)
        app.router.add_route("*", "/api2/json/{tail:.*}", functools.partial(self.handle_api, local=node))
        app.on_response_prepare.append(self._headers)
        return app

    def control_app(self) -> web.Application:
        """The /sim control API, on a port of its own that outlives every node."""
        app = web.Application(client_max_size=1024**2)
        app.router.add_get("/sim/state", self.sim_state)
        app.router.add_post("/sim/step", self.sim_step)
        app.router.add_post("/sim/faults", self.sim_faults)
        app.router.add_post("/sim/speed", self.sim_speed)
        app.router.add_post("/sim/nodes/{node}/crash", self.sim_crash)
        app.on_response_prepare.append(self._headers)
        return app

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER
        response.headers["Cache-Control"] = "max-age=0"
        response.headers["Pragma"] = "no-cache"

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = {key: value for key, value in request.query.items()}
        if request.method in ("POST", "PUT", "DELETE") and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise param_error({"body": "invalid JSON"}) from None
                if isinstance(body, dict):
                    params.update({k: (str(int(v)) if isinstance(v, bool) else str(v)) for k, v in body.items()})
            else:
                form = await request.post()
                params.update({key: str(value) for key, value in form.items()})
        return params

    async def handle_api(self, request: web.Request, *, local: str) -> web.StreamResponse:
        cluster = self.cluster
        faults = cluster.faults
        with cluster.lock:
            cluster.sync()
            outage = cluster.now < faults.outage_until or not cluster.nodes[local].reachable
            drop = outage or (faults.drop_rate and cluster.fault_rng.random() < faults.drop_rate)
            error = faults.error_rate and cluster.fault_rng.random() < faults.error_rate
            latency = faults.latency_ms
            lost = (
                request.method == "POST"
                and request.path.endswith("/migrate")
                and (
                    faults.take("lost_answers")
                    or bool(faults.lost_answer_rate and cluster.fault_rng.random() < faults.lost_answer_rate)
                )
            )
            if drop or error:
                cluster.injected["request dropped" if drop else "request answered 500"] += 1
        if latency:
            await asyncio.sleep(latency / 1000)
        if drop:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("simulated dropped connection")
        try:
            if error:
                raise PveApiError(500, "simulated fault: internal server error")
            params = await self._params(request)
            response = self._dispatch(request, params, local)
        except PveApiError as exc:
            if exc.status == 401 and self.auth_failure_delay:
                await asyncio.sleep(self.auth_failure_delay)
            return _error_response(exc)
        except Exception as exc:  # a simulator bug: answer like PVE's handler errors, log the detail
            logger.exception("simulator error on %s %s", request.method, request.path)
            return _error_response(PveApiError(500, f"simulator error: {type(exc).__name__}: {exc}"))
        if lost:
            with cluster.lock:
                cluster.injected["migrate answer lost"] += 1
            await self._withhold(request)
            raise ConnectionResetError("simulated lost answer")
        return response

    async def _withhold(self, request: web.Request) -> None:
        """The request was carried out but its answer never leaves: hold the connection until the
        client gives up on it (its timeout), or for ``lost_answer_hold`` seconds, then drop it (the
        client sees the connection closed without an answer, as when a proxy or node dies)."""
        deadline = asyncio.get_running_loop().time() + self.lost_answer_hold
        while request.transport is not None and not request.transport.is_closing():
            if asyncio.get_running_loop().time() > deadline:
                request.transport.abort()
                return
            await asyncio.sleep(0.05)

    def _dispatch(self, request: web.Request, params: dict[str, str], local: str) -> web.Response:
        method = request.method
        rel = "/" + request.match_info["tail"].strip("/")
        matched = None
        for candidate in ROUTES:
            if candidate.method != method:
                continue
            match = candidate.pattern.match(rel)
            if match:
                matched = (candidate, match.groupdict())
                break
        cluster = self.cluster
        with cluster.lock:
            cluster.sync()
            identity = None
            if matched is None or not matched[0].world:
                identity = self.auth.authenticate(request.headers, request.cookies, method)
            if matched is None:
                raise PveApiError(501, f"Method '{method} {rel}' not implemented")
            handler_route, path = matched
            self._check_path(path)
            values = params if handler_route.params is None else check(handler_route.params, params)
            call = Call(cluster, self.auth, identity, path, values, self._resources, local)
            handler_route.check_permission(call)
            result = handler_route.handler(call)
        if isinstance(result, web.Response):
            return result
        if isinstance(result, tuple):
            return _ok(*result)
        return _ok(result)

    def _resources(self, kind: str | None) -> web.Response:
        """The hot path: /cluster/resources encoded once per simulated second and state change."""
        key = (int(self.cluster.now), self.cluster.revision)
        cached = self._resources_cache.get(kind)
        if cached is None or cached[0] != key:
            data = [] if kind == "sdn" else views.cluster_resources(self.cluster, kind)
            cached = (key, json.dumps({"data": data}, separators=(",", ":")).encode())
            self._resources_cache[kind] = cached
        return _json_bytes(cached[1])

    @staticmethod
    def _check_path(path: dict[str, str]) -> None:
        errors = {}
        if "vmid" in path and not path["vmid"].isdigit():
            errors["vmid"] = f"type check ('integer') failed - got '{path['vmid']}'"
        elif "vmid" in path and int(path["vmid"]) < 100:
            errors["vmid"] = "value must have a minimum value of 100"
        if "node" in path and not NODE_RE.match(path["node"]):
            errors["node"] = "value does not match the regex pattern"
        if errors:
            raise param_error(errors)

    # ----- control API --------------------------------------------------------------------
    def state(self) -> dict:
        cluster = self.cluster
        with cluster.lock:
            cluster.sync()
            return {
                "scenario": cluster.scenario.name,
                "seed": cluster.seed,
                "time": cluster.now,
                "manual_clock": cluster.clock.manual,
                "speed": cluster.clock.speed,
                "quorate": cluster.quorate,
                "faults": cluster.faults.as_dict(cluster.now),
                "nodes": {name: node.power for name, node in cluster.nodes.items()},
                "migrations": sorted(cluster.migrations),
            }

    async def _control(self, request: web.Request, action: Callable[[dict], None]) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            if not isinstance(body, dict):
                raise ScenarioError("request body must be a JSON object")
            with self.cluster.lock:
                action(body)
        except (ValueError, ScenarioError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state())

    async def sim_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def sim_step(self, request: web.Request) -> web.Response:
        return await self._control(request, lambda body: self.cluster.step(float(body["seconds"])))

    async def sim_speed(self, request: web.Request) -> web.Response:
        return await self._control(request, lambda body: self.cluster.set_speed(float(body["speed"])))

    async def sim_faults(self, request: web.Request) -> web.Response:
        def apply(body: dict) -> None:
            self.cluster.sync()
            self.cluster.faults.update(body, self.cluster.now)

        return await self._control(request, apply)

    async def sim_crash(self, request: web.Request) -> web.Response:
        name = request.match_info["node"]
        if name not in self.cluster.nodes:
            return web.json_response({"error": f"no such node {name!r}"}, status=404)

        def crash(body: dict) -> None:
            self.cluster.sync()
            self.cluster.crash_node(name)

        return await self._control(request, crash)
