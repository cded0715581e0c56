"""Rough edge 15 (issue 12): the demo reads one clock, the simulator's.

The simulator here runs on a manual clock that starts on 2026-01-01, far from the wall clock, so
any timestamp taken from the wall clock instead would stand out by months.
"""

from __future__ import annotations

import argparse
import time

from textual.widgets import DataTable

from pvetop.cli.dashboard import dashboard_app
from pvetop.cli.rules import dashboard_store
from pvetop.config import settings_from_sim_info
from pvetop.engine.lease import LeaseKeeper
from pvetop.policy.placement import planned_move
from pvetop.pve import PveClient
from pvetop.pve.tasks import parse_upid
from pvetop.ui.migrate.tasks import TasksScreen
from pvetop.ui.rules.journal import JournalScreen
from tests.engine.simdrive import migration_tasks, running_sim
from tests.ui.migrate_pilot import SIZE, drive, screen_text, wait_until
from tests.ui.pilot import wait_for_data

DAY = 86400.0


def _hms(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


async def test_edge_15_task_start_pin_and_journal_agree_on_the_simulated_clock():
    with running_sim() as sim:
        clock = sim.cluster.clock
        began = clock.now()
        assert abs(time.time() - began) > 30 * DAY  # the test means something only if the two clocks differ
        demo_args = argparse.Namespace(demo="homelab", db=None)
        with (
            PveClient.connect(settings_from_sim_info(sim.info), clock=clock.now) as client,
            dashboard_store(demo_args, clock=clock.now) as store,
        ):
            app = dashboard_app(client, store, clock=clock.now, clock_speed=clock.speed, interval=0.25, demo=True)
            app.migrations_ui.poll = app.migrations_ui.lifecycle_poll = 0.05
            async with app.run_test(size=SIZE) as pilot:
                await wait_for_data(pilot)
                snapshot = app.latest.snapshot
                cluster = snapshot.cluster_name
                assert app.latest.received_at == snapshot.fetched_at  # the app and the client: one clock
                sim.cluster.step(30)
                pin = store.pin_guest(cluster, 105, "pinned", ["pve-mini1"])
                job = app.migrations.submit(planned_move(snapshot.guest_by_vmid[103], "pve-mini1", "pve-big", "test"))
                await drive(pilot, sim, lambda: job.state.finished, step=1.0)
                assert job.succeeded, job.error
                (task,) = [t for t in migration_tasks(sim) if t.id == "103"]

                # the task's start (PVE's UPID), the job's start and end, the pin and the journal
                assert parse_upid(job.upid).starttime == task.starttime
                # started just before its API call (a precondition read, while the test steps time)
                assert task.starttime - 10 <= job.started_at <= task.starttime
                # ended once the guest is seen on its target, a refresh or a few after the task
                assert task.end_time <= job.finished_at <= task.end_time + 30
                assert began + 30 <= pin.created_at <= job.started_at
                entries = store.recent_journal(cluster)
                assert {e.action for e in entries} >= {"pin", "migrate"}
                for entry in entries:
                    assert began <= entry.at <= clock.now(), entry
                assert app.acting.lease.clock == clock.now and app.acting.intents.clock == clock.now

                # what the screens show: the tasks pane's start and duration, the journal's times
                await pilot.press("t")
                await wait_until(pilot, lambda: isinstance(app.screen, TasksScreen))
                table = app.screen.query_one("#tasks", DataTable)
                row = [str(cell) for cell in table.get_row(job.upid)]
                took = int(job.finished_at - job.started_at)
                assert row[0] == _hms(task.starttime)
                hours, minutes, seconds = (int(part) for part in row[5].split(":"))
                assert abs(hours * 3600 + minutes * 60 + seconds - took) <= 2, (row[5], took)
                await pilot.press("escape")
                await pilot.press("j")
                await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen))
                shown = screen_text(app)
                migrate_entry = next(e for e in entries if e.action == "migrate")
                assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(migrate_entry.at)) in shown
                assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pin.created_at)) in shown
                app.paused = True
                await pilot.pause(0.1)


def test_edge_15_the_lease_renews_in_real_time_however_fast_its_clock_runs():
    # the demo's lease lasts 20 simulated seconds, 2 real ones at 10x: renewed every 0.5 s, it holds
    assert LeaseKeeper(None, "demo", ttl=20.0, clock_speed=10.0).renew_every == 0.5
    assert LeaseKeeper(None, "real", ttl=20.0).renew_every == 5.0
