"""Entry types and shapes real Proxmox VE 9.2 answers with: pool and network entries, rrd layout,
task owners, 401 texts. Each test's docstring names the PVE source it pins."""

from __future__ import annotations

import pytest

from pvetop.pve.parse import Warnings, parse_resources
from tests.sim.clients import call, raw, token_api


def test_unfiltered_resources_start_with_pools_and_end_with_network_zones(homelab):
    """pve-manager API2/Cluster.pm resources: with no ``type`` filter, one ``/pool/<id>`` entry per
    pool comes first (no node, no status; running members' uptime, mem, maxmem, cpu and maxcpu
    summed into it) and one ``network/<node>/zone/localnetwork`` entry per node comes last."""
    api = token_api(homelab.info)
    entries = call(api, "GET", "/cluster/resources")
    pools = [e for e in entries if e["type"] == "pool"]
    assert entries[: len(pools)] == pools and {p["pool"] for p in pools} == {"infra", "lab"}
    infra = next(p for p in pools if p["pool"] == "infra")
    assert infra["id"] == "/pool/infra" and "node" not in infra and "status" not in infra
    members = [e for e in entries if e["type"] in ("qemu", "lxc") and e.get("pool") == "infra" and e["uptime"]]
    assert infra["mem"] == sum(m["mem"] for m in members)
    assert infra["maxcpu"] == sum(m["maxcpu"] for m in members)
    assert infra["uptime"] == max(m["uptime"] for m in members)
    weighted = sum(m["cpu"] * m["maxcpu"] for m in members) / infra["maxcpu"]
    assert infra["cpu"] == pytest.approx(weighted)
    networks = [e for e in entries if e["type"] == "network"]
    assert entries[-len(networks) :] == networks
    assert networks == [
        {
            "id": f"network/{node}/zone/localnetwork",
            "type": "network",
            "network-type": "zone",
            "network": "localnetwork",
            "node": node,
            "status": "ok",
        }
        for node in ("pve-mini1", "pve-mini2", "pve-big")
    ]
    for kind in ("vm", "node", "storage", "sdn"):
        filtered = call(api, "GET", "/cluster/resources", type=kind)
        assert not any(e["type"] in ("pool", "network") for e in filtered), kind


def test_pvetop_parses_pool_and_network_entries_without_a_node(homelab):
    """pve-manager API2/Cluster.pm resources: pool entries have no ``node``; pvetop skips types it
    does not use instead of failing on them."""
    entries = call(token_api(homelab.info), "GET", "/cluster/resources")
    warnings = Warnings()
    nodes, guests, storage = parse_resources(entries, warnings)
    assert not warnings.as_tuple()
    assert set(nodes) == {"pve-mini1", "pve-mini2", "pve-big"}
    assert len(guests) == sum(1 for e in entries if e["type"] in ("qemu", "lxc"))
    assert len(storage) == sum(1 for e in entries if e["type"] == "storage")


@pytest.mark.parametrize(
    ("timeframe", "step", "points"),
    [("hour", 60, 60), ("day", 60, 1440), ("week", 1800, 336), ("month", 1800, 1440), ("year", 21600, 1440)],
)
def test_rrddata_has_pve9_steps_and_point_counts(homelab, timeframe, step, points):
    """pve-cluster RRD.pm create_rrd_data, pve-*-9.0 layout: hour 60×60 s, day 1440×60 s,
    week 336×30 min, month 1440×30 min, year 1440×6 h (decade 570×1 w for nodes)."""
    api = token_api(homelab.info)
    for path in ("/nodes/pve-mini1/rrddata", "/nodes/pve-mini1/qemu/100/rrddata"):
        rows = call(api, "GET", path, timeframe=timeframe)
        assert len(rows) == points, path
        assert {b["time"] - a["time"] for a, b in zip(rows, rows[1:], strict=False)} == {step}, path


def test_node_rrddata_decade_and_guest_rrddata_from_any_node(homelab):
    """pve-cluster RRD.pm: decade is 570 weekly points. A guest's rrd file is keyed by vmid alone
    and rrddata is not proxied, so any node answers for any guest (real PVE serves it from
    /var/lib/rrdcached on whichever node is asked)."""
    api = token_api(homelab.info)
    rows = call(api, "GET", "/nodes/pve-big/rrddata", timeframe="decade")
    assert len(rows) == 570 and rows[1]["time"] - rows[0]["time"] == 7 * 86400
    elsewhere = call(api, "GET", "/nodes/pve-big/qemu/100/rrddata", timeframe="hour")
    assert elsewhere == call(api, "GET", "/nodes/pve-mini1/qemu/100/rrddata", timeframe="hour")


def test_token_tasks_split_user_and_tokenid(homelab):
    """pve-manager API2/Tasks.pm $convert_token_task and Cluster.pm tasks: a task started with an
    API token reports ``user`` root@pam plus ``tokenid`` pvetop (the UPID keeps root@pam!pvetop)."""
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(104).status.stop.post()
    assert upid.endswith(":root@pam!pvetop:")
    status = call(api, "GET", f"/nodes/pve-mini1/tasks/{upid}/status")
    assert (status["user"], status["tokenid"]) == ("root@pam", "pvetop")
    listed = next(t for t in call(api, "GET", "/nodes/pve-mini1/tasks", source="all") if t["upid"] == upid)
    assert (listed["user"], listed["tokenid"]) == ("root@pam", "pvetop")
    cluster_wide = next(t for t in call(api, "GET", "/cluster/tasks") if t["upid"] == upid)
    assert (cluster_wide["user"], cluster_wide["tokenid"]) == ("root@pam", "pvetop")


def test_cluster_tasks_keep_25_finished_per_node_without_pid_or_pstart(homelab):
    """pve-common RESTEnvironment.pm active_workers, broadcast by pvestatd: running tasks plus at
    most 25 finished ones per node; finished entries lose ``pid`` and no entry has ``pstart``."""
    api = token_api(homelab.info)
    for _ in range(30):
        api.nodes("pve-mini1").qemu(104).status.start.post()
        api.nodes("pve-mini2").lxc(110).status.start.post()
    homelab.cluster.step(10)
    running = api.nodes("pve-mini1").qemu(104).status.shutdown.post()
    tasks = call(api, "GET", "/cluster/tasks")
    for node in ("pve-mini1", "pve-mini2"):
        finished = [t for t in tasks if t["node"] == node and "endtime" in t]
        assert len(finished) == 25, node
        assert all("pid" not in t for t in finished)
    live = next(t for t in tasks if t["upid"] == running)
    assert "endtime" not in live and "pid" in live
    assert all("pstart" not in t for t in tasks)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "PVEAPIToken=root@pam!pvetop=00000000-0000-0000-0000-000000000000"},
        {"Authorization": "PVEAPIToken=root@pam!nosuchtoken=00000000-0000-0000-0000-000000000000"},
        {"Cookie": "PVEAuthCookie=PVE:root@pam:00000000::forged"},
    ],
)
def test_bad_credentials_are_401_authentication_failed(homelab, headers):
    """pve-manager HTTPServer.pm auth_handler: a bad token and a bad or expired ticket both die
    ``Authentication failed!`` (the detail goes to syslog only); no credentials is ``No ticket``."""
    response = raw(homelab.info, "GET", "/cluster/resources", auth=False, headers=headers)
    assert (response.status_code, response.reason) == (401, "Authentication failed!")
    bare = raw(homelab.info, "GET", "/cluster/resources", auth=False)
    assert (bare.status_code, bare.reason) == (401, "No ticket")


def test_an_empty_task_list_has_no_total(homelab):
    """pve-http-server Formatter/Standard.pm prepare_response_data: ``total`` is left out when 0."""
    empty = raw(homelab.info, "GET", "/nodes/pve-mini1/tasks", params={"typefilter": "vzdump"}).json()
    assert empty == {"data": []}
    api = token_api(homelab.info)
    api.nodes("pve-mini1").qemu(104).status.stop.post()
    homelab.cluster.step(5)
    listed = raw(homelab.info, "GET", "/nodes/pve-mini1/tasks").json()
    assert listed["total"] == len(listed["data"]) == 1
