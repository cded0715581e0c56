"""The power worker in ``auto`` over simulated days: homelab (3 votes) and smb (8 votes).

Homelab with margin 0 chosen: pve-big drains and powers off when the night load falls, wakes
by magic packet when the day load rises; every guest keeps running (the ones whose disks live on
pve-big's local pool are copied to a mini's local-lvm) except render-batch, whose GPU is in
pve-big: it is marked to sleep with it and runs again after the wake; postgres, HA-managed, is
moved live through the HA manager and never stopped; the cluster never drops below quorum and
pve-big cycles at most twice a day; all with the default band (45–81 %). With the default
margin 1 it never powers off and says why. smb (margin 1): at most 2 nodes off, and only nodes
with a wake method.
"""

from __future__ import annotations

import pytest

from pvetop.engine.power import mark_sleep_with_node
from pvetop.pve import actions
from tests.engine.powerdrive import auto_worker, sim_client, sim_store, simulate
from tests.engine.simdrive import running_sim

DAY = 86400.0
POSTGRES = 205  # HA-managed, on pve-big


class Watch:
    """Figures kept after every step: quorum, nodes off, guests not running, HA guests stopped."""

    def __init__(self, sim) -> None:
        with sim.cluster.lock:
            self.expected = {g.vmid for g in sim.cluster.guests.values() if g.status == "running"}
            self.ha = {g.vmid for g in sim.cluster.guests.values() if g.ha and g.status == "running"}
        self.min_online_votes = 10**6
        self.most_off = 0
        self.off_nodes: set[str] = set()
        self.not_running: set[int] = set()
        self.ha_stopped: set[int] = set()

    def __call__(self, sim) -> None:
        cluster = sim.cluster
        with cluster.lock:
            self.min_online_votes = min(self.min_online_votes, cluster.online_votes)
            off = {n.name for n in cluster.nodes.values() if not n.reachable}
            self.most_off = max(self.most_off, len(off))
            self.off_nodes |= off
            running = {g.vmid for g in cluster.guests.values() if g.status == "running"}
            self.not_running |= self.expected - running
            self.ha_stopped |= self.ha - running


def cycles(store, cluster: str, node: str) -> list[float]:
    return [
        e.at
        for e in reversed(store.recent_journal(cluster, 500))
        if e.action == "power.off" and e.result == "ok" and e.target == f"node/{node}"
    ]


@pytest.fixture
def homelab():
    with running_sim("homelab") as sim:
        yield sim


@pytest.mark.slow(seconds=60)
async def test_homelab_big_node_sleeps_at_night_and_wakes_by_day(homelab, tmp_path):
    sim = homelab
    with sim_client(sim) as client, sim_store(sim, str(tmp_path / "rules.sqlite")) as store:
        store.set_setting("homelab", "power.mode", "auto")
        store.set_setting("homelab", "power.failure_margin", 0)
        store.set_setting("homelab", "power.wake_method", "packet")
        store.set_setting("homelab", "power.wol_host", "127.0.0.1")
        store.set_setting("homelab", "power.wol_port", sim.info["wol_port"])
        # The minis carry the dev lab at night and not by day, with the default band; two full
        # sleep/wake cycles take about two simulated days, and where the second wake falls depends
        # on the loads, so the run goes on (at most a third day) until it has happened.
        store.set_node_power("homelab", "pve-big", allow_power_off=True)
        snapshot = client.fetch_snapshot()
        with sim.cluster.lock:
            local = [
                g.vmid
                for g in sim.cluster.guests.values()
                if g.node == "pve-big" and g.status == "running" and g.local_resources
            ]
            copied = {
                g.vmid
                for g in sim.cluster.guests.values()
                if g.node == "pve-big"
                and g.status == "running"
                and not g.local_resources
                and any(d.storage == "big-zfs" for d in g.disks)
            }
        assert local == [204] and copied == {200, 203}
        for vmid in local:
            mark_sleep_with_node(store, "homelab", snapshot.guest_by_vmid[vmid], True)
        watch = Watch(sim)
        worker = auto_worker(sim, client, store, "homelab")

        def woken() -> list:  # asked after every step: only the wake entries are read
            return [e for e in store.journal_entries("homelab", actions=("power.wake",)) if e.result == "ok"]

        await simulate(sim, worker, seconds=3 * DAY, step=180.0, watch=watch, until=lambda: len(woken()) >= 2)
        await simulate(sim, worker, seconds=3600.0, step=180.0, watch=watch)  # the sleepers start after the wake

        offs = cycles(store, "homelab", "pve-big")
        wakes = woken()
        assert len(offs) >= 2 and len(wakes) >= 2, [(e.action, e.result) for e in store.recent_journal("homelab", 50)]
        for at in offs:
            assert len([other for other in offs if at - DAY < other <= at]) <= 2
        assert all(
            "magic packet" in e.params.get("method", "")
            for e in store.recent_journal("homelab", 500)
            if e.action == "power.wake" and e.result == "started"
        )
        assert watch.off_nodes == {"pve-big"}
        assert watch.min_online_votes >= 2
        assert watch.ha_stopped == set()
        assert watch.not_running <= set(local)  # only the guests that sleep with pve-big ever stopped
        with sim.cluster.lock:
            big_up = sim.cluster.nodes["pve-big"].reachable
            running = {g.vmid for g in sim.cluster.guests.values() if g.status == "running"}
            home = {g.vmid: (g.node, {d.storage for d in g.disks}) for g in sim.cluster.guests.values()}
        if big_up:
            assert set(local) <= running  # started again after the wake
            # the drained guests came back, the copied disks to the pool they came from
            assert all(home[vmid] == ("pve-big", {"big-zfs"}) for vmid in copied)
            assert home[POSTGRES][0] == "pve-big"
        migrations = [e for e in store.recent_journal("homelab", 500) if e.action == "migrate" and e.actor == "power"]
        assert migrations and all(e.result in ("started", "ok") for e in migrations)
        assert {int(e.target.removeprefix("guest/")) for e in migrations if e.params["target_storage"]} == copied
        # postgres (HA): every move went through the HA manager and was live; it was never stopped
        with sim.cluster.lock:
            tasks = [t for t in sim.cluster.tasks if t.id == str(POSTGRES)]
        assert sim.cluster.guests[POSTGRES].ha
        live = [t for t in tasks if t.type == "qmigrate"]
        assert len([t for t in tasks if t.type == "hamigrate"]) == len(live) >= 2  # drained and back, at least once
        assert all(any("starting online/live migration" in line for _, line in t.lines) for t in live)
        assert not [t.type for t in tasks if t.type in ("qmstop", "qmshutdown", "hastop")]


async def test_homelab_default_margin_refuses_and_says_why(homelab, tmp_path):
    sim = homelab
    with sim_client(sim) as client, sim_store(sim, str(tmp_path / "rules.sqlite")) as store:
        store.set_setting("homelab", "power.mode", "auto")
        store.set_node_power("homelab", "pve-big", allow_power_off=True, wol_mac="3C:EC:EF:42:9B:20")
        worker = auto_worker(sim, client, store, "homelab")
        watch = Watch(sim)
        await simulate(sim, worker, seconds=6 * 3600, step=600.0, watch=watch)
        assert watch.off_nodes == set()
        reasons = "; ".join(worker.plan.decision("pve-big").reasons)
        assert "failure margin 0 below the required 1" in reasons and "power.failure_margin 0" in reasons


@pytest.mark.slow(seconds=45)
async def test_smb_keeps_margin_one_and_only_sleeps_nodes_it_can_wake(tmp_path):
    with running_sim("smb") as sim, sim_client(sim) as client, sim_store(sim, str(tmp_path / "r.sqlite")) as store:
        wakeable = {"pve2", "pve4", "pve7"}
        snapshot = client.fetch_snapshot()
        for node in set(snapshot.node_by_name) - wakeable:  # these keep no wake-on-LAN MAC in PVE
            client.put(f"nodes/{node}/config", delete="wakeonlan")
        assert all(actions.node_wakeonlan_mac(client, node) for node in wakeable)
        store.set_setting("smb", "power.mode", "auto")
        store.set_setting("smb", "power.wake_method", "pve")
        for node in snapshot.node_by_name:
            store.set_node_power("smb", node, allow_power_off=True)
        watch = Watch(sim)
        worker = auto_worker(sim, client, store, "smb")
        await simulate(sim, worker, seconds=DAY, step=300.0, watch=watch)
        assert watch.most_off <= 2
        assert watch.off_nodes and watch.off_nodes <= set(wakeable)
        assert watch.min_online_votes >= 6  # 5 needed of 8, plus one that may still fail
        assert watch.not_running == set()  # HA guests included: drained live, never stopped
        moved = [
            e for e in store.journal_entries("smb", actions=("migrate",)) if e.actor == "power" and e.result == "ok"
        ]
        assert any(e.params["via_ha"] for e in moved) and all(
            e.params["online"] or e.params["type"] == "lxc" for e in moved if e.params["via_ha"]
        )
        no_way = [d for d in worker.plan.decisions if d.node not in wakeable and d.state == "on"]
        assert all(
            any("no known way to wake it" in r for r in d.reasons)
            for d in no_way
            if d.action == "keep" and not any(r.startswith("paused") for r in d.reasons)
        )
