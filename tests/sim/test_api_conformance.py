"""The simulated cluster answers like a real Proxmox VE API: same endpoints, fields, units and errors.

Every endpoint pvetop or ProxLB uses is called through proxmoxer over HTTPS and its answer is
checked against PVE's published return schema (``tests/pve_schema.py``); status codes, error
texts, headers and units are checked with raw requests. Read-only checks share one simulator per
module; anything that changes the cluster gets a fresh one, so tests stay independent under
xdist.
"""

from __future__ import annotations

import json
import re
from itertools import pairwise

import pytest
import requests
from proxmoxer.core import ResourceException

from pvetop.sim.runner import start_sim
from pvetop.sim.scenarios import list_scenarios
from pvetop.sim.views import RRD_EXPIRE_SECONDS
from tests.pve_schema import check_response
from tests.sim.clients import call, raw, token_api

SCENARIO = "homelab"
UPID_PATTERN = re.compile(
    r"UPID:(?P<node>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<pid>[0-9A-F]{8}):(?P<pstart>[0-9A-F]{8}):"
    r"(?P<starttime>[0-9A-F]{8}):(?P<type>[a-z]+):(?P<id>[^:]*):(?P<user>[^:]+@[^:]+):\Z"
)
GUEST_METRICS = {
    "cpu",
    "maxcpu",
    "mem",
    "maxmem",
    "disk",
    "maxdisk",
    "uptime",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
}
MiB = 2**20


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def sim():
    """One simulator for the read-only checks of this module; nothing here changes it."""
    with start_sim(scenario=SCENARIO, seed=1, manual_clock=True) as running:
        yield running


@pytest.fixture(scope="module")
def api(sim):
    return token_api(sim.info)


@pytest.fixture(scope="module")
def resources(api):
    return call(api, "GET", "/cluster/resources")


@pytest.fixture
def fresh_sim():
    """A simulator of its own for a test that migrates, shuts down or reconfigures."""
    with start_sim(scenario=SCENARIO, seed=1, manual_clock=True) as running:
        yield running


def online_nodes(resources: list[dict]) -> list[str]:
    return sorted(r["node"] for r in resources if r["type"] == "node" and r["status"] == "online")


def local_node(api) -> str:
    """The node answering the API (``local: 1`` in /cluster/status)."""
    return next(e["name"] for e in api.cluster.status.get() if e["type"] == "node" and e.get("local"))


def running_guest(resources: list[dict], kind: str) -> dict:
    candidates = [
        r
        for r in resources
        if r["type"] == kind
        and r["status"] == "running"
        and not r.get("lock")
        and not r.get("hastate")
        and not r.get("template")
    ]
    assert candidates, f"scenario {SCENARIO} has no running unlocked non-HA {kind} guest"
    return min(candidates, key=lambda r: r["vmid"])


def other_online_node(resources: list[dict], node: str) -> str:
    return next(n for n in online_nodes(resources) if n != node)


def api_error(call_result) -> ResourceException:
    """Run a proxmoxer call expected to fail and return its exception."""
    with pytest.raises(ResourceException) as caught:
        call_result()
    return caught.value


def any_other_node(resources: list[dict], node: str) -> str:
    """Another cluster member, online or not."""
    return next(r["node"] for r in resources if r["type"] == "node" and r["node"] != node)


def step_until(sim, condition, max_seconds: int = 4 * 3600, step: int = 5) -> None:
    """Move simulated time in ``step`` increments until ``condition()`` holds."""
    for _ in range(0, max_seconds, step):
        if condition():
            return
        sim.cluster.step(step)
    pytest.fail(f"condition not met within {max_seconds} simulated seconds")


def step_until_task_stops(sim, api, node: str, upid: str) -> dict:
    """Move simulated time until the task has stopped; its final status."""

    def status() -> dict:
        return call(api, "GET", f"/nodes/{node}/tasks/{upid}/status")

    step_until(sim, lambda: status()["status"] == "stopped", step=10)
    return status()


def resource_entry(api, vmid: int) -> dict:
    return next(r for r in call(api, "GET", "/cluster/resources", type="vm") if r["vmid"] == vmid)


def ha_guest_and_target(api) -> tuple[dict, str]:
    """A running HA-managed VM and an online node its HA rules let it move to."""
    resources = call(api, "GET", "/cluster/resources")
    guest = next(r for r in resources if r["type"] == "qemu" and r.get("hastate") == "started")
    sid = f"vm:{guest['vmid']}"
    rule_nodes = {
        node.split(":")[0]
        for rule in call(api, "GET", "/cluster/ha/rules")
        if sid in rule["resources"].split(",")
        for node in rule.get("nodes", "").split(",")
        if node
    }
    candidates = [n for n in online_nodes(resources) if n != guest["node"] and (not rule_nodes or n in rule_nodes)]
    return guest, candidates[0]


def running_vm_with_local_disk(api) -> tuple[dict, str]:
    """A running non-HA VM whose precondition lists local disks, and a target for it."""
    resources = call(api, "GET", "/cluster/resources")
    for guest in sorted(
        (r for r in resources if r["type"] == "qemu" and r["status"] == "running" and not r.get("hastate")),
        key=lambda r: r["vmid"],
    ):
        target = other_online_node(resources, guest["node"])
        precondition = call(api, "GET", f"/nodes/{guest['node']}/qemu/{guest['vmid']}/migrate", target=target)
        if precondition["local_disks"]:
            return guest, target
    pytest.fail(f"scenario {SCENARIO} has no running VM with a local disk")


def assert_migration_aborted(sim, api, guest: dict, upid: str) -> None:
    final = step_until_task_stops(sim, api, guest["node"], upid)
    assert final["exitstatus"] == "migration aborted"
    assert call(api, "GET", f"/nodes/{guest['node']}/tasks/{upid}/log")[-1]["t"] == "TASK ERROR: migration aborted"
    after = resource_entry(api, guest["vmid"])
    assert (after["node"], after["status"], after.get("lock")) == (guest["node"], "running", None)


# --------------------------------------------------------------------------- envelope, basics


def test_every_answer_is_wrapped_in_a_data_envelope_from_pve_api_daemon(sim):
    response = raw(sim.info, "GET", "/version")
    assert response.status_code == 200
    assert response.headers["Server"] == "pve-api-daemon/3.0"
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"data"}


def test_version(api):
    version = call(api, "GET", "/version")
    assert version["release"].startswith("9.")


def test_access_ticket_returns_ticket_and_csrf_token(sim, api):
    info = sim.info
    ticket = call(api, "POST", "/access/ticket", username=info["user"], password=info["password"])
    assert ticket["username"] == info["user"]
    assert ticket["ticket"].startswith(f"PVE:{info['user']}:")
    assert re.fullmatch(r"[0-9A-F]{8}:\S+", ticket["CSRFPreventionToken"])


def test_access_permissions_grant_what_proxlb_and_pvetop_need(api):
    permissions = call(api, "GET", "/access/permissions")
    granted = {privilege for privileges in permissions.values() for privilege in privileges}
    assert {"Sys.Audit", "VM.Audit", "VM.Migrate", "Datastore.Audit", "Sys.PowerMgmt"} <= granted


# --------------------------------------------------------------------------- cluster-wide reads


@pytest.mark.parametrize(
    ("type_filter", "allowed_types"),
    [
        (None, {"node", "qemu", "lxc", "storage", "pool", "sdn", "network"}),
        ("vm", {"qemu", "lxc"}),
        ("node", {"node"}),
        ("storage", {"storage"}),
        ("sdn", {"sdn"}),
    ],
)
def test_cluster_resources_type_filter(api, type_filter, allowed_types):
    params = {"type": type_filter} if type_filter else {}
    entries = call(api, "GET", "/cluster/resources", **params)
    assert {entry["type"] for entry in entries} <= allowed_types
    if type_filter != "sdn":
        assert entries, f"/cluster/resources type={type_filter} is empty"
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids)), "resource ids must be unique"


def test_cluster_resources_ids_and_units(resources):
    nodes = {r["node"]: r for r in resources if r["type"] == "node"}
    assert len(nodes) >= 2
    for entry in resources:
        kind = entry["type"]
        if kind == "node":
            assert entry["id"] == f"node/{entry['node']}"
        elif kind in ("qemu", "lxc"):
            assert entry["id"] == f"{kind}/{entry['vmid']}"
            assert entry["node"] in nodes
        elif kind == "storage":
            assert entry["id"] == f"storage/{entry['node']}/{entry['storage']}"
            if "maxdisk" in entry:
                assert 0 <= entry["disk"] <= entry["maxdisk"], entry
        if "maxcpu" in entry and entry.get("status") in ("online", "running"):
            # cpu is a fraction of the entity's own maxcpu, memory and disks are bytes
            assert 0 <= entry["cpu"] <= 1, entry
            assert entry["maxcpu"] >= 1 and entry["maxmem"] >= 64 * MiB, entry
            assert 0 < entry["mem"] <= entry["maxmem"], entry
            assert entry["uptime"] > 0, entry


def test_guest_cpu_is_a_fraction_of_the_guests_own_cpus(api, resources):
    for kind in ("qemu", "lxc"):
        guest = running_guest(resources, kind)
        current = call(api, "GET", f"/nodes/{guest['node']}/{kind}/{guest['vmid']}/status/current")
        assert current["cpus"] == guest["maxcpu"]
        assert 0 <= current["cpu"] <= 1
        assert current["maxmem"] == guest["maxmem"]


def test_cluster_status_lists_the_cluster_and_every_node(api, resources):
    status = call(api, "GET", "/cluster/status")
    clusters = [e for e in status if e["type"] == "cluster"]
    members = [e for e in status if e["type"] == "node"]
    votes = {e["node"]: int(e["quorum_votes"]) for e in call(api, "GET", "/cluster/config/nodes")}
    assert len(clusters) == 1
    assert clusters[0]["nodes"] == len(members)
    assert clusters[0]["quorate"] in (0, 1)
    assert sum(e["local"] for e in members) == 1
    assert {e["name"] for e in members} == {r["node"] for r in resources if r["type"] == "node"}
    for member in members:
        assert member["id"] == f"node/{member['name']}"
        assert member["online"] == (member["name"] in online_nodes(resources))
    votes_online = sum(votes[e["name"]] for e in members if e["online"])
    assert clusters[0]["quorate"] == int(votes_online * 2 > sum(votes.values()))


def test_cluster_config_nodes_gives_every_member_its_votes(api, resources):
    config_nodes = call(api, "GET", "/cluster/config/nodes")
    assert {entry["node"] for entry in config_nodes} == {r["node"] for r in resources if r["type"] == "node"}
    assert all(int(entry["quorum_votes"]) >= 1 for entry in config_nodes)


def test_cluster_options_carry_the_crs_setting_as_an_object(api):
    options = call(api, "GET", "/cluster/options")
    assert options["crs"]["ha"] in ("basic", "static", "dynamic")


def test_cluster_tasks(api):
    for task in call(api, "GET", "/cluster/tasks"):
        assert UPID_PATTERN.match(task["upid"]), task["upid"]


def test_ha_resources_rules_and_status(api, resources):
    ha_resources = call(api, "GET", "/cluster/ha/resources")
    for entry in ha_resources:
        assert re.fullmatch(r"(vm|ct):\d+", entry["sid"]), entry
    sids_managed = {
        f"{'vm' if r['type'] == 'qemu' else 'ct'}:{r['vmid']}"
        for r in resources
        if r["type"] in ("qemu", "lxc") and r.get("hastate")
    }
    assert sids_managed == {entry["sid"] for entry in ha_resources}
    call(api, "GET", "/cluster/ha/rules")
    status = call(api, "GET", "/cluster/ha/status/current")
    assert any(entry["type"] == "quorum" for entry in status)


def test_pools_list_and_members_match_cluster_resources(api, resources):
    pools = call(api, "GET", "/pools")
    by_pool: dict[str, set[str]] = {}
    for entry in resources:
        if entry.get("pool") and entry["type"] in ("qemu", "lxc"):
            by_pool.setdefault(entry["pool"], set()).add(entry["id"])
    assert {pool["poolid"] for pool in pools} >= set(by_pool)
    for pool in pools:
        detail = call(api, "GET", f"/pools/{pool['poolid']}")
        guest_ids = {m["id"] for m in detail["members"] if m["type"] in ("qemu", "lxc")}
        assert guest_ids == by_pool.get(pool["poolid"], set())
        for member in detail["members"]:
            if member["type"] in ("qemu", "lxc"):
                assert member.get("name"), f"ProxLB keys pool members by name: {member}"


def test_nodes_index_matches_cluster_resources(api, resources):
    nodes = call(api, "GET", "/nodes")
    by_name = {entry["node"]: entry for entry in nodes}
    assert set(by_name) == {r["node"] for r in resources if r["type"] == "node"}
    for name in online_nodes(resources):
        entry = by_name[name]
        assert entry["status"] == "online"
        assert {"cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "uptime"} <= entry.keys()
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", entry["ssl_fingerprint"])


# --------------------------------------------------------------------------- per-node reads


def test_node_status_version_config_and_storage(api, resources):
    for node in online_nodes(resources):
        status = call(api, "GET", f"/nodes/{node}/status")
        assert status["memory"]["used"] <= status["memory"]["total"]
        assert len(status["loadavg"]) == 3
        assert status["cpuinfo"]["cpus"] == next(
            r["maxcpu"] for r in resources if r["type"] == "node" and r["node"] == node
        )
        call(api, "GET", f"/nodes/{node}/version")
        call(api, "GET", f"/nodes/{node}/config")
        storages = call(api, "GET", f"/nodes/{node}/storage")
        assert {s["storage"] for s in storages} == {
            r["storage"] for r in resources if r["type"] == "storage" and r["node"] == node
        }


@pytest.mark.parametrize("path_suffix", ["rrddata", "qemu/{vmid}/rrddata", "lxc/{vmid}/rrddata"])
@pytest.mark.parametrize("cf", ["AVERAGE", "MAX"])
def test_rrddata_hour_has_one_row_per_minute(api, resources, path_suffix, cf):
    kind = path_suffix.split("/")[0]
    if kind == "rrddata":
        node, vmid = online_nodes(resources)[0], None
    else:
        guest = running_guest(resources, kind)
        node, vmid = guest["node"], guest["vmid"]
    rows = call(api, "GET", f"/nodes/{node}/" + path_suffix.format(vmid=vmid), timeframe="hour", cf=cf)
    assert 60 <= len(rows) <= 70, len(rows)
    times = [row["time"] for row in rows]
    assert times == sorted(times) and all(b - a == 60 for a, b in pairwise(times))
    assert all(row["time"] % 60 == 0 for row in rows)
    assert any(row.get("cpu") is not None for row in rows)


@pytest.mark.parametrize("kind", ["qemu", "lxc"])
def test_guest_index_matches_cluster_resources(api, resources, kind):
    for node in online_nodes(resources):
        listed = call(api, "GET", f"/nodes/{node}/{kind}")
        expected = {r["vmid"]: r for r in resources if r["type"] == kind and r["node"] == node}
        assert {entry["vmid"] for entry in listed} == set(expected)
        for entry in listed:
            assert entry["status"] == expected[entry["vmid"]]["status"]
            assert entry["name"] == expected[entry["vmid"]]["name"]
            assert entry["maxmem"] == expected[entry["vmid"]]["maxmem"]


@pytest.mark.parametrize("kind", ["qemu", "lxc"])
def test_guest_status_config_and_migrate_precondition(api, resources, kind):
    guest = running_guest(resources, kind)
    base = f"/nodes/{guest['node']}/{kind}/{guest['vmid']}"
    current = call(api, "GET", f"{base}/status/current")
    assert current["vmid"] == guest["vmid"] and current["status"] == "running"
    assert "managed" in current["ha"]
    config = call(api, "GET", f"{base}/config")
    assert config.get("name" if kind == "qemu" else "hostname") == guest["name"]
    precondition = call(api, "GET", f"{base}/migrate")
    assert precondition["running"] == 1
    allowed_key = "allowed_nodes" if kind == "qemu" else "allowed-nodes"
    not_allowed_key = "not_allowed_nodes" if kind == "qemu" else "not-allowed-nodes"
    judged = set(precondition[allowed_key]) | set(precondition.get(not_allowed_key, {}))
    all_others = {r["node"] for r in resources if r["type"] == "node"} - {guest["node"]}
    assert set(online_nodes(resources)) - {guest["node"]} <= judged <= all_others


def test_node_task_list_accepts_proxlbs_filters(api, resources):
    node = online_nodes(resources)[0]
    guest = running_guest(resources, "qemu")
    call(
        api,
        "GET",
        f"/nodes/{node}/tasks",
        typefilter="qmigrate",
        vmid=guest["vmid"],
        since=0,
        source="all",
        start=0,
        limit=10,
    )
    call(api, "GET", f"/nodes/{node}/tasks", errors=1, userfilter="root@pam", until=2**31)


# --------------------------------------------------------------------------- errors


def test_unknown_path_or_method_is_501(sim):
    for method, path in [("GET", "/nonexistent"), ("DELETE", "/version"), ("GET", "/nodes/x/y/z")]:
        response = raw(sim.info, method, path)
        assert response.status_code == 501, (method, path)
        assert "not implemented" in response.reason, response.reason


def test_missing_or_invalid_parameter_is_400_with_an_errors_map(sim, resources):
    node = online_nodes(resources)[0]
    response = raw(sim.info, "GET", f"/nodes/{node}/rrddata")
    assert response.status_code == 400
    assert response.reason == "Parameter verification failed."
    body = response.json()
    assert body["data"] is None
    assert body["message"] == "Parameter verification failed.\n"
    assert body["errors"] == {"timeframe": "property is missing and it is not optional"}
    for params, errors in [
        (
            {"timeframe": "fortnight"},
            {
                "timeframe": "value 'fortnight' does not have a value in the enumeration "
                "'hour, day, week, month, year, decade'"
            },
        ),
        (
            {"timeframe": "hour", "colour": "red"},
            {"colour": "property is not defined in schema and the schema does not allow additional properties"},
        ),
    ]:
        response = raw(sim.info, "GET", f"/nodes/{node}/rrddata", params=params)
        assert (response.status_code, response.json()["errors"]) == (400, errors)
    guest = running_guest(resources, "qemu")
    response = raw(
        sim.info,
        "POST",
        f"/nodes/{guest['node']}/qemu/{guest['vmid']}/migrate",
        data={"target": other_online_node(resources, guest["node"]), "online": "maybe"},
    )
    assert (response.status_code, response.json()["errors"]) == (
        400,
        {"online": "type check ('boolean') failed - got 'maybe'"},
    )


def test_migrating_to_the_local_node_is_400(api, resources):
    guest = running_guest(resources, "qemu")
    error = api_error(lambda: api.nodes(guest["node"]).qemu(guest["vmid"]).migrate.post(target=guest["node"], online=1))
    assert error.status_code == 400
    assert error.errors == {"target": "target is local node."}


def test_unknown_guest_is_500_with_pves_text(api, resources):
    node = online_nodes(resources)[0]
    error = api_error(lambda: api.nodes(node).qemu(999999).status.current.get())
    assert error.status_code == 500
    assert error.content == f"Configuration file 'nodes/{node}/qemu-server/999999.conf' does not exist"


# --------------------------------------------------------------------------- writes (fresh sim)


def test_node_config_put_round_trips_wakeonlan(fresh_sim):
    api = token_api(fresh_sim.info)
    node = local_node(api)
    mac = "AA:BB:CC:00:11:22"
    assert call(api, "PUT", f"/nodes/{node}/config", wakeonlan=f"mac={mac},broadcast-address=10.0.0.255") is None
    config = call(api, "GET", f"/nodes/{node}/config")
    assert config["wakeonlan"] == f"mac={mac},broadcast-address=10.0.0.255"
    assert call(api, "GET", f"/nodes/{node}/config", property="wakeonlan") == {"wakeonlan": config["wakeonlan"]}


@pytest.mark.parametrize("kind", ["qemu", "lxc"])
def test_guest_config_put_changes_tags_everywhere(fresh_sim, kind):
    api = token_api(fresh_sim.info)
    guest = running_guest(call(api, "GET", "/cluster/resources"), kind)
    base = f"/nodes/{guest['node']}/{kind}/{guest['vmid']}"
    # PVE's default tag-style ordering (alphabetical) sorts and de-duplicates tags on write
    assert call(api, "PUT", f"{base}/config", tags="pvetop;conformance;pvetop") is None
    assert call(api, "GET", f"{base}/config")["tags"] == "conformance;pvetop"
    assert resource_entry(api, guest["vmid"])["tags"] == "conformance;pvetop"


@pytest.mark.parametrize(("kind", "task_type"), [("qemu", "qmigrate"), ("lxc", "vzmigrate")])
def test_migration_locks_flips_node_and_finishes_ok(fresh_sim, kind, task_type):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    guest = running_guest(resources, kind)
    source, target = guest["node"], other_online_node(resources, guest["node"])
    base = f"/nodes/{source}/{kind}/{guest['vmid']}"
    if kind == "qemu":
        precondition = call(api, "GET", f"{base}/migrate", target=target)
        options = {"online": 1, "with-local-disks": 1 if precondition["local_disks"] else 0}
    else:
        options = {"restart": 1}
    upid = call(api, "POST", f"{base}/migrate", target=target, **options)
    match = UPID_PATTERN.match(upid)
    assert match, upid
    # a task started with an API token is owned by the token: user@realm!tokenid
    token_owner = f"{fresh_sim.info['user']}!{fresh_sim.info['token_name']}"
    assert (match["node"], match["type"], match["id"], match["user"]) == (
        source,
        task_type,
        str(guest["vmid"]),
        token_owner,
    )

    during = resource_entry(api, guest["vmid"])
    if kind == "lxc":  # restart mode: shut down first, locked after (pve-container LXC/Migrate.pm)
        assert during.get("lock") is None
        sim.cluster.step(5)
        during = resource_entry(api, guest["vmid"])
    assert (during["node"], during.get("lock")) == (source, "migrate")
    status = call(api, "GET", f"/nodes/{source}/tasks/{upid}/status")
    assert status["status"] == "running" and "exitstatus" not in status
    assert (status["upid"], status["node"], status["type"], status["id"]) == (upid, source, task_type, match["id"])
    assert (status["pid"], status["pstart"], status["starttime"]) == (
        int(match["pid"], 16),
        int(match["pstart"], 16),
        int(match["starttime"], 16),
    )
    active = call(api, "GET", f"/nodes/{source}/tasks", source="active")
    assert upid in {task["upid"] for task in active}

    # second by second: the guest keeps lock=migrate on its source, flips to the target, and only
    # then loses the lock — never unlocked on the source nor shown on the target without having moved
    seen = [(source, "migrate")]
    for _ in range(3600):
        if call(api, "GET", f"/nodes/{source}/tasks/{upid}/status")["status"] == "stopped":
            break
        sim.cluster.step(1)
        entry = resource_entry(api, guest["vmid"])
        if (entry["node"], entry.get("lock")) != seen[-1]:
            seen.append((entry["node"], entry.get("lock")))
    else:
        pytest.fail(f"{upid} still running after an hour of simulated time")
    assert seen in (
        [(source, "migrate"), (target, "migrate"), (target, None)],
        [(source, "migrate"), (target, None)],
    ), seen
    final = call(api, "GET", f"/nodes/{source}/tasks/{upid}/status")
    assert final["exitstatus"] == "OK"
    after = resource_entry(api, guest["vmid"])
    assert after["node"] == target and "lock" not in after and after["status"] == "running"

    log = call(api, "GET", f"/nodes/{source}/tasks/{upid}/log")
    assert [line["n"] for line in log] == list(range(1, len(log) + 1))
    assert log[-1]["t"] == "TASK OK"
    finished = call(api, "GET", f"/nodes/{source}/tasks", typefilter=task_type, vmid=guest["vmid"])
    entry = next(task for task in finished if task["upid"] == upid)
    assert entry["status"] == "OK" and entry["endtime"] >= entry["starttime"]
    assert upid in {task["upid"] for task in call(api, "GET", "/cluster/tasks")}


def test_ha_guest_migrates_through_hamigrate_then_qmigrate(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    guest, target = ha_guest_and_target(api)
    source, vmid = guest["node"], guest["vmid"]
    upid = call(api, "POST", f"/nodes/{source}/qemu/{vmid}/migrate", target=target, online=1)
    match = UPID_PATTERN.match(upid)
    assert match and (match["type"], match["id"], match["node"]) == ("hamigrate", str(vmid), source)
    assert step_until_task_stops(sim, api, source, upid)["exitstatus"] == "OK"

    def qmigrate_tasks():
        return call(
            api, "GET", f"/nodes/{source}/tasks", typefilter="qmigrate", vmid=vmid, source="all", start=0, limit=10
        )

    step_until(sim, lambda: bool(qmigrate_tasks()))
    qmigrate = qmigrate_tasks()[0]
    assert qmigrate["id"] == str(vmid) and qmigrate["starttime"] >= int(match["starttime"], 16)
    assert step_until_task_stops(sim, api, source, qmigrate["upid"])["exitstatus"] == "OK"
    # the service stays 'migrate' until the CRM's next round takes the LRM's result (Manager.pm)
    step_until(sim, lambda: resource_entry(api, vmid).get("hastate") == "started", max_seconds=30)
    after = resource_entry(api, vmid)
    assert (after["node"], after.get("hastate"), after.get("lock")) == (target, "started", None)
    service = next(e for e in call(api, "GET", "/cluster/ha/status/current") if e.get("sid") == f"vm:{vmid}")
    assert service["node"] == target


def test_ha_resource_migrate_endpoint_queues_the_move(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    guest, target = ha_guest_and_target(api)
    sid = f"vm:{guest['vmid']}"
    answer = call(api, "POST", f"/cluster/ha/resources/{sid}/migrate", node=target)
    assert (answer["sid"], answer["requested-node"]) == (sid, target)

    def moved() -> bool:
        entry = resource_entry(api, guest["vmid"])
        return entry["node"] == target and "lock" not in entry

    step_until(sim, moved)


def test_live_migration_with_local_disks_needs_with_local_disks(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    guest, target = running_vm_with_local_disk(api)
    upid = call(api, "POST", f"/nodes/{guest['node']}/qemu/{guest['vmid']}/migrate", target=target, online=1)
    assert_migration_aborted(sim, api, guest, upid)


def test_node_task_list_pages_newest_first_with_total_and_error_filter(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    vm, target = running_vm_with_local_disk(api)
    source = vm["node"]
    container = next(
        r
        for r in call(api, "GET", "/cluster/resources", type="vm")
        if r["type"] == "lxc" and r["node"] == source and r["status"] == "running" and not r.get("hastate")
    )
    failing = call(api, "POST", f"/nodes/{source}/qemu/{vm['vmid']}/migrate", target=target, online=1)
    sim.cluster.step(30)
    succeeding = call(api, "POST", f"/nodes/{source}/lxc/{container['vmid']}/migrate", target=target, restart=1)
    step_until_task_stops(sim, api, source, failing)
    step_until_task_stops(sim, api, source, succeeding)

    def page(**params) -> dict:
        response = raw(sim.info, "GET", f"/nodes/{source}/tasks", params=params)
        assert response.status_code == 200
        body = response.json()
        assert check_response("GET", f"/nodes/{source}/tasks", body["data"]) == []
        return body

    everything = page()
    assert [t["upid"] for t in everything["data"]] == [succeeding, failing]  # newest first
    assert everything["total"] == 2
    first, second = page(limit=1), page(start=1, limit=1)
    assert ([t["upid"] for t in first["data"]], first["total"]) == ([succeeding], 2)
    assert ([t["upid"] for t in second["data"]], second["total"]) == ([failing], 2)
    failed_only = page(errors=1)
    assert ([t["upid"] for t in failed_only["data"]], failed_only["total"]) == ([failing], 1)
    assert failed_only["data"][0]["status"] == "migration aborted"


def test_node_reboot_returns_no_task_and_the_node_comes_back(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    node = other_online_node(resources, local_node(api))
    assert call(api, "POST", f"/nodes/{node}/status", command="reboot") is None

    def node_status() -> str:
        return next(e["status"] for e in call(api, "GET", "/nodes") if e["node"] == node)

    step_until(sim, lambda: node_status() == "offline", max_seconds=1800)
    step_until(sim, lambda: node_status() == "online", max_seconds=1800)
    assert call(api, "GET", f"/nodes/{node}/status")["uptime"] < 1800


def test_injected_migration_failure_aborts_and_keeps_the_guest(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    response = requests.post(
        f"{sim.info['control_url']}/faults", json={"migration_failure_rate": 1}, verify=sim.info["ca_file"], timeout=15
    )
    assert response.status_code == 200
    resources = call(api, "GET", "/cluster/resources")
    guest = running_guest(resources, "lxc")
    upid = call(
        api,
        "POST",
        f"/nodes/{guest['node']}/lxc/{guest['vmid']}/migrate",
        target=other_online_node(resources, guest["node"]),
        restart=1,
    )
    final = step_until_task_stops(sim, api, guest["node"], upid)
    assert final["exitstatus"] != "OK"
    after = resource_entry(api, guest["vmid"])
    assert (after["node"], after.get("lock")) == (guest["node"], None)


def test_running_vm_without_online_flag_is_500(fresh_sim):
    api = token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    guest = running_guest(resources, "qemu")
    error = api_error(
        lambda: (
            api.nodes(guest["node"])
            .qemu(guest["vmid"])
            .migrate.post(target=other_online_node(resources, guest["node"]))
        )
    )
    assert error.status_code == 500
    assert error.content == "can't migrate running VM without --online"


def test_running_container_without_restart_flag_is_500(fresh_sim):
    api = token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    guest = running_guest(resources, "lxc")
    error = api_error(
        lambda: (
            api.nodes(guest["node"]).lxc(guest["vmid"]).migrate.post(target=other_online_node(resources, guest["node"]))
        )
    )
    assert error.status_code == 500
    assert error.content == "can't migrate running container without --online or --restart"


def test_second_migration_of_a_locked_vm_is_500_vm_is_locked(fresh_sim):
    api = token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    guest = running_guest(resources, "qemu")
    target = other_online_node(resources, guest["node"])
    migrate = api.nodes(guest["node"]).qemu(guest["vmid"]).migrate
    migrate.post(target=target, online=1, **{"with-local-disks": 1})
    error = api_error(lambda: migrate.post(target=target, online=1, **{"with-local-disks": 1}))
    assert error.status_code == 500
    assert error.content == "VM is locked (migrate)"


def test_stopping_a_running_task_aborts_the_migration(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    guest = running_guest(resources, "qemu")
    source = guest["node"]
    upid = (
        api.nodes(source)
        .qemu(guest["vmid"])
        .migrate.post(target=other_online_node(resources, source), online=1, **{"with-local-disks": 1})
    )
    assert call(api, "DELETE", f"/nodes/{source}/tasks/{upid}") is None
    final = step_until_task_stops(sim, api, source, upid)
    assert final["exitstatus"] != "OK"
    after = resource_entry(api, guest["vmid"])
    assert after["node"] == source and "lock" not in after


def test_node_shutdown_offline_595_and_wake_on_lan(fresh_sim):
    sim, api = fresh_sim, token_api(fresh_sim.info)
    answering = local_node(api)
    resources = call(api, "GET", "/cluster/resources")
    victim = other_online_node(resources, answering)
    mac = "52:54:00:12:34:56"
    call(api, "PUT", f"/nodes/{victim}/config", wakeonlan=f"mac={mac}")

    assert call(api, "POST", f"/nodes/{victim}/status", command="shutdown") is None
    for _ in range(60):
        if victim not in online_nodes(call(api, "GET", "/cluster/resources", type="node")):
            break
        sim.cluster.step(10)
    members = {e["name"]: e for e in call(api, "GET", "/cluster/status") if e["type"] == "node"}
    assert members[victim]["online"] == 0
    assert {e["node"]: e["status"] for e in call(api, "GET", "/nodes")}[victim] == "offline"
    for path in ("config", "status", "qemu", "lxc", "storage"):
        response = raw(sim.info, "GET", f"/nodes/{victim}/{path}")
        assert response.status_code == 595, (path, response.status_code, response.reason)

    sim.cluster.step(RRD_EXPIRE_SECONDS + 10)  # pmxcfs serves the node's last figures this long
    for entry in call(api, "GET", "/cluster/resources", type="vm"):
        if entry["node"] == victim:
            assert entry["status"] == "unknown", entry
            assert not GUEST_METRICS & entry.keys(), f"offline node's guest shows metrics: {entry}"

    local_error = api_error(lambda: api.nodes(answering).wakeonlan.post())
    assert local_error.status_code == 500 and "local node" in local_error.content
    assert call(api, "POST", f"/nodes/{victim}/wakeonlan") == mac
    for _ in range(60):
        if victim in online_nodes(call(api, "GET", "/cluster/resources", type="node")):
            break
        sim.cluster.step(10)
    assert victim in online_nodes(call(api, "GET", "/cluster/resources", type="node"))
    call(api, "GET", f"/nodes/{victim}/status")


def test_guests_on_a_crashed_node_show_unknown_with_few_fields_once_its_figures_expire(fresh_sim):
    """pmxcfs status.c rrd_entry_is_old: a dead node's last broadcast expires after 300 s; then
    its guests keep only what the cluster config says (id, vmid, node, type, pool, tags, lock)."""
    sim, api = fresh_sim, token_api(fresh_sim.info)
    resources = call(api, "GET", "/cluster/resources")
    victim = next(
        r["node"]
        for r in resources
        if r["type"] == "qemu" and r["status"] == "running" and r["node"] != local_node(api)
    )
    stranded = {r["vmid"] for r in resources if r["type"] in ("qemu", "lxc") and r["node"] == victim}
    sim.cluster.crash_node(victim)
    sim.cluster.step(RRD_EXPIRE_SECONDS + 1)

    after = call(api, "GET", "/cluster/resources")
    node_entry = next(r for r in after if r["type"] == "node" and r["node"] == victim)
    assert node_entry["status"] == "offline"
    guests = {r["vmid"]: r for r in after if r["type"] in ("qemu", "lxc") and r["node"] == victim}
    assert guests and set(guests) <= stranded  # HA guests may have been recovered elsewhere by now
    for entry in guests.values():
        assert entry["status"] == "unknown", entry
        assert {"id", "vmid", "node", "type"} <= entry.keys()
        assert not GUEST_METRICS & entry.keys(), f"offline node's guest shows metrics: {entry}"
    assert raw(sim.info, "GET", f"/nodes/{victim}/qemu").status_code == 595


def test_without_quorum_reads_work_but_cluster_writes_fail():
    """pmxcfs (/etc/pve) turns read-only without quorum: config writes and migrations fail."""
    with start_sim(scenario="quorum3", seed=1, manual_clock=True) as trio:
        api = token_api(trio.info)
        local = local_node(api)
        for entry in call(api, "GET", "/cluster/status"):
            if entry["type"] == "node" and entry["name"] != local:
                requests.post(
                    f"{trio.info['control_url']}/nodes/{entry['name']}/crash", verify=trio.info["ca_file"], timeout=15
                ).raise_for_status()
        assert next(e for e in call(api, "GET", "/cluster/status") if e["type"] == "cluster")["quorate"] == 0
        resources = call(api, "GET", "/cluster/resources")
        guest = running_guest(resources, "qemu")
        assert guest["node"] == local
        base = f"/nodes/{local}/qemu/{guest['vmid']}"

        error = api_error(
            lambda: api.nodes(local).qemu(guest["vmid"]).migrate.post(target=any_other_node(resources, local), online=1)
        )
        assert (error.status_code, error.content) == (500, "cluster not ready - no quorum?")
        description_before = call(api, "GET", f"{base}/config").get("description")
        assert raw(trio.info, "PUT", f"{base}/config", data={"description": "no quorum"}).status_code == 500
        assert call(api, "GET", f"{base}/config").get("description") == description_before
        assert raw(trio.info, "PUT", f"/nodes/{local}/config", data={"description": "no quorum"}).status_code == 500


# --------------------------------------------------------------------------- every scenario


@pytest.mark.parametrize("scenario", list_scenarios())
def test_every_scenario_answers_the_core_reads_per_schema(scenario):
    """Scenario data must not produce answers PVE could not send (types, enums, quorum)."""
    with start_sim(scenario=scenario, seed=3, manual_clock=True) as other:
        api = token_api(other.info)
        other.cluster.step(300)
        resources = call(api, "GET", "/cluster/resources")
        for path in (
            "/cluster/ha/resources",
            "/cluster/ha/rules",
            "/cluster/ha/status/current",
            "/cluster/options",
            "/cluster/tasks",
            "/nodes",
            "/pools",
            "/access/permissions",
        ):
            call(api, "GET", path)
        votes = {e["node"]: int(e["quorum_votes"]) for e in call(api, "GET", "/cluster/config/nodes")}
        status = call(api, "GET", "/cluster/status")
        online_votes = sum(votes[e["name"]] for e in status if e["type"] == "node" and e["online"])
        cluster = next(e for e in status if e["type"] == "cluster")
        assert cluster["quorate"] == int(online_votes * 2 > sum(votes.values()))
        names = [r["name"] for r in resources if r["type"] in ("qemu", "lxc") and "name" in r]
        assert len(names) == len(set(names)), "guest names must be unique (ProxLB keys guests by name)"
        for node in online_nodes(resources):
            call(api, "GET", f"/nodes/{node}/status")
            call(api, "GET", f"/nodes/{node}/storage")
            for kind in ("qemu", "lxc"):
                listed = call(api, "GET", f"/nodes/{node}/{kind}")
                for entry in listed[:1]:
                    base = f"/nodes/{node}/{kind}/{entry['vmid']}"
                    call(api, "GET", f"{base}/status/current")
                    call(api, "GET", f"{base}/config")
                    call(api, "GET", f"{base}/migrate")


# --------------------------------------------------------------------------- determinism


def resources_json_after(seed: int, seconds: int) -> str:
    with start_sim(scenario=SCENARIO, seed=seed, manual_clock=True, start_time=1_750_000_000) as other:
        other.cluster.step(seconds)
        return json.dumps(raw(other.info, "GET", "/cluster/resources").json(), sort_keys=True)


def test_same_seed_and_steps_give_identical_resources_and_another_seed_differs():
    first = resources_json_after(seed=7, seconds=900)
    assert first == resources_json_after(seed=7, seconds=900)
    assert first != resources_json_after(seed=8, seconds=900)
