"""Node power over the API and the wire: shutdown, reboot, crash, magic packets, wakeonlan.

Homelab: pve-mini1 answers the API (local node), pve-big has a wake-on-LAN MAC
(3C:EC:EF:42:9B:20, boots in 180 s, shuts down in 60 s), pve-mini2 has none.
"""

from __future__ import annotations

import socket

import pytest
import requests
import wakeonlan
from proxmoxer.core import ResourceException

from pvetop.sim.ha import CRM_ROUND_SECONDS
from pvetop.sim.views import RRD_EXPIRE_SECONDS
from tests.sim.clients import call, token_api
from tests.waiting import wait_until

BIG_MAC = "3C:EC:EF:42:9B:20"


def node_entry(api, name: str) -> dict:
    return next(r for r in call(api, "GET", "/cluster/resources", type="node") if r["node"] == name)


def guests_on(api, name: str) -> list[dict]:
    return [r for r in call(api, "GET", "/cluster/resources", type="vm") if r["node"] == name]


def cluster_member(api, name: str) -> dict:
    return next(e for e in call(api, "GET", "/cluster/status") if e["type"] == "node" and e["name"] == name)


def step_until_power(sim, name: str, power: str, *, limit: int = 3600) -> float:
    """Steps the sim a second at a time until the node reaches ``power``; the seconds it took."""
    for second in range(limit):
        if sim.cluster.nodes[name].power == power:
            return float(second)
        sim.cluster.step(1)
    raise AssertionError(f"{name} not {power} after {limit} simulated seconds")


def shut_down_big(sim, api) -> None:
    assert call(api, "POST", "/nodes/pve-big/status", command="shutdown") is None
    step_until_power(sim, "pve-big", "off")


def test_shutdown_goes_offline_after_its_guests_and_the_os(homelab):
    """Nodes.pm node_cmd runs '(sleep 2;/sbin/poweroff)': pve-guests stops the guests first
    (stopall), then pve-ha-lrm stops its HA services (postgres) and exits on its next round, then
    the rest of the OS goes down (pve-big: 60 s); the API answers until then."""
    api = token_api(homelab.info)
    assert call(api, "POST", "/nodes/pve-big/status", command="shutdown") is None
    seconds = step_until_power(homelab, "pve-big", "off")
    stops = [t for t in homelab.cluster.tasks if t.type in ("qmshutdown", "vzshutdown")]
    last_stop = max(t.end_time for t in stops) - homelab.cluster.start_time
    assert sorted(int(t.id) for t in stops) == [200, 201, 203, 204, 205]
    stopall = [t for t in stops if t.id != "205"]
    ha_stop = [t for t in stops if t.id == "205"]  # postgres is HA-managed: its LRM stops it, after stopall
    assert max(t.end_time for t in stopall) <= min(t.starttime for t in ha_stop)
    assert last_stop + 60 <= seconds <= last_stop + CRM_ROUND_SECONDS + 60 + 2, "the LRM exits next round, then 60 s"
    entry = node_entry(api, "pve-big")
    assert entry["status"] == "offline" and entry["hastate"] == "online", "the CRM notices on its next round"
    homelab.cluster.step(10)
    assert node_entry(api, "pve-big")["hastate"] == "unknown"
    homelab.cluster.step(RRD_EXPIRE_SECONDS + 1)
    entry = node_entry(api, "pve-big")
    assert entry == {"id": "node/pve-big", "type": "node", "node": "pve-big", "status": "offline", "hastate": "unknown"}
    for guest in guests_on(api, "pve-big"):
        assert guest["status"] == "unknown"
        assert set(guest) <= {"id", "vmid", "node", "type", "status", "tags", "lock", "hastate", "pool"}
    assert cluster_member(api, "pve-big")["online"] == 0
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve-big").status.get()
    assert caught.value.status_code == 595


def test_magic_packet_boots_the_node_after_its_boot_time(homelab):
    api = token_api(homelab.info)
    shut_down_big(homelab, api)
    wakeonlan.wake(BIG_MAC, host="127.0.0.1", port=homelab.info["wol_port"])
    wait_until(lambda: homelab.cluster.nodes["pve-big"].power == "booting", what="the magic packet")
    homelab.cluster.step(179)
    assert node_entry(api, "pve-big")["status"] == "offline"
    homelab.cluster.step(1)
    entry = node_entry(api, "pve-big")
    assert entry["status"] == "online" and entry["uptime"] == 0
    homelab.cluster.step(10)
    running = {g["vmid"] for g in guests_on(api, "pve-big") if g["status"] == "running"}
    assert running == {200, 201, 203, 204}, "guests with onboot=1 start again; 202 and the template stay stopped"


def test_packets_for_other_macs_or_malformed_ones_are_ignored(homelab):
    api = token_api(homelab.info)
    shut_down_big(homelab, api)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\xff" * 6 + bytes.fromhex("3CECEF429B20") * 15, ("127.0.0.1", homelab.info["wol_port"]))
    wakeonlan.wake("00:11:22:33:44:55", host="127.0.0.1", port=homelab.info["wol_port"])
    wakeonlan.wake(BIG_MAC, host="127.0.0.1", port=homelab.info["wol_port"])  # a valid one, as a marker
    wait_until(lambda: homelab.cluster.nodes["pve-big"].power == "booting", what="the valid packet")
    assert [n.power for n in homelab.cluster.nodes.values()] == ["online", "online", "booting"]


def test_wakeonlan_endpoint_on_another_node_boots_it(homelab):
    api = token_api(homelab.info)
    shut_down_big(homelab, api)
    assert call(api, "POST", "/nodes/pve-big/wakeonlan") == BIG_MAC
    homelab.cluster.step(180)
    assert node_entry(api, "pve-big")["status"] == "online"
    assert cluster_member(api, "pve-big")["online"] == 1


def test_wakeonlan_errors(homelab):
    api = token_api(homelab.info)
    with pytest.raises(ResourceException) as no_mac:
        api.nodes("pve-mini2").wakeonlan.post()
    assert (no_mac.value.status_code, no_mac.value.content) == (
        500,
        "No wake on LAN MAC address defined for 'pve-mini2'!",
    )
    with pytest.raises(ResourceException) as myself:
        api.nodes("pve-mini1").wakeonlan.post()
    assert (myself.value.status_code, myself.value.content) == (500, "'pve-mini1' is local node, cannot wake my self!")
    with pytest.raises(ResourceException) as unknown:
        api.nodes("pve-nope").wakeonlan.post()
    assert (unknown.value.status_code, unknown.value.content) == (500, "no such cluster node 'pve-nope'")


def test_setting_a_mac_in_the_node_config_makes_the_node_wakeable(homelab):
    api = token_api(homelab.info)
    assert call(api, "PUT", "/nodes/pve-mini2/config", wakeonlan="mac=02:00:00:00:00:12") is None
    assert call(api, "GET", "/nodes/pve-mini2/config")["wakeonlan"] == "mac=02:00:00:00:00:12"
    call(api, "POST", "/nodes/pve-mini2/status", command="shutdown")
    step_until_power(homelab, "pve-mini2", "off")
    wakeonlan.wake("02:00:00:00:00:12", host="127.0.0.1", port=homelab.info["wol_port"])
    wait_until(lambda: homelab.cluster.nodes["pve-mini2"].power == "booting", what="the magic packet")
    homelab.cluster.step(40)
    assert node_entry(api, "pve-mini2")["status"] == "online"
    with pytest.raises(ResourceException) as bad:
        api.nodes("pve-mini2").config.put(wakeonlan="not-a-mac")
    assert bad.value.status_code == 400 and "wakeonlan" in bad.value.errors


def test_offline_node_config_is_595(homelab):
    api = token_api(homelab.info)
    shut_down_big(homelab, api)
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve-big").config.get()
    assert caught.value.status_code == 595


def test_reboot_goes_offline_then_comes_back(homelab):
    api = token_api(homelab.info)
    call(api, "POST", "/nodes/pve-big/status", command="reboot")
    step_until_power(homelab, "pve-big", "booting")
    assert node_entry(api, "pve-big")["status"] == "offline"
    homelab.cluster.step(180)
    assert node_entry(api, "pve-big")["status"] == "online"


def test_crash_through_the_control_api_is_immediate(homelab):
    api = token_api(homelab.info)
    answer = requests.post(
        f"{homelab.info['control_url']}/nodes/pve-big/crash", verify=homelab.info["ca_file"], timeout=15
    )
    assert answer.status_code == 200 and answer.json()["nodes"]["pve-big"] == "crashed"
    assert node_entry(api, "pve-big")["status"] == "offline"
    assert call(api, "POST", "/nodes/pve-big/wakeonlan") == BIG_MAC


def test_shutdown_needs_sys_powermgmt(homelab):
    info = dict(
        homelab.info,
        user=homelab.info["readonly_user"],
        token_name=homelab.info["readonly_token_name"],
        token_value=homelab.info["readonly_token_value"],
    )
    with pytest.raises(ResourceException) as caught:
        token_api(info).nodes("pve-big").status.post(command="shutdown")
    assert (caught.value.status_code, caught.value.content) == (
        403,
        "Permission check failed (/nodes/pve-big, Sys.PowerMgmt)",
    )


def test_quorum_follows_the_votes_of_online_nodes(make_sim):
    sim = make_sim("quorum3")
    api = token_api(sim.info)

    def quorate() -> int:
        return call(api, "GET", "/cluster/status")[0]["quorate"]

    assert quorate() == 1
    sim.cluster.crash_node("pve3")
    assert quorate() == 1
    sim.cluster.crash_node("pve2")
    assert quorate() == 0
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").qemu(102).migrate.post(target="pve2", online=1)
    assert (caught.value.status_code, caught.value.content) == (500, "cluster not ready - no quorum?")


def test_guest_start_and_shutdown_are_tasks(homelab):
    api = token_api(homelab.info)
    upid = call(api, "POST", "/nodes/pve-big/qemu/202/status/start")
    assert ":qmstart:202:" in upid
    assert call(api, "GET", "/nodes/pve-big/qemu/202/status/current")["status"] == "stopped"
    homelab.cluster.step(3)
    assert call(api, "GET", f"/nodes/pve-big/tasks/{upid}/status")["exitstatus"] == "OK"
    assert call(api, "GET", "/nodes/pve-big/qemu/202/status/current")["status"] == "running"
    again = call(api, "POST", "/nodes/pve-big/qemu/202/status/start")
    assert call(api, "GET", f"/nodes/pve-big/tasks/{again}/status")["exitstatus"] == "VM 202 already running"
    api.nodes("pve-mini1").lxc(101).status.shutdown.post()  # not in the schema subset: unchecked
    homelab.cluster.step(6)
    assert call(api, "GET", "/nodes/pve-mini1/lxc/101/status/current")["status"] == "stopped"
    with pytest.raises(ResourceException) as template:
        api.nodes("pve-big").qemu(9000).status.start.post()
    assert (template.value.status_code, template.value.content) == (500, "you can't start a vm if it's a template")


def test_stopall_and_startall_leave_ha_guests_to_the_ha_manager(homelab):
    """Nodes.pm get_start_stop_list skips HA-managed guests unless ``vms`` names them: stopall on
    pve-mini1 shuts down its non-HA guests (qmshutdown/vzshutdown, reverse order) and leaves
    vm:100 running; startall starts onboot guests in order, VMs 3 s apart."""
    api = token_api(homelab.info)
    upid = call(api, "POST", "/nodes/pve-mini1/stopall")
    for _ in range(200):
        if call(api, "GET", f"/nodes/pve-mini1/tasks/{upid}/status")["status"] == "stopped":
            break
        homelab.cluster.step(1)
    log = [line["t"] for line in call(api, "GET", f"/nodes/pve-mini1/tasks/{upid}/log", limit=0)]
    assert log[:-1] == [
        f"Stopping {kind} {vmid} (timeout = 180 seconds)"
        for kind, vmid in (("CT", 106), ("CT", 105), ("VM", 104), ("VM", 103), ("CT", 102), ("CT", 101))
    ]
    status = {g["vmid"]: g["status"] for g in guests_on(api, "pve-mini1")}
    assert status == {
        100: "running",
        101: "stopped",
        102: "stopped",
        103: "stopped",
        104: "stopped",
        105: "stopped",
        106: "stopped",
    }
    upid = call(api, "POST", "/nodes/pve-mini1/startall")
    homelab.cluster.step(1)
    started = [t for t in homelab.cluster.tasks if t.type in ("qmstart", "vzstart")]
    assert [int(t.id) for t in started] == [101, 102, 103], "CTs start back to back, VM 103 then waits 3 s"
    homelab.cluster.step(3)
    started = [t for t in homelab.cluster.tasks if t.type in ("qmstart", "vzstart")]
    assert [int(t.id) for t in started] == [101, 102, 103, 104]
    homelab.cluster.step(10)
    assert call(api, "GET", f"/nodes/pve-mini1/tasks/{upid}/status")["exitstatus"] == "OK"
    assert all(g["status"] == "running" for g in guests_on(api, "pve-mini1"))
