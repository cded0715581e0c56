"""One refresh against the simulator's 32-node/4000-guest scenario, printed as JSON.

Run: ``.venv/bin/python tests/bench/bench_fetch_snapshot.py [scenario]``. Reports the requests a
refresh costs (budget: 2) and how the time splits between the round trips (server encode +
transfer + client JSON decode) and building the snapshot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from pvetop.config import settings_from_sim_info
from pvetop.model import CrsOptions
from pvetop.pve import PveClient
from pvetop.pve.parse import build_snapshot
from pvetop.sim.runner import start_sim
from pvetop.sim.scenarios import list_scenarios


def main(scenario: str = "large", rounds: int = 10) -> None:
    with (
        start_sim(scenario=scenario, seed=1, manual_clock=True) as sim,
        PveClient.connect(settings_from_sim_info(sim.info)) as client,
    ):
        fetch_ms, parse_ms, requests = [], [], set()
        for _ in range(rounds):
            start = time.perf_counter()
            resources, status = client.get("cluster/resources"), client.get("cluster/status")
            fetched = time.perf_counter()
            build_snapshot(resources, status, crs=CrsOptions(), ha_rules=(), fetched_at=0.0, api_requests=2)
            parse_ms.append((time.perf_counter() - fetched) * 1000)
            fetch_ms.append((fetched - start) * 1000)
            requests.add(client.fetch_snapshot().api_requests)
            sim.cluster.step(5)
        snapshot = client.fetch_snapshot()
    print(
        json.dumps(
            {
                "benchmark": "fetch_snapshot",
                "scenario": scenario,
                "nodes": len(snapshot.nodes),
                "guests": len(snapshot.guests),
                "requests_per_refresh": sorted(requests),
                "round_trips_median_ms": round(statistics.median(fetch_ms), 1),
                "parse_median_ms": round(statistics.median(parse_ms), 1),
                "parse_min_ms": round(min(parse_ms), 1),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", default="large", choices=list_scenarios(), help="simulated cluster")
    main(parser.parse_args().scenario)
