"""Lower bounds on the minimum-GiB model of ``balance.py``, its imbalance test kept from outside
by cuts (Kelley).

The test n·Σload² ≤ f·(Σload)² is, for Σload > 0, the second-order cone ‖load‖ ≤ c·Σload with
c = √(f/n): convex, so tangent planes keep all of it and planes added where a solution breaks
it close in on it (``_Outer``). Relaxing (Σload)² to its chord instead, as the first LP here
did, gave away up to a quarter of the test's slack on smb, where Σload varies by ±9 % (auto:
90.2 GiB proven where the cone proves 98.5; dc30x1000-skew +ct: 276.8 → 305.6). ``lp_bound``:
fractional placements (GLOP, 1–2 s on 30 nodes / 1000 guests, where CP-SAT's own bound stays
far below). ``mip_bound``: whole placements (SCIP), for the small clusters where the LP leaves a
gap (smb +ct auto: 89.6 → 93.5 GiB, the optimum, in seconds)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ortools.linear_solver import pywraplp

MILLION = 1_000_000


@dataclass(frozen=True)
class Relaxation:
    """The minimum-GiB model's numbers, its loads in integer units (1/SCALE of a node's load). The
    memory cap is there for balance.py's CP-SAT model; the bounds leave it out (a disjunction that
    moved no bound on smb), which can only lower them."""

    fixed: tuple[int, ...]  # each node's load that no movable unit carries
    weights: tuple[dict[int, int], ...]  # per unit: its load on each node it may be on (node index → load)
    sources: tuple[int, ...]  # per unit: the node it is on
    costs: tuple[int, ...]  # per unit: MiB moved when it leaves its source
    factor: int  # imbalance ≤ target ⟺ MILLION·n·Σload² ≤ factor·(Σload)²
    band: int  # implied: MILLION·n·load within (MILLION ± band)·Σload
    guests: tuple[int, ...]  # per unit: its guests, each one move of a plan
    memory: tuple[int, ...]  # per unit: MiB it takes on a node (the memory cap)
    room: tuple[int, ...]  # per node: the most MiB its units may take once it receives one (the memory cap)
    apart: tuple[tuple[int, int], ...] = ()  # units never on one node (anti-affinity)
    most_moves: int | None = None  # at most this many guests among the units moved (None: no cap)

    @property
    def total_range(self) -> tuple[int, int]:
        """The least and the most Σload can be."""
        base = sum(self.fixed)
        low = base + sum(min(options.values()) for options in self.weights)
        high = base + sum(max(options.values()) for options in self.weights)
        return low, high

    @property
    def start(self) -> list[int]:
        """Each node's load with every unit on its source."""
        loads = list(self.fixed)
        for u, options in enumerate(self.weights):
            loads[self.sources[u]] += options[self.sources[u]]
        return loads


def limits(target: float, n: int) -> tuple[int, int]:
    """The model's imbalance test for ``target`` on ``n`` nodes: (factor, band). The imbalance
    (CV/√(n−1)) ≤ target ⟺ n·Σload² ≤ (1 + target²·(n−1))·(Σload)²; and one node's deviation is
    at most all of them, |load − mean| ≤ mean·target·√(n(n−1))."""
    return round((1 + target * target * (n - 1)) * MILLION), round(target * math.sqrt(n * (n - 1)) * MILLION)


@dataclass(frozen=True)
class Bound:
    """A bound in whole MiB, or None where its outer approximation is infeasible, which proves the
    model infeasible too; the rounds solved, their seconds; and for a MIP that met the cone, its
    placement (node index per unit): a plan of the model but for rounding and the memory cap."""

    mib: int | None
    rounds: int
    seconds: float
    placement: tuple[int, ...] | None = None


class _Outer:
    """The model in an ``ortools.linear_solver`` solver, the cone kept from outside node by node:
    ‖load‖ ≤ c·T (T = Σload) ⟺ Σ_k r_k ≤ c·T with r_k ≥ load_k² / (c·T), each a convex function
    of (load_k, T) (a perspective) kept by its tangent planes r_k ≥ 2t·load_k − t²·c·T (t =
    load_k / (c·T) where it touches). A plane per node closes in far faster than planes of the
    whole cone (dc30x1000-skew: 300–400 LP rounds, 35–100 s, for what this gets in a dozen).
    Loads are divided by the units' scale and costs are in GiB (the solvers' tolerances are
    absolute)."""

    def __init__(self, relaxation: Relaxation, backend: str, *, integer: bool) -> None:
        self.solver = solver = pywraplp.Solver.CreateSolver(backend)
        infinity = solver.infinity()
        n = len(relaxation.fixed)
        scale = max(1, max(relaxation.fixed), *(max(options.values()) for options in relaxation.weights))
        low, high = (value / scale for value in relaxation.total_range)
        self.reach = math.sqrt(relaxation.factor / MILLION / n)  # c
        band = relaxation.band / MILLION
        self.loads = [solver.NumVar(-infinity, infinity, f"load{k}") for k in range(n)]
        self.shares = [solver.NumVar(0, infinity, f"r{k}") for k in range(n)]
        self.total = solver.NumVar(low, high, "total")
        defined = [solver.Constraint(fixed / scale, fixed / scale) for fixed in relaxation.fixed]
        for k, load in enumerate(self.loads):
            defined[k].SetCoefficient(load, 1)
        self.objective = objective = solver.Objective()
        objective.SetOffset(sum(relaxation.costs) / 1024)
        self.place: list[dict[int, pywraplp.Variable]] = []  # per unit: node → its variable
        for u, options in enumerate(relaxation.weights):
            once = solver.Constraint(1, 1)
            here = {k: solver.IntVar(0, 1, f"x{u}_{k}") if integer else solver.NumVar(0, 1, "") for k in options}
            for k, x in here.items():
                once.SetCoefficient(x, 1)
                defined[k].SetCoefficient(x, -options[k] / scale)
            objective.SetCoefficient(here[relaxation.sources[u]], -relaxation.costs[u] / 1024)
            self.place.append(here)
        summed = solver.Constraint(0, 0)
        summed.SetCoefficient(self.total, 1)
        cone = solver.Constraint(-infinity, 0)
        cone.SetCoefficient(self.total, -self.reach)
        for load, share in zip(self.loads, self.shares, strict=True):
            summed.SetCoefficient(load, -1)
            cone.SetCoefficient(share, 1)
            upper = solver.Constraint(-infinity, 0)
            upper.SetCoefficient(load, n)
            upper.SetCoefficient(self.total, -(1 + band))
            lower = solver.Constraint(0, infinity)
            lower.SetCoefficient(load, n)
            lower.SetCoefficient(self.total, -(1 - band))
        for a, b in relaxation.apart:
            for k in relaxation.weights[a].keys() & relaxation.weights[b].keys():
                together = solver.Constraint(-infinity, 1)
                together.SetCoefficient(self.place[a][k], 1)
                together.SetCoefficient(self.place[b][k], 1)
        if relaxation.most_moves is not None:  # Σ guests·(1 − stays) ≤ most_moves
            moves = solver.Constraint(sum(relaxation.guests) - relaxation.most_moves, infinity)
            for u, here in enumerate(self.place):
                moves.SetCoefficient(here[relaxation.sources[u]], relaxation.guests[u])
        objective.SetMinimization()
        start = relaxation.start  # first planes: where each node is now, and at the mean
        for k, load in enumerate(start):
            self.tangent(k, load / (self.reach * sum(start)))
            self.tangent(k, 1 / (self.reach * n))

    def tangent(self, k: int, t: float) -> None:
        """r_k ≥ 2t·load_k − t²·c·T: the plane touching r_k = load_k² / (c·T) where load_k = t·c·T."""
        cut = self.solver.Constraint(0, self.solver.infinity())
        cut.SetCoefficient(self.shares[k], 1)
        cut.SetCoefficient(self.loads[k], -2 * t)
        cut.SetCoefficient(self.total, t * t * self.reach)

    def outside(self, tolerance: float) -> list[tuple[int, float]]:
        """Where the solution breaks the cone by more than ``tolerance`` (relative), the planes
        (node, t) at its point for every node whose r_k falls short; else none."""
        loads = [load.solution_value() for load in self.loads]
        edge = self.reach * self.total.solution_value()
        if sum(load * load for load in loads) <= edge * edge * (1 + tolerance):
            return []
        return [
            (k, load / edge)
            for k, (load, share) in enumerate(zip(loads, self.shares, strict=True))
            if share.solution_value() < load * load / edge
        ]


def lp_bound(relaxation: Relaxation, *, rounds: int = 400, tolerance: float = 1e-7) -> Bound:
    """The fewest MiB any fractional placement moves (x[u,k] ∈ [0,1] summing to 1 over each
    unit's nodes; the memory cap, a disjunction, dropped), planes added at the LP's point until
    it meets the cone within ``tolerance`` or ``rounds`` run out. Every round's LP is an outer
    approximation, so its optimum is a lower bound, rising round by round."""
    started = time.perf_counter()
    outer = _Outer(relaxation, "GLOP", integer=False)
    value = 0.0
    for done in range(1, rounds + 1):
        status = outer.solver.Solve()
        if status == pywraplp.Solver.INFEASIBLE:
            return Bound(None, done, time.perf_counter() - started)
        if status != pywraplp.Solver.OPTIMAL:  # not expected: the last round's bound stands
            break
        value = outer.objective.Value()
        planes = outer.outside(tolerance)
        if not planes:
            break
        for k, t in planes:
            outer.tangent(k, t)
    return Bound(_mib(value), done, time.perf_counter() - started)


def mip_bound(relaxation: Relaxation, seconds: float, *, tolerance: float = 1e-7) -> Bound:
    """The fewest MiB any whole placement moves (SCIP), the cone kept from outside by the LP's
    planes (as in ``lp_bound``, first) and more at each MIP solution that breaks it. Each
    round's proven bound is a lower bound; the rounds end when a solution meets the cone (it is
    then the optimum, its placement returned) or ``seconds`` run out."""
    started = time.perf_counter()
    outer = _Outer(relaxation, "SCIP", integer=True)
    relaxed = _Outer(relaxation, "GLOP", integer=False)
    for _round in range(400):  # the LP's planes: cheap, and most of what the MIP needs
        if relaxed.solver.Solve() != pywraplp.Solver.OPTIMAL:
            break
        planes = relaxed.outside(tolerance)
        for k, t in planes:
            relaxed.tangent(k, t)
            outer.tangent(k, t)
        if not planes or time.perf_counter() - started > seconds / 2:
            break
    exact = pywraplp.MPSolverParameters()  # optimal means no gap left (not the default 0.01 %: ~10 MiB on smb)
    exact.SetDoubleParam(exact.RELATIVE_MIP_GAP, 0.0)
    best, done = 0.0, 0
    while (left := seconds - (time.perf_counter() - started)) > 0.1:
        done += 1
        outer.solver.SetTimeLimit(max(100, int(left * 1000)))
        status = outer.solver.Solve(exact)
        if status == pywraplp.Solver.INFEASIBLE:
            return Bound(None, done, time.perf_counter() - started)
        if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            break  # no solution in the time: the bound of this round is not read
        best = max(best, outer.objective.BestBound())
        planes = outer.outside(tolerance)
        if not planes and status == pywraplp.Solver.OPTIMAL:
            placement = tuple(max(here, key=lambda k: here[k].solution_value()) for here in outer.place)
            return Bound(_mib(best), done, time.perf_counter() - started, placement)
        if not planes:
            break  # a solution within the cone but not proven optimal: another round adds nothing
        for k, t in planes:
            outer.tangent(k, t)
    return Bound(_mib(best), done, time.perf_counter() - started)


def _mib(gib: float) -> int:
    """Whole MiB (the model's costs are whole MiB) at most a bound less 1 ppm and 0.01 MiB, a
    margin for the solvers' tolerances."""
    return max(0, math.ceil(gib * 1024 * (1 - 1e-6) - 0.01))
