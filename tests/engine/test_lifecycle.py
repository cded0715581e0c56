"""LifecycleRunner against the simulator: plain and HA guests, refusals, failures, the journal."""

from __future__ import annotations

from pvetop.engine.jobs import JobState
from pvetop.engine.lifecycle import LifecycleRunner
from pvetop.pve.tasks import parse_upid
from tests.engine.simdrive import drive


def guest_status(sim, vmid: int) -> str:
    with sim.cluster.lock:
        return sim.cluster.guests[vmid].status


def pick(client, *, ha: bool, running: bool = True):
    snapshot = client.fetch_snapshot()
    return min(
        (
            g
            for g in snapshot.guests
            if bool(g.hastate) == ha and g.running == running and not g.template and not g.lock and g.type == "qemu"
        ),
        key=lambda g: g.vmid,
    )


async def run(sim, runner: LifecycleRunner, guest, action: str, **kwargs):
    job = runner.submit(guest, action, **kwargs)
    await drive(sim, lambda: job.state.finished, step=1.0, limit=600)
    await runner.wait([job])
    return job


async def test_shutdown_then_start_a_plain_guest_and_journal_both(sim, client, store):
    runner = LifecycleRunner(client, store=store, cluster="homelab", poll=0.01)
    guest = pick(client, ha=False)
    job = await run(sim, runner, guest, "shutdown", timeout=30)
    assert job.state is JobState.SUCCEEDED and not job.via_ha and parse_upid(job.upid).type == "qmshutdown"
    assert guest_status(sim, guest.vmid) == "stopped" and job.status_text == "shut down"
    job = await run(sim, runner, client.fetch_snapshot().guest_by_vmid[guest.vmid], "start")
    assert job.state is JobState.SUCCEEDED and guest_status(sim, guest.vmid) == "running"
    journal = [(e.action, e.result) for e in store.recent_journal("homelab")]
    assert journal == [("start", "ok"), ("start", "started"), ("shutdown", "ok"), ("shutdown", "started")]


async def test_ha_guest_is_followed_until_the_lrm_has_stopped_it(sim, client):
    runner = LifecycleRunner(client, poll=0.01)
    guest = pick(client, ha=True)
    job = await run(sim, runner, guest, "shutdown")
    assert job.state is JobState.SUCCEEDED and job.via_ha
    assert parse_upid(job.ha_upid).type == "hastop" and parse_upid(job.upid).type == "qmshutdown"
    assert guest_status(sim, guest.vmid) == "stopped" and job.status_text == "shut down via HA manager"


async def test_a_refusal_and_a_failing_task_say_why(sim, client):
    runner = LifecycleRunner(client, poll=0.01)
    stopped = pick(client, ha=False, running=False)
    job = await run(sim, runner, stopped, "reboot")
    assert job.state is JobState.FAILED and "not running" in job.error and job.upid is None
    running = pick(client, ha=False)
    job = await run(sim, runner, running, "shutdown", timeout=1)
    assert job.state is JobState.FAILED and "got timeout" in job.error
    assert guest_status(sim, running.vmid) == "running"
