"""The power worker against the homelab simulator (manual clock): drain, sleep, wake, fail.

Homelab: pve-mini1 answers the API, pve-big (MAC 3C:EC:EF:42:9B:20 in its PVE node config)
boots in 180 s and shuts down in 60 s. Guests on big-zfs (local to pve-big) cannot leave it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pvetop.config import settings_from_sim_info
from pvetop.engine.power import SLEPT, PowerWorker, energy, load_settings, mark_sleep_with_node
from pvetop.pve import PveClient
from pvetop.store import open_store
from tests.engine.powerdrive import count_reads, follow, sim_client
from tests.engine.simdrive import drive, running_sim

BIG = "pve-big"
CLUSTER = "homelab"


@pytest.fixture
def client(sim):
    with PveClient.connect(settings_from_sim_info(sim.info), clock=lambda: sim.cluster.now) as api:
        yield api


def prepare(store, sim, *, margin: int = 0) -> None:
    store.set_setting(CLUSTER, "power.failure_margin", margin)
    store.set_setting(CLUSTER, "power.wake_method", "packet")
    store.set_setting(CLUSTER, "power.wol_host", "127.0.0.1")
    store.set_setting(CLUSTER, "power.wol_port", sim.info["wol_port"])
    store.set_node_power(CLUSTER, BIG, allow_power_off=True, boot_timeout=600)


def worker_for(sim, client, store, **options) -> PowerWorker:
    worker = PowerWorker(client, store, CLUSTER, clock=lambda: sim.cluster.now, poll=0.01, **options)
    count_reads(worker)
    return worker


def unmovable(sim) -> list:
    """Running guests of pve-big whose disks live on its local big-zfs."""
    with sim.cluster.lock:
        return [
            g
            for g in sim.cluster.guests.values()
            if g.node == BIG and g.status == "running" and any(d.storage == "big-zfs" for d in g.disks)
        ]


async def run(sim, worker, work):
    """Runs one power action while simulated time moves in lock-step with the worker's reads."""
    task = asyncio.ensure_future(work)
    await follow(sim, worker, task.done)
    return task.result()


def running_vmids(sim) -> dict[int, str]:
    with sim.cluster.lock:
        return {g.vmid: g.node for g in sim.cluster.guests.values() if g.status == "running"}


async def test_power_off_by_hand_drains_sleeps_and_wakes_by_magic_packet(sim, client, store):
    prepare(store, sim)
    snapshot = client.fetch_snapshot()
    for guest in unmovable(sim):
        mark_sleep_with_node(store, CLUSTER, snapshot.guest_by_vmid[guest.vmid], True)
    sleepers = {g.vmid for g in unmovable(sim)}
    before = running_vmids(sim)
    worker = worker_for(sim, client, store)

    outcome = await run(sim, worker, worker.power_off(BIG))
    assert outcome.ok, outcome.detail
    assert worker.tracks[BIG].state == "off"
    with sim.cluster.lock:
        assert not sim.cluster.nodes[BIG].reachable
    after = running_vmids(sim)
    assert set(after) == set(before) - sleepers  # every other guest still runs, elsewhere
    assert all(node != BIG for node in after.values())
    assert store.get_setting(CLUSTER, SLEPT) == {BIG: sorted(sleepers)}

    woken = await run(sim, worker, worker.wake(BIG))
    assert woken.ok, woken.detail
    assert woken.decision.wake.describe() == "magic packet to 3C:EC:EF:42:9B:20"
    await drive(sim, lambda: set(running_vmids(sim)) >= set(before), step=2.0, limit=120)
    assert {vmid: node for vmid, node in running_vmids(sim).items() if vmid in sleepers} == dict.fromkeys(sleepers, BIG)
    assert store.get_setting(CLUSTER, SLEPT) == {}
    results = [(e.action, e.result) for e in reversed(store.recent_journal(CLUSTER)) if e.action.startswith("power.")]
    assert results == [("power.off", "started"), ("power.off", "ok"), ("power.wake", "started"), ("power.wake", "ok")]
    report = energy(store, CLUSTER, load_settings(store, CLUSTER), now=sim.cluster.now)
    assert report.hours_off[BIG] > 0 and report.total_kwh == pytest.approx(report.hours_off[BIG] * 0.1)


async def test_power_off_refused_with_default_margin_and_with_unmovable_guests(sim, client, store):
    prepare(store, sim, margin=1)
    worker = worker_for(sim, client, store)
    outcome = await run(sim, worker, worker.power_off(BIG))
    assert outcome.refused and not outcome.ok
    assert "failure margin 0 below the required 1" in outcome.detail
    if unmovable(sim):
        assert "sleep with its node" in outcome.detail
    with sim.cluster.lock:
        assert sim.cluster.nodes[BIG].reachable
    assert [(e.action, e.result) for e in store.recent_journal(CLUSTER)][0] == ("power.off", "refused")


async def test_a_wake_whose_packets_were_all_lost_is_sent_again_at_half_the_boot_timeout(sim, client, store):
    """The soak's lost magic packet left a node off for a week: one burst of packets, all lost,
    and the wake was marked failed. Now the wake goes out once more while the node is not back."""
    import wakeonlan

    from pvetop.engine.power import PACKET_COPIES

    prepare(store, sim)
    store.set_node_power(CLUSTER, BIG, boot_timeout=600)
    snapshot = client.fetch_snapshot()
    for guest in unmovable(sim):
        mark_sleep_with_node(store, CLUSTER, snapshot.guest_by_vmid[guest.vmid], True)
    sent: list[str] = []

    def first_burst_lost(mac: str, **where) -> None:
        sent.append(mac)
        if len(sent) > PACKET_COPIES:  # the first wake's copies never arrive
            wakeonlan.wake(mac, **where)

    worker = worker_for(sim, client, store, send_packet=first_burst_lost)
    assert (await run(sim, worker, worker.power_off(BIG))).ok
    outcome = await run(sim, worker, worker.wake(BIG))
    assert outcome.ok, outcome.detail
    assert len(sent) == 2 * PACKET_COPIES
    wakes = [e.result for e in store.journal_entries(CLUSTER, actions=("power.wake",))]
    assert wakes == ["started", "resent: not back after 300 s", "ok"]
    with sim.cluster.lock:
        assert sim.cluster.nodes[BIG].reachable


async def test_dropped_magic_packet_marks_the_node_failed_without_retrying(sim, client, store):
    prepare(store, sim)
    store.set_node_power(CLUSTER, BIG, boot_timeout=240)
    snapshot = client.fetch_snapshot()
    for guest in unmovable(sim):
        mark_sleep_with_node(store, CLUSTER, snapshot.guest_by_vmid[guest.vmid], True)
    worker = worker_for(sim, client, store)
    assert (await run(sim, worker, worker.power_off(BIG))).ok
    with sim.cluster.lock:
        sim.cluster.faults.update({"wol_drop_rate": 1.0}, sim.cluster.now)  # the sim loses every magic packet

    outcome = await run(sim, worker, worker.wake(BIG))
    assert not outcome.ok and outcome.detail == "did not rejoin within 240 s"
    assert worker.tracks[BIG].state == "failed"
    assert any("did not rejoin" in alert and "sent twice" in alert for alert in worker.alerts)
    store.set_setting(CLUSTER, "power.mode", "auto")
    for _ in range(5):  # later rounds leave the failed node alone: no retry loop
        plan = await worker.step()
        assert plan.action is None and plan.decision(BIG).state == "failed"
        sim.cluster.step(600)
    wakes = [e.result for e in store.journal_entries(CLUSTER, actions=("power.wake",))]
    assert wakes == ["started", "resent: not back after 120 s", "failed: did not rejoin within 240 s"]
    with sim.cluster.lock:
        assert not sim.cluster.nodes[BIG].reachable  # the others carry the load


async def test_read_only_changes_nothing(sim, client, store):
    prepare(store, sim)
    worker = worker_for(sim, client, store, read_only=True)
    with pytest.raises(Exception, match="read-only"):
        await worker.power_off(BIG)
    store.set_setting(CLUSTER, "power.mode", "auto")
    plan = await worker.step()
    assert plan.paused == "read-only: pvetop changes nothing" and plan.action is None


async def test_the_node_pvetop_talks_to_stays_on_unless_another_endpoint_answers(sim, store):
    prepare(store, sim)
    ports = {e["node"]: e["port"] for e in sim.info["endpoints"]}
    base = settings_from_sim_info(sim.info)

    async def refusals(*nodes: str) -> list[str]:
        settings = replace(base, hosts=tuple(("127.0.0.1", ports[node]) for node in nodes))
        with PveClient.connect(settings, clock=lambda: sim.cluster.now) as client:
            return list((await worker_for(sim, client, store).check_power_off(BIG)).refusals)

    endpoint_rule = "pvetop talks to the cluster through this node and no other configured endpoint answers"
    assert endpoint_rule in await refusals(BIG)
    assert endpoint_rule not in await refusals(BIG, "pve-mini1")
    assert endpoint_rule not in await refusals("pve-mini1")


async def test_a_round_reads_the_settings_once_and_asks_the_endpoints_until_another_answers(sim, client, store):
    """The daemon's round: one read of the power settings (``evaluate`` takes the step's), two of
    the journal (the failure margin's choice; the day's power entries, for the cycles and the
    failed power-offs both), and once the worker knows the nodes' MACs and history, two requests —
    the node pvetop talks to and the next endpoint, which answers as another node — not one per
    configured host."""
    store.set_setting(CLUSTER, "power.mode", "advise")
    worker = worker_for(sim, client, store)
    reads = {"settings": 0, "journal": 0}
    read_settings, read_journal = worker.settings, store.journal_entries

    def settings():
        reads["settings"] += 1
        return read_settings()

    def journal_entries(*args, **kwargs):
        reads["journal"] += 1
        return read_journal(*args, **kwargs)

    worker.settings = settings  # type: ignore[method-assign]
    store.journal_entries = journal_entries
    snapshot = client.fetch_snapshot()
    await worker.step(snapshot)  # the first reads every node's rrddata, MAC and the QDevice
    reads.update(settings=0, journal=0)
    before = client.request_count
    plan = await worker.step(snapshot)
    assert plan is not None and plan.decision(BIG).action == "keep"
    assert reads == {"settings": 1, "journal": 2}
    assert client.request_count - before == 2


async def test_drain_asks_for_one_of_two_ha_partners_and_waits_for_the_other(tmp_path):
    """smb's vm:106 and vm:107 (positive HA affinity) run on pve5: PVE's HA manager moves 107
    along with 106, so the drain asks for 106 only, journals 107 as coming along and waits for it
    (asked for on its own, 107's request failed once it had left pve5: 'drain incomplete')."""
    with running_sim("smb") as smb, sim_client(smb) as api, open_store(str(tmp_path / "rules.sqlite")) as rules:
        rules.set_setting("smb", "power.wake_method", "pve")
        rules.set_node_power("smb", "pve5", allow_power_off=True)
        snapshot = api.fetch_snapshot()
        on_pve5 = snapshot.guests_by_node["pve5"]
        assert {106, 107} <= {g.vmid for g in on_pve5}
        # the others sleep with the node (105 may not leave pve4/pve5, its anti-affine partner is on pve4)
        for guest in on_pve5:
            if guest.vmid not in (106, 107) and guest.running:
                mark_sleep_with_node(rules, "smb", guest, True)
        worker = PowerWorker(api, rules, "smb", clock=lambda: smb.cluster.now, poll=0.01)

        outcome = await run(smb, worker, worker.power_off("pve5", force=True))

        assert outcome.ok, outcome.detail
        with smb.cluster.lock:
            nodes = {vmid: smb.cluster.guests[vmid].node for vmid in (106, 107)}
            asked = [t for t in smb.cluster.tasks if t.type == "hamigrate" and t.user == "root@pam!pvetop"]
        assert nodes[106] == nodes[107] != "pve5"
        assert [t.id for t in asked] == ["106"]
        journal = {e.target: e.result for e in rules.recent_journal("smb") if e.action == "migrate"}
        assert journal["guest/107"].startswith("comigrates with 106")
