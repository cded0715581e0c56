"""A continuous lower bound on the minimum-GiB model of ``balance.py``: its LP relaxation, the
convex imbalance constraint approximated from outside by tangent cuts (Kelley). On 30 nodes /
1000 guests CP-SAT's own bound stays far below it (dc30x1000-skew, containers allowed, 20 s:
77 GiB where this LP proves 277); GLOP solves the LP, 25,000 columns, in 2–7 s."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

MILLION = 1_000_000


@dataclass(frozen=True)
class Relaxation:
    """The minimum-GiB model's numbers without its memory cap and anti-affinity (fewer constraints
    can only lower a minimum). Loads are in the model's integer units (1/SCALE of a node's load)."""

    fixed: tuple[int, ...]  # each node's load that no movable unit carries
    weights: tuple[dict[int, int], ...]  # per unit: its load on each node it may be on (node index → load)
    sources: tuple[int, ...]  # per unit: the node it is on
    costs: tuple[int, ...]  # per unit: MiB moved when it leaves its source
    factor: int  # imbalance ≤ target ⟺ MILLION·n·Σload² ≤ factor·(Σload)²
    band: int  # implied: MILLION·n·load within (MILLION ± band)·Σload

    @property
    def total_range(self) -> tuple[int, int]:
        """The least and the most Σload can be."""
        base = sum(self.fixed)
        low = base + sum(min(options.values()) for options in self.weights)
        high = base + sum(max(options.values()) for options in self.weights)
        return low, high


def limits(target: float, n: int) -> tuple[int, int]:
    """The model's imbalance test for ``target`` on ``n`` nodes: (factor, band). The imbalance
    (CV/√(n−1)) ≤ target ⟺ n·Σload² ≤ (1 + target²·(n−1))·(Σload)²; and one node's deviation is
    at most all of them, |load − mean| ≤ mean·target·√(n(n−1))."""
    return round((1 + target * target * (n - 1)) * MILLION), round(target * math.sqrt(n * (n - 1)) * MILLION)


@dataclass(frozen=True)
class LpBound:
    """The LP's optimum in whole MiB, or None where the LP is infeasible, which proves the model
    infeasible too; the rounds of LPs solved, their seconds."""

    mib: int | None
    rounds: int
    seconds: float


def lp_bound(relaxation: Relaxation, *, rounds: int = 100, tolerance: float = 1e-7) -> LpBound:
    """The fewest MiB any fractional placement moves: x[u,k] ∈ [0,1] summing to 1 over each unit's
    nodes, load_k = fixed_k + Σ_u w[u,k]·x[u,k], T = Σload within its range. The model's
    n·Σload² ≤ f·T² is relaxed to n·Σs_k ≤ f·((lo+hi)·T − lo·hi) (T² lies below its chord), with
    s_k ≥ load_k² kept from outside by tangents s_k ≥ 2a·load_k − a² (a square lies above its
    tangents), added at the LP's point for every node whose s_k falls short (a cut per node is at
    least as strong as the aggregated n·Σ(2a_k·load_k − a_k²) ≤ f·(…), which they imply), until
    the point meets the quadratic constraint within ``tolerance`` (relative) or ``rounds`` run
    out. Every round's LP is an outer approximation, so its optimum is a lower bound, rising
    round by round.
    Loads are divided by the units' scale in the LP (GLOP's tolerances are absolute)."""
    from ortools.linear_solver import pywraplp

    started = time.perf_counter()
    n = len(relaxation.fixed)
    scale = max(1, max(relaxation.fixed), *(max(options.values()) for options in relaxation.weights))
    low, high = (value / scale for value in relaxation.total_range)
    factor = relaxation.factor / MILLION
    band = relaxation.band / MILLION
    solver = pywraplp.Solver.CreateSolver("GLOP")
    infinity = solver.infinity()
    loads = [solver.NumVar(-infinity, infinity, f"load{k}") for k in range(n)]
    squares = [solver.NumVar(0, infinity, f"sq{k}") for k in range(n)]
    total = solver.NumVar(low, high, "total")
    defined = [solver.Constraint(fixed / scale, fixed / scale) for fixed in relaxation.fixed]
    for k, load in enumerate(loads):
        defined[k].SetCoefficient(load, 1)
    objective = solver.Objective()
    objective.SetOffset(sum(relaxation.costs) / 1024)  # in GiB: the coefficients stay near 1
    for u, options in enumerate(relaxation.weights):
        once = solver.Constraint(1, 1)
        for k, weight in options.items():
            x = solver.NumVar(0, 1, f"x{u}_{k}")
            once.SetCoefficient(x, 1)
            defined[k].SetCoefficient(x, -weight / scale)
            if k == relaxation.sources[u]:
                objective.SetCoefficient(x, -relaxation.costs[u] / 1024)
    summed = solver.Constraint(0, 0)
    summed.SetCoefficient(total, 1)
    for load in loads:
        summed.SetCoefficient(load, -1)
    chord = solver.Constraint(-infinity, -factor * low * high)
    chord.SetCoefficient(total, -factor * (low + high))
    for square in squares:
        chord.SetCoefficient(square, n)
    for load in loads:
        upper = solver.Constraint(-infinity, 0)
        upper.SetCoefficient(load, n)
        upper.SetCoefficient(total, -(1 + band))
        lower = solver.Constraint(0, infinity)
        lower.SetCoefficient(load, n)
        lower.SetCoefficient(total, -(1 - band))

    def tangent(k: int, point: float) -> None:
        cut = solver.Constraint(-point * point, infinity)
        cut.SetCoefficient(squares[k], 1)
        cut.SetCoefficient(loads[k], -2 * point)

    # first tangents: at each node's load now and at the mean load now
    start = [float(fixed) for fixed in relaxation.fixed]
    for u, options in enumerate(relaxation.weights):
        start[relaxation.sources[u]] += options[relaxation.sources[u]]
    for k in range(n):
        tangent(k, start[k] / scale)
        tangent(k, sum(start) / n / scale)
    objective.SetMinimization()
    value = 0.0
    for done in range(1, rounds + 1):
        status = solver.Solve()
        if status == pywraplp.Solver.INFEASIBLE:  # an outer approximation: the model is infeasible too
            return LpBound(None, done, time.perf_counter() - started)
        if status != pywraplp.Solver.OPTIMAL:  # not expected: the last round's bound stands
            break
        value = objective.Value()
        point = [load.solution_value() for load in loads]
        below = [square.solution_value() for square in squares]
        allowed = factor * ((low + high) * total.solution_value() - low * high)
        if n * sum(p * p for p in point) <= allowed * (1 + tolerance):
            break
        for k, p in enumerate(point):  # read every value first: a new constraint voids the solution
            if below[k] < p * p * (1 - tolerance):
                tangent(k, p)
    return LpBound(_mib(value), done, time.perf_counter() - started)


def _mib(gib: float) -> int:
    """Whole MiB (the model's costs are whole MiB) at most the LP's optimum less 1 ppm and 0.01 MiB,
    a margin for GLOP's tolerances."""
    return max(0, math.ceil(gib * 1024 * (1 - 1e-6) - 0.01))
