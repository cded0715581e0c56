"""The dashboard's refresh cost on the simulator's 32-node/4000-guest cluster, printed as JSON.

Run: ``.venv/bin/python tests/bench/refresh.py [scenario]`` (default ``large``). The simulator
runs in this process, as with ``pvetop --demo large``. Figures:

- ``requests_per_refresh``: API requests one refresh costs (budget: at most 2).
- ``fetch_parse_ms``: one ``fetch_snapshot`` (round trips + parsing), median, and ``prepare_ms``:
  rates, totals and formatted rows, both done in the poll worker, off the UI thread.
- ``first_paint_ms``: from starting the app to the first painted table (budget: < 2 s),
  ``startup_ms`` adds starting the simulator and connecting, as ``pvetop --demo`` does.
- ``apply_ms``: UI-thread time to diff a refresh into the tables where ~20 % of the guests
  changed (p50/p95), sorted by CPU so rows move every time; ``frame_ms`` the same plus drawing
  the next frame as Textual draws it (a 160x50 terminal; the guest table's every line, as its
  rows move); ``full_repaint_cpu_ms``: drawing every line of the screen again after that (an
  upper bound); ``sim_step_*``: the same for a real 2 s simulator step, where every running
  guest's figures move.
- ``*_cpu_ms``: the same two as CPU time of the UI thread, which other processes on a busy
  machine do not inflate (wall-clock figures there are mostly time spent waiting for a core);
  ``load_average``: the machine's 1-minute load before and after, to read the figures by.
- ``rss_mb``: resident memory afterwards (simulator included). Targets: apply p95 <= 150 ms,
  frame p95 <= 50 ms, RSS <= 250 MB.

The app runs with every optional node column shown (load, IO delay, swap, KSM, PSI, versions),
so the figures include them; those are read apart from the refresh, every
``node_basics_read_every_s``, at ``node_basics_requests_per_read`` requests (one status per online
node, one rrddata per online node for PSI), never inside a refresh; ``node_basics_read_ms`` is
how long the first read took (against the in-process simulator, which computes each node's
rrddata in this process), and the refreshes are measured after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace

from pvetop.config import settings_from_sim_info
from pvetop.model import ClusterSnapshot
from pvetop.pve import PveClient
from pvetop.sim.runner import start_sim
from pvetop.sim.scenarios import list_scenarios
from pvetop.ui.app import PvetopApp
from pvetop.ui.node_basics import READ_EVERY, fetch_node_basics
from pvetop.ui.polling import prepare
from pvetop.ui.prefs import Prefs
from pvetop.ui.tables import NodeTable

ROUNDS = 20
CHANGED_SHARE = 0.2
SIZE = (160, 50)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def with_changes(snapshot: ClusterSnapshot, rng: random.Random, seconds: float) -> ClusterSnapshot:
    """``snapshot`` ``seconds`` later, with CPU, memory and traffic changed on ~20 % of guests."""
    guests = list(snapshot.guests)
    for index in rng.sample(range(len(guests)), int(len(guests) * CHANGED_SHARE)):
        guest = guests[index]
        if guest.running:
            guests[index] = replace(
                guest,
                cpu=rng.random(),
                mem=int(guest.maxmem * rng.uniform(0.2, 0.9)),
                netin=guest.netin + rng.randrange(1, 10**7),
                netout=guest.netout + rng.randrange(1, 10**7),
            )
    return replace(snapshot, guests=tuple(guests), fetched_at=snapshot.fetched_at + seconds)


async def measure(app: PvetopApp, sim, client: PveClient, started: float) -> dict:
    figures: dict = {}
    async with app.run_test(size=SIZE) as pilot:
        while app.guest_table.row_count == 0:
            await pilot.pause(0.005)
        await pilot.pause()
        figures["first_paint_ms"] = round((time.perf_counter() - started) * 1000)
        app.action_pause()  # the benchmark feeds the refreshes itself
        app.guest_table.sort_by("cpu", reverse=True)  # the busiest view: order changes every time
        read_started = time.perf_counter()
        while not app.node_basics:  # the optional node columns' first read (then every READ_EVERY)
            await pilot.pause(0.01)
        figures["node_basics_read_ms"] = round((time.perf_counter() - read_started) * 1000)
        await pilot.pause()
        rng = random.Random(1)

        async def timed(refresh) -> tuple[float, float, float, float, float]:
            """UI-thread ms to apply ``refresh``, and to apply it and draw the next frame: wall
            clock, then CPU time; and the CPU time of drawing the whole screen again after it."""
            before, before_cpu = time.perf_counter(), time.thread_time()
            app.apply_refresh(refresh)
            applied, applied_cpu = time.perf_counter(), time.thread_time()
            await app.screen.wait_for_refresh()  # the next frame, as Textual draws it
            drawn, drawn_cpu = time.perf_counter(), time.thread_time()
            app.screen.refresh()  # every line of the screen, the screen's own background too
            await app.screen.wait_for_refresh()
            repainted_cpu = time.thread_time()
            await pilot.pause()
            return (
                (applied - before) * 1000,
                (drawn - before) * 1000,
                (applied_cpu - before_cpu) * 1000,
                (drawn_cpu - before_cpu) * 1000,
                (repainted_cpu - drawn_cpu) * 1000,
            )

        apply_ms, frame_ms, apply_cpu_ms, frame_cpu_ms, repaint_cpu_ms, prepare_ms = [], [], [], [], [], []
        for _ in range(ROUNDS):
            snapshot = with_changes(app.latest.snapshot, rng, app.interval)
            start = time.perf_counter()
            app.take_retired().clear()  # what the app's poll thread does before it fetches
            refresh = prepare(snapshot, app.latest, app.marks, app.clock(), app.guest_table.sorting)
            prepare_ms.append((time.perf_counter() - start) * 1000)
            applied, framed, applied_cpu, framed_cpu, repainted_cpu = await timed(refresh)
            repaint_cpu_ms.append(repainted_cpu)
            apply_ms.append(applied)
            frame_ms.append(framed)
            apply_cpu_ms.append(applied_cpu)
            frame_cpu_ms.append(framed_cpu)
        step_apply, step_frame = [], []
        for _ in range(5):
            sim.cluster.step(2)
            app.take_retired().clear()
            refresh = prepare(client.fetch_snapshot(), app.latest, app.marks, app.clock(), app.guest_table.sorting)
            applied, framed, *_ = await timed(refresh)
            step_apply.append(applied)
            step_frame.append(framed)
    figures.update(
        {
            "apply_ms_p50": percentile(apply_ms, 0.5),
            "apply_ms_p95": percentile(apply_ms, 0.95),
            "frame_ms_p50": percentile(frame_ms, 0.5),
            "frame_ms_p95": percentile(frame_ms, 0.95),
            "apply_cpu_ms_p95": percentile(apply_cpu_ms, 0.95),
            "frame_cpu_ms_p50": percentile(frame_cpu_ms, 0.5),
            "frame_cpu_ms_p95": percentile(frame_cpu_ms, 0.95),
            "full_repaint_cpu_ms_p95": percentile(repaint_cpu_ms, 0.95),
            "prepare_ms_median": round(statistics.median(prepare_ms), 1),
            "sim_step_apply_ms_p50": percentile(step_apply, 0.5),
            "sim_step_frame_ms_p50": percentile(step_frame, 0.5),
        }
    )
    return figures


def main(scenario: str = "large") -> None:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with (
        start_sim(scenario=scenario, seed=1, manual_clock=True) as sim,
        PveClient.connect(settings_from_sim_info(sim.info)) as client,
    ):
        fetch_ms, requests = [], set()
        for _ in range(5):
            start = time.perf_counter()
            snapshot = client.fetch_snapshot()
            fetch_ms.append((time.perf_counter() - start) * 1000)
            requests.add(snapshot.api_requests)
        before = client.request_count
        fetch_node_basics(client, [node.name for node in snapshot.online_nodes], with_psi=True)
        basics_requests = client.request_count - before
        app_started = time.perf_counter()
        app = PvetopApp(client, interval=2.0, prefs=Prefs(shown={"nodes": tuple(NodeTable.OPTIONAL_COLUMNS)}))
        figures = asyncio.run(measure(app, sim, client, app_started))
        startup_ms = round((app_started - started) * 1000 + figures["first_paint_ms"])
    print(
        json.dumps(
            {
                "benchmark": "dashboard_refresh",
                "scenario": scenario,
                "nodes": len(snapshot.nodes),
                "guests": len(snapshot.guests),
                "requests_per_refresh": max(requests),
                "node_basics_requests_per_read": basics_requests,
                "node_basics_read_every_s": READ_EVERY,
                "fetch_parse_ms_median": round(statistics.median(fetch_ms), 1),
                "startup_ms": startup_ms,
                **figures,
                "changed_share": CHANGED_SHARE,
                "rss_mb": round(rss_mb()),
                "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "cpus": os.cpu_count(),
                "targets": {
                    "requests_per_refresh": 2,
                    "apply_ms_p95": 150,
                    "frame_ms_p95": 50,
                    "rss_mb": 250,
                    "first_paint_ms": 2000,
                },
            },
            indent=2,
        )
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", default="large", choices=list_scenarios(), help="simulated cluster")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]).scenario)
