"""The LP lower bound of tests/bench/balance.py's minimum-GiB model (tests/bench/lower_bound.py)
is a lower bound: on small random clusters it never exceeds the fewest MiB found by trying every
placement under the same integer constraints."""

from __future__ import annotations

import itertools
import random

from tests.bench.lower_bound import MILLION, Relaxation, limits, lp_bound


def fewest_mib(relaxation: Relaxation) -> int | None:
    """The exact minimum by enumeration, None where no placement meets the imbalance test."""
    n = len(relaxation.fixed)
    best = None
    for placement in itertools.product(*(sorted(options) for options in relaxation.weights)):
        loads = list(relaxation.fixed)
        for unit, node in enumerate(placement):
            loads[node] += relaxation.weights[unit][node]
        total = sum(loads)
        if MILLION * n * sum(load * load for load in loads) > relaxation.factor * total * total:
            continue
        if any(
            not (MILLION - relaxation.band) * total <= MILLION * n * load <= (MILLION + relaxation.band) * total
            for load in loads
        ):
            continue
        cost = sum(c for unit, c in enumerate(relaxation.costs) if placement[unit] != relaxation.sources[unit])
        best = cost if best is None else min(best, cost)
    return best


def random_relaxation(rng: random.Random) -> Relaxation:
    n = rng.randint(2, 4)
    units = rng.randint(3, 6)
    sources = tuple(rng.randrange(n) for _ in range(units))
    weights = []
    for source in sources:
        allowed = {source} | {k for k in range(n) if rng.random() < 0.7}
        base = rng.randint(100, 3000)
        weights.append({k: round(base * rng.uniform(0.5, 2.0)) for k in allowed})
    factor, band = limits(rng.uniform(0.01, 0.4), n)
    return Relaxation(
        fixed=tuple(rng.randint(0, 3000) for _ in range(n)),
        weights=tuple(weights),
        sources=sources,
        costs=tuple(rng.randint(1, 16384) for _ in range(units)),
        factor=factor,
        band=band,
    )


def test_the_lp_bound_never_exceeds_the_exact_minimum() -> None:
    rng = random.Random(7)
    above_zero = 0
    for _ in range(100):
        relaxation = random_relaxation(rng)
        exact = fewest_mib(relaxation)
        bound = lp_bound(relaxation).mib
        if exact is None:
            continue  # the LP may still find a fractional placement
        assert bound is not None and bound <= exact, (relaxation, bound, exact)
        above_zero += bound > 0
    assert above_zero >= 15  # the bound is not trivially zero
