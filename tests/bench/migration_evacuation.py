"""Evacuate the fullest node of the smb scenario through the engine; print JSON figures.

    .venv/bin/python tests/bench/migration_evacuation.py [--scenario smb] [--speed 100]

Figures: planning time (preconditions + plan), guests moved, wall and simulated duration, most
migrations at once (from the sim's task record), API requests per migration while tracking.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from pvetop.config import settings_from_sim_info
from pvetop.engine.evacuation import prepare_evacuation, run_evacuation
from pvetop.engine.migrations import Limits, MigrationExecutor
from pvetop.policy.rules import RuleSet
from pvetop.pve import PveClient
from pvetop.sim.runner import start_sim


def most_at_once(tasks) -> int:
    worst = 0
    for task in tasks:
        worst = max(
            worst, sum(1 for other in tasks if other.starttime <= task.starttime < (other.end_time or float("inf")))
        )
    return worst


async def evacuate(client: PveClient, node: str, snapshot, poll: float, limits: Limits) -> dict:
    started = time.perf_counter()
    proposal = await prepare_evacuation(client, snapshot, node, RuleSet.empty())
    planned = time.perf_counter()
    before = client.request_count
    executor = MigrationExecutor(client, poll=poll, limits=limits)
    result = await run_evacuation(executor, proposal)
    done = time.perf_counter()
    return {
        "node": node,
        "guests": len(snapshot.guests_by_node[node]),
        "moves": len(proposal.plan.moves),
        "moved": sum(job.succeeded for job in result.jobs),
        "left_behind": len(result.left_behind),
        "plan_ms": round((planned - started) * 1000, 1),
        "run_s": round(done - planned, 2),
        "requests_per_move": round((client.request_count - before) / max(1, len(result.jobs)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="smb")
    parser.add_argument("--speed", type=float, default=100.0)
    parser.add_argument("--poll", type=float, default=0.2)
    args = parser.parse_args()
    with start_sim(scenario=args.scenario, seed=1, speed=args.speed) as sim:
        with PveClient.connect(settings_from_sim_info(sim.info)) as client:
            snapshot = client.fetch_snapshot()
            node = max(snapshot.online_nodes, key=lambda n: len(snapshot.guests_by_node.get(n.name, ())))
            sim_start = sim.cluster.clock.now()
            figures = asyncio.run(evacuate(client, node.name, snapshot, args.poll, Limits(2, 2)))
            migrations = [t for t in sim.cluster.tasks if t.type in ("qmigrate", "vzmigrate")]
            figures.update(
                scenario=args.scenario,
                speed=args.speed,
                poll_s=args.poll,
                simulated_s=round(sim.cluster.clock.now() - sim_start, 1),
                most_at_once=most_at_once(migrations),
            )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
