"""The simulator's HA manager, node power-down and quorum loss against real PVE 9.2 behaviour.

Each test pins one behaviour of pve-ha-manager 5.2 or pve-manager 9.2 (named in its docstring),
on a manual clock: time moves only by ``step``. Scenarios: homelab (pve-mini1, pve-mini2,
pve-big; vm:100 and ct:112 HA-managed, rule ha-on-minis), smb (pve1..pve8; rules
db-on-fast-nodes vm:100-103 -> pve1:2,pve2:2,pve3:1; ad-pinned vm:104,105 strict on pve4,pve5;
ad-apart vm:104/vm:105 negative; app-with-cache vm:106/vm:107 positive; shutdown_policy=migrate)
and quorum3 (pve1..pve3, HA vm:100, vm:101, vm:104).
"""

from __future__ import annotations

import json

import pytest
from proxmoxer.core import ResourceException

from pvetop.sim import views
from pvetop.sim.cluster import SimCluster
from pvetop.sim.scenarios import SCENARIO_DIR, load_scenario
from tests.engine.simdrive import step_until
from tests.sim.clients import call, token_api


def service(cluster: SimCluster, sid: str):
    return cluster.ha.services[sid]


def crm_says(cluster: SimCluster, text: str) -> bool:
    return any(text in line for _, _, line in cluster.ha.log)


def node_hastate(cluster: SimCluster, name: str) -> str:
    return next(e for e in views.cluster_resources(cluster, "node") if e["node"] == name)["hastate"]


def tasks_of(cluster: SimCluster, kind: str, vmid: int | None = None) -> list:
    return [t for t in cluster.tasks if t.type == kind and (vmid is None or t.id == str(vmid))]


@pytest.fixture
def smb() -> SimCluster:
    return SimCluster("smb", manual_clock=True)


@pytest.fixture
def homelab_cluster() -> SimCluster:
    return SimCluster("homelab", manual_clock=True)


# ----- rules enforced on every CRM round (Manager.pm next_state_started / select_service_node) -----
def test_scenario_rules_start_out_satisfied(smb):
    """The smb and homelab scenarios place their HA guests where their rules want them, so the
    CRM has nothing to enforce at start (no migration in ten minutes)."""
    smb.step(600)
    homelab = SimCluster("homelab", manual_clock=True)
    homelab.step(600)
    assert tasks_of(smb, "qmigrate") == [] and tasks_of(homelab, "qmigrate") == []
    assert tasks_of(homelab, "vzmigrate") == []


def test_strict_node_affinity_is_enforced_continuously(smb):
    """Manager.pm next_state_started runs select_service_node(..., 'none') every round: a service
    outside its strict rule (vm:104 moved to pve1 by hand) is migrated back to an allowed node."""
    guest = smb.guests[104]
    smb.migrate("qemu", "pve4", 104, {"target": "pve1", "online": 1}, "root@pam")
    step_until(smb, lambda: guest.node == "pve1")
    step_until(smb, lambda: service(smb, "vm:104").target == "pve4", limit=30)
    assert service(smb, "vm:104").state == "migrate", "pve5 holds its anti-affine partner vm:105"
    step_until(smb, lambda: guest.node == "pve4" and service(smb, "vm:104").state == "started", limit=120)
    assert crm_says(smb, "migrate service 'vm:104' to node 'pve4' (running)")


def test_failback_returns_a_service_to_its_highest_priority_node(smb):
    """Failback defaults to 1: a service on a lower-priority node of its non-strict rule (vm:101
    on pve3, priority 1) goes back to a priority-2 node (pve1 or pve2) on the next rounds."""
    guest = smb.guests[101]
    smb.ha.queue_command("migrate vm:101 pve3")
    step_until(smb, lambda: guest.node == "pve3")
    step_until(smb, lambda: guest.node in ("pve1", "pve2") and service(smb, "vm:101").state == "started", limit=120)
    assert [t.user for t in tasks_of(smb, "qmigrate", 101)] == ["root@pam", "root@pam"]


def test_non_strict_rule_lets_a_service_run_elsewhere_when_its_nodes_are_gone(homelab_cluster):
    """A non-strict node-affinity rule adds every other node at priority -1 (NodeAffinity.pm
    plugin_compile): with both minis down, vm:100 is recovered to pve-big."""
    cluster = homelab_cluster
    cluster.crash_node("pve-mini2")
    cluster.crash_node("pve-mini1")
    assert not cluster.quorate
    cluster.power.boot(cluster.nodes["pve-mini2"])
    step_until(cluster, lambda: cluster.quorate)
    step_until(cluster, lambda: service(cluster, "vm:100").node != "pve-mini1", limit=400)
    assert service(cluster, "vm:100").node == "pve-mini2", "a rule node comes before the -1 nodes"


# ----- requested moves (Manager.pm queue_resource_motion, Config.pm get_resource_motion_info) -----
def test_positive_affinity_partner_comigrates(make_sim):
    """A requested move of vm:106 also moves vm:107 (positive affinity); the API answer lists
    it in 'comigrated-resources'."""
    sim = make_sim("smb")
    api = token_api(sim.info)
    answer = call(api, "POST", "/cluster/ha/resources/vm:106/migrate", node="pve6")
    assert answer == {"sid": "vm:106", "requested-node": "pve6", "comigrated-resources": ["vm:107"]}
    cluster = sim.cluster
    step_until(cluster, lambda: {cluster.guests[106].node, cluster.guests[107].node} == {"pve6"}, limit=300)
    assert crm_says(cluster, "migrate service 'vm:107' to node 'pve6' (service 'vm:107' in positive affinity")


def test_a_partner_whose_comigration_fails_pulls_the_guest_back():
    """vm:107's migration along with vm:106 fails: vm:106 (arrived on pve2) runs apart from its
    positive-affinity partner, and the CRM takes it back to vm:107's node on its next round
    (Manager.pm select_service_node: the node most partners use). The soak excuses this move back
    (the HA manager answers a failure, not where the guest was put)."""
    cluster = SimCluster("smb", seed=1, manual_clock=True)
    with cluster.lock:
        source = cluster.guests[106].node
        assert cluster.guests[107].node == source != "pve2"
        cluster.migrate("qemu", source, 106, {"target": "pve2", "online": 1}, "root@pam!pvetop")
    step_until(cluster, lambda: 107 in cluster.migrations, limit=60)
    with cluster.lock:
        cluster._abort_migration(cluster.migrations[107], "injected")
    step_until(cluster, lambda: cluster.guests[106].node == "pve2", limit=120)
    step_until(cluster, lambda: cluster.guests[106].node == source, limit=120)
    assert crm_says(cluster, "service 'vm:107' - migration failed")
    assert crm_says(cluster, f"migrate service 'vm:106' to node '{source}' (running)")


def test_negative_affinity_refuses_the_move_with_pves_text_and_fields(make_sim):
    """Moving vm:104 onto pve5, where its anti-affine partner vm:105 is, is refused by the CRM
    ("crm command '...' error - service 'vm:105' on node 'pve5' in negative affinity with service
    'vm:104'"); the API answer carries 'blocking-resources' and the migrate precondition lists
    pve5 in not_allowed_nodes with 'blocking-ha-resources' (qemu-server migrate_vm_precondition)."""
    sim = make_sim("smb")
    api = token_api(sim.info)
    precondition = call(api, "GET", "/nodes/pve4/qemu/104/migrate")
    blocking = [{"sid": "vm:105", "cause": "resource-affinity"}]
    assert precondition["not_allowed_nodes"]["pve5"]["blocking-ha-resources"] == blocking
    assert "pve5" not in precondition["allowed_nodes"]
    answer = call(api, "POST", "/cluster/ha/resources/vm:104/migrate", node="pve5")
    assert answer == {"sid": "vm:104", "requested-node": "pve5", "blocking-resources": blocking}
    upid = call(api, "POST", "/nodes/pve4/qemu/104/migrate", target="pve5", online=1)
    assert ":hamigrate:104:" in upid
    sim.cluster.step(60)
    assert sim.cluster.guests[104].node == "pve4" and tasks_of(sim.cluster, "qmigrate", 104) == []
    assert crm_says(
        sim.cluster,
        "crm command 'migrate vm:104 pve5' error - service 'vm:105' on node 'pve5' in negative affinity"
        " with service 'vm:104'",
    )


def test_ha_migrate_to_an_offline_node_is_dropped_silently(homelab_cluster):
    """Manager.pm update_crm_commands: "crm command error - node not online" and nothing else:
    the hamigrate task is OK, no qmigrate ever starts, the guest stays."""
    cluster = homelab_cluster
    cluster.crash_node("pve-big")
    cluster.step(10)
    upid = cluster.migrate("qemu", "pve-mini1", 100, {"target": "pve-big", "online": 1}, "root@pam")
    cluster.step(120)
    assert cluster.tasks_by_upid[upid].exitstatus == "OK"
    assert tasks_of(cluster, "qmigrate", 100) == [] and cluster.guests[100].node == "pve-mini1"
    assert crm_says(cluster, "crm command error - node not online: migrate vm:100 pve-big")
    assert service(cluster, "vm:100").state == "started"


def test_ha_start_and_stop_go_through_the_ha_manager(homelab_cluster):
    """qemu-server vm_shutdown/vm_start of an HA guest fork 'hastop'/'hastart' (ha-manager
    crm-command stop / set --state started); the LRM does the actual qmshutdown/qmstart."""
    cluster = homelab_cluster
    upid = cluster.guest_power("qemu", "pve-mini1", 100, "shutdown", "root@pam")
    assert cluster.tasks_by_upid[upid].type == "hastop"
    step_until(cluster, lambda: cluster.guests[100].status == "stopped", limit=120)
    step_until(cluster, lambda: service(cluster, "vm:100").state == "stopped", limit=30)
    assert cluster.guests[100].ha_state == "stopped" and tasks_of(cluster, "qmshutdown", 100)
    upid = cluster.guest_power("qemu", "pve-mini1", 100, "start", "root@pam")
    assert cluster.tasks_by_upid[upid].type == "hastart"
    step_until(cluster, lambda: cluster.guests[100].status == "running", limit=60)
    assert [t.user for t in tasks_of(cluster, "qmstart", 100)] == ["root@pam"]


# ----- node shutdown (LRM.pm shutdown_request, Nodes.pm stopall) -----
def test_shutdown_policy_migrate_drains_ha_guests_live_before_power_off(smb):
    """shutdown_policy=migrate: the LRM goes into maintenance mode, the node's hastate turns
    'maintenance', the CRM live-migrates every HA service away (qmigrate, no downtime) and the
    node powers off only once none is left; non-HA guests get a graceful stopall first."""
    node = "pve2"
    ha_guests = [g for g in smb.guests.values() if g.node == node and g.ha and g.status == "running"]
    plain = [g for g in smb.guests.values() if g.node == node and not g.ha and g.status == "running"]
    assert ha_guests and plain
    smb.shutdown_node(node)
    step_until(smb, lambda: node_hastate(smb, node) == "maintenance", limit=600)
    assert all(g.status == "stopped" for g in plain), "pve-guests (stopall) stops before pve-ha-lrm"
    step_until(smb, lambda: smb.nodes[node].power == "off", limit=3600)
    for guest in ha_guests:
        assert guest.node != node and guest.status == "running"
        moves = tasks_of(smb, "qmigrate", guest.vmid)
        assert moves and moves[-1].exitstatus == "OK" and moves[-1].end_time <= smb.now
    assert not tasks_of(smb, "qmstart"), "nothing was cold-started"
    assert all(t.type != "qmstop" for t in smb.tasks)
    smb.step(10)
    assert node_hastate(smb, node) == "maintenance", "an LRM that left in maintenance keeps the node there"


def test_shutdown_policy_failover_stops_then_recovers_after_the_fence_delay(homelab_cluster):
    """shutdown_policy=failover: the LRM stops the node's HA services and releases its lock; the
    CRM keeps them 'started' until the node has been offline for 60 s (fence_delay), fences it at
    once (lock free) and recovers them on another node."""
    cluster = homelab_cluster
    cluster.update_options({"ha": "shutdown_policy=failover"})
    cluster.shutdown_node("pve-mini2")
    step_until(cluster, lambda: cluster.nodes["pve-mini2"].power == "off", limit=600)
    off_at = cluster.now
    assert cluster.guests[112].status == "stopped" and service(cluster, "ct:112").state == "started"
    step_until(cluster, lambda: service(cluster, "ct:112").node != "pve-mini2", limit=120)
    assert 50 <= cluster.now - off_at <= 70, "60 s after the last CRM round that saw the node online"
    assert crm_says(cluster, "fencing: acknowledged - got agent lock for node 'pve-mini2'")
    step_until(cluster, lambda: cluster.guests[112].status == "running", limit=60)
    assert cluster.guests[112].node == "pve-mini1"


def test_conditional_reboot_freezes_ha_services_until_the_node_is_back(homelab_cluster):
    """shutdown_policy=conditional with a reboot (or freeze): the services are stopped and frozen
    (hastate 'freeze') on the node, not recovered; the LRM starts them again after the boot."""
    cluster = homelab_cluster
    cluster.shutdown_node("pve-mini2", reboot=True)
    step_until(cluster, lambda: service(cluster, "ct:112").state == "freeze", limit=300)
    step_until(cluster, lambda: cluster.nodes["pve-mini2"].power == "booting", limit=300)
    assert cluster.guests[112].node == "pve-mini2"
    step_until(cluster, lambda: cluster.guests[112].status == "running", limit=300)
    assert cluster.guests[112].node == "pve-mini2" and service(cluster, "ct:112").state == "started"


def test_stopall_is_graceful_in_reverse_startup_order_with_the_timeout(tmp_path):
    """Nodes.pm stopall: reverse startup order (order groups one after another), qmshutdown with
    the 180 s timeout, then a forced stop for a guest that ignores the request."""
    spec = json.loads((SCENARIO_DIR / "homelab.json").read_text())
    by_vmid = {g["vmid"]: g for g in spec["guests"]}
    by_vmid[200]["startup"] = "order=1"
    by_vmid[201]["startup"] = "order=2"
    by_vmid[201]["shutdown_seconds"] = 500
    path = tmp_path / "ordered.json"
    path.write_text(json.dumps(spec))
    cluster = SimCluster(load_scenario(path), manual_clock=True)
    task = cluster.power.stop_all("pve-big", "root@pam")
    step_until(cluster, lambda: not task.running(cluster.now), limit=600)
    assert [text for _, text in task.lines][:-1] == [
        "Stopping VM 204 (timeout = 180 seconds)",
        "Stopping CT 203 (timeout = 180 seconds)",
        "Stopping VM 201 (timeout = 180 seconds)",
        "Stopping VM 200 (timeout = 180 seconds)",
    ]
    forced = tasks_of(cluster, "qmshutdown", 201)[0]
    assert "VM still running - terminating now with SIGTERM" in [text for _, text in forced.lines]
    assert tasks_of(cluster, "qmshutdown", 200)[0].starttime >= forced.end_time - 1, "order 1 waits for order 2"


# ----- crash, fencing and quorum loss (NodeStatus.pm, Manager.pm, LRM.pm) -----
def test_crashed_node_is_fenced_after_60s_and_running_and_stopped_services_recovered(smb):
    """A crashed node's services stay 'started' for fence_delay (60 s), then 'fence'; once its
    agent lock expires (120 s after the LRM's last renewal) they go to 'recovery' and restart
    elsewhere, within their rules (vm:104 to pve5, its only other allowed node). Stopped HA
    services are recovered too (next_state_stopped -> fence): vm:129 ends 'stopped' elsewhere."""
    crash_at = smb.now
    smb.crash_node("pve4")
    smb.step(50)
    assert service(smb, "vm:110").state == "started" and node_hastate(smb, "pve4") == "unknown"
    step_until(smb, lambda: service(smb, "vm:110").state == "fence", limit=30)
    assert 60 <= smb.now - crash_at <= 70
    assert service(smb, "vm:129").state == "fence" and node_hastate(smb, "pve4") == "fence"
    step_until(smb, lambda: service(smb, "vm:110").state != "fence", limit=200)
    assert 110 <= smb.now - crash_at <= 140
    step_until(smb, lambda: smb.guests[110].status == "running", limit=60)
    assert smb.guests[110].node != "pve4" and smb.guests[104].node == "pve5"
    step_until(smb, lambda: service(smb, "vm:129").state == "stopped", limit=60)
    assert smb.guests[129].node != "pve4" and smb.guests[129].status == "stopped"
    assert crm_says(smb, "recover service 'vm:129' from fenced node 'pve4' to node")


def test_quorum_loss_self_fences_nodes_with_active_ha_services(make_sim):
    """LRM.pm: without quorum the agent lock cannot be renewed ('lost_agent_lock') and the
    watchdog resets the node about 60 s later; after the reset the node waits for quorum:
    startall logs 'waiting for quorum ...' and no guest starts."""
    sim = make_sim("quorum3")
    cluster = sim.cluster
    cluster.crash_node("pve2")
    cluster.crash_node("pve3")
    lost_at = cluster.now
    waited = step_until(cluster, lambda: cluster.nodes["pve1"].power == "booting", limit=120)
    assert 50 <= waited <= 70
    assert crm_says(cluster, "watchdog expired on node 'pve1' - self-fence (reset)")
    step_until(cluster, lambda: cluster.nodes["pve1"].power == "online", limit=120)
    cluster.step(30)
    startall = tasks_of(cluster, "startall")[-1]
    assert [text for _, text in startall.lines] == ["waiting for quorum ..."] and startall.running(cluster.now)
    assert all(g.status == "stopped" for g in cluster.guests.values() if g.node == "pve1")
    assert cluster.now - lost_at > 100
    api = token_api(sim.info)
    status = call(api, "GET", "/cluster/ha/status/current")
    assert status[0]["status"] == "No quorum on node 'pve1'!"
    with pytest.raises(ResourceException):
        api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    cluster.power.boot(cluster.nodes["pve2"])
    step_until(cluster, lambda: not startall.running(cluster.now), limit=300)
    assert [text for _, text in startall.lines][:2] == ["waiting for quorum ...", "got quorum"]


def test_nodes_without_active_ha_services_survive_quorum_loss(homelab_cluster):
    """Only nodes whose LRM holds the watchdog (active HA services) or the CRM master reset:
    pve-mini2 alone without its HA container keeps running."""
    cluster = homelab_cluster
    cluster.migrate("lxc", "pve-mini2", 112, {"target": "pve-mini1", "restart": 1}, "root@pam")
    step_until(
        cluster,
        lambda: service(cluster, "ct:112").node == "pve-mini1" and service(cluster, "ct:112").state == "started",
    )
    cluster.step(20)
    cluster.crash_node("pve-mini1")
    cluster.crash_node("pve-big")
    cluster.step(300)
    assert cluster.nodes["pve-mini2"].power == "online"


# ----- status shapes (API2/HA/Status.pm, API2/Cluster.pm resources) -----
def test_ha_status_texts(make_sim):
    """/cluster/ha/status/current: a 'fencing' entry (armed), the master text with its CRS mode,
    LRMs 'active, watchdog active' with services and 'idle, watchdog standby' without, and a
    maintenance LRM as 'maintenance mode'."""
    sim = make_sim("homelab")
    api = token_api(sim.info)
    status = {e["id"]: e for e in call(api, "GET", "/cluster/ha/status/current")}
    assert status["fencing"]["status"] == "armed (CRM watchdog active)" and status["fencing"]["armed-state"] == "armed"
    assert status["master"]["status"] == "pve-mini1 (active, Thu Jan  1 00:00:00 2026) - static load CRS"
    assert status["lrm:pve-mini1"]["status"] == "pve-mini1 (active, watchdog active, Thu Jan  1 00:00:00 2026)"
    assert status["lrm:pve-big"]["status"] == "pve-big (active, watchdog active, Thu Jan  1 00:00:00 2026)"  # postgres
    assert status["service:vm:100"]["status"] == "vm:100 (pve-mini1, started)"
    resources = call(api, "GET", "/cluster/resources", type="node")
    assert {r["node"]: r["hastate"] for r in resources} == {
        "pve-mini1": "online",
        "pve-mini2": "online",
        "pve-big": "online",
    }
    smb = {e["id"]: e for e in call(token_api(make_sim("smb").info), "GET", "/cluster/ha/status/current")}
    assert smb["lrm:pve8"]["status"] == "pve8 (idle, watchdog standby, Thu Jan  1 00:00:00 2026)"  # no HA service


# ----- scenarios -----
def test_homelab_minis_carry_the_night_but_not_the_day(homelab_cluster):
    """homelab's dev lab on pve-big is diurnal with a deep night (its ``night`` factors): at 02:00
    the two minis could hold every running guest that can leave it (all but the GPU batch VM) with
    room to spare, at 14:00 they could not, so
    a power policy has a reason to wake pve-big in the morning and let it sleep at night."""
    cluster = homelab_cluster
    minis = [n for n in cluster.nodes.values() if n.name != "pve-big"]

    def demand(hour: int) -> tuple[float, float]:
        at = cluster.start_time + hour * 3600
        mem = sum(cluster.node_usage(n, at)[1] for n in minis)
        cpu = sum(cluster.node_usage(n, at)[0] * n.cpus for n in minis)
        for guest in cluster.guests.values():
            if guest.node == "pve-big" and guest.status == "running" and not guest.devices:  # 204 sleeps with it
                used_cpu, used_mem = cluster.guest_usage(guest, at)
                mem, cpu = mem + used_mem, cpu + used_cpu * guest.cores
        return mem / sum(n.memory for n in minis), cpu / sum(n.cpus for n in minis)

    night_mem, night_cpu = demand(2)
    day_mem, day_cpu = demand(14)
    assert night_mem < 0.6 and night_cpu < 0.4
    assert day_mem > 0.85 and day_cpu > 1.0
    assert all(n.mac for n in SimCluster("smb", manual_clock=True).nodes.values()), "smb nodes can be woken"
    assert cluster.nodes["pve-big"].mac == "3C:EC:EF:42:9B:20"
