"""pvetop's balancer against ProxLB 2.3.0 on the same simulator states; prints one table.

    .venv/bin/python tests/bench/balance.py [--states homelab,smb,...] [--no-proxlb] [--cpsat-seconds 20] [--fast]

Every built-in scenario, skewed starts (guests piled onto a few nodes, HA guests left where their
rules keep them) and a 30-node / 1000-guest cluster are started in the simulator. On each state:

- pvetop plans through the same worker as the dashboard (``BalancerWorker.plan_now``: PVE's
  migrate precondition read for every VM it moves), with its default settings;
- ProxLB runs as an outside tool (``python -m proxlb --dry-run --json``), with its default greedy
  (method memory, mode used) and, in a second run, its CP-SAT solver in shadow mode (the solver's
  plan is read from the JSONL file it writes);
- OR-Tools CP-SAT finds the fewest GiB that reach pvetop's imbalance under pvetop's rules (guests
  that may not move stay, static targets, anti-affinity, the memory cap on receiving nodes, every
  VM's migrate precondition read); it is a relaxation (no step order, no "destination below
  source"), so its figure is a lower bound and the ratio pvetop / minimum is conservative. pvetop's
  plan is the solver's hint. When the solver's time runs out before it proves optimality, the
  cell gives a range: pvetop's GiB over the cheapest plan found (pvetop is at least that far
  off) – over the proven lower bound (at most that far), the two GiB figures in brackets. The
  bound is the highest of CP-SAT's, the model's LP relaxation's and, up to MIP_UNITS units, a
  MIP's without the memory cap (tests/bench/lower_bound.py; CP-SAT's stays below both), named in
  the cell ("CP-SAT", "LP", "MIP"); the cheapest plan is CP-SAT's, or pvetop's plan ("pvetop"),
  or pvetop's one plan without the move cap, its first moves that get there ("uncapped"), or the
  MIP's ("MIP"), where the model holds for it and it costs less. A single plan cut at the move
  cap is held to the minimum among plans within the cap, the cell's first range ("in ≤ 100
  moves"), the minimum of any size beside it.

Every plan is judged with the same figures (pvetop's CRS load (cpu + memory) / 2 and imbalance
CV/√(n−1)) and the same independent rule check: HA node affinity (strict, and the top priority
nodes HA would send a guest back to), HA and ProxLB (anti-)affinity, ProxLB pins and ignore tags,
VMs with local disks moved, a node past 100 % memory. ProxLB balances on memory only, so its
imbalance by pvetop's measure is not what it optimises: the table says what each plan does to
the cluster, not how well each tool meets its own goal.

Columns: imbalance and memory spread (points) before → after the plan; moves; GiB moved (running
guests' memory); API requests the simulator answered for the plan (pvetop: snapshot, precondition
reads; ProxLB: everything it reads); CPU seconds (pvetop: the planner alone, preconditions known,
which is what the < 1 s goal at 30 nodes / 1000 guests is about; ProxLB: its whole process); rules
broken (which in the notes); GiB / the minimum GiB reaching the same imbalance (the minimum in
brackets). ``pvetop`` runs as shipped (containers stay: restart migration is off by default,
and so do VMs with local disks); ``pvetop +ct`` allows containers; ``pvetop +ct+ld`` allows VMs
with local disks too, the scope ProxLB balances in: compare ProxLB with the row under its rules.
Each pvetop row is one plan (what ``pvetop plan`` and advise mode show; a plan is cut at 100
moves, where a note gives one plan without the cap); the ``auto`` row below it is what the worker
does in auto mode: plan, start the plan's first batch, plan again on the result with the moved
guests in cooldown, balancing on down to ``balancer.settle`` of the threshold, until a plan has no
move (its CPU seconds: the slowest plan). Where pvetop's trigger does not fire, a note gives the
plan it makes when asked (balancer.threshold 0.01), which the ProxLB notes compare with.
A ProxLB note says how soon each pvetop row reaches ProxLB's imbalance (its first moves that get
there). Below each state, one line per pvetop row checks the targets: no rule broken; imbalance
at the end no higher than each ProxLB plan's, or else no plan within the row's rules and settings
gets as low (CP-SAT proves the relaxed model infeasible: ProxLB got there by moving guests the row
keeps in place, e.g. VMs with local disks, or past the memory cap; the ProxLB rules the row's
scope would break are counted), and where the trigger did not fire, the plan made when asked; an
auto row that stopped below ``balancer.settle`` is compared for information only, since where it
stops is that setting; where a ProxLB plan ends as low as pvetop's (its
final imbalance ≤ pvetop's), no more moves and GiB than it; GiB ≤ 1.10 × the minimum (proven:
the solver's lower bound; else the range); CPU seconds of the (slowest) plan < 1 at 30 nodes /
1000 guests. ProxLB's runs are kept per state (the cluster it read, its planner and version) in
``--cache`` and reused: ProxLB takes minutes on the 1000- and 4000-guest states.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pvetop.config import settings_from_sim_info  # noqa: E402
from pvetop.engine.balancer import BalancerWorker, batch, remaining  # noqa: E402
from pvetop.engine.evacuation import fetch_preconditions  # noqa: E402
from pvetop.engine.migrations import MigrationExecutor  # noqa: E402
from pvetop.model import ClusterSnapshot  # noqa: E402
from pvetop.policy.balance import (  # noqa: E402
    MAX_MOVES,
    BalanceMove,
    BalancerConfig,
    _Planner,
    _Unit,
    apply_plan,
    measure,
    plan_balance,
    trigger_reason,
    trigger_threshold,
)
from pvetop.policy.constraints import MigratePrecondition  # noqa: E402
from pvetop.policy.projection import ProjectedCluster  # noqa: E402
from pvetop.policy.rules import RuleSet, parse_proxlb_tags  # noqa: E402
from pvetop.pve import PveClient  # noqa: E402
from pvetop.sim.runner import start_sim  # noqa: E402
from tests.bench.lower_bound import MILLION, Relaxation, limits, lp_bound, mip_bound  # noqa: E402
from tests.policy.test_balance_properties import _grouped, _ha_allowed  # noqa: E402

GIB = 1024**3
PROXLB_TIMEOUT = 600
# pvetop as shipped, with containers allowed (restart migration), and with VMs on local disks allowed too:
# the scope ProxLB balances in (it moves both)
PVETOP_CONFIGS = (
    ("pvetop", BalancerConfig()),
    ("pvetop +ct", BalancerConfig(restart_containers=True)),
    ("pvetop +ct+ld", BalancerConfig(restart_containers=True, local_disks=True)),
)
ROUNDING = 0.0005  # imbalance slack for the minimum-GiB model's integer loads
SCALE = 10000  # the minimum-GiB model counts a node's load in 1/SCALE
CUTS = 40  # tangent cuts per node load² in the minimum-GiB model
MIP_UNITS = 400  # the MIP bound is tried on models of at most this many units
MIB = 1024**2
PROXLB_VERSION = importlib.metadata.version("proxlb")
CACHE = Path.home() / ".cache" / "pvetop-bench"


@dataclass
class Minimum:
    """The fewest GiB reaching an imbalance: the solver's proven lower bound and its best plan."""

    bound: float | None
    found: float | None
    proven: bool
    bound_by: str = "CP-SAT"  # which lower bound is the highest: CP-SAT's, the LP's or the MIP's (lower_bound.py)
    found_by: str = "CP-SAT"  # the cheapest plan: CP-SAT's, pvetop's ("pvetop"), its uncapped plan's head
    # ("uncapped"), the MIP's ("MIP")


@dataclass
class Result:
    tool: str
    imbalance_after: float
    spread_after: float
    moves: int
    gib: float
    requests: int | None
    seconds: float
    broken: int
    note: str = ""
    minimum: Minimum | None = None  # the fewest GiB reaching the same imbalance (pvetop rows)
    capped: Minimum | None = None  # the same among plans of at most MAX_MOVES moves (single plans cut there)
    placed: dict[int, str] = field(default_factory=dict)  # pvetop rows: vmid -> target
    wall: float = 0.0  # pvetop rows: seconds with its API reads
    steps: tuple[tuple[float, float], ...] = ()  # pvetop rows: (imbalance after, GiB so far) move by move
    asked: tuple[tuple[float, float], ...] = ()  # the same for the plan it makes when asked, if not triggered
    config: BalancerConfig | None = None  # pvetop rows: the settings it planned with
    whole: float | None = None  # pvetop rows cut at the move cap: the imbalance one plan without the cap reaches
    single: tuple[BalanceMove, ...] = ()  # pvetop rows: the moves of one plan without the move cap
    kept: set[int] = field(default_factory=set)  # pvetop rows: VMs with local disks its settings keep in place


# --------------------------------------------------------------------------------------------- states


def scenario_30x1000(directory: Path) -> Path:
    """The large scenario cut to 30 nodes and 1000 guests, three nodes carrying extra load."""
    data = json.loads((REPO / "pvetop/sim/scenarios/large.json").read_text())
    data["name"] = data["cluster_name"] = "dc30"
    data["generate"]["nodes"]["count"] = 30
    guests = data["generate"]["guests"]
    guests.update(count=1000, ha_first=100, skew={"node01": 2.2, "node02": 1.8, "node03": 1.5})
    guests.pop("place", None)
    path = directory / "dc30.json"
    path.write_text(json.dumps(data))
    return path


def skew(sim, share: float) -> None:
    """Piles non-HA running guests onto the nodes that carry most already, up to 90 % of their memory."""
    cluster = sim.cluster
    with cluster.lock:
        nodes = sorted(cluster.nodes.values(), key=lambda n: n.name)
        hot = nodes[: max(1, int(len(nodes) * share))]
        now = cluster.now
        used = {n.name: cluster.node_usage(n, now)[1] for n in nodes}
        for guest in sorted(cluster.guests.values(), key=lambda g: g.vmid):
            if guest.ha or guest.status != "running" or guest.node in {n.name for n in hot}:
                continue
            size = cluster.guest_usage(guest, now)[1]
            target = min(hot, key=lambda n: used[n.name] / n.memory)
            if used[target.name] + size > 0.9 * target.memory:
                continue
            used[guest.node] -= size
            used[target.name] += size
            guest.node = target.name
        cluster.revision += 1


STATES = {
    "homelab": ("homelab", None),
    "imbalanced": ("imbalanced", None),
    "quorum3": ("quorum3", None),
    "smb": ("smb", None),
    "homelab-skew": ("homelab", 0.34),
    "smb-skew": ("smb", 0.25),
    "dc30x1000": ("dc30", None),
    "dc30x1000-skew": ("dc30", 0.2),
    "large": ("large", None),
}


# --------------------------------------------------------------------------------------------- judging


def apply_moves(snapshot: ClusterSnapshot, moves: dict[int, str]) -> ProjectedCluster:
    projection = ProjectedCluster.of(snapshot)
    for vmid, target in moves.items():
        projection = projection.apply((vmid,), target)
    return projection


def rules_broken(snapshot: ClusterSnapshot, moves: dict[int, str], local_disks: set[int]) -> tuple[int, str]:
    """Rules a set of moves breaks, checked on the end state (independently of the planner): the
    count and which ones."""
    projection = apply_moves(snapshot, moves)
    found: dict[str, int] = {}

    def count(kind: str, broken: bool) -> None:
        if broken:
            found[kind] = found.get(kind, 0) + 1

    for vmid, target in moves.items():
        guest = snapshot.guest_by_vmid[vmid]
        tags = parse_proxlb_tags(guest.tags)
        allowed = _ha_allowed(snapshot, guest.sid)
        count("HA node-affinity", allowed is not None and target not in allowed)
        count("ProxLB tag", tags.ignore or bool(tags.pins and target not in tags.pins))
        count(
            "anti-affinity",
            any(projection.node_of(other) == target for other in _grouped(snapshot, vmid, together=False)),
        )
        count("affinity", any(projection.node_of(other) != target for other in _grouped(snapshot, vmid, together=True)))
        count("local disk", vmid in local_disks)
    for usage in projection.usage.values():
        count("node over 100% memory", usage.online and usage.mem > usage.maxmem)
    return sum(found.values()), ", ".join(f"{kind} {number}" for kind, number in sorted(found.items()))


def figures(snapshot: ClusterSnapshot, moves: dict[int, str]) -> tuple[float, float]:
    projection = apply_moves(snapshot, moves)
    nodes = [n.name for n in snapshot.online_nodes]
    from pvetop.policy.balance import measure_projection

    after = measure_projection(projection, nodes, BalancerConfig())
    return after.imbalance, after.memory_spread


def gib_of(snapshot: ClusterSnapshot, vmids) -> float:
    return sum(snapshot.guest_by_vmid[v].mem for v in vmids if snapshot.guest_by_vmid[v].running) / GIB


# --------------------------------------------------------------------------------------------- tools


class RequestCounter:
    """Counts the API requests the simulator answers (wraps its dispatcher)."""

    def __init__(self, sim) -> None:
        self.count = 0
        server = sim._server
        original = server._dispatch

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        server._dispatch = counted


def run_pvetop(
    sim, counter: RequestCounter, config: BalancerConfig, tool: str
) -> tuple[Result, ClusterSnapshot, dict[int, MigratePrecondition]]:
    """Plans like the dashboard does (API reads included), then times the policy alone."""
    before = counter.count
    started = time.perf_counter()
    with PveClient.connect(settings_from_sim_info(sim.info), clock=sim.cluster.clock.now) as client:
        snapshot = client.fetch_snapshot()
        worker = BalancerWorker(
            client, None, snapshot.cluster_name, MigrationExecutor(None), clock=sim.cluster.clock.now
        )
        plan = asyncio.run(worker.plan_now(snapshot, config))
        total = time.perf_counter() - started
    # the policy alone, preconditions known: what the < 1 s goal is about
    known = {vmid: answer for vmid, (_at, _node, answer) in worker._preconditions.items()}
    policy_started = time.process_time()  # CPU time: other work on the machine does not count
    plan_balance(snapshot, RuleSet(), config, now=sim.cluster.now, preconditions=known)
    policy_seconds = time.process_time() - policy_started
    moves = {step.vmid: step.move.target for step in plan.moves}
    imbalance, spread = figures(snapshot, moves)
    # rules broken: judged in main once every VM's precondition is known
    ours = Result(
        tool,
        imbalance,
        spread,
        len(moves),
        sum(step.gib for step in plan.moves),
        counter.count - before,
        policy_seconds,
        0,
    )
    ours.wall = total
    so_far = 0.0
    steps = []
    for step in plan.moves:
        so_far += step.gib
        steps.append((step.imbalance_after, so_far))
    ours.steps = tuple(steps)
    ours.placed = moves
    return ours, snapshot, known


def uncapped(
    snapshot: ClusterSnapshot,
    known: dict[int, MigratePrecondition],
    config: BalancerConfig,
    now: float,
    local: set[int],
    ours: Result,
) -> str:
    """Where the plan stopped at its cap: what one plan without the cap reaches (moves, GiB, CPU
    seconds), kept in ``ours.whole`` for the verdict. Empty when the first plan is all there is.
    The plan's moves are kept in ``ours.single`` (an upper bound on the minimum GiB)."""
    capped = plan_balance(snapshot, RuleSet(), config, now=now, preconditions=known)
    ours.single = capped.moves
    if len(capped.moves) < MAX_MOVES:
        return ""
    started = time.process_time()
    whole = plan_balance(snapshot, RuleSet(), config, now=now, preconditions=known, max_moves=100_000)
    seconds = time.process_time() - started
    ours.whole, ours.single = whole.after.imbalance, whole.moves
    return (
        f"one plan without the {MAX_MOVES}-move cap: {whole.after.imbalance:.4f}, {len(whole.moves)} moves, "
        f"{whole.gib:.1f} GiB, {seconds:.2f} s CPU, {rules_broken(snapshot, placed(whole), local)[0]} broken"
    )


def auto_mode(
    snapshot: ClusterSnapshot, known: dict[int, MigratePrecondition], config: BalancerConfig, now: float, tool: str
) -> Result | None:
    """What the worker does in auto mode (``BalancerWorker.step``): it plans (a plan is cut at
    ``MAX_MOVES``), starts the head of the plan (``batch``: moves on nodes no earlier move of the
    batch touches), and once the batch has finished plans again on the result (the rest of the
    plan it started competes with the fresh ones: ``resume``; each plan aims at where auto stops:
    ``auto``), balancing on
    (``balancing=True``) down to ``balancer.settle`` of the threshold, until a plan has no move.
    The guests it moved stay in cooldown for the rest of the run (the worker's cooldown, 30
    minutes doubling on repeats, outlasts a batch). CPU seconds: the slowest plan. None where the
    first plan is empty."""
    state, cooldowns, balancing = snapshot, {}, False
    resume: dict[int, str] = {}
    placements: dict[int, str] = {}
    plans, gib, slowest, total = 0, 0.0, 0.0, 0.0
    steps = []
    while plans < 5000:
        started = time.process_time()
        plan = plan_balance(
            state,
            RuleSet(),
            config,
            now=now,
            cooldowns=cooldowns,
            preconditions=known,
            balancing=balancing,
            auto=True,
            resume=resume,
        )
        seconds = time.process_time() - started
        slowest, total = max(slowest, seconds), total + seconds
        if not plan.moves:
            break
        head = batch(plan.moves)
        resume = remaining(plan, head)
        state = apply_plan(state, head)
        for step in head:
            gib += step.gib
            steps.append((step.imbalance_after, gib))
            placements[step.vmid] = step.move.target
            cooldowns[step.vmid] = now + 86400
        plans, balancing = plans + 1, True
    if not plans:
        return None
    imbalance, spread = figures(snapshot, placements)
    result = Result(f"{tool} auto", imbalance, spread, len(placements), gib, None, slowest, 0)
    result.placed, result.steps = placements, tuple(steps)
    result.note = f"{plans} plans, each started as far as its first batch; {total:.1f} s CPU in all"
    return result


def placed(plan) -> dict[int, str]:
    return {step.vmid: step.move.target for step in plan.moves}


def head_reaching(moves: tuple[BalanceMove, ...], level: float) -> dict[int, str] | None:
    """The first moves of a plan that get to ``level`` (vmid -> target); None where it stops above."""
    for count, step in enumerate(moves, 1):
        if step.imbalance_after <= level + 1e-9:
            return {done.vmid: done.move.target for done in moves[:count]}
    return None


def all_preconditions(sim, snapshot: ClusterSnapshot) -> dict[int, MigratePrecondition]:
    """PVE's migrate precondition of every running VM."""
    guests = [guest for guest in snapshot.guests if guest.type == "qemu" and guest.running]
    with PveClient.connect(settings_from_sim_info(sim.info), clock=sim.cluster.clock.now) as client:
        return asyncio.run(fetch_preconditions(client, guests))


def reach(result: Result, level: float) -> str:
    """How soon a pvetop plan reaches ``level``: its first moves that get there (those of the plan
    it makes when asked, where its trigger did not fire)."""
    asked = " asked" if result.asked else ""
    for count, (imbalance, gib) in enumerate(result.asked or result.steps, 1):
        if imbalance <= level + 1e-9:
            return f"{result.tool}{asked} reaches it in {count} moves, {gib:.1f} GiB"
    return f"{result.tool} stops above it" if not result.moves and not asked else f"{result.tool}{asked} stops above it"


def ask(
    snapshot: ClusterSnapshot, known: dict[int, MigratePrecondition], config: BalancerConfig, now: float, ours: Result
) -> str:
    """Where pvetop's trigger does not fire, the plan it makes when asked (balancer.threshold at
    its lowest, 0.01): the planner against ProxLB's, beside the trigger's decision."""
    figures = measure(snapshot, RuleSet(), config)
    if ours.moves or trigger_reason(figures, config) is not None:
        return ""
    plan = plan_balance(snapshot, RuleSet(), replace(config, threshold=0.01), now=now, preconditions=known)
    so_far, steps = 0.0, []
    for step in plan.moves:
        so_far += step.gib
        steps.append((step.imbalance_after, so_far))
    ours.asked = tuple(steps)
    threshold = trigger_threshold(config, len(figures.loads))
    return (
        f"not triggered ({figures.imbalance:.3f} ≤ {threshold:.3f}, hottest {figures.hottest} at "
        f"{figures.hottest_memory:.0%} memory); asked: {plan.after.imbalance:.3f}, {len(plan.moves)} moves, "
        f"{plan.gib:.1f} GiB, {rules_broken(snapshot, placed(plan), set())[0]} broken"
    )


def proxlb_config(info: dict, log_dir: Path, *, solver: bool) -> dict:
    config = {
        "proxmox_api": {
            "hosts": [f"{info['host']}:{info['port']}"],
            "user": info["user"],
            "token_id": info["token_name"],
            "token_secret": info["token_value"],
            "ssl_verification": False,
            "timeout": 60,
        },
        "balancing": {"enable": True, "balance_types": ["vm", "ct"], "method": "memory", "mode": "used"},
        "service": {"daemon": False, "log_level": "WARNING"},
    }
    if solver:
        config["solver"] = {"enable": True, "mode": "shadow", "log_dir": str(log_dir), "timeout_seconds": 30}
    return config


def state_key(snapshot: ClusterSnapshot, solver: bool) -> str:
    """What a ProxLB run depends on: the cluster it reads (nodes, guests, HA rules, storage; not
    when it was read), which of its planners, and its version."""
    content = repr((snapshot.nodes, snapshot.guests, snapshot.ha_rules, snapshot.storage, solver, PROXLB_VERSION))
    return hashlib.sha256(content.encode()).hexdigest()[:24]


def run_proxlb(sim, counter: RequestCounter, snapshot: ClusterSnapshot, *, solver: bool) -> dict:
    """One ProxLB dry run on the simulator: its moves (vmid -> node), the API requests it made, its
    CPU and wall seconds, or why there is no plan."""
    by_name = {}
    for guest in snapshot.guests:
        by_name.setdefault(guest.name, guest.vmid)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "proxlb.yaml").write_text(yaml.safe_dump(proxlb_config(sim.info, folder / "solver", solver=solver)))
        before = counter.count
        started = time.perf_counter()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "proxlb", "-c", str(folder / "proxlb.yaml"), "--json", "--dry-run"],
                capture_output=True,
                text=True,
                timeout=PROXLB_TIMEOUT,
                cwd=folder,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out ({PROXLB_TIMEOUT} s)", "requests": counter.count - before, "seconds": math.nan}
        wall = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        ran = {"requests": counter.count - before, "seconds": seconds, "wall": wall}
        if done.returncode != 0:
            return {**ran, "error": f"exit {done.returncode}"}
        moves: dict[int, str] = {}
        if solver:
            runs = sorted((folder / "solver").glob("*"))
            events = [json.loads(line) for path in runs for line in path.read_text().splitlines() if line.strip()]
            errors = [e for e in events if e.get("event") in ("error", "infeasible")]
            if errors:
                message = errors[0].get("message") or f"infeasible: {errors[0].get('blocking_vms')}"
                return {**ran, "error": f"no plan: {message[:60]}"}
            for event in events:
                if event.get("event") == "plan_step":
                    vmid = int(str(event["vm"]).split(":")[-1]) if str(event["vm"]).split(":")[-1].isdigit() else None
                    vmid = vmid if vmid is not None else by_name.get(event["vm"])
                    if vmid is not None:
                        moves[vmid] = event["target"]
        else:
            lines = done.stdout.splitlines(keepends=True)
            start = next((i for i, line in enumerate(lines) if line.rstrip() == "{"), None)
            plan, _ = json.JSONDecoder().raw_decode("".join(lines[start:]))
            for guest in plan["guests"].values():
                if guest["node_current"] != guest["node_target"]:
                    moves[int(guest["id"])] = guest["node_target"]
    return {**ran, "moves": {str(vmid): node for vmid, node in moves.items()}}


def proxlb_result(
    sim, counter: RequestCounter, snapshot: ClusterSnapshot, local: set[int], *, solver: bool, cache: Path | None
) -> Result | None:
    """ProxLB's plan judged like pvetop's. A run is kept in ``cache`` under the state it read
    (ProxLB takes minutes on the large states), so later runs of the bench reuse it; with no
    cache directory nothing is kept; None when only cached runs are wanted and none is kept."""
    name = "ProxLB CP-SAT" if solver else "ProxLB greedy"
    path = cache / f"proxlb-{state_key(snapshot, solver)}.json" if cache is not None else None
    if path is not None and path.exists():
        ran = json.loads(path.read_text())
        cached = "cached run"
    elif sim is None:
        return None
    else:
        ran = run_proxlb(sim, counter, snapshot, solver=solver)
        cached = ""
        if path is not None:  # an infeasible solver or a timeout is as reproducible as a plan
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ran))
    if "error" in ran:
        error = f"{ran['error']} ({cached})" if cached else ran["error"]
        return Result(name, math.nan, math.nan, 0, 0.0, ran["requests"], ran["seconds"], 0, error)
    moves = {int(vmid): node for vmid, node in ran["moves"].items()}
    imbalance, spread = figures(snapshot, moves)
    result = Result(
        name,
        imbalance,
        spread,
        len(moves),
        gib_of(snapshot, moves),
        ran["requests"],
        ran["seconds"],
        *rules_broken(snapshot, moves, local),
    )
    result.placed = moves
    wall = f"{ran['wall']:.1f}s wall with its API reads" + (f" ({cached})" if cached else "")
    result.note = "; ".join(part for part in (result.note, wall) if part)
    return result


# --------------------------------------------------------------------------------------------- the minimum


def relaxation_of(
    snapshot: ClusterSnapshot, known: dict[int, MigratePrecondition], config: BalancerConfig, target: float
) -> tuple[Relaxation, list[_Unit], list[str]]:
    """The minimum-GiB model's numbers under pvetop's rules (units, the nodes each may be on, the
    memory cap, anti-affinity), with its units and node names. Loads are rounded to 1/SCALE, so
    the target is loosened by ROUNDING (a looser target can only lower the minimum)."""
    planner = _Planner(snapshot, RuleSet(), config, now=snapshot.fetched_at, cooldowns={}, preconditions=known)
    units = planner.units()
    nodes = list(planner.nodes)
    start = ProjectedCluster.of(snapshot)
    usage = {name: start.usage_of(name) for name in nodes}
    weight = 0.5  # equal cpu and memory weights

    def share(cores: float, mem: float, name: str) -> float:
        u = usage[name]
        return weight * (cores / u.maxcpu if u.maxcpu else 0) + weight * (mem / u.maxmem if u.maxmem else 0)

    position = {name: k for k, name in enumerate(nodes)}
    vmid_unit = {g.vmid: index for index, unit in enumerate(units) for g in unit.guests}
    options: list[list[str]] = []
    apart: set[tuple[int, int]] = set()
    for index, unit in enumerate(units):
        barred = set()  # nodes holding a guest that stays and may not share one with this unit
        for guest in unit.guests:
            for other in _grouped(snapshot, guest.vmid, together=False):
                if other in vmid_unit:
                    apart.add((min(index, vmid_unit[other]), max(index, vmid_unit[other])))
                else:
                    barred.add(start.node_of(other))
        allowed = set(unit.targets) - barred | {unit.source}
        options.append([name for name in nodes if name in allowed])
    fixed = []  # a node's load and memory that no movable unit carries
    for name in nodes:
        cores = usage[name].cpu_cores - sum(u.cores for u in units if u.source == name)
        mem = usage[name].mem - sum(u.mem for u in units if u.source == name)
        fixed.append((round(share(cores, mem, name) * SCALE), max(0, mem)))
    factor, band = limits(target + ROUNDING, len(nodes))
    relaxation = Relaxation(
        fixed=tuple(load for load, _mem in fixed),
        weights=tuple(
            {position[name]: round(share(unit.cores, unit.mem, name) * SCALE) for name in here}
            for unit, here in zip(units, options, strict=True)
        ),
        sources=tuple(position[unit.source] for unit in units),
        costs=tuple(max(1, unit.mem // MIB) for unit in units),
        factor=factor,
        band=band,
        guests=tuple(len(unit.guests) for unit in units),
        memory=tuple(unit.mem // MIB for unit in units),
        room=tuple(
            int(config.memory_cap * usage[name].maxmem // MIB) - mem // MIB
            for name, (_load, mem) in zip(nodes, fixed, strict=True)
        ),
        apart=tuple(sorted(pair for pair in apart if pair[0] != pair[1])),
    )
    return relaxation, units, nodes


def minimum_gib(
    snapshot: ClusterSnapshot,
    known: dict[int, MigratePrecondition],
    config: BalancerConfig,
    target: float,
    seconds: float,
    hint: dict[int, str],
    plan: dict[int, str] | None = None,
    max_moves: int | None = None,
) -> Minimum:
    """The fewest GiB moved reaching imbalance ``target`` under pvetop's rules (CP-SAT), among
    plans of at most ``max_moves`` moves where given (a plan is built unit by unit while it has
    fewer moves than the cap, so its units moved hold at most cap − 1 + the largest unit's guests).

    Loads are integers (1/SCALE of a node's load); the imbalance test n·Σload² ≤ f·(Σload)² is
    exact through product variables, and linear cuts beside it give the solver's LP a useful
    bound: tangents below each load² (a square lies above its tangents), the chord above
    (Σload)² over the range Σload can take (a square lies below its chords), and each node's load
    within mean · (1 ± target·√(n(n−1))) (no node deviates more than all of them together): on
    smb this band lifts the proven lower bound from 153 to 207 GiB. pvetop's own plan
    is the hint, so the solver starts from a solution and only looks for cheaper ones.

    The bound is the highest of CP-SAT's, the LP's and the MIP's (``lower_bound.py``, the cone
    kept from outside by planes): CP-SAT does not reach the LP's on 30 nodes / 1000 guests in its
    time, nor the MIP's on smb. The cheapest plan found is CP-SAT's, or the hint, or ``plan``
    (pvetop's uncapped plan cut where it gets to ``target``), or the MIP's where it met the cone,
    where the model holds for it with every placement fixed and it costs less: on 30 nodes /
    1000 guests CP-SAT finds no plan in its time, not even from the hint.
    """
    from ortools.sat.python import cp_model

    relaxation, units, nodes = relaxation_of(snapshot, known, config, target)
    n = len(nodes)
    if n < 2:
        return Minimum(0.0, 0.0, True)
    if max_moves is not None:
        relaxation = replace(relaxation, most_moves=max_moves - 1 + max(relaxation.guests, default=1))
    lp = lp_bound(relaxation)
    if lp.mib is None:  # no fractional placement gets there, so no plan does
        return Minimum(None, None, True, bound_by="LP")
    mip = mip_bound(relaxation, seconds) if len(units) <= MIP_UNITS else None
    if mip is not None and mip.mib is None:
        return Minimum(None, None, True, bound_by="MIP")
    model = cp_model.CpModel()
    place: dict[tuple[int, int], cp_model.IntVar] = {}
    for index, unit in enumerate(units):
        for k in relaxation.weights[index]:
            place[index, k] = model.NewBoolVar(f"u{index}_{k}")
            model.AddHint(place[index, k], hint.get(unit.guests[0].vmid, unit.source) == nodes[k])
        model.AddExactlyOne(place[index, k] for k in relaxation.weights[index])
    loads = []
    squares = []
    for k, name in enumerate(nodes):
        mine = [(index, var) for (index, where), var in place.items() if where == k]
        low = relaxation.fixed[k]  # every movable unit gone
        high = low + sum(relaxation.weights[index][k] for index, _var in mine)
        load = model.NewIntVar(low, high, f"load_{name}")
        model.Add(load == low + sum(relaxation.weights[index][k] * var for index, var in mine))
        loads.append(load)
        square = model.NewIntVar(0, max(low * low, high * high), f"sq_{name}")
        model.AddMultiplicationEquality(square, [load, load])
        for point in range(max(0, low), high + 1, max(1, (high - low) // CUTS)):
            model.Add(square >= 2 * point * load - point * point)
        squares.append(square)
        # the memory cap on a node that receives anything
        receives = model.NewBoolVar(f"recv_{name}")
        for index, var in mine:
            if relaxation.sources[index] != k:
                model.AddImplication(var, receives)
        model.Add(sum(relaxation.memory[index] * var for index, var in mine) <= relaxation.room[k]).OnlyEnforceIf(
            receives
        )
    for a, b in relaxation.apart:  # anti-affinity among units
        for k in relaxation.weights[a].keys() & relaxation.weights[b].keys():
            model.Add(place[a, k] + place[b, k] <= 1)
    if relaxation.most_moves is not None:
        model.Add(
            sum(relaxation.guests[index] * (1 - place[index, relaxation.sources[index]]) for index in range(len(units)))
            <= relaxation.most_moves
        )
    total_low, total_high = relaxation.total_range
    total = model.NewIntVar(total_low, total_high, "total")
    model.Add(total == sum(loads))
    total_sq = model.NewIntVar(total_low * total_low, total_high * total_high, "total_sq")
    model.AddMultiplicationEquality(total_sq, [total, total])
    model.Add(total_sq <= (total_low + total_high) * total - total_low * total_high)
    model.Add(MILLION * n * sum(squares) <= relaxation.factor * total_sq)
    # implied, and linear: a bound per node for the solver's LP (the quadratic alone leaves it weak)
    for load in loads:
        model.Add(MILLION * n * load <= (MILLION + relaxation.band) * total)
        model.Add(MILLION * n * load >= (MILLION - relaxation.band) * total)
    cost = relaxation.costs
    model.Minimize(sum(cost[index] * (1 - place[index, relaxation.sources[index]]) for index in range(len(units))))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = seconds
    solver.parameters.num_workers = 2
    solver.parameters.linearization_level = 2
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        return Minimum(None, None, status == cp_model.INFEASIBLE)  # proven: no plan of the relaxation gets there
    found = solver.ObjectiveValue() if status != cp_model.UNKNOWN else None
    if status == cp_model.OPTIMAL:
        return Minimum(found / 1024, found / 1024, True)
    vmid_unit = {g.vmid: index for index, unit in enumerate(units) for g in unit.guests}
    position = {name: k for k, name in enumerate(nodes)}

    def cost_of(candidate: dict[int, str] | None) -> float | None:
        """A plan's MiB where the model holds for it, every placement fixed to the plan's; else None."""
        if candidate is None or any(vmid not in vmid_unit for vmid in candidate):
            return None
        targets = [{candidate.get(guest.vmid, unit.source) for guest in unit.guests} for unit in units]
        if any(len(names) != 1 for names in targets):
            return None
        where = [position.get(next(iter(names)), -1) for names in targets]
        if any((index, k) not in place for index, k in enumerate(where)):
            return None
        model.ClearAssumptions()
        model.AddAssumptions(var if k == where[index] else var.Not() for (index, k), var in place.items())
        check = cp_model.CpSolver()
        check.parameters.max_time_in_seconds = seconds
        return check.ObjectiveValue() if check.Solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None

    bounds = [(solver.BestObjectiveBound(), "CP-SAT"), (lp.mib, "LP")]
    candidates = [("pvetop", hint), ("uncapped", plan)]
    if mip is not None:
        bounds.append((mip.mib, "MIP"))
        if mip.placement is not None:
            moved = zip(units, mip.placement, relaxation.sources, strict=True)
            candidates.append(
                ("MIP", {g.vmid: nodes[k] for unit, k, source in moved if k != source for g in unit.guests})
            )
    bound, bound_by = max(bounds, key=lambda option: option[0])
    found_by = "CP-SAT"
    for by, candidate in candidates:
        cost = cost_of(candidate)
        if cost is not None and (found is None or cost < found):
            found, found_by = cost, by
    assert found is None or bound <= found, (
        f"the {bound_by} bound {bound} MiB is above a plan of the model ({found} MiB)"
    )
    gib = found / 1024 if found is not None else None
    return Minimum(bound / 1024, gib, found == bound, bound_by=bound_by, found_by=found_by)


# --------------------------------------------------------------------------------------------- main


def at_least(capped: Minimum, minimum: Minimum) -> Minimum:
    """The minimum among plans within the move cap, its bound raised to the minimum of any size
    where that one is higher (a cap can only raise a minimum; each bound comes from its own
    time-limited solve)."""
    if capped.bound is None or minimum.bound is None or minimum.bound <= capped.bound:
        return capped
    proven = capped.found is not None and capped.found <= minimum.bound
    return replace(capped, bound=minimum.bound, bound_by=minimum.bound_by, proven=proven)


def ratio_cell(gib: float, minimum: Minimum | None) -> str:
    """pvetop's GiB over the minimum: exact when proven, else the range between the best plan found
    (pvetop is at least this far off) and the lower bound (at most this far). The bound is named by
    where it comes from (CP-SAT, LP or MIP), a plan found that is not CP-SAT's by its origin
    ("pvetop", "uncapped", "MIP")."""
    if minimum is None or minimum.bound is None or (minimum.found is None and minimum.bound < 0.05):
        return "no bound"  # the solver found neither a plan nor a bound in its time
    if minimum.proven:
        return f"{gib / minimum.bound:.2f} ({minimum.bound_by} {minimum.bound:.1f})" if minimum.bound else "min 0"
    low = f"{gib / minimum.found:.2f}" if minimum.found else "?"
    high = f"{gib / minimum.bound:.2f}" if minimum.bound > 0.05 else "∞"
    found = f"{minimum.found:.1f}" if minimum.found is not None else "?"
    found += f" {minimum.found_by}" if minimum.found_by != "CP-SAT" else ""
    return f"{low}–{high} ({minimum.bound_by} {minimum.bound:.1f}–{found})"


def print_rows(label, nodes, guests, before, results) -> None:
    for result in results:
        ratio = ""
        if result.tool.startswith("pvetop") and result.moves:
            ratio = ratio_cell(result.gib, result.minimum)
            if result.capped is not None:
                ratio = f"{ratio_cell(result.gib, result.capped)} in ≤ {MAX_MOVES} moves; any size {ratio}"
        imbalance = "n/a" if math.isnan(result.imbalance_after) else f"{result.imbalance_after:.3f}"
        spread = "n/a" if math.isnan(result.spread_after) else f"{result.spread_after:.0f}"
        requests = result.requests if result.requests is not None else "-"
        print(
            f"{label:<15} {f'{nodes}/{guests}':>8}  {result.tool:<18} "
            f"{f'{before.imbalance:.3f}→{imbalance}':>13} {f'{before.memory_spread:.0f}→{spread}':>8} "
            f"{result.moves:>5} {result.gib:>7.1f} {requests:>6} {result.seconds:>7.3f} {result.broken:>6}  "
            f"{ratio:>14}  {result.note}",
            flush=True,
        )


def reach_within_rules(
    snapshot: ClusterSnapshot, known: dict[int, MigratePrecondition], seconds: float, ours: Result, level: float
) -> Minimum:
    """Whether any plan within a pvetop row's rules and settings reaches ``level`` (and its GiB)."""
    assert ours.config is not None
    return minimum_gib(snapshot, known, ours.config, level, seconds, ours.placed)


def settle_level(ours: Result, snapshot: ClusterSnapshot) -> float | None:
    """Where an auto row ended below ``balancer.settle`` of the threshold: that level (the worker
    stops there by design, so its end is a setting, not the planner's reach); else None."""
    if not ours.tool.endswith(" auto") or ours.config is None:
        return None
    figures_now = measure(snapshot, RuleSet(), ours.config)
    level = trigger_threshold(ours.config, len(figures_now.loads)) * ours.config.settle
    return level if ours.imbalance_after <= level else None


def imbalance_check(
    ours: Result, other: Result, snapshot: ClusterSnapshot, within_rules: Callable[[Result, float], Minimum]
) -> str:
    """pvetop's imbalance against a ProxLB plan's. Where pvetop ends higher, the question is whether
    any plan within the row's rules and settings gets as low: ProxLB's may not (it moved guests
    the row keeps in place, or filled a node past the memory cap), and CP-SAT answers it on the
    relaxed model of ``minimum_gib`` (no plan of the relaxation: none at all). The auto rows stop
    once below ``balancer.settle`` of the threshold, by design (drift must not start it again)."""
    name = other.tool.removeprefix("ProxLB ")
    versus = f"imbalance {ours.imbalance_after:.3f} vs {name}'s {other.imbalance_after:.3f}"
    broke = rules_broken(snapshot, other.placed, ours.kept)[0]
    broke_text = f", which broke {broke} of this row's rules" if broke else ""
    if ours.imbalance_after <= other.imbalance_after + 5e-4:  # as printed, 3 decimals
        return f"ok {versus}{broke_text}"
    if not ours.moves and ours.asked:  # the trigger did not fire: the planner is judged by what it plans when asked
        asked = ours.asked[-1][0]
        verdict = "ok" if asked <= other.imbalance_after + 5e-4 else "FAIL"
        return (
            f"{verdict} not triggered at {ours.imbalance_after:.3f}; asked, {asked:.3f} vs {name}'s "
            f"{other.imbalance_after:.3f}{broke_text}"
        )
    if ours.whole is not None and ours.whole <= other.imbalance_after + 5e-4:  # the worker plans the rest next
        return f"ok {versus} after the {MAX_MOVES}-move cap; one plan without it {ours.whole:.3f}{broke_text}"
    reach = within_rules(ours, other.imbalance_after)
    if reach.proven and reach.found is None:
        return f"ok {versus}: no plan within this row's rules and settings gets there ({reach.bound_by}){broke_text}"
    settled = settle_level(ours, snapshot)
    if settled is not None:
        return f"info {versus}: auto stops below balancer.settle ({settled:.3f}){broke_text}"
    if reach.found is not None:
        return f"FAIL {versus}: a plan within the rules gets there (CP-SAT: {reach.found:.1f} GiB){broke_text}"
    return f"open {versus}: CP-SAT undecided whether a plan within the rules gets there{broke_text}"


def gib_check(ours: Result) -> str:
    """GiB ≤ 1.10 × the minimum: ok when the bound proves it, FAIL when a plan found proves the
    opposite, else open. A single plan cut at the move cap is held to the minimum of plans within
    the cap (pvetop may make no other: the worker plans the rest next), the minimum of any size
    beside it."""
    minimum, yardstick, beside = ours.minimum, "minimum", ""
    if ours.capped is not None:
        minimum, yardstick = ours.capped, f"minimum of plans of ≤ {MAX_MOVES} moves"
        beside = f" (any size: {ratio_cell(ours.gib, ours.minimum)})"
    if minimum is None or not minimum.bound:
        return f"open GiB / {yardstick}: no bound{beside}"
    upper = ours.gib / minimum.bound
    if minimum.proven or upper <= 1.10:
        return f"{'ok' if upper <= 1.10 + 5e-3 else 'FAIL'} GiB ≤ {upper:.2f} × {yardstick}{beside}"
    lower = ours.gib / minimum.found if minimum.found else None
    fails = lower is not None and lower > 1.10 + 5e-3
    return f"{'FAIL' if fails else 'open'} GiB / {yardstick} {ratio_cell(ours.gib, minimum)}{beside}"


def verdicts(
    results: list[Result], snapshot: ClusterSnapshot, within_rules: Callable[[Result, float], Minimum]
) -> list[str]:
    """The targets, checked for each pvetop row against the ProxLB rows beside it."""
    theirs = [r for r in results if r.tool.startswith("ProxLB") and not math.isnan(r.imbalance_after)]
    lines = []
    for ours in (r for r in results if r.tool.startswith("pvetop")):
        checks = [f"{'ok' if ours.broken == 0 else 'FAIL'} {ours.broken} broken"]
        for other in theirs:
            name = other.tool.removeprefix("ProxLB ")
            checks.append(imbalance_check(ours, other, snapshot, within_rules))
            if not ours.moves and ours.asked:  # untriggered: how soon the plan made when asked gets there
                checks.append(f"info {reach(ours, other.imbalance_after)} ({name}: {other.moves}, {other.gib:.1f} GiB)")
            elif other.imbalance_after <= ours.imbalance_after + 5e-4 and other.moves:
                fewer = ours.moves <= other.moves and ours.gib <= other.gib + 0.05
                verdict = "ok" if fewer else "info" if settle_level(ours, snapshot) is not None else "FAIL"
                checks.append(
                    f"{verdict} {name} as low: moves {ours.moves} vs {other.moves}, "
                    f"GiB {ours.gib:.1f} vs {other.gib:.1f}"
                )
        if ours.moves:
            checks.append(gib_check(ours))
        checks.append(f"{'ok' if ours.seconds < 1 else 'slow'} {ours.seconds:.2f} s CPU")
        lines.append(f"    {ours.tool:<18} " + "; ".join(checks))
    return lines


HEADER = (
    f"{'state':<15} {'n/guests':>8}  {'tool':<18} {'imbalance':>13} {'spread':>8} {'moves':>5} "
    f"{'GiB':>7} {'API':>6} {'CPU s':>7} {'broken':>6}  {'GiB/min (min)':>14}  notes"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", default=",".join(STATES), help="comma-separated: " + ", ".join(STATES))
    parser.add_argument("--no-proxlb", action="store_true", help="only pvetop (and the minimum)")
    parser.add_argument("--cpsat-seconds", type=float, default=20.0, help="time for the minimum-GiB solver")
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help=f"where ProxLB's runs are kept per state (default {CACHE})"
    )
    parser.add_argument(
        "--fast", action="store_true", help="for iterating: ProxLB only where a run is cached, the solver 3 s"
    )
    args = parser.parse_args()
    if args.fast:
        args.cpsat_seconds = min(args.cpsat_seconds, 3.0)
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.states.split(","):
            scenario, share = STATES[label]
            source = scenario_30x1000(Path(tmp)) if scenario == "dc30" else scenario
            with start_sim(scenario=source, seed=1, manual_clock=True) as sim:
                if share is not None:
                    skew(sim, share)
                counter = RequestCounter(sim)
                results = []
                for tool, config in PVETOP_CONFIGS:
                    ours, snapshot, known = run_pvetop(sim, counter, config, tool)
                    results.append(ours)
                # every VM's migrate precondition, for the rule check and the minimum (not counted)
                every = all_preconditions(sim, snapshot)
                local = {vmid for vmid, answer in every.items() if answer.local_disks}
                now = sim.cluster.now
                planned = []
                for ours, (tool, config) in zip(results, PVETOP_CONFIGS, strict=True):
                    # moving a VM with local disks breaks no rule where the settings allow it
                    kept = set() if config.local_disks else local
                    ours.broken, ours.note = rules_broken(snapshot, ours.placed, kept)
                    allowed = len(local & set(ours.placed)) if config.local_disks else 0
                    notes = [ours.note, f"{allowed} VMs with local disks (allowed here)" if allowed else ""]
                    notes.append(uncapped(snapshot, every, config, now, kept, ours) if ours.moves else "")
                    notes.append(ask(snapshot, every, config, now, ours))
                    notes.append(f"{ours.wall:.1f}s wall with its API reads")
                    ours.note = "; ".join(part for part in notes if part)
                    ours.config, ours.kept = config, kept
                    planned.append((ours, config))
                    auto = auto_mode(snapshot, every, config, now, tool)
                    if auto is not None:
                        broken, which = rules_broken(snapshot, auto.placed, kept)
                        auto.broken, auto.note = broken, "; ".join(part for part in (which, auto.note) if part)
                        auto.config, auto.kept, auto.single = config, kept, ours.single
                        planned.append((auto, config))
                results = [result for result, _config in planned]
                for ours, config in planned:
                    if ours.moves:
                        single = head_reaching(ours.single, ours.imbalance_after)
                        ours.minimum = minimum_gib(
                            snapshot, every, config, ours.imbalance_after, args.cpsat_seconds, ours.placed, single
                        )
                        if ours.moves >= MAX_MOVES and not ours.tool.endswith(" auto"):
                            capped = minimum_gib(
                                snapshot,
                                every,
                                config,
                                ours.imbalance_after,
                                args.cpsat_seconds,
                                ours.placed,
                                single,
                                MAX_MOVES,
                            )
                            ours.capped = at_least(capped, ours.minimum)
                before = measure(snapshot, RuleSet(), BalancerConfig())
                if not args.no_proxlb:
                    for solver in (False, True):
                        theirs = proxlb_result(
                            None if args.fast else sim, counter, snapshot, local, solver=solver, cache=args.cache
                        )
                        if theirs is None:
                            continue
                        if not math.isnan(theirs.imbalance_after) and theirs.moves:
                            ahead = "; ".join(
                                reach(ours, theirs.imbalance_after)
                                for ours in results
                                if ours.tool.startswith("pvetop")
                            )
                            theirs.note = f"{theirs.note}; {ahead}" if theirs.note else ahead
                        results.append(theirs)
            print_rows(label, len(snapshot.nodes), len(snapshot.guests), before, results)
            within_rules = partial(reach_within_rules, snapshot, every, args.cpsat_seconds)
            print("\n".join(verdicts(results, snapshot, within_rules)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
