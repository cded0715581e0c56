"""Parse cost of one 32-node/4000-guest refresh (``build_snapshot``), printed as JSON.

Run: ``.venv/bin/python tests/bench/bench_snapshot_parse.py``. The budget for the whole
refresh (fetch, parse, diff, render) against a 50 ms frame; parsing should stay a small share.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from pvetop.model import CrsOptions
from pvetop.pve.parse import build_snapshot

GIB = 1024**3


def synthetic_answers(nodes: int = 32, guests: int = 4000, seed: int = 1) -> tuple[list, list]:
    rng = random.Random(seed)
    resources: list[dict] = []
    status: list[dict] = [
        {"type": "cluster", "id": "cluster", "name": "large", "nodes": nodes, "quorate": 1, "version": 9}
    ]
    for n in range(nodes):
        name = f"pve{n + 1:02d}"
        resources.append(
            {
                "id": f"node/{name}",
                "type": "node",
                "node": name,
                "status": "online",
                "cpu": rng.random(),
                "maxcpu": 64,
                "mem": rng.randrange(GIB, 256 * GIB),
                "maxmem": 512 * GIB,
                "disk": 20 * GIB,
                "maxdisk": 100 * GIB,
                "uptime": 86400,
                "level": "",
            }
        )
        status.append(
            {
                "type": "node",
                "id": f"node/{name}",
                "name": name,
                "nodeid": n + 1,
                "ip": f"10.0.0.{n + 1}",
                "online": 1,
                "local": int(n == 0),
                "level": "",
            }
        )
        resources.append(
            {
                "id": f"storage/{name}/local-lvm",
                "type": "storage",
                "storage": "local-lvm",
                "node": name,
                "plugintype": "lvmthin",
                "shared": 0,
                "disk": GIB,
                "maxdisk": 500 * GIB,
                "status": "available",
                "content": "images,rootdir",
            }
        )
    for i in range(guests):
        kind = "qemu" if i % 3 else "lxc"
        entry = {
            "id": f"{kind}/{100 + i}",
            "type": kind,
            "vmid": 100 + i,
            "node": f"pve{i % nodes + 1:02d}",
            "name": f"guest-{i}",
            "status": "running",
            "template": 0,
            "cpu": rng.random(),
            "maxcpu": 4,
            "mem": rng.randrange(GIB),
            "maxmem": 4 * GIB,
            "disk": 0,
            "maxdisk": 32 * GIB,
            "netin": rng.randrange(10**9),
            "netout": rng.randrange(10**9),
            "diskread": rng.randrange(10**9),
            "diskwrite": rng.randrange(10**9),
            "uptime": rng.randrange(10**6),
            "tags": rng.choice(["", "prod", "prod;web", "dev;db", "plb_pin_pve01"]),
        }
        if i % 7 == 0:
            entry["hastate"] = "started"
        resources.append(entry)
    return resources, status


def main() -> None:
    resources, status = synthetic_answers()
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        snapshot = build_snapshot(resources, status, crs=CrsOptions(), ha_rules=(), fetched_at=0.0, api_requests=2)
        timings.append((time.perf_counter() - start) * 1000)
    print(
        json.dumps(
            {
                "benchmark": "build_snapshot",
                "nodes": len(snapshot.nodes),
                "guests": len(snapshot.guests),
                "median_ms": round(statistics.median(timings), 2),
                "min_ms": round(min(timings), 2),
                "max_ms": round(max(timings), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
