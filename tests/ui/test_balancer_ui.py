"""``b``: the balancer screen against the simulator (Pilot) and on a fixed cluster (SVG snapshot)."""

from __future__ import annotations

import re

from pvetop.ui.balancer import BalancerScreen, install_balancer
from pvetop.ui.migrate.confirm import ConfirmScreen
from tests.engine.simdrive import guest_node
from tests.ui.migrate_pilot import drive, guest_cell, planned_pilot, screen_text, wait_until
from tests.ui.pilot import screen_snapshot, settle


def balancer_pilot(store, **kwargs):
    return planned_pilot(store, install_balancer, lambda app: app.balancer, **kwargs)


async def test_b_shows_the_plan_with_reasons_and_the_header_counts_it(store):
    async with balancer_pilot(store) as (sim, app, pilot):
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BalancerScreen))
        plan = app.balancer.worker.plan
        assert plan.moves
        text = screen_text(app)
        assert "mode advise" in text and "threshold 25%" in text
        assert plan.moves[0].move.reason in text
        # edge 14: imbalance is a percentage on this screen as in the header (no "0.51 above 0.25")
        assert not re.search(r"imbalance[^\n]*\b0\.\d\d", text), text
        assert re.search(r"imbalance \d+(\.\d)?% → \d+(\.\d)?%", plan.moves[0].move.reason)
        assert f"balancer advise · plan: {len(plan.moves)} move" in app.header_notes["balancer"]


async def test_apply_one_move_shows_the_guest_on_its_new_node_and_journals_it(store):
    async with balancer_pilot(store) as (sim, app, pilot):
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BalancerScreen))
        first = app.balancer.worker.plan.moves[0].move
        await pilot.press("a")
        worker = app.balancer.worker
        await wait_until(pilot, lambda: worker.jobs)
        await drive(pilot, sim, lambda: worker.jobs[0].state.finished)
        assert worker.jobs[0].succeeded, worker.jobs[0].error
        assert guest_node(sim, first.vmid) == first.target
        await pilot.press("escape")
        await wait_until(pilot, lambda: guest_cell(app, first.vmid, "node") == first.target)
        entries = [e for e in store.journal_entries(worker.cluster, actions=("migrate",)) if e.result == "ok"]
        assert [(e.target, e.params["reason"]) for e in entries] == [(f"guest/{first.vmid}", first.reason)]


async def test_switching_to_auto_asks_first(store):
    async with balancer_pilot(store) as (sim, app, pilot):
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BalancerScreen))
        await pilot.press("o")  # advise -> auto asks
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await settle(pilot)
        assert store.get_setting(app.balancer.worker.cluster, "balancer.mode") is None
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: store.get_setting(app.balancer.worker.cluster, "balancer.mode") == "auto")


async def test_read_only_greys_out_apply_and_mode(store):
    async with balancer_pilot(store, read_only=True) as (sim, app, pilot):
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BalancerScreen))
        for action in ("apply_one", "apply_all", "mode"):
            assert app.screen.check_action(action, ()) is None
        await pilot.press("a")
        await settle(pilot)
        assert app.balancer.worker.jobs == []
        assert "read-only" in screen_text(app)


def test_balancer_screen_snapshot(snap_compare, tmp_path):
    assert screen_snapshot(snap_compare, tmp_path, install_balancer, "b", terminal_size=(140, 40))


async def test_apply_the_whole_plan_re_plans_until_balanced(store):
    async with balancer_pilot(store) as (sim, app, pilot):
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BalancerScreen))
        worker = app.balancer.worker
        await pilot.press("A")
        await wait_until(pilot, lambda: worker.jobs)
        await drive(pilot, sim, lambda: not worker.running and worker.plan is not None and worker.plan.trigger is None)
        assert worker.jobs and all(job.succeeded for job in worker.jobs), [job.error for job in worker.jobs]
        assert worker.plan is not None and worker.plan.trigger is None, worker.plan.summary
