"""Migrations through proxmoxer over HTTPS: the happy path, PVE's refusals, failures and aborts.

All on the homelab scenario with a manual clock: pve-mini1 (always on, API entry node),
pve-mini2 (always on) and pve-big. Guests used: 103 nextcloud (qemu, NFS, 8 GiB), 104 jellyfin
(qemu, local-lvm disk), 102 unifi (lxc, NFS), 100 homeassistant (qemu, HA-managed), 200 gitlab
(qemu on big-zfs, which only pve-big has).
"""

from __future__ import annotations

import pytest
import requests
from proxmoxer.core import ResourceException

from tests.sim.clients import call, raw, token_api


def resource(api, vmid: int) -> dict:
    return next(r for r in call(api, "GET", "/cluster/resources", type="vm") if r["vmid"] == vmid)


def task_status(api, node: str, upid: str) -> dict:
    return call(api, "GET", f"/nodes/{node}/tasks/{upid}/status")


def task_log(api, node: str, upid: str) -> list[str]:
    return [line["t"] for line in call(api, "GET", f"/nodes/{node}/tasks/{upid}/log", limit=0)]


def run_to_end(sim, api, node: str, upid: str, *, max_seconds: int = 3600) -> dict:
    """Steps simulated time until the task stops; returns its final status."""
    for _ in range(max_seconds):
        status = task_status(api, node, upid)
        if status["status"] == "stopped":
            return status
        sim.cluster.step(1)
    raise AssertionError(f"task {upid} still running after {max_seconds} simulated seconds")


def refusal(func, **params) -> ResourceException:
    with pytest.raises(ResourceException) as caught:
        func(**params)
    return caught.value


def test_live_migration_locks_flips_node_unlocks_and_logs_progress(homelab):
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    assert upid.startswith("UPID:pve-mini1:") and upid.endswith(":qmigrate:103:root@pam!pvetop:")
    homelab.cluster.step(5)
    midway = resource(api, 103)
    assert (midway["node"], midway.get("lock"), midway["status"]) == ("pve-mini1", "migrate", "running")
    assert task_status(api, "pve-mini1", upid)["status"] == "running"
    seen = set()
    while task_status(api, "pve-mini1", upid)["status"] == "running":
        entry = resource(api, 103)
        seen.add((entry["node"], entry.get("lock")))
        homelab.cluster.step(0.5)
    assert ("pve-big", "migrate") in seen, "the node flips before the lock clears"
    final = task_status(api, "pve-mini1", upid)
    assert final["exitstatus"] == "OK" and final["type"] == "qmigrate" and final["id"] == "103"
    after = resource(api, 103)
    assert after["node"] == "pve-big" and "lock" not in after and after["status"] == "running"
    log = task_log(api, "pve-mini1", upid)
    assert log[0].endswith("starting migration of VM 103 to node 'pve-big' (192.168.1.20)")
    progress = [line for line in log if "migration active, transferred" in line]
    assert len(progress) >= 2 and all("VM-state" in line and "MiB/s" in line for line in progress)
    assert any("migration finished successfully (duration 00:00:" in line for line in log)
    assert log[-1] == "TASK OK"
    with pytest.raises(ResourceException) as gone:
        api.nodes("pve-mini1").qemu(103).status.current.get()
    assert gone.value.status_code == 500
    assert gone.value.content == "Configuration file 'nodes/pve-mini1/qemu-server/103.conf' does not exist"


def migration_seconds(sim, **params) -> float:
    api = token_api(sim.info)
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-mini2", online=1, **params)
    run_to_end(sim, api, "pve-mini1", upid)
    task = sim.cluster.tasks_by_upid[upid]
    return task.end_time - task.starttime


def test_migration_time_follows_memory_over_bandwidth_and_bwlimit(make_sim):
    default = migration_seconds(make_sim())
    limited = migration_seconds(make_sim(), bwlimit=10 * 1024)  # 10 MiB/s instead of 110 MiB/s
    assert limited > 5 * default
    guest = make_sim().cluster.guests[103]
    assert default < guest.memory / (110 * 1024**2) + 10


def test_container_restart_migration_stops_moves_and_starts_it(homelab):
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").lxc(102).migrate.post(target="pve-mini2", restart=1)
    assert ":vzmigrate:102:" in upid
    homelab.cluster.step(5)
    midway = resource(api, 102)
    assert (midway["status"], midway["lock"]) == ("stopped", "migrate")
    assert run_to_end(homelab, api, "pve-mini1", upid)["exitstatus"] == "OK"
    after = resource(api, 102)
    assert (after["node"], after["status"], after.get("lock")) == ("pve-mini2", "running", None)
    log = task_log(api, "pve-mini1", upid)
    assert log[0].endswith("shutdown CT 102")
    assert any("start container on target node" in line for line in log)


def test_running_vm_without_online_is_refused(homelab):
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-mini1").qemu(103).migrate.post, target="pve-big")
    assert (error.status_code, error.content) == (500, "can't migrate running VM without --online")


def test_target_is_local_node_is_a_parameter_error(homelab):
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-mini1").qemu(103).migrate.post, target="pve-mini1", online=1)
    assert (error.status_code, error.content) == (400, "Parameter verification failed.")
    assert error.errors == {"target": "target is local node."}


def test_unknown_target_and_guest_on_another_node_are_500(homelab):
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-mini1").qemu(103).migrate.post, target="pve-nope", online=1)
    assert (error.status_code, error.content) == (500, "no such cluster node 'pve-nope'")
    error = refusal(api.nodes("pve-mini2").qemu(103).migrate.post, target="pve-big", online=1)
    assert (error.status_code, error.content) == (
        500,
        "Configuration file 'nodes/pve-mini2/qemu-server/103.conf' does not exist",
    )


def test_locked_guest_is_refused(homelab):
    """qemu-server Qemu.pm migrate_vm checks a VM's lock synchronously (500); pve-container checks a
    container's only in the task (LXC/Migrate.pm prepare), which dies before locking anything."""
    api = token_api(homelab.info)
    api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    error = refusal(api.nodes("pve-mini1").qemu(103).migrate.post, target="pve-mini2", online=1)
    assert (error.status_code, error.content) == (500, "VM is locked (migrate)")
    api.nodes("pve-mini1").lxc(102).migrate.post(target="pve-big", restart=1)
    homelab.cluster.step(5)  # shut down, then locked
    upid = api.nodes("pve-mini1").lxc(102).migrate.post(target="pve-mini2", restart=1)
    assert task_status(api, "pve-mini1", upid)["exitstatus"] == "migration aborted"
    assert task_log(api, "pve-mini1", upid)[-2].endswith(
        "ERROR: migration aborted (duration 00:00:00): CT is locked (migrate)"
    )


def test_running_container_needs_restart_mode(homelab):
    """pve-container LXC.pm migrate_vm: only "can't migrate running container without --online or
    --restart" is synchronous; ``online`` (even with ``restart``) dies in the task's prepare."""
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-mini1").lxc(102).migrate.post, target="pve-big")
    assert (error.status_code, error.content) == (500, "can't migrate running container without --online or --restart")
    for options in ({"online": 1}, {"online": 1, "restart": 1}):
        upid = api.nodes("pve-mini1").lxc(102).migrate.post(target="pve-big", **options)
        assert task_status(api, "pve-mini1", upid)["exitstatus"] == "migration aborted"
        assert task_log(api, "pve-mini1", upid)[-2].endswith("lxc live migration is currently not implemented")
    assert (resource(api, 102)["node"], resource(api, 102)["status"]) == ("pve-mini1", "running")


def test_live_migration_with_local_disks_fails_without_with_local_disks(homelab):
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(104).migrate.post(target="pve-big", online=1)
    status = run_to_end(homelab, api, "pve-mini1", upid)
    assert status["exitstatus"] == "migration aborted"
    log = task_log(api, "pve-mini1", upid)
    assert any("can't live migrate attached local disks without with-local-disks option" in line for line in log)
    assert log[-1] == "TASK ERROR: migration aborted"
    entry = resource(api, 104)
    assert entry["node"] == "pve-mini1" and "lock" not in entry


def test_with_local_disks_copies_the_disk_then_the_memory(homelab):
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(104).migrate.post(**{"target": "pve-big", "online": 1, "with-local-disks": 1})
    assert run_to_end(homelab, api, "pve-mini1", upid)["exitstatus"] == "OK"
    log = task_log(api, "pve-mini1", upid)
    mirror = [i for i, line in enumerate(log) if "drive-scsi0: transferred" in line]
    memory = [i for i, line in enumerate(log) if "migration active, transferred" in line]
    assert mirror and memory and max(mirror) < min(memory)
    assert resource(api, 104)["node"] == "pve-big"


def test_offline_target_fails_the_task(homelab):
    api = token_api(homelab.info)
    homelab.cluster.crash_node("pve-big")
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    status = run_to_end(homelab, api, "pve-mini1", upid)
    assert status["exitstatus"] == "migration aborted"
    assert any("No route to host" in line for line in task_log(api, "pve-mini1", upid))
    assert resource(api, 103)["node"] == "pve-mini1"


def test_injected_ram_phase_failure_ends_with_problems_and_the_guest_stays_on_its_source(homelab):
    """pve-guest-common AbstractMigrate.pm migrate + qemu-server QemuMigrate.pm phase2_cleanup: a
    failure while the RAM is copied is logged, the migration is cancelled, the VM keeps running
    on its source and the task ends ``migration problems``."""
    api = token_api(homelab.info)
    answer = requests.post(
        f"{homelab.info['control_url']}/faults",
        json={"migration_failure_rate": 1.0},
        verify=homelab.info["ca_file"],
        timeout=15,
    )
    assert answer.status_code == 200 and answer.json()["faults"]["migration_failure_rate"] == 1.0
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    status = run_to_end(homelab, api, "pve-mini1", upid)
    assert status["exitstatus"] == "migration problems"
    raw_log = task_log(api, "pve-mini1", upid)
    log = [line.split(" ", 2)[-1] for line in raw_log[:-1]]  # without the time stamps
    assert "ERROR: online migrate failure - aborting" in log and "aborting phase 2 - cleanup resources" in log
    assert log[-1].startswith("ERROR: migration finished with problems (duration")
    assert raw_log[-1] == "TASK ERROR: migration problems"
    entry = resource(api, 103)
    assert (entry["node"], entry.get("lock"), entry["status"]) == ("pve-mini1", None, "running")
    errors = call(api, "GET", "/nodes/pve-mini1/tasks", errors=1)
    assert [t["upid"] for t in errors] == [upid] and errors[0]["status"] == "migration problems"


def set_faults(sim, **faults) -> None:
    answer = requests.post(f"{sim.info['control_url']}/faults", json=faults, verify=sim.info["ca_file"], timeout=15)
    assert answer.status_code == 200, answer.text


def test_injected_ram_failure_strikes_after_the_disks_are_mirrored(homelab):
    """``ram_failure_rate``: the failure falls in the memory copy of a live migration, so every
    local disk has been mirrored first; the VM stays on its source, unlocked and running."""
    api = token_api(homelab.info)
    set_faults(homelab, ram_failure_rate=1.0)
    upid = api.nodes("pve-mini1").qemu(104).migrate.post(target="pve-big", online=1, **{"with-local-disks": 1})
    status = run_to_end(homelab, api, "pve-mini1", upid)
    assert status["exitstatus"] == "migration problems"
    log = [line.split(" ", 2)[-1] for line in task_log(api, "pve-mini1", upid)]
    mirrored = next(i for i, line in enumerate(log) if "(100.00%)" in line and line.endswith("ready"))
    failed = log.index("ERROR: online migrate failure - aborting")
    assert any(line.startswith("migration active, transferred") for line in log[mirrored:failed])
    entry = resource(api, 104)
    assert (entry["node"], entry.get("lock"), entry["status"]) == ("pve-mini1", None, "running")


def test_a_lost_answer_leaves_the_migration_started(homelab):
    """``lost_answer_rate``: the cluster carries the migrate POST out, the answer never comes, the
    client times out; the node's task list shows the migration running."""
    set_faults(homelab, lost_answer_rate=1.0)
    with pytest.raises(requests.exceptions.Timeout):
        token_api(homelab.info, timeout=1).nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    api = token_api(homelab.info)
    running = call(api, "GET", "/nodes/pve-mini1/tasks", source="active", vmid=103)
    assert [t["type"] for t in running] == ["qmigrate"]
    assert run_to_end(homelab, api, "pve-mini1", running[0]["upid"])["exitstatus"] == "OK"
    assert resource(api, 103)["node"] == "pve-big"


def test_a_lost_answer_held_briefly_closes_the_connection_before_the_client_times_out(make_sim):
    """``lost_answer_hold``: the lost answer's connection is dropped after that long, not held
    until the client's timeout (a soak loses dozens); the migration started all the same."""
    sim = make_sim("homelab", lost_answer_hold=0.2)
    set_faults(sim, lost_answers=1)
    client = token_api(sim.info, timeout=30)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    api = token_api(sim.info)
    [running] = call(api, "GET", "/nodes/pve-mini1/tasks", source="active", vmid=103)
    assert running["type"] == "qmigrate" and sim.cluster.injected["migrate answer lost"] == 1


def test_count_faults_strike_the_next_ones_then_stop(homelab):
    """``lost_answers`` / ``ram_failures``: the next N migrate POSTs lose their answer, the next N
    live migrations fail in their RAM phase, whatever the rates; then they are used up."""
    set_faults(homelab, lost_answers=1, ram_failures=1)
    with pytest.raises(requests.exceptions.Timeout):
        token_api(homelab.info, timeout=1).nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    api = token_api(homelab.info)
    [running] = call(api, "GET", "/nodes/pve-mini1/tasks", source="active", vmid=103)
    assert run_to_end(homelab, api, "pve-mini1", running["upid"])["exitstatus"] == "migration problems"
    assert homelab.cluster.injected["migrate answer lost"] == 1
    assert homelab.cluster.injected["migration failure (ram)"] == 1
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)  # answered, and goes well
    assert run_to_end(homelab, api, "pve-mini1", upid)["exitstatus"] == "OK"
    assert (homelab.cluster.faults.lost_answers, homelab.cluster.faults.ram_failures) == (0, 0)


def test_stopping_the_task_aborts_the_migration(homelab):
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    homelab.cluster.step(10)
    assert api.nodes("pve-mini1").tasks(upid).delete() is None
    status = task_status(api, "pve-mini1", upid)
    assert (status["status"], status["exitstatus"]) == ("stopped", "migration aborted")
    homelab.cluster.step(600)
    entry = resource(api, 103)
    assert (entry["node"], entry.get("lock")) == ("pve-mini1", None)
    assert task_log(api, "pve-mini1", upid)[-1] == "TASK ERROR: migration aborted"


def test_ha_managed_guest_goes_through_hamigrate_then_qmigrate(homelab):
    """qemu-server migrate_vm forks 'hamigrate' for an HA guest (``ha-manager migrate``); the CRM
    takes the command on its next 10 s round (state 'migrate'), the LRM runs the qmigrate as
    root@pam, and the service turns 'started' on the target only on the CRM round after that
    (pve-ha-manager Manager.pm update_crm_commands, next_state_migrate_relocate)."""
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(100).migrate.post(target="pve-mini2", online=1)
    assert ":hamigrate:100:" in upid
    assert run_to_end(homelab, api, "pve-mini1", upid)["exitstatus"] == "OK"
    assert task_log(api, "pve-mini1", upid)[0] == "Requesting HA migration for VM 100 to node pve-mini2"
    homelab.cluster.step(10)
    assert resource(api, 100)["hastate"] == "migrate"
    homelab.cluster.step(5)
    started = task_status(api, "pve-mini1", upid)["starttime"]
    found = call(
        api,
        "GET",
        "/nodes/pve-mini1/tasks",
        typefilter="qmigrate",
        vmid=100,
        since=started,
        source="all",
        start=0,
        limit=10,
    )
    assert len(found) == 1 and found[0]["user"] == "root@pam"
    assert run_to_end(homelab, api, "pve-mini1", found[0]["upid"])["exitstatus"] == "OK"
    entry = resource(api, 100)
    assert (entry["node"], entry["hastate"], entry.get("lock")) == ("pve-mini2", "migrate", None)
    homelab.cluster.step(20)
    entry = resource(api, 100)
    assert (entry["node"], entry["hastate"], entry.get("lock")) == ("pve-mini2", "started", None)


def test_ha_resource_migrate_endpoint_queues_the_move(homelab):
    api = token_api(homelab.info)
    answer = call(api, "POST", "/cluster/ha/resources/ct:112/migrate", node="pve-mini1")
    assert answer["sid"] == "ct:112" and answer["requested-node"] == "pve-mini1"
    homelab.cluster.step(60)
    assert resource(api, 112)["node"] == "pve-mini1"


def test_migrate_preconditions(homelab):
    api = token_api(homelab.info)
    local = call(api, "GET", "/nodes/pve-mini1/qemu/104/migrate")
    assert local["running"] == 1 and sorted(local["allowed_nodes"]) == ["pve-big", "pve-mini2"]
    assert [d["volid"] for d in local["local_disks"]] == ["local-lvm:vm-104-disk-0"]
    pinned = call(api, "GET", "/nodes/pve-big/qemu/200/migrate")
    assert pinned["allowed_nodes"] == []
    assert pinned["not_allowed_nodes"] == {
        "pve-mini1": {"unavailable_storages": ["big-zfs"]},
        "pve-mini2": {"unavailable_storages": ["big-zfs"]},
    }
    container = call(api, "GET", "/nodes/pve-mini1/lxc/102/migrate")
    assert set(container) >= {"running", "allowed-nodes", "not-allowed-nodes"}


def test_task_log_paging_and_task_list_filters(homelab):
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    assert call(api, "GET", "/nodes/pve-mini1/tasks") == []  # still running: the archive is empty
    assert [t["upid"] for t in call(api, "GET", "/nodes/pve-mini1/tasks", source="active")] == [upid]
    run_to_end(homelab, api, "pve-mini1", upid)
    everything = task_log(api, "pve-mini1", upid)
    answer = raw(homelab.info, "GET", f"/nodes/pve-mini1/tasks/{upid}/log", params={"start": 2, "limit": 3}).json()
    assert answer["total"] == len(everything)
    assert answer["data"] == [{"n": 3 + i, "t": everything[2 + i]} for i in range(3)]
    archived = call(api, "GET", "/nodes/pve-mini1/tasks", typefilter="qmigrate", vmid=103)
    assert [t["upid"] for t in archived] == [upid] and archived[0]["status"] == "OK"
    assert call(api, "GET", "/nodes/pve-mini1/tasks", typefilter="vzmigrate") == []
    assert upid in [t["upid"] for t in call(api, "GET", "/cluster/tasks")]


def test_read_only_token_cannot_migrate(homelab):
    info = dict(
        homelab.info,
        user=homelab.info["readonly_user"],
        token_name=homelab.info["readonly_token_name"],
        token_value=homelab.info["readonly_token_value"],
    )
    reader = token_api(info)
    error = refusal(reader.nodes("pve-mini1").qemu(103).migrate.post, target="pve-big", online=1)
    assert (error.status_code, error.content) == (403, "Permission check failed (/vms/103, VM.Migrate)")
    assert resource(reader, 103)["node"] == "pve-mini1"


def test_migrateall_moves_every_guest_it_can_two_at_a_time(homelab):
    """pve-manager Nodes.pm migrateall: every guest of the node (templates too), VMs after the
    migrate precondition ('Check VM x: ...', skipped when the target lacks their storage),
    ``max-workers`` at a time; failures of single migrations do not fail it: it ends 'All jobs
    finished, used N workers in total.' and TASK OK."""
    api = token_api(homelab.info)
    upid = call(
        api, "POST", "/nodes/pve-big/migrateall", target="pve-mini2", **{"max-workers": 2, "with-local-disks": 1}
    )
    assert ":migrateall::" in upid
    homelab.cluster.step(1)
    assert len(homelab.cluster.migrations) == 2
    status = run_to_end(homelab, api, "pve-big", upid, max_seconds=7200)
    assert status["exitstatus"] == "OK"
    log = task_log(api, "pve-big", upid)
    assert log[:3] == [
        "Check VM 200: skip VM 200 - precondition check failed:",
        "  Has unavailable storages: big-zfs",
        "Check VM 201: precondition check passed",
    ]
    assert "Migrating CT 203" in log and "All jobs finished, used 5 workers in total." in log
    placement = {g["vmid"]: g["node"] for g in call(api, "GET", "/cluster/resources", type="vm") if g["vmid"] >= 200}
    assert placement == {
        200: "pve-big",
        201: "pve-mini2",
        202: "pve-mini2",
        203: "pve-big",
        204: "pve-big",
        205: "pve-mini2",
        9000: "pve-mini2",
    }


def test_migrateall_needs_max_workers(homelab):
    """Nodes.pm migrateall dies before forking when neither ``max-workers`` nor datacenter
    ``max_workers`` is set (homelab sets neither)."""
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-big").migrateall.post, target="pve-mini2")
    assert (error.status_code, error.content) == (
        500,
        "either 'max-workers' parameter or max_workers in datacenter.cfg must be set!",
    )
    call(api, "PUT", "/cluster/options", max_workers=3)
    assert ":migrateall::" in call(api, "POST", "/nodes/pve-big/migrateall", target="pve-mini2", vms="201")


def test_migrateall_without_a_started_worker_fails(homelab):
    """Nodes.pm migrateall: when every guest was skipped it dies 'no migrations worker started...'."""
    api = token_api(homelab.info)
    upid = call(api, "POST", "/nodes/pve-big/migrateall", target="pve-mini2", vms="200", **{"max-workers": 1})
    assert run_to_end(homelab, api, "pve-big", upid)["exitstatus"] == "no migrations worker started..."
