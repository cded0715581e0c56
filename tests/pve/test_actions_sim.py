"""Migrations, node power and task tracking through the client, against the simulator."""

from __future__ import annotations

import pytest

from pvetop.errors import PvetopError, UsageError
from pvetop.pve import PveClient, actions, tasks
from tests.pve.connection import token_settings


@pytest.fixture
def sim(fresh_homelab):
    return fresh_homelab


@pytest.fixture
def client(sim):
    with PveClient.connect(token_settings(sim)) as connected:
        yield connected


def guest(client, vmid):
    return client.fetch_snapshot().guest_by_vmid[vmid]


def wait(sim, client, upid, **kwargs):
    """wait_task on the sim's clock: each poll interval is simulated time, not a real sleep."""
    return tasks.wait_task(client, upid, poll=1.0, sleep=sim.cluster.step, clock=lambda: sim.cluster.now, **kwargs)


def test_live_migration_of_a_running_vm(sim, client):
    nextcloud = guest(client, 103)
    upid = actions.migrate(client, nextcloud, "pve-big")
    assert tasks.parse_upid(upid).type == "qmigrate" and tasks.parse_upid(upid).id == "103"
    assert guest(client, 103).lock == "migrate"
    seen = []
    final = wait(sim, client, upid, on_progress=lambda status, progress, lines: seen.append(progress))
    assert final.succeeded and final.exitstatus == "OK"
    fractions = [p.fraction for p in seen if p.fraction is not None]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[-1].finished and seen[-1].total_bytes == 8192 * 1024**2 and seen[-1].rate > 0
    moved = guest(client, 103)
    assert (moved.node, moved.lock, moved.status) == ("pve-big", None, "running")


def test_restart_migration_of_a_running_container(sim, client):
    upid = actions.migrate(client, guest(client, 102), "pve-mini2")
    assert tasks.parse_upid(upid).type == "vzmigrate"
    assert wait(sim, client, upid).succeeded
    assert (guest(client, 102).node, guest(client, 102).status) == ("pve-mini2", "running")
    log = tasks.task_log(client, upid)
    assert any("shutdown CT 102" in line for line in log) and log[-1].startswith("TASK OK")


def test_vm_with_local_disks_needs_with_local_disks(sim, client):
    jellyfin = guest(client, 104)
    precondition = actions.migrate_precondition(client, jellyfin, "pve-big")
    assert precondition.running and precondition.local_disks
    upid = actions.migrate(client, jellyfin, "pve-big", with_local_disks=True, bwlimit_kib=500 * 1024)
    seen = []
    assert wait(sim, client, upid, on_progress=lambda s, p, lines: seen.extend(lines)).succeeded
    assert any("drive-scsi0: transferred" in line for line in seen)
    assert guest(client, 104).node == "pve-big"


def test_container_precondition_uses_dashes_and_is_normalised(client):
    precondition = actions.migrate_precondition(client, guest(client, 101))
    assert precondition.running
    assert precondition.allowed_nodes is not None and "pve-mini1" not in precondition.allowed_nodes


def test_ha_guest_migrates_through_the_ha_manager(sim, client):
    homeassistant = guest(client, 100)
    assert homeassistant.ha_managed
    since = int(sim.cluster.now)
    upid = actions.migrate(client, homeassistant, "pve-mini2")
    assert tasks.parse_upid(upid).type == "hamigrate"
    assert wait(sim, client, upid).succeeded
    sim.cluster.step(15)  # the CRM takes the request on its next round, the LRM starts the qmigrate after
    followup = actions.find_followup_migration(client, homeassistant, since=since)
    assert followup is not None and tasks.parse_upid(followup).type == "qmigrate"
    assert wait(sim, client, followup).succeeded
    assert guest(client, 100).node == "pve-mini2"


def test_stopping_a_migration_task(sim, client):
    upid = actions.migrate(client, guest(client, 201), "pve-mini2")
    sim.cluster.step(2)
    tasks.stop_task(client, upid)
    sim.cluster.step(2)
    status = tasks.task_status(client, upid)
    assert status.failed and not status.running
    assert guest(client, 201).node == "pve-big"


def test_task_lists(sim, client):
    upid = actions.migrate(client, guest(client, 106), "pve-mini2")
    assert upid in [t["upid"] for t in tasks.cluster_tasks(client)]
    assert upid in [t["upid"] for t in tasks.node_tasks(client, "pve-mini1", source="all", vmid=106)]


def test_wait_task_times_out_without_stopping_the_task(sim, client):
    upid = actions.migrate(client, guest(client, 201), "pve-mini2")
    with pytest.raises(PvetopError, match="still running after 3 s"):
        wait(sim, client, upid, timeout=3)
    assert tasks.task_status(client, upid).running


def test_shutdown_and_wake_a_node(sim, client):
    assert actions.shutdown_node(client, "pve-big") is None  # PVE returns no task for it
    for _ in range(60):  # the guests stop first (postgres through its HA manager's rounds), then the OS
        sim.cluster.step(10)
        if client.fetch_snapshot().node_by_name["pve-big"].status == "offline":
            break
    assert client.fetch_snapshot().node_by_name["pve-big"].status == "offline"
    assert actions.wake_node(client, "pve-big") == "3C:EC:EF:42:9B:20"
    sim.cluster.step(sim.cluster.nodes["pve-big"].boot_seconds + 30)
    assert client.fetch_snapshot().node_by_name["pve-big"].status == "online"


def test_wake_on_lan_mac_round_trip_keeps_other_settings(client):
    client.put("nodes/pve-mini2/config", wakeonlan="mac=00:11:22:33:44:55,bind-interface=vmbr0")
    actions.set_node_wakeonlan(client, "pve-mini2", "aa:bb:cc:dd:ee:ff")
    assert actions.node_wakeonlan_mac(client, "pve-mini2") == "AA:BB:CC:DD:EE:FF"
    assert client.node_config("pve-mini2")["wakeonlan"] == "mac=AA:BB:CC:DD:EE:FF,bind-interface=vmbr0"


def test_the_api_endpoint_asks_the_other_hosts_only_until_one_answers_as_another_node(sim, client):
    """The power worker asks on every round whether the node pvetop talks to may go off: one other
    endpoint answering settles it, so the hosts after it are not asked; a host that does not
    answer is passed over, and with none left the answer is that no other endpoint answers."""
    before = client.request_count
    assert actions.api_endpoint(client) == ("pve-mini1", True)
    assert client.request_count - before == 2  # pve-mini1 (pvetop's), pve-mini2; pve-big not asked
    sim.cluster.crash_node("pve-mini2")
    sim.settle()
    assert actions.api_endpoint(client) == ("pve-mini1", True)  # pve-big answers
    sim.cluster.crash_node("pve-big")
    sim.settle()
    assert actions.api_endpoint(client) == ("pve-mini1", False)


def test_bad_inputs_are_refused_before_any_request(client):
    container = guest(client, 101)
    before = client.request_count
    with pytest.raises(UsageError, match="already on"):
        actions.migrate(client, container, container.node)
    with pytest.raises(UsageError, match="cannot migrate live"):
        actions.migrate(client, container, "pve-mini2", online=True)
    with pytest.raises(UsageError, match="not a MAC address"):
        actions.set_node_wakeonlan(client, "pve-mini2", "00:11")
    with pytest.raises(UsageError, match="not a Proxmox VE task id"):
        tasks.task_status(client, "UPID:nonsense")
    assert client.request_count == before


def test_local_volumes_move_to_the_target_storage_given(sim, client):
    """gitlab (VM) and builder (container) keep their disks on big-zfs, which only pve-big has: PVE
    moves them to a mini's local-lvm when asked with targetstorage / target-storage."""
    gitlab, builder = guest(client, 200), guest(client, 203)
    volumes = actions.migrate_precondition(client, gitlab).local_volumes()
    assert volumes is not None and volumes.storages == ("big-zfs",) and volumes.size == 120 * 1024**3
    shared = {s.storage for s in client.fetch_snapshot().storage if s.shared}
    ct_volumes = actions.container_local_volumes(client, builder, shared)
    assert ct_volumes is not None and ct_volumes.storages == ("big-zfs",) and ct_volumes.size == 60 * 1024**3
    vm_upid = actions.migrate(client, gitlab, "pve-mini2", with_local_disks=True, target_storage="local-lvm")
    ct_upid = actions.migrate(client, builder, "pve-mini1", target_storage="local-lvm")
    assert wait(sim, client, vm_upid).succeeded and wait(sim, client, ct_upid).succeeded
    assert actions.migrate_precondition(client, guest(client, 200)).local_disks == ("local-lvm:vm-200-disk-0",)
    assert guest(client, 200).node == "pve-mini2" and guest(client, 203).node == "pve-mini1"
    assert guest(client, 200).running and guest(client, 203).running


def test_disk_sizes_in_pve_notation():
    assert actions.disk_size("32G") == 32 * 1024**3
    assert actions.disk_size("512M") == 512 * 1024**2
    assert actions.disk_size("1.5T") == int(1.5 * 1024**4)
    assert actions.disk_size("4096") == 4096
    assert actions.disk_size("lots") == 0
