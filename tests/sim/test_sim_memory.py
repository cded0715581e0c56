"""Memory as Proxmox VE hosts report it: memhost, host overhead, auto-ballooning.

- pve-common ProcFSTools.pm read_meminfo: a node's ``mem`` is MemTotal - MemAvailable, so it holds
  each VM's host-resident memory (its cgroup: ``memhost``), each container's memory and what the
  host keeps for itself (ZFS ARC, Ceph daemons).
- qemu-server QemuServer.pm vmstatus: ``memhost`` is the cgroup figure; ``mem`` is what the
  balloon driver reports only with ``full`` (pvestatd asks for it, so /cluster/resources has it);
  Qemu.pm vmlist without ``full`` gives ``mem == memhost`` and no block counters.
- pve-manager pvestatd auto_ballooning + AutoBalloon.pm compute_alg1: above the node's
  ``ballooning-target`` (80 %), VMs whose ``balloon`` is below ``memory`` are shrunk toward it.
"""

from __future__ import annotations

import json

from pvetop.sim.cluster import SimCluster
from pvetop.sim.entities import GIB
from pvetop.sim.scenarios import SCENARIO_DIR, load_scenario
from pvetop.sim.views import cluster_resources
from tests.sim.clients import call, token_api


def entries(cluster: SimCluster) -> dict[str, dict]:
    return {e["id"]: e for e in cluster_resources(cluster, None)}


def test_node_memory_is_what_its_guests_cost_the_host_plus_its_own(homelab):
    """E3: node mem = the host's own use (kernel, services, ZFS ARC) + Σ VM memhost + Σ container
    mem; a VM's memhost (touched pages, page cache, QEMU) is above what its guest reports."""
    api = token_api(homelab.info)
    resources = call(api, "GET", "/cluster/resources")
    big = next(e for e in resources if e["id"] == "node/pve-big")
    guests = [e for e in resources if e["type"] in ("qemu", "lxc") and e["node"] == "pve-big" and e["uptime"]]
    vms = [g for g in guests if g["type"] == "qemu"]
    assert vms and all(g["memhost"] > g["mem"] for g in vms)
    host_paid = sum(g["memhost"] for g in vms) + sum(g["mem"] for g in guests if g["type"] == "lxc")
    own = homelab.cluster.nodes["pve-big"].base_memory
    assert big["mem"] == host_paid + own and own > 24 * GIB, "pve-big keeps 24 GiB of ZFS ARC"
    hour = call(api, "GET", "/nodes/pve-big/rrddata", timeframe="hour")
    assert hour[-1]["arcsize"] == 24 * GIB


def test_vm_list_without_full_reports_the_cgroup_figure(homelab):
    """A10: GET /nodes/{node}/qemu without ``full`` reports ``mem == memhost`` and no diskread or
    diskwrite; with ``full=1`` ``mem`` is the guest's own figure and ``balloon`` its current size."""
    api = token_api(homelab.info)
    resources = {e["vmid"]: e for e in call(api, "GET", "/cluster/resources", type="vm")}
    plain = [e for e in call(api, "GET", "/nodes/pve-mini1/qemu") if e["status"] == "running"]
    assert plain and all(e["mem"] == e["memhost"] and "diskread" not in e for e in plain)
    full = [e for e in call(api, "GET", "/nodes/pve-mini1/qemu", full=1) if e["status"] == "running"]
    for entry in full:
        assert entry["mem"] == resources[entry["vmid"]]["mem"] < entry["memhost"]
        assert "diskread" in entry and entry["balloon"] == entry["maxmem"]


def pressured_homelab(tmp_path, *, balloon: bool) -> SimCluster:
    """Homelab with pve-mini1 cut to 20 GiB; with ``balloon`` its VMs 103 and 104 may shrink to 2 GiB."""
    spec = json.loads((SCENARIO_DIR / "homelab.json").read_text())
    next(n for n in spec["nodes"] if n["name"] == "pve-mini1")["memory_gib"] = 20
    if balloon:
        for guest in spec["guests"]:
            if guest["vmid"] in (103, 104):
                guest["balloon_mib"] = 2048
    path = tmp_path / f"pressured-{balloon}.json"
    path.write_text(json.dumps(spec))
    return SimCluster(load_scenario(path), manual_clock=True)


def test_auto_ballooning_holds_a_node_at_80_percent(tmp_path):
    """E4: above 80 % the VMs with ``balloon`` below ``memory`` give memory back until the node is
    at its target, none below its balloon minimum; without such VMs nothing shrinks."""
    stuck = entries(pressured_homelab(tmp_path, balloon=False))
    assert stuck["node/pve-mini1"]["mem"] > 0.8 * stuck["node/pve-mini1"]["maxmem"]

    cluster = pressured_homelab(tmp_path, balloon=True)
    after = entries(cluster)
    node = after["node/pve-mini1"]
    assert abs(node["mem"] - 0.8 * node["maxmem"]) < 8 * 1024**2
    for vmid in (103, 104):
        guest = cluster.guests[vmid]
        entry = after[f"qemu/{vmid}"]
        assert entry["memhost"] < stuck[f"qemu/{vmid}"]["memhost"]
        assert guest.balloon <= entry["mem"] <= entry["memhost"]
    assert after["qemu/100"]["memhost"] == stuck["qemu/100"]["memhost"], "vm 100 has no balloon set"


def test_ballooning_target_and_balloon_are_configurable(make_sim):
    """Node config ``ballooning-target`` and VM config ``balloon`` are read and written as PVE does."""
    sim = make_sim("homelab")
    api = token_api(sim.info)
    assert call(api, "GET", "/nodes/pve-big/qemu/200/config")["balloon"] == 8192
    api.nodes("pve-big").config.put(**{"ballooning-target": 10})
    assert call(api, "GET", "/nodes/pve-big/config")["ballooning-target"] == 10
    status = call(api, "GET", "/nodes/pve-big/qemu/200/status/current")
    assert 8192 * 1024**2 <= status["balloon"] < status["maxmem"], "gitlab shrinks toward its 8 GiB minimum"
