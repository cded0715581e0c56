"""Load, imbalance and spread (as PVE 9.2's CRS computes them), header totals and counter rates."""

import math

import pytest

from pvetop.policy.metrics import (
    GuestRates,
    balance_of,
    cluster_balance,
    cluster_totals,
    guest_rates,
    imbalance,
    imbalance_change,
    imbalance_text,
)
from tests.factories import GIB, make_guest, make_node, make_snapshot


def test_even_loads_have_no_imbalance():
    assert imbalance([0.4, 0.4, 0.4, 0.4]) == 0.0


@pytest.mark.parametrize("n", [2, 3, 5, 30])
def test_everything_on_one_node_is_imbalance_one(n):
    assert imbalance([0.7] + [0.0] * (n - 1)) == pytest.approx(1.0)


def test_hand_computed_imbalance():
    # loads 0.2, 0.4, 0.6: mean 0.4, population std sqrt(0.08/3), cv / sqrt(2)
    expected = math.sqrt(0.08 / 3) / 0.4 / math.sqrt(2)
    assert imbalance([0.2, 0.4, 0.6]) == pytest.approx(expected)
    assert expected == pytest.approx(0.2887, abs=1e-4)


def test_two_nodes_half_and_zero():
    # mean 0.25, std 0.25 -> cv 1, / sqrt(1) = 1: one node carries everything.
    assert imbalance([0.5, 0.0]) == pytest.approx(1.0)
    # 0.6 vs 0.2: mean 0.4, std 0.2 -> 0.5
    assert imbalance([0.6, 0.2]) == pytest.approx(0.5)


@pytest.mark.parametrize("loads", [[], [0.9], [0.0, 0.0, 0.0]])
def test_degenerate_clusters_are_balanced(loads):
    assert imbalance(loads) == 0.0


def test_balance_of_reports_spread_in_points_and_extremes():
    balance = balance_of({"pve1": 0.8, "pve2": 0.2, "pve3": 0.5})
    assert balance.spread == pytest.approx(60.0)
    assert balance.hottest == "pve1" and balance.coolest == "pve2"
    assert balance.mean == pytest.approx(0.5)


def test_ties_pick_the_first_name():
    balance = balance_of({"b": 0.5, "a": 0.5})
    assert balance.hottest == "a" and balance.coolest == "a"


def test_empty_balance():
    balance = balance_of({})
    assert (balance.imbalance, balance.spread, balance.hottest) == (0.0, 0.0, None)


def test_cluster_balance_uses_online_nodes_only():
    snap = make_snapshot(
        [
            make_node("pve1", cpu=0.5, mem=32 * GIB),  # load (0.5 + 0.5) / 2
            make_node("pve2", cpu=0.1, mem=0),  # load 0.05
            make_node("pve3", status="offline", maxcpu=0, maxmem=0),
        ]
    )
    balance = cluster_balance(snap)
    assert set(balance.loads) == {"pve1", "pve2"}
    assert balance.loads["pve1"] == pytest.approx(0.5)
    assert balance.loads["pve2"] == pytest.approx(0.05)
    assert balance.spread == pytest.approx(45.0)


def test_cluster_totals_weigh_cpu_by_cores():
    snap = make_snapshot(
        [
            make_node("big", cpu=0.5, maxcpu=64, mem=32 * GIB, maxmem=256 * GIB),
            make_node("small", cpu=1.0, maxcpu=4, mem=8 * GIB, maxmem=16 * GIB),
            make_node("off", status="offline", maxcpu=8, maxmem=32 * GIB),
        ],
        [make_guest(100, "big"), make_guest(101, "small", status="stopped")],
    )
    totals = cluster_totals(snap)
    assert totals.cpu_fraction == pytest.approx((32 + 4) / 68)
    assert totals.mem_fraction == pytest.approx(40 / 272)
    assert (totals.nodes_online, totals.nodes_total) == (2, 3)
    assert (totals.guests_running, totals.guests_total) == (1, 2)


def test_totals_of_an_all_offline_cluster_are_zero():
    totals = cluster_totals(make_snapshot([make_node("pve1", status="offline")]))
    assert totals.cpu_fraction == 0.0 and totals.mem_fraction == 0.0


def _counters(vmid, node="pve1", **counters):
    return make_guest(vmid, node, **counters)


def test_rates_are_bytes_per_second():
    before = make_snapshot(
        [make_node()], [_counters(100, netin=1000, netout=0, diskread=500, diskwrite=0)], fetched_at=100.0
    )
    after = make_snapshot(
        [make_node()], [_counters(100, netin=3000, netout=1000, diskread=500, diskwrite=4000)], fetched_at=110.0
    )
    assert guest_rates(before, after) == {100: GuestRates(200.0, 100.0, 0.0, 400.0)}
    assert guest_rates(before, after, 4.0)[100].netin == 500.0


def test_a_reset_counter_counts_from_zero():
    before = make_snapshot([make_node()], [_counters(100, netin=10_000)], fetched_at=0.0)
    after = make_snapshot([make_node()], [_counters(100, netin=600)], fetched_at=10.0)
    assert guest_rates(before, after)[100].netin == 60.0


def test_new_and_unreporting_guests_have_no_rate_yet():
    before = make_snapshot([make_node()], [_counters(100), _counters(101)], fetched_at=0.0)
    after = make_snapshot(
        [make_node()], [_counters(100), _counters(101, status="unknown"), _counters(102)], fetched_at=5.0
    )
    assert set(guest_rates(before, after)) == {100}


def test_no_elapsed_time_gives_no_rates():
    snap = make_snapshot([make_node()], [_counters(100, netin=5)], fetched_at=7.0)
    assert guest_rates(snap, snap) == {}
    assert guest_rates(snap, snap, -1.0) == {}


def test_imbalance_is_written_one_way_with_a_decimal_only_when_needed():
    """Edge 14: a percentage everywhere; a change too small for whole percents gets one decimal."""
    assert imbalance_text(0.51) == "51%"
    assert imbalance_change(0.51, 0.27) == "51% → 27%"
    assert imbalance_change(0.2061, 0.2052) == "20.6% → 20.5%"
