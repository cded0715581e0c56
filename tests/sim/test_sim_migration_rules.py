"""Migration answers and refusals as Proxmox VE 9.2 gives them (qemu-server API2/Qemu.pm,
pve-container API2/LXC.pm, QemuMigrate.pm, LXC/Migrate.pm), on the homelab scenario.

Homelab: pve-mini1 runs 103 (nextcloud, shared NFS) and 104 (jellyfin, local-lvm); pve-big runs
200 (gitlab) and 203 (builder, CT) on big-zfs, a pool only pve-big has, and 204 (render-batch:
GPU passthrough and a local ISO, the VM that sleeps with pve-big).
"""

from __future__ import annotations

import pytest
import requests
from proxmoxer.core import ResourceException

from tests.sim.clients import call, password_api, token_api


def refusal(method, **params) -> ResourceException:
    with pytest.raises(ResourceException) as caught:
        method(**params)
    return caught.value


def resource(api, vmid: int) -> dict:
    return next(e for e in call(api, "GET", "/cluster/resources", type="vm") if e["vmid"] == vmid)


def finish(sim, api, node: str, upid: str) -> tuple[dict, list[str]]:
    for _ in range(7200):
        status = call(api, "GET", f"/nodes/{node}/tasks/{upid}/status")
        if status["status"] == "stopped":
            log = [entry["t"] for entry in call(api, "GET", f"/nodes/{node}/tasks/{upid}/log", limit=0)]
            return status, log
        sim.cluster.step(1)
    raise AssertionError(f"task {upid} never stopped")


def test_precondition_lists_every_other_node_and_ignores_target(homelab):
    """B12, Qemu.pm migrate_vm_precondition + QemuServer.pm check_local_storage_availability:
    every other node is a key of ``not_allowed_nodes`` ({} when allowed); ``target`` changes nothing;
    ``dependent-ha-resources`` only for HA guests."""
    api = token_api(homelab.info)
    gitlab = call(api, "GET", "/nodes/pve-big/qemu/200/migrate")
    assert gitlab["not_allowed_nodes"] == {
        "pve-mini1": {"unavailable_storages": ["big-zfs"]},
        "pve-mini2": {"unavailable_storages": ["big-zfs"]},
    }
    assert gitlab["allowed_nodes"] == [] and "dependent-ha-resources" not in gitlab
    assert call(api, "GET", "/nodes/pve-big/qemu/200/migrate", target="pve-mini1") == gitlab
    nextcloud = call(api, "GET", "/nodes/pve-mini1/qemu/103/migrate", target="pve-big")
    assert nextcloud["not_allowed_nodes"] == {"pve-mini2": {}, "pve-big": {}}
    assert nextcloud["allowed_nodes"] == ["pve-mini2", "pve-big"]
    assert call(api, "GET", "/nodes/pve-mini1/qemu/100/migrate")["dependent-ha-resources"] == []


def test_precondition_is_500_for_a_locked_guest_and_without_quorum(make_sim):
    """B12/B13, migrate_vm_precondition: check_cfs_quorum, then load_config, then check_lock."""
    sim = make_sim("homelab")
    api = token_api(sim.info)
    api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1)
    for path in ("/nodes/pve-mini1/qemu/103/migrate",):
        error = refusal(api(path.lstrip("/")).get)
        assert (error.status_code, error.content) == (500, "VM is locked (migrate)")
    api.nodes("pve-mini1").lxc(102).migrate.post(target="pve-big", restart=1)
    sim.cluster.step(5)  # the container is shut down first, then locked
    error = refusal(api.nodes("pve-mini1").lxc(102).migrate.get)
    assert (error.status_code, error.content) == (500, "CT is locked (migrate)")

    trio = make_sim("quorum3")
    trio_api = token_api(trio.info)
    for node in ("pve2", "pve3"):
        trio.cluster.crash_node(node)
    guest = next(g for g in trio.cluster.guests.values() if g.node == "pve1")
    error = refusal(trio_api.nodes("pve1")(guest.type)(guest.vmid).migrate.get)
    assert (error.status_code, error.content) == (500, "cluster not ready - no quorum?")


def test_container_precondition_has_no_storage_check(homelab):
    """B13, pve-container LXC.pm migrate_vm_precondition: only HA rules can block a node; a
    container on big-zfs still lists both minis (the task checks the storage later)."""
    api = token_api(homelab.info)
    builder = call(api, "GET", "/nodes/pve-big/lxc/203/migrate")
    assert builder == {"running": 1, "allowed-nodes": ["pve-mini1", "pve-mini2"], "not-allowed-nodes": {}}


def test_unavailable_storage_is_a_synchronous_500_for_a_vm(homelab):
    """B1, Qemu.pm migrate_vm → check_storage_availability: no task, 500
    ``storage 'big-zfs' is not available on node 'pve-mini1'``."""
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-big").qemu(200).migrate.post, target="pve-mini1", online=1)
    assert (error.status_code, error.content) == (500, "storage 'big-zfs' is not available on node 'pve-mini1'")
    assert "lock" not in resource(api, 200)


@pytest.mark.parametrize("option", [{"force": 1}, {"migration_type": "insecure"}, {"migration_network": "10.0.0.0/24"}])
def test_root_only_options_are_refused_for_api_tokens(homelab, option):
    """B1, Qemu.pm migrate_vm: force, migration_type and migration_network are compared with
    'root@pam' itself, so even root's API token gets 400 "Only root may use this option."."""
    api = token_api(homelab.info)
    error = refusal(api.nodes("pve-mini1").qemu(103).migrate.post, target="pve-big", online=1, **option)
    assert error.status_code == 400
    assert error.errors == {next(iter(option)): "Only root may use this option."}
    root = password_api(homelab.info)  # a root@pam ticket may
    upid = root.nodes("pve-mini1").qemu(103).migrate.post(target="pve-big", online=1, **option)
    assert ":qmigrate:103:root@pam:" in upid


def test_local_disks_move_to_a_mapped_storage_with_targetstorage(homelab):
    """B1 + QemuMigrate.pm scan_local_volumes: ``with-local-disks`` + ``targetstorage`` copies a
    VM's local disks to the mapped storage on the target; LXC's ``target-storage`` likewise."""
    api = token_api(homelab.info)
    upid = (
        api.nodes("pve-big")
        .qemu(200)
        .migrate.post(
            **{"target": "pve-mini1", "online": 1, "with-local-disks": 1, "targetstorage": "big-zfs:local-lvm"}
        )
    )
    status, log = finish(homelab, api, "pve-big", upid)
    assert status["exitstatus"] == "OK", log
    assert resource(api, 200)["node"] == "pve-mini1"
    assert call(api, "GET", "/nodes/pve-mini1/qemu/200/config")["scsi0"].startswith("local-lvm:vm-200-disk-0")
    upid = api.nodes("pve-big").lxc(203).migrate.post(target="pve-mini2", restart=1, **{"target-storage": "local-lvm"})
    status, log = finish(homelab, api, "pve-big", upid)
    assert status["exitstatus"] == "OK", log
    assert call(api, "GET", "/nodes/pve-mini2/lxc/203/config")["rootfs"].startswith("local-lvm:")


def test_storage_map_refusals(homelab):
    """Qemu.pm migrate_vm: a map that does not parse is 400 (JSONSchema parse_idmap); a mapped
    storage missing on the target is 500; a container's own storage is only checked in its task
    (LXC/Migrate.pm prepare)."""
    api = token_api(homelab.info)
    bad = refusal(
        api.nodes("pve-big").qemu(200).migrate.post,
        target="pve-mini1",
        online=1,
        targetstorage="big-zfs:local-lvm,big-zfs:local",
    )
    assert bad.status_code == 400 and bad.errors == {
        "targetstorage": "failed to parse storage map: duplicate mapping for source 'big-zfs'"
    }
    missing = refusal(
        api.nodes("pve-big").qemu(200).migrate.post, target="pve-mini1", online=1, targetstorage="big-zfs"
    )
    assert (missing.status_code, missing.content) == (500, "storage 'big-zfs' is not available on node 'pve-mini1'")
    upid = api.nodes("pve-big").lxc(203).migrate.post(target="pve-mini2", restart=1)
    status, log = finish(homelab, api, "pve-big", upid)
    assert status["exitstatus"] == "migration aborted"
    assert log[-2].endswith(
        "ERROR: migration aborted (duration 00:00:00): storage 'big-zfs' is not available on node 'pve-mini2'"
    )
    assert (resource(api, 203)["node"], resource(api, 203)["status"]) == ("pve-big", "running")


def test_local_devices_and_a_local_iso_tie_a_vm_to_its_node(homelab):
    """B5, QemuMigrate::Helpers check_local_resources + QemuMigrate.pm prepare / scan_local_volumes:
    the precondition lists hostpci0 in ``local_resources`` and the local ISO in ``local_disks``
    (cdrom 1); the task dies "can't migrate VM which uses local devices: hostpci0", and without the
    device on the local ISO ("local cdrom image")."""
    api = token_api(homelab.info)
    batch = call(api, "GET", "/nodes/pve-big/qemu/204/migrate")
    assert batch["local_resources"] == ["hostpci0"]
    iso = [d for d in batch["local_disks"] if d.get("cdrom")]
    assert [d["volid"] for d in iso] == ["local:iso/debian-13.1.0-amd64-netinst.iso"]
    assert call(api, "GET", "/nodes/pve-big/qemu/204/config")["hostpci0"] == "0000:41:00,pcie=1,x-vga=1"
    move = {"target": "pve-mini1", "online": 1, "with-local-disks": 1, "targetstorage": "local-lvm"}
    status, log = finish(homelab, api, "pve-big", api.nodes("pve-big").qemu(204).migrate.post(**move))
    assert status["exitstatus"] == "migration aborted"
    assert log[-2].endswith("can't migrate VM which uses local devices: hostpci0")
    homelab.cluster.guests[204].devices.clear()
    status, log = finish(homelab, api, "pve-big", api.nodes("pve-big").qemu(204).migrate.post(**move))
    assert status["exitstatus"] == "migration aborted"
    assert any(
        line.endswith("can't migrate local disk 'local:iso/debian-13.1.0-amd64-netinst.iso': local cdrom image")
        for line in log
    )
    assert resource(api, 204)["node"] == "pve-big"


def test_every_guest_on_the_big_node_can_leave_it_but_the_batch_vm(homelab):
    """The homelab's big node can be emptied with PVE's own migrations (shared storage, or local
    disks copied with ``with-local-disks`` + ``targetstorage``) — except render-batch."""
    api = token_api(homelab.info)
    moves = {
        200: ("qemu", {"online": 1, "with-local-disks": 1, "targetstorage": "local-lvm"}),
        201: ("qemu", {"online": 1}),
        202: ("qemu", {"with-local-disks": 1}),
        203: ("lxc", {"restart": 1, "target-storage": "local-lvm"}),
        205: ("qemu", {"online": 1}),  # HA-managed: the HA manager runs the migration after the request
        9000: ("qemu", {}),
    }
    for vmid, (kind, options) in moves.items():
        upid = api.nodes("pve-big")(kind)(vmid).migrate.post(target="pve-mini1", **options)
        status, log = finish(homelab, api, "pve-big", upid)
        assert status["exitstatus"] == "OK", (vmid, log)
    for _ in range(600):
        if resource(api, 205)["node"] == "pve-mini1":
            break
        homelab.cluster.step(1)
    left = {e["vmid"] for e in call(api, "GET", "/cluster/resources", type="vm") if e["node"] == "pve-big"}
    assert left == {204}


def test_a_live_migration_restarts_uptime_and_counters_on_the_target(homelab):
    """B16, QemuServer.pm vmstatus: uptime comes from the new QEMU process on the target, and the
    tap and block counters are the target's, so all of them start again from zero."""
    api = token_api(homelab.info)
    before = resource(api, 103)
    upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-mini2", online=1)
    status, _ = finish(homelab, api, "pve-mini1", upid)
    assert status["exitstatus"] == "OK"
    after = resource(api, 103)
    assert after["node"] == "pve-mini2"
    assert after["uptime"] < 5 < before["uptime"]
    for counter in ("netin", "netout", "diskread", "diskwrite"):
        assert after[counter] < before[counter], counter


def test_control_api_survives_the_first_node(homelab):
    """The /sim control port belongs to no node: crashing the first node leaves it reachable."""
    homelab.cluster.crash_node("pve-mini1")
    homelab.settle()
    state = requests.get(f"{homelab.info['control_url']}/state", verify=homelab.info["ca_file"], timeout=10).json()
    assert state["nodes"]["pve-mini1"] == "crashed"


def test_pvetop_shows_no_negative_rate_across_a_live_migration(homelab):
    """B16 seen by pvetop: the counters restart on the target, so the rate over a refresh that
    spans the move is computed from zero (pvetop.policy.metrics), never negative."""
    from pvetop.config import settings_from_sim_info
    from pvetop.policy.metrics import guest_rates
    from pvetop.pve import PveClient

    api = token_api(homelab.info)
    with PveClient.connect(settings_from_sim_info(homelab.info), clock=homelab.cluster.clock.now) as client:
        before = client.fetch_snapshot()
        upid = api.nodes("pve-mini1").qemu(103).migrate.post(target="pve-mini2", online=1)
        finish(homelab, api, "pve-mini1", upid)
        homelab.cluster.step(5)
        after = client.fetch_snapshot()
    assert after.guest_by_vmid[103].netin < before.guest_by_vmid[103].netin, "the counter did restart"
    rates = guest_rates(before, after)[103]
    assert min(rates.netin, rates.netout, rates.diskread, rates.diskwrite) >= 0


def test_container_restart_migration_locks_after_the_shutdown_and_unlocks_before_the_start(homelab):
    """B15, pve-container LXC/Migrate.pm: prepare shuts the container down before phase1 sets
    ``lock: migrate``; final_cleanup runs ``pct unlock`` on the target, then ``pct start``."""
    api = token_api(homelab.info)
    upid = api.nodes("pve-mini1").lxc(102).migrate.post(target="pve-mini2", restart=1)
    seen = []
    for _ in range(60):
        entry = resource(api, 102)
        seen.append((entry["node"], entry["status"], entry.get("lock")))
        if call(api, "GET", f"/nodes/pve-mini1/tasks/{upid}/status")["status"] == "stopped":
            break
        homelab.cluster.step(0.5)
    phases = [state for index, state in enumerate(seen) if index == 0 or seen[index - 1] != state]
    assert phases == [
        ("pve-mini1", "running", None),
        ("pve-mini1", "stopped", "migrate"),
        ("pve-mini2", "stopped", "migrate"),
        ("pve-mini2", "stopped", None),
        ("pve-mini2", "running", None),
    ]
