"""Benchmark: how long one ``GET /cluster/resources`` takes against the simulated large cluster.

This is the request pvetop makes on every refresh, so its latency bounds the refresh
rate. The request goes the way pvetop sends it: proxmoxer over HTTPS, API token, keep-alive.
Prints one JSON object; the target is p50 <= 60 ms. ``fetch_only_p50_ms`` times the same request
without decoding the JSON, to tell server and wire time from client parsing.

    python tests/bench/sim_resources.py [--scenario large] [--requests 50] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import requests
from proxmoxer import ProxmoxAPI

from pvetop.sim.runner import start_sim


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="large")
    parser.add_argument("--requests", type=int, default=50, help="timed requests (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be >= 1 and --warmup >= 0")
    return args


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def timed(call, repeats: int) -> list[float]:
    """Sorted wall-clock durations of ``repeats`` calls, in milliseconds."""
    durations_ms = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        durations_ms.append((time.perf_counter() - started) * 1000)
    return sorted(durations_ms)


def raw_fetcher(info: dict):
    """Fetches the body without decoding it: the server's and the wire's share of the time."""
    session = requests.Session()
    session.headers["Authorization"] = f"PVEAPIToken={info['user']}!{info['token_name']}={info['token_value']}"
    url = f"https://{info['host']}:{info['port']}/api2/json/cluster/resources"

    def fetch() -> bytes:
        # verify per request: a session-level setting loses to REQUESTS_CA_BUNDLE
        response = session.get(url, verify=info["ca_file"], timeout=30)
        response.raise_for_status()
        return response.content

    return fetch


def measure(args: argparse.Namespace) -> dict:
    with start_sim(scenario=args.scenario, seed=args.seed, manual_clock=True) as sim:
        info = sim.info
        api = ProxmoxAPI(
            info["host"],
            port=info["port"],
            user=info["user"],
            token_name=info["token_name"],
            token_value=info["token_value"],
            verify_ssl=info["ca_file"],
            timeout=30,
        )
        resources = api.cluster.resources
        fetch_body = raw_fetcher(info)
        for _ in range(args.warmup):
            resources.get()
            fetch_body()
        durations_ms = timed(resources.get, args.requests)
        fetch_only_ms = timed(fetch_body, args.requests)
        entries = resources.get()
        payload_bytes = len(fetch_body())
    return {
        "scenario": args.scenario,
        "entries": len(entries),
        "bytes": payload_bytes,
        "requests": args.requests,
        "p50_ms": round(statistics.median(durations_ms), 2),
        "p95_ms": round(percentile(durations_ms, 0.95), 2),
        "max_ms": round(durations_ms[-1], 2),
        # without the client's JSON decoding, and how busy the machine was
        "fetch_only_p50_ms": round(statistics.median(fetch_only_ms), 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(measure(parse_args(sys.argv[1:] if argv is None else argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
