"""Guest lifecycle: ``POST /nodes/{node}/{qemu|lxc}/{vmid}/status/{start|stop|shutdown|reboot}``.

What PVE does (qemu-server API2/Qemu.pm, pve-container API2/LXC/Status.pm):

- start, stop and shutdown of an HA-managed guest do not touch the guest: the API forks a short
  ``hastart``/``hastop`` task that runs ``ha-manager set <sid> --state started`` (start) or
  ``ha-manager crm-command stop <sid> <timeout>`` (stop: timeout 0, shutdown: its timeout,
  default 60). The CRM (``ha``) then has the node's LRM run the real ``qmstart``/``qmshutdown``/
  ``qmstop`` task as root@pam on its next rounds;
- reboot is never forwarded to HA (``qmreboot``/``vzreboot``) and needs a running guest;
- a graceful shutdown that outlasts ``timeout`` fails ("got timeout") unless ``forceStop`` is set,
  which then stops the guest hard;
- starting a running guest fails in the task ("already running"), stopping a stopped one is OK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pvetop.sim.errors import PveApiError

if TYPE_CHECKING:
    from pvetop.sim.cluster import SimCluster
    from pvetop.sim.entities import SimGuest

ACTIONS = ("start", "stop", "shutdown", "reboot")
SECONDS = {"start": 3.0, "stop": 1.0}  # how long the guest takes (a shutdown: its OS, see Power.shutdown_seconds)
HA_REQUEST_SECONDS = 1.0  # the hastart/hastop task only hands the request to the CRM
DEFAULT_HA_SHUTDOWN_TIMEOUT = 60  # ha-manager crm-command stop: PVE's default for a shutdown


def guest_power(cluster: SimCluster, kind: str, node: str, vmid: int, action: str, user: str, params: dict) -> str:
    """The API call: checks, then either an HA request task or the guest's own task; its UPID."""
    guest = cluster.guest_on(node, vmid, kind)
    cluster.require_quorum()
    label = _label(guest)
    if guest.lock:
        raise PveApiError(500, f"{label} is locked ({guest.lock})")
    if action == "start" and guest.template:
        raise PveApiError(500, "you can't start a vm if it's a template")
    if action == "reboot" and guest.status != "running":
        raise PveApiError(500, f"{label} {vmid} not running")
    if guest.ha and action != "reboot":
        return _request_ha(cluster, guest, action, user, params)
    return run_task(cluster, guest, action, user, params).upid


def _request_ha(cluster: SimCluster, guest: SimGuest, action: str, user: str, params: dict) -> str:
    """``hastart``/``hastop``: hands the request to the HA manager (``ha-manager set --state
    started`` or ``crm-command stop``); its LRM runs the real task on a later round."""
    starting = action == "start"
    task = cluster.new_task(guest.node, "hastart" if starting else "hastop", str(guest.vmid), user)
    task.log(
        cluster.now, f"Requesting HA {'start' if starting else 'stop'} for {_label(guest)} {guest.vmid}", stamped=False
    )
    task.finish(cluster.now + HA_REQUEST_SECONDS, "OK")
    if starting:
        cluster.ha.set_requested_state(guest, "started")
    else:
        timeout = 0 if action == "stop" else int(params.get("timeout", DEFAULT_HA_SHUTDOWN_TIMEOUT))
        cluster.ha.queue_command(f"stop {guest.sid} {timeout}")
    cluster.revision += 1
    return task.upid


def run_task(cluster: SimCluster, guest: SimGuest, action: str, user: str, params: dict):
    """The guest's own ``qm*``/``vz*`` task; the guest's status changes when it ends."""
    node, now, label = guest.node, cluster.now, _label(guest)
    task = cluster.new_task(node, f"{'qm' if guest.type == 'qemu' else 'vz'}{action}", str(guest.vmid), user)
    running = guest.status == "running"
    if action == "start" and running:
        task.finish(now, f"{label} {guest.vmid} already running")
        return task
    if action in ("stop", "shutdown") and not running:
        task.finish(now, "OK")
        return task
    if action == "start":
        task.log(now, f"starting {label} {guest.vmid} on node '{node}'", stamped=False)
    end, wanted = _plan(task, guest, action, params, now, cluster.power.shutdown_seconds(guest))

    def done() -> None:
        if guest.node == node and cluster.nodes[node].reachable and wanted is not None:
            guest.status = wanted
            guest.started_at = cluster.now

    cluster.schedule(end, done)
    cluster.revision += 1
    return task


def _plan(task, guest: SimGuest, action: str, params: dict, now: float, needed: float) -> tuple[float, str | None]:
    """When the task ends and the guest status it leaves (None: unchanged)."""
    if action == "start":
        end = now + SECONDS["start"]
        task.finish(end, "OK")
        return end, "running"
    if action == "stop":
        end = now + SECONDS["stop"]
        task.finish(end, "OK")
        return end, "stopped"
    timeout = params.get("timeout")
    if action == "reboot":
        end = now + needed + SECONDS["start"]
        if timeout is not None and int(timeout) < needed:
            end = now + int(timeout)
            task.finish(end, f"{_label(guest)} quit/powerdown failed - got timeout")
            return end, None
        task.finish(end, "OK")
        return end, "running"
    if timeout is not None and int(timeout) < needed:
        end = now + int(timeout)
        if params.get("forceStop"):
            task.log(end, f"{_label(guest)} still running - terminating now with SIGTERM", stamped=False)
            end += SECONDS["stop"]
            task.finish(end, "OK")
            return end, "stopped"
        task.finish(end, f"{_label(guest)} quit/powerdown failed - got timeout")
        return end, None
    end = now + needed
    task.finish(end, "OK")
    return end, "stopped"


def _label(guest: SimGuest) -> str:
    return "VM" if guest.type == "qemu" else "CT"
