"""A simulated week of the power policy in ``auto`` on homelab and smb; prints JSON figures.

    PYTHONPATH=. .venv/bin/python tests/bench/power.py [--days 7] [--step 300] [--scenario homelab smb]

Figures per scenario: node-hours off, kWh saved (setting power.idle_watts), migrations the
policy caused, minutes any online node spent above 90 % memory (must be 0), the lowest quorum
failure margin seen, and the bin-packing lower bound of nodes needed per hour with the share of
its possible savings reached (target ≥ 90 %).

The bound: for every hour, the most sleepable nodes (allowed, with a wake method) that could be
off while the others carry the load — every running guest's CPU and memory as its host pays it
(a VM's resident pages, page cache included; the guests marked to sleep with a node that is off
excepted) plus the remaining nodes' own memory — under the band's
top, with quorum and the failure margin kept. Capacity is summed per resource, which ignores how
guests fragment across nodes: an optimistic (lower) bound on the nodes needed. An hour's bound
uses the hour's demand, its samples averaged; the possible savings are the sum of those node-hours.

homelab: margin 0 chosen, pve-big allowed, render-batch (its GPU is in pve-big) marked to sleep
with it — the guests whose disks live on pve-big's local pool are copied to a mini's storage by
the drain and back after the wake — the magic packet sent to the simulator's UDP port. smb: margin 1
(default), every node allowed; the nodes' MACs are in their PVE config, woken by packet.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pvetop.engine.power import energy, load_settings, mark_sleep_with_node
from pvetop.policy.power import failure_margin
from pvetop.sim.memory import host_resident
from tests.engine.powerdrive import auto_worker, sim_client, sim_store, simulate
from tests.engine.simdrive import running_sim

HOUR = 3600.0
MEM_ALARM = 0.9


def host_usage(cluster, guest, now: float) -> tuple[float, int]:
    """(CPU share of its cores, memory its host pays): a VM keeps its touched pages resident."""
    cpu, used = cluster.guest_usage(guest, now)
    if guest.type != "qemu" or guest.status != "running":
        return cpu, used
    return cpu, host_resident(guest, used, guest.memory)


class Figures:
    """Samples the simulator after every step (its own state is the witness)."""

    def __init__(self, sim, sleepable: set[str], sleepers: set[int], settings, step: float) -> None:
        self.sleepable = sleepable
        self.sleepers = sleepers
        self.settings = settings
        self.step = step
        self.start = sim.cluster.now
        self.node_seconds_off = 0.0
        self.minutes_hot = 0.0
        self.min_margin = 10**6
        self.hourly_demand: dict[int, dict[tuple[str, ...], list[tuple[float, float]]]] = {}
        self.nodes: list = []
        self.votes: dict[str, int] = {}

    def __call__(self, sim) -> None:
        cluster = sim.cluster
        with cluster.lock:
            now = cluster.now
            nodes = list(cluster.nodes.values())
            online = {n.name for n in nodes if n.reachable}
            votes = {n.name: n.votes for n in nodes}
            self.node_seconds_off += self.step * (len(nodes) - len(online))
            hot = False
            for node in nodes:
                if node.name in online:
                    _cpu, mem = cluster.node_usage(node, now)
                    hot = hot or mem / node.memory > MEM_ALARM
            if hot:
                self.minutes_hot += self.step / 60
            self.min_margin = min(self.min_margin, failure_margin(votes, online))
            guests = [
                (g.node, g.vmid, *host_usage(cluster, g, now), g.cores)
                for g in cluster.guests.values()
                if g.status == "running" or g.vmid in self.sleepers
            ]
            self.nodes, self.votes = nodes, votes
            demand = self._demand_by_subset(guests)
        hour = int((now - self.start) // HOUR)
        for off, figures in demand.items():
            self.hourly_demand.setdefault(hour, {}).setdefault(off, []).append(figures)

    def _subsets(self) -> list[tuple[str, ...]]:
        candidates = sorted(self.sleepable)
        return [off for count in range(len(candidates), 0, -1) for off in itertools.combinations(candidates, count)]

    def _demand_by_subset(self, guests) -> dict[tuple[str, ...], tuple[float, float]]:
        """CPU cores and memory the cluster must carry with each set of sleepable nodes off."""
        demand = {}
        for off in self._subsets():
            cores = sum(cpu * vcpus for node, vmid, cpu, _mem, vcpus in guests if not self._asleep(node, vmid, off))
            mem = sum(m for node, vmid, _cpu, m, _vcpus in guests if not self._asleep(node, vmid, off))
            demand[off] = (cores, float(mem))
        return demand

    def hourly_bound(self) -> dict[int, int]:
        """Per hour: the most sleepable nodes that could be off under the hour's mean demand."""
        return {hour: self._most_off(by_subset) for hour, by_subset in self.hourly_demand.items()}

    def possible_node_hours(self, bound: dict[int, int]) -> float:
        """Node-hours off the bound allows, each hour weighted by how much of it was simulated."""
        any_subset = self._subsets()[0] if self._subsets() else None
        if any_subset is None:
            return 0.0
        return sum(k * len(self.hourly_demand[hour][any_subset]) * self.step / HOUR for hour, k in bound.items())

    def _most_off(self, by_subset: dict[tuple[str, ...], list[tuple[float, float]]]) -> int:
        high = self.settings.band_high
        for off in self._subsets():
            rest = [n for n in self.nodes if n.name not in off]
            if len(rest) < self.settings.min_nodes_on:
                continue
            if failure_margin(self.votes, [n.name for n in rest]) < self.settings.failure_margin:
                continue
            samples = by_subset[off]
            cores = sum(c for c, _ in samples) / len(samples)
            mem = sum(m for _, m in samples) / len(samples) + sum(n.base_memory for n in rest)
            if cores <= high * sum(n.cpus for n in rest) and mem <= high * sum(n.memory for n in rest):
                return len(off)
        return 0

    def _asleep(self, node: str, vmid: int, off: tuple[str, ...]) -> bool:
        return vmid in self.sleepers and node in off


async def run_scenario(name: str, days: float, step: float, workdir: Path) -> dict:
    with running_sim(name) as sim, sim_client(sim) as client, sim_store(sim, str(workdir / f"{name}.sqlite")) as store:
        cluster = client.fetch_snapshot().cluster_name
        store.set_setting(cluster, "power.mode", "auto")
        store.set_setting(cluster, "power.wake_method", "packet")
        store.set_setting(cluster, "power.wol_host", "127.0.0.1")
        store.set_setting(cluster, "power.wol_port", sim.info["wol_port"])
        snapshot = client.fetch_snapshot()
        sleepers: set[int] = set()
        if name == "homelab":
            store.set_setting(cluster, "power.failure_margin", 0)
            store.set_setting(cluster, "power.idle_watts", "pve-big=150,*=12")
            store.set_node_power(cluster, "pve-big", allow_power_off=True)
            with sim.cluster.lock:
                sleepers = {
                    g.vmid
                    for g in sim.cluster.guests.values()
                    if g.node == "pve-big" and g.status == "running" and g.local_resources
                }
            for vmid in sleepers:
                mark_sleep_with_node(store, cluster, snapshot.guest_by_vmid[vmid], True)
            sleepable = {"pve-big"}
        else:
            store.set_setting(cluster, "power.idle_watts", "*=180")
            for node in snapshot.node_by_name:
                store.set_node_power(cluster, node, allow_power_off=True)
            with sim.cluster.lock:
                sleepable = {n.name for n in sim.cluster.nodes.values() if n.mac}
        settings = load_settings(store, cluster)
        figures = Figures(sim, sleepable, sleepers, settings, step)
        worker = auto_worker(sim, client, store, cluster)
        started = time.perf_counter()
        await simulate(sim, worker, seconds=days * 86400, step=step, watch=figures)
        wall = time.perf_counter() - started
        report = energy(store, cluster, load_settings(store, cluster), now=sim.cluster.now)
        migrations = [
            e for e in store.journal_entries(cluster, actions=("migrate",)) if e.actor == "power" and e.result == "ok"
        ]
        offs = [e for e in store.journal_entries(cluster, actions=("power.off",)) if e.result == "ok"]
        per_day: dict[tuple[str, int], int] = defaultdict(int)
        for entry in offs:
            per_day[entry.target, int((entry.at - figures.start) // 86400)] += 1
        bound = figures.hourly_bound()
        possible_hours = figures.possible_node_hours(bound)
        hours_off = figures.node_seconds_off / HOUR
        nodes_needed = [len(sim.cluster.nodes) - k for _, k in sorted(bound.items())]
        return {
            "scenario": name,
            "simulated_days": days,
            "wall_seconds": round(wall, 1),
            "node_hours_off": round(hours_off, 1),
            "node_hours_off_journal": round(report.total_hours, 1),
            "kwh_saved": round(report.total_kwh, 2),
            "power_offs": len(offs),
            "most_power_offs_per_node_and_day": max(per_day.values(), default=0),
            "migrations_caused": len(migrations),
            "minutes_any_node_above_90pct_memory": round(figures.minutes_hot, 1),
            "quorum_failure_margin_min": figures.min_margin,
            "nodes_needed_lower_bound_per_hour": {
                "min": min(nodes_needed, default=0),
                "max": max(nodes_needed, default=0),
                "mean": round(sum(nodes_needed) / max(1, len(nodes_needed)), 2),
            },
            "possible_node_hours_off": round(possible_hours, 1),
            "share_of_possible_savings": round(hours_off / possible_hours, 3) if possible_hours else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--step", type=float, default=300.0, help="simulated seconds between two evaluations")
    parser.add_argument("--scenario", nargs="+", default=["homelab", "smb"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.scenario:
            print(json.dumps(asyncio.run(run_scenario(name, args.days, args.step, Path(workdir))), indent=2))


if __name__ == "__main__":
    main()
