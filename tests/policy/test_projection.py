"""The projected cluster moves guests on paper without touching the snapshot."""

import pytest

from pvetop.policy.projection import Demand, NodeUsage, ProjectedCluster
from tests.factories import GIB, make_guest, make_node, make_snapshot


def _snapshot():
    return make_snapshot(
        [make_node("pve1", maxcpu=8), make_node("pve2", maxcpu=16), make_node("off", status="offline")],
        [
            make_guest(100, "pve1", cpu=0.5, maxcpu=4, mem=6 * GIB, maxmem=8 * GIB),
            make_guest(101, "pve1", status="stopped", maxmem=16 * GIB),
        ],
        derive_usage=True,
    )


def test_demand_of_running_and_stopped_guests():
    assert Demand.of(make_guest(1, cpu=0.5, maxcpu=4, mem=3 * GIB, maxmem=4 * GIB)) == Demand(2.0, 3 * GIB, 4 * GIB)
    assert Demand.of(make_guest(2, status="stopped")) == Demand()
    assert Demand(1.0, 2, 3) + Demand(1.0, 1, 1) == Demand(2.0, 3, 4)


def test_usage_starts_from_the_snapshot():
    projection = ProjectedCluster.of(_snapshot())
    pve1 = projection.usage_of("pve1")
    assert pve1.cpu_cores == pytest.approx(2.0)
    assert pve1.cpu_fraction == pytest.approx(0.25)
    assert pve1.mem == 6 * GIB and pve1.committed == 8 * GIB and pve1.guests == 2
    assert pve1.load == pytest.approx((0.25 + 6 / 64) / 2)
    assert projection.usage_of("nowhere") == NodeUsage.absent("nowhere")


def test_apply_moves_capacity_and_location_and_leaves_the_original():
    start = ProjectedCluster.of(_snapshot())
    moved = start.apply([100, 101], "pve2")
    assert moved.node_of(100) == "pve2" and moved.node_of(101) == "pve2"
    assert start.node_of(100) == "pve1"
    assert moved.usage_of("pve1").mem == 0 and moved.usage_of("pve1").guests == 0
    assert moved.usage_of("pve2").cpu_cores == pytest.approx(2.0)
    assert moved.usage_of("pve2").cpu_fraction == pytest.approx(2 / 16)
    assert moved.usage_of("pve2").committed == 8 * GIB
    assert start.usage_of("pve2").mem == 0


def test_moving_back_home_forgets_the_move():
    projection = ProjectedCluster.of(_snapshot()).apply([100], "pve2").apply([100], "pve1")
    assert dict(projection.moved) == {}
    assert projection.usage_of("pve1").mem == 6 * GIB


def test_applying_to_the_current_node_changes_nothing():
    start = ProjectedCluster.of(_snapshot())
    assert start.apply([100], "pve1").usage == start.usage


def test_moving_to_an_unknown_node_is_an_error():
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        ProjectedCluster.of(_snapshot()).apply([100], "nope")


def test_loads_cover_online_nodes_only():
    projection = ProjectedCluster.of(_snapshot())
    assert set(projection.loads()) == {"pve1", "pve2"}
    assert projection.balance().hottest == "pve1"


def test_node_figures_lagging_behind_guests_never_go_negative():
    snap = make_snapshot([make_node("pve1", mem=GIB), make_node("pve2")], [make_guest(100, "pve1", mem=4 * GIB)])
    assert ProjectedCluster.of(snap).apply([100], "pve2").usage_of("pve1").mem == 0


def test_free_memory_below_a_ceiling():
    usage = NodeUsage("n", True, 4, 100, 0.0, 60, 0, 0)
    assert usage.free_mem == 40
    assert usage.free_mem_below(0.9) == 30
    assert usage.free_mem_below(0.5) == 0
