"""Benchmark: policy planning on a 30-node / 1000-guest cluster (budget: planning < 1 s).

Times what the UI and the engine ask of ``pvetop.policy`` on a cluster that size, with pins,
locks, HA rules and ProxLB tags in play: the migrate dialog's preview of every candidate node,
an evacuation plan of the busiest node (manual and auto), a bulk move, and the balance figure.
Prints one JSON object with the median and worst of each, in milliseconds.

    python tests/bench/plan_evacuation.py [--nodes 30] [--guests 1000] [--repeat 7] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the snapshot factories live in tests/

from pvetop.model import ClusterSnapshot  # noqa: E402
from pvetop.policy.metrics import cluster_balance  # noqa: E402
from pvetop.policy.placement import plan_bulk_move, plan_evacuation, preview_candidates  # noqa: E402
from pvetop.policy.rules import RuleSet  # noqa: E402
from tests.factories import GIB, make_guest, make_ha_rule, make_node, make_snapshot  # noqa: E402

TARGET_SECONDS = 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=30)
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each step (default 7)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.guests < 1 or args.repeat < 1:
        parser.error("need --nodes >= 2, --guests >= 1, --repeat >= 1")
    return args


def build_cluster(nodes: int, guests: int, seed: int) -> tuple[ClusterSnapshot, RuleSet]:
    """Mixed node sizes, guests of varied size and state, and a sprinkling of every rule kind."""
    rng = random.Random(seed)
    names = [f"pve{i + 1:02d}" for i in range(nodes)]
    node_list = [
        make_node(
            name, cpu=0.02, maxcpu=rng.choice((16, 32, 64)), mem=4 * GIB, maxmem=rng.choice((128, 256, 512)) * GIB
        )
        for name in names
    ]
    guest_list = []
    for index in range(guests):
        vmid = 100 + index
        tags: tuple[str, ...] = ()
        if index % 50 == 0:
            tags = (f"plb_anti_affinity_g{index % 7}",)
        elif index % 61 == 0:
            tags = (f"plb_pin_{rng.choice(names)}",)
        guest_list.append(
            make_guest(
                vmid,
                rng.choice(names),
                type=rng.choice(("qemu", "qemu", "lxc")),
                status="running" if rng.random() < 0.8 else "stopped",
                cpu=rng.random() * 0.5,
                maxcpu=rng.choice((1, 2, 4, 8)),
                mem=rng.choice((1, 2, 4, 8, 16)) * GIB,
                maxmem=32 * GIB,
                tags=tags,
            )
        )
    vmids = [g.vmid for g in guest_list]
    ha_rules = tuple(
        make_ha_rule(
            f"apart{i}", "resource-affinity", tuple(f"vm:{v}" for v in rng.sample(vmids, 3)), affinity="negative"
        )
        for i in range(20)
    ) + tuple(
        make_ha_rule(
            f"where{i}",
            "node-affinity",
            (f"vm:{rng.choice(vmids)}",),
            nodes=tuple((name, 1) for name in rng.sample(names, 3)),
            strict=True,
        )
        for i in range(20)
    )
    rules = RuleSet(
        pins={vmid: frozenset(rng.sample(names, 2)) for vmid in rng.sample(vmids, 40)},
        locks=frozenset(rng.sample(vmids, 20)),
        reserved=frozenset(names[-2:]),
        maintenance=frozenset(names[-3:-2]),
        import_proxlb_tags=True,
    )
    snapshot = make_snapshot(node_list, guest_list, ha_rules=ha_rules, derive_usage=True)
    return snapshot, rules


def timed(repeat: int, step: Callable[[], object]) -> tuple[dict[str, float], object]:
    seconds = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        seconds.append(time.perf_counter() - start)
    return {"median_ms": round(statistics.median(seconds) * 1000, 2), "max_ms": round(max(seconds) * 1000, 2)}, result


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    build_timing, (snapshot, rules) = timed(1, lambda: build_cluster(args.nodes, args.guests, args.seed))
    busiest = max(snapshot.nodes, key=lambda n: (len(snapshot.guests_by_node[n.name]), n.name)).name
    running = next(g for g in snapshot.guests_by_node[busiest] if g.running)
    tagged = [g.vmid for g in snapshot.guests[: max(1, len(snapshot.guests) // 20)]]
    coolest = cluster_balance(snapshot).coolest

    report: dict[str, object] = {
        "nodes": args.nodes,
        "guests": args.guests,
        "busiest_node": busiest,
        "guests_on_busiest": len(snapshot.guests_by_node[busiest]),
        "build_snapshot": build_timing,
    }
    report["balance"], _ = timed(args.repeat, lambda: cluster_balance(snapshot))
    report["preview_all_candidates"], previews = timed(
        args.repeat, lambda: preview_candidates(snapshot, running, rules)
    )
    report["candidates"] = len(previews)  # type: ignore[arg-type]
    slowest = 0.0
    for mode in ("manual", "auto"):
        timing, plan = timed(args.repeat, lambda mode=mode: plan_evacuation(snapshot, busiest, rules, mode=mode))
        slowest = max(slowest, timing["max_ms"])
        report[f"evacuation_{mode}"] = {
            **timing,
            "moves": len(plan.moves),
            "needs_decision": len(plan.needs_decision),
            "unplaceable": len(plan.unplaceable),
        }
    timing, bulk = timed(args.repeat, lambda: plan_bulk_move(snapshot, tagged, coolest, rules))
    report["bulk_move"] = {**timing, "guests": len(tagged), "moves": len(bulk.moves), "refused": len(bulk.refused)}
    slowest = max(slowest, report["preview_all_candidates"]["max_ms"], timing["max_ms"])  # type: ignore[index]
    report["target_ms"] = TARGET_SECONDS * 1000
    report["within_target"] = slowest < TARGET_SECONDS * 1000
    print(json.dumps(report, indent=2))
    return 0 if report["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
