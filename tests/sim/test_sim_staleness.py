"""What /cluster/resources shows for a node that died: its last figures for 300 s, then little.

pmxcfs (pve-cluster status.c, rrd_entry_is_old: ``expire = 60*5``) keeps serving the last status
a node broadcast; pve-manager API2Tools.pm extract_vm_stats / extract_node_stats /
extract_storage_stats build the entries from it.
"""

from __future__ import annotations

from pvetop.sim.views import RRD_EXPIRE_SECONDS
from tests.sim.clients import call, token_api

FIGURES = {"cpu", "mem", "maxmem", "uptime", "netin", "diskread", "name"}


def entries_of(api, node: str) -> dict[str, dict]:
    return {e["id"]: e for e in call(api, "GET", "/cluster/resources") if e.get("node") == node}


def test_a_crashed_nodes_guests_keep_their_last_figures_for_300_seconds(homelab):
    """A6/D6: for 300 s after a crash the guests keep status ``running`` and the cpu, mem and
    counters of the node's last broadcast (frozen, not advancing), the node stays ``offline`` with
    level, maxcpu, maxmem and maxdisk, and its storage stays ``available``; pool is kept."""
    api = token_api(homelab.info)
    before = entries_of(api, "pve-big")
    homelab.cluster.crash_node("pve-big")
    homelab.cluster.step(RRD_EXPIRE_SECONDS - 1)
    stale = entries_of(api, "pve-big")
    gitlab = stale["qemu/200"]
    assert gitlab["status"] == "running" and FIGURES <= gitlab.keys()
    assert gitlab["uptime"] == before["qemu/200"]["uptime"] and gitlab["netin"] == before["qemu/200"]["netin"]
    assert gitlab["pool"] == "lab"
    node = stale["node/pve-big"]
    assert node["status"] == "offline"
    assert (node["maxcpu"], node["maxmem"]) == (before["node/pve-big"]["maxcpu"], before["node/pve-big"]["maxmem"])
    assert "cpu" not in node and "uptime" not in node
    assert stale["storage/pve-big/big-zfs"]["status"] == "available"

    homelab.cluster.step(2)
    expired = entries_of(api, "pve-big")
    assert expired["qemu/200"] == {
        "id": "qemu/200",
        "type": "qemu",
        "vmid": 200,
        "node": "pve-big",
        "status": "unknown",
        "tags": "dev",
        "pool": "lab",
    }
    assert expired["node/pve-big"] == {
        "id": "node/pve-big",
        "type": "node",
        "node": "pve-big",
        "status": "offline",
        "hastate": "unknown",  # the HA manager's node_status, written on its rounds
    }
    assert expired["storage/pve-big/big-zfs"]["status"] == "unknown"


def test_a_shut_down_nodes_guests_show_stopped_until_the_figures_expire(homelab):
    """D6: a clean shutdown stops the guests before the node goes away, so its last broadcast says
    ``stopped``; that is what clients see for 300 s, then ``unknown``."""
    api = token_api(homelab.info)
    call(api, "POST", "/nodes/pve-big/status", command="shutdown")
    while homelab.cluster.nodes["pve-big"].power != "off":  # until its guests and the OS are down
        homelab.cluster.step(1)
    assert {e["status"] for e in entries_of(api, "pve-big").values() if e["type"] == "qemu"} == {"stopped"}
    homelab.cluster.step(RRD_EXPIRE_SECONDS + 1)
    assert {e["status"] for e in entries_of(api, "pve-big").values() if e["type"] == "qemu"} == {"unknown"}
