"""Guest start/shutdown/stop/reboot on the simulator, the way PVE answers them.

Start and shutdown are checked against PVE's published schema (``call``); stop and reboot are not
in the schema subset, so their answer is checked against the shutdown endpoint's return schema
(the same UPID string). HA-managed guests go through ``hastart``/``hastop`` request tasks and the
LRM's real task follows, as qemu-server does.
"""

from __future__ import annotations

import pytest
from proxmoxer.core import ResourceException

from pvetop.sim.runner import start_sim
from tests.pve_schema import check_response
from tests.sim.clients import call, token_api
from tests.sim.test_api_conformance import UPID_PATTERN, resource_entry, step_until, step_until_task_stops


@pytest.fixture
def fresh():
    with start_sim(scenario="homelab", seed=1, manual_clock=True) as sim:
        yield sim, token_api(sim.info)


def post_power(api, node: str, kind: str, vmid: int, action: str, **params) -> str:
    path = f"/nodes/{node}/{kind}/{vmid}/status/{action}"
    if action in ("start", "shutdown") and kind == "qemu":
        return call(api, "POST", path, **params)
    upid = api(path.lstrip("/")).post(**params)
    assert check_response("POST", f"/nodes/{node}/qemu/{vmid}/status/shutdown", upid) == []
    return upid


def guest(api, *, ha: bool, kind: str = "qemu", running: bool = True) -> dict:
    resources = call(api, "GET", "/cluster/resources", type="vm")
    return min(
        (
            r
            for r in resources
            if r["type"] == kind
            and bool(r.get("hastate")) == ha
            and (r["status"] == "running") == running
            and not r.get("template")
            and not r.get("lock")
        ),
        key=lambda r: r["vmid"],
    )


def task_type(upid: str) -> str:
    match = UPID_PATTERN.match(upid)
    assert match, upid
    return match["type"]


@pytest.mark.parametrize("kind", ["qemu", "lxc"])
def test_shutdown_then_start_a_plain_guest_runs_its_own_tasks(fresh, kind):
    sim, api = fresh
    target = guest(api, ha=False, kind=kind)
    node, vmid = target["node"], target["vmid"]
    prefix = "qm" if kind == "qemu" else "vz"
    upid = post_power(api, node, kind, vmid, "shutdown", timeout=30)
    assert task_type(upid) == f"{prefix}shutdown"
    assert step_until_task_stops(sim, api, node, upid)["exitstatus"] == "OK"
    assert resource_entry(api, vmid)["status"] == "stopped"
    upid = post_power(api, node, kind, vmid, "start")
    assert task_type(upid) == f"{prefix}start"
    assert step_until_task_stops(sim, api, node, upid)["exitstatus"] == "OK"
    assert resource_entry(api, vmid)["status"] == "running"


def test_shutdown_past_its_timeout_fails_unless_force_stop(fresh):
    sim, api = fresh
    target = guest(api, ha=False)
    node, vmid = target["node"], target["vmid"]
    upid = post_power(api, node, "qemu", vmid, "shutdown", timeout=1)
    assert "got timeout" in step_until_task_stops(sim, api, node, upid)["exitstatus"]
    assert resource_entry(api, vmid)["status"] == "running"
    upid = post_power(api, node, "qemu", vmid, "shutdown", timeout=1, forceStop=1)
    assert step_until_task_stops(sim, api, node, upid)["exitstatus"] == "OK"
    assert resource_entry(api, vmid)["status"] == "stopped"


def test_hard_stop_and_reboot(fresh):
    sim, api = fresh
    target = guest(api, ha=False)
    node, vmid = target["node"], target["vmid"]
    before = resource_entry(api, vmid)["uptime"]
    upid = post_power(api, node, "qemu", vmid, "reboot")
    assert task_type(upid) == "qmreboot"
    assert step_until_task_stops(sim, api, node, upid)["exitstatus"] == "OK"
    after = resource_entry(api, vmid)
    assert after["status"] == "running" and after["uptime"] < before
    upid = post_power(api, node, "qemu", vmid, "stop")
    assert task_type(upid) == "qmstop"
    assert step_until_task_stops(sim, api, node, upid)["exitstatus"] == "OK"
    assert resource_entry(api, vmid)["status"] == "stopped"


def test_reboot_of_a_stopped_guest_and_start_of_a_running_one(fresh):
    sim, api = fresh
    stopped = guest(api, ha=False, running=False)
    with pytest.raises(ResourceException) as caught:
        api(f"nodes/{stopped['node']}/qemu/{stopped['vmid']}/status/reboot").post()
    assert caught.value.status_code == 500 and "not running" in caught.value.content
    running = guest(api, ha=False)
    upid = post_power(api, running["node"], "qemu", running["vmid"], "start")
    assert "already running" in step_until_task_stops(sim, api, running["node"], upid)["exitstatus"]


def test_ha_guest_shutdown_and_start_go_through_the_ha_manager(fresh):
    sim, api = fresh
    target = guest(api, ha=True)
    node, vmid = target["node"], target["vmid"]
    upid = post_power(api, node, "qemu", vmid, "shutdown", timeout=30)
    assert task_type(upid) == "hastop"
    log = [line["t"] for line in call(api, "GET", f"/nodes/{node}/tasks/{upid}/log")]
    assert log[0] == f"Requesting HA stop for VM {vmid}"
    assert step_until_task_stops(sim, api, node, upid)["exitstatus"] == "OK"
    step_until(sim, lambda: resource_entry(api, vmid)["status"] == "stopped", step=1, max_seconds=60)
    lrm = call(api, "GET", f"/nodes/{node}/tasks", vmid=vmid, typefilter="qmshutdown", source="all")
    assert lrm and lrm[0]["user"] == "root@pam"
    # 'request_stop' until the CRM's next round takes the LRM's result (Manager.pm next_state_request_stop)
    step_until(sim, lambda: resource_entry(api, vmid)["hastate"] == "stopped", step=1, max_seconds=20)

    upid = post_power(api, node, "qemu", vmid, "start")
    assert task_type(upid) == "hastart"
    step_until(sim, lambda: resource_entry(api, vmid)["status"] == "running", step=1, max_seconds=60)
    assert resource_entry(api, vmid)["hastate"] == "started"


def test_ha_guest_reboot_is_not_forwarded(fresh):
    sim, api = fresh
    target = guest(api, ha=True)
    upid = post_power(api, target["node"], "qemu", target["vmid"], "reboot")
    assert task_type(upid) == "qmreboot"
