"""The state machine without HTTP (determinism, load curves, scenarios, clock) and the faults,
control API and ``pvetop sim`` command around it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
import requests
from proxmoxer.core import ResourceException

from pvetop.cli import main
from pvetop.sim import views
from pvetop.sim.cluster import DEFAULT_START, SimCluster
from pvetop.sim.entities import POWER_HISTORY_SECONDS
from pvetop.sim.errors import ScenarioError
from pvetop.sim.ha import LOG_ENTRIES
from pvetop.sim.load import LoadCurve
from pvetop.sim.runner import INFO_KEYS
from pvetop.sim.scenarios import list_scenarios, load_scenario
from tests.sim.clients import raw, token_api
from tests.waiting import wait_until


def resources_json(cluster: SimCluster) -> str:
    return json.dumps(views.cluster_resources(cluster, None), sort_keys=True)


def scripted(cluster: SimCluster) -> SimCluster:
    """The same actions in the same order: a migration, a shutdown, time passing."""
    cluster.step(30)
    cluster.migrate("qemu", "pve-mini1", 103, {"target": "pve-big", "online": 1}, "root@pam")
    cluster.step(17)
    cluster.shutdown_node("pve-mini2")
    cluster.step(3600)
    return cluster


def test_same_scenario_seed_and_steps_give_identical_resources():
    first = scripted(SimCluster("homelab", seed=7, manual_clock=True))
    second = scripted(SimCluster("homelab", seed=7, manual_clock=True))
    assert resources_json(first) == resources_json(second)
    other_seed = scripted(SimCluster("homelab", seed=8, manual_clock=True))
    assert resources_json(first) != resources_json(other_seed)


def test_same_seed_gives_identical_resources_over_https(make_sim):
    bodies = []
    for _ in range(2):
        sim = make_sim("smb", seed=3)
        sim.cluster.step(125)
        bodies.append(raw(sim.info, "GET", "/cluster/resources").content)
    assert bodies[0] == bodies[1]


def test_manual_clock_only_moves_with_step():
    cluster = SimCluster("homelab", manual_clock=True)
    assert cluster.now == DEFAULT_START
    cluster.sync()
    assert cluster.now == DEFAULT_START
    cluster.step(12.5)
    assert cluster.now == DEFAULT_START + 12.5
    with pytest.raises(ValueError):
        cluster.step(-1)


def test_live_clock_runs_at_its_speed_and_step_still_jumps():
    cluster = SimCluster("homelab", speed=1000.0, start_time="2026-03-01T12:00:00Z")
    wait_until(lambda: (cluster.sync(), cluster.now)[1] > cluster.start_time + 5, what="live time to pass")
    before = cluster.now
    cluster.step(3600)
    assert cluster.now >= before + 3600


def test_load_curves_are_pure_functions_of_time():
    steady = LoadCurve(1, 100, "steady", 0.2, 0.5)
    diurnal = LoadCurve(1, 101, "diurnal", 0.2, 0.5)
    bursty = LoadCurve(1, 102, "bursty", 0.2, 0.5)
    day = DEFAULT_START
    assert steady.cpu_at(day + 4000) == LoadCurve(1, 100, "steady", 0.2, 0.5).cpu_at(day + 4000)
    for t in range(int(day), int(day) + 86400, 600):
        for curve in (steady, diurnal, bursty):
            assert 0.0 <= curve.cpu_at(t) <= 1.0 and 0.0 < curve.mem_at(t) < 1.0
        assert 0.15 <= steady.cpu_at(t) <= 0.25
    night = sum(diurnal.cpu_at(day + 2 * 3600 + s) for s in range(0, 600, 10))
    afternoon = sum(diurnal.cpu_at(day + 14 * 3600 + s) for s in range(0, 600, 10))
    assert afternoon > 2 * night
    levels = [bursty.cpu_at(day + 600 * i + 300) for i in range(144)]
    assert max(levels) > 2 * 0.2 and min(levels) < 0.2


def test_node_usage_is_the_sum_of_its_guests():
    cluster = SimCluster("imbalanced", manual_clock=True)
    resources = views.cluster_resources(cluster, None)
    nodes = {r["node"]: r for r in resources if r["type"] == "node"}
    assert nodes["pve1"]["mem"] > 3 * nodes["pve2"]["mem"]
    assert nodes["pve1"]["cpu"] > 3 * nodes["pve2"]["cpu"]
    # the host pays each VM's resident memory (memhost) and each container's memory
    guests = [r for r in resources if r["type"] in ("qemu", "lxc") and r["node"] == "pve1"]
    host_paid = sum(r.get("memhost", r["mem"]) for r in guests)
    assert host_paid + cluster.nodes["pve1"].base_memory == nodes["pve1"]["mem"]


def test_rrddata_history_comes_from_the_same_curves():
    cluster = SimCluster("homelab", manual_clock=True)
    cluster.step(7200)
    guest = cluster.guests[103]
    average = views.guest_rrddata(cluster, guest, "hour", "AVERAGE")
    peak = views.guest_rrddata(cluster, guest, "hour", "MAX")
    assert len(average) == 60 and average[1]["time"] - average[0]["time"] == 60
    assert average[-1]["time"] <= cluster.now
    assert all(p["cpu"] >= a["cpu"] for p, a in zip(peak, average, strict=True))
    day = views.node_rrddata(cluster, cluster.nodes["pve-mini1"], "day", "AVERAGE")
    assert len(day) == 1440 and day[1]["time"] - day[0]["time"] == 60


def test_node_rrddata_shows_the_gap_while_a_node_was_off():
    cluster = SimCluster("homelab", manual_clock=True)
    cluster.shutdown_node("pve-big")
    cluster.step(60 * 30)
    rows = views.node_rrddata(cluster, cluster.nodes["pve-big"], "hour", "AVERAGE")
    assert rows[-1] == {"time": rows[-1]["time"]}
    assert "cpu" in rows[0]


def test_power_history_and_ha_log_are_bounded_as_pve_bounds_them():
    """A node's power states older than the longest RRD archive go (the one before the horizon
    stays: the state there); the HA manager keeps its last LOG_ENTRIES lines, as a bounded journal."""
    cluster = SimCluster("smb", manual_clock=True)
    node = cluster.nodes["pve3"]
    start = cluster.now
    for day in range(2 * 400):
        node.power_changed(start + day * 86400, online=day % 2 == 0)
    last = start + (2 * 400 - 1) * 86400
    assert len(node.power_history) <= 402
    assert node.power_history[0][0] <= last - POWER_HISTORY_SECONDS < node.power_history[1][0]
    assert [node.online_at(last - k * 86400) for k in range(3)] == [False, True, False]
    for n in range(LOG_ENTRIES + 10):
        cluster.ha.say("info", f"line {n}")
    assert len(cluster.ha.log) == LOG_ENTRIES and cluster.ha.log[-1][2] == f"line {LOG_ENTRIES + 9}"


def test_builtin_scenarios():
    assert set(list_scenarios()) >= {"homelab", "smb", "large", "quorum3", "imbalanced"}
    smb = load_scenario("smb", seed=1)
    assert len(smb.nodes) == 8 and len(smb.guests) == 200
    assert len({g["name"] for g in smb.guests}) == 200
    assert sum(1 for g in smb.guests if g.get("ha")) >= 30 and smb.ha_rules and smb.pools
    large = load_scenario("large", seed=1)
    assert (len(large.nodes), len(large.guests)) == (32, 4000)
    homelab = load_scenario("homelab")
    big = max(homelab.nodes, key=lambda n: n["memory_gib"])
    assert big["memory_gib"] >= 4 * min(n["memory_gib"] for n in homelab.nodes) and big.get("mac")
    assert load_scenario("smb", seed=2).guests != smb.guests


def test_scenario_from_a_file_and_clear_errors(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(
        json.dumps(
            {
                "name": "tiny",
                "nodes": [{"name": "n1", "cpus": 4, "memory_gib": 8}],
                "storage": [{"storage": "local", "type": "dir"}],
                "guests": [{"vmid": 100, "type": "lxc", "name": "ct", "node": "n1", "disks": [{"storage": "local"}]}],
            }
        )
    )
    cluster = SimCluster(load_scenario(path), manual_clock=True)
    assert list(cluster.guests) == [100]
    with pytest.raises(ScenarioError, match="choose one of: .*homelab"):
        load_scenario("nope")
    path.write_text(
        json.dumps(
            {
                "nodes": [{"name": "n1", "cpus": 4, "memory_gib": 8}],
                "storage": [{"storage": "local"}],
                "guests": [{"vmid": 100, "type": "qemu", "name": "x", "node": "n2"}],
            }
        )
    )
    with pytest.raises(ScenarioError, match="unknown node 'n2'"):
        load_scenario(path)
    path.write_text(
        json.dumps(
            {
                "nodes": [{"name": "n1", "cpus": 4, "memory_gib": 8}],
                "storage": [{"storage": "local"}],
                "ha_rules": [{"rule": "r", "type": "node-affinity", "resources": "vm:100"}],
            }
        )
    )
    with pytest.raises(ScenarioError, match="vm:100 are not HA-managed"):
        load_scenario(path)
    path.write_text("{not json")
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(path)


def control(sim, path: str, body: dict | None = None) -> requests.Response:
    url = f"{sim.info['control_url']}{path}"
    if body is None:
        return requests.get(url, verify=sim.info["ca_file"], timeout=15)
    return requests.post(url, json=body, verify=sim.info["ca_file"], timeout=15)


def test_control_api_steps_time_and_reports_state(homelab):
    state = control(homelab, "/state").json()
    assert state["scenario"] == "homelab" and state["manual_clock"] is True and state["quorate"] is True
    stepped = control(homelab, "/step", {"seconds": 90}).json()
    assert stepped["time"] == state["time"] + 90
    assert control(homelab, "/step", {"seconds": "soon"}).status_code == 400
    assert control(homelab, "/faults", {"error_rate": 2}).status_code == 400
    assert control(homelab, "/faults", {"warp": 1}).status_code == 400


def test_error_rate_answers_500(homelab):
    control(homelab, "/faults", {"error_rate": 1.0})
    with pytest.raises(ResourceException) as caught:
        token_api(homelab.info).version.get()
    assert caught.value.status_code == 500
    control(homelab, "/faults", {"error_rate": 0})
    assert token_api(homelab.info).version.get()["release"] == "9.2"


def test_dropped_connections_and_outage_windows(homelab):
    control(homelab, "/faults", {"drop_rate": 1.0})
    with pytest.raises(requests.exceptions.ConnectionError):
        raw(homelab.info, "GET", "/version")
    control(homelab, "/faults", {"drop_rate": 0, "outage_seconds": 120})
    with pytest.raises(requests.exceptions.ConnectionError):
        raw(homelab.info, "GET", "/version")
    homelab.cluster.step(120)
    assert raw(homelab.info, "GET", "/version").status_code == 200


def test_latency_fault_is_accepted_and_reported(homelab):
    state = control(homelab, "/faults", {"latency_ms": 5}).json()
    assert state["faults"]["latency_ms"] == 5
    assert raw(homelab.info, "GET", "/version").status_code == 200


def test_cli_unknown_scenario_exits_2_listing_the_valid_ones(capsys):
    assert main(["sim", "--scenario", "nope"]) == 2
    error = capsys.readouterr().err
    assert "unknown scenario 'nope'" in error and "homelab" in error and "large" in error


def test_cli_serves_until_interrupted_and_writes_the_info_file(tmp_path):
    """Ctrl-C stops the server even when SIGINT was ignored at start (as for a background job)."""
    info_file = tmp_path / "sim.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pvetop",
            "sim",
            "--scenario",
            "quorum3",
            "--speed",
            "10",
            "--info-file",
            str(info_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_until(
            lambda: info_file.exists() and info_file.read_text().endswith("\n"), timeout=30, what="the info file"
        )
        info = json.loads(info_file.read_text())
        assert stat.S_IMODE(info_file.stat().st_mode) == 0o600  # it holds the root password and a token
        assert tuple(info) == INFO_KEYS
        assert [e["node"] for e in info["endpoints"]] == ["pve1", "pve2", "pve3"]
        assert (info["endpoints"][0]["host"], info["endpoints"][0]["port"]) == (info["host"], info["port"])
        for endpoint in info["endpoints"]:  # every node answers as itself
            status = token_api(dict(info, **endpoint)).cluster.status.get()
            assert status[0]["name"] == "trio"
            assert [e["name"] for e in status if e.get("local")] == [endpoint["node"]]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    hosts = ",".join(f"127.0.0.1:{e['port']}" for e in info["endpoints"])
    assert f"--host {hosts} " in out and info["token_value"] in out and info["fingerprint"] in out


def test_cluster_options_and_ha_rules_can_be_written(homelab):
    api = token_api(homelab.info)
    api.cluster.options.put(crs="ha=dynamic,ha-auto-rebalance=1")
    assert api.cluster.options.get()["crs"] == {"ha": "dynamic", "ha-auto-rebalance": 1}
    with pytest.raises(ResourceException) as bad:
        api.cluster.options.put(crs="ha=weird")
    assert bad.value.status_code == 400 and "crs" in bad.value.errors
    api.cluster.ha.rules.post(rule="apart", type="resource-affinity", resources="vm:100,ct:112", affinity="negative")
    assert [r["rule"] for r in api.cluster.ha.rules.get(type="resource-affinity")] == ["apart"]
    with pytest.raises(ResourceException) as unmanaged:
        api.cluster.ha.rules.post(rule="x", type="node-affinity", resources="vm:103", nodes="pve-big")
    assert unmanaged.value.errors == {"resources": "HA resource 'vm:103' is not configured"}


def crowded_ha_cluster(tmp_path, crs: str) -> SimCluster:
    """Three equal nodes, six HA VMs all on n1."""
    path = tmp_path / "crowded.json"
    path.write_text(
        json.dumps(
            {
                "name": "crowded",
                "options": {"crs": crs},
                "nodes": [{"name": f"n{i}", "cpus": 8, "memory_gib": 32} for i in (1, 2, 3)],
                "storage": [{"storage": "ceph", "type": "rbd", "shared": 1}],
                "guests": [
                    {
                        "vmid": 100 + i,
                        "type": "qemu",
                        "name": f"vm{i}",
                        "node": "n1",
                        "cores": 2,
                        "memory_mib": 4096,
                        "disks": [{"storage": "ceph"}],
                        "ha": True,
                        "load": {"curve": "steady", "cpu": 0.5, "mem": 0.8},
                    }
                    for i in range(6)
                ],
            }
        )
    )
    return SimCluster(load_scenario(path), manual_clock=True)


def node_imbalance(cluster: SimCluster) -> float:
    from pvetop.sim.crs import imbalance

    nodes = views.cluster_resources(cluster, "node")
    return imbalance([(n["cpu"] + n["mem"] / n["maxmem"]) / 2 for n in nodes])


def test_ha_auto_rebalance_moves_ha_guests_when_enabled(tmp_path):
    still = crowded_ha_cluster(tmp_path, "ha=static,ha-auto-rebalance=0")
    still.step(600)
    assert {g.node for g in still.guests.values()} == {"n1"}
    cluster = crowded_ha_cluster(tmp_path, "ha=static,ha-auto-rebalance=1")
    before = node_imbalance(cluster)
    cluster.step(600)
    moves = [t for t in cluster.tasks if t.type == "qmigrate"]
    assert moves and all(t.user == "root@pam" and t.exitstatus == "OK" for t in moves)
    assert len({g.node for g in cluster.guests.values()}) == 3
    assert node_imbalance(cluster) < before / 2
    cluster.update_options({"crs": "ha=static,ha-auto-rebalance=0"})
    settled = {vmid: g.node for vmid, g in cluster.guests.items()}
    cluster.step(600)
    assert {vmid: g.node for vmid, g in cluster.guests.items()} == settled


def test_a_nodes_task_index_stays_bounded_like_pves():
    """PVE rotates a node's task index at about 1000 entries and drops the older rotation: the
    finished tasks listed stay between one and two thousand; a task still running is kept."""
    cluster = SimCluster("homelab", manual_clock=True)
    long_running = cluster.new_task("pve-mini1", "vzdump", "", "root@pam")
    for _ in range(4500):
        cluster.new_task("pve-mini1", "vncproxy", "100", "root@pam").finish(cluster.now, "OK")
    cluster.new_task("pve-mini2", "vncproxy", "100", "root@pam").finish(cluster.now, "OK")
    on_mini1 = [t for t in cluster.tasks if t.node == "pve-mini1"]
    assert 1000 <= len(on_mini1) <= 2001
    assert long_running in on_mini1 and cluster.tasks_by_upid[long_running.upid] is long_running
    assert set(cluster.tasks_by_upid) == {t.upid for t in cluster.tasks}
    assert [t.node for t in cluster.tasks].count("pve-mini2") == 1
