"""Driving the dashboard against the simulator (manual clock) for the migration UI tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from pvetop.ui.app import PvetopApp
from pvetop.ui.migrate.evacuate import EvacuateScreen
from pvetop.ui.table import LiveTable
from tests.engine import simdrive
from tests.engine.simdrive import connect, running_sim, set_failure_rate
from tests.ui.pilot import wait_for_data

SIZE = (150, 45)


@contextlib.asynccontextmanager
async def sim_pilot(
    *, read_only: bool = False, store=None, ruleset=None, failure_rate: float = 0.0
) -> AsyncIterator[tuple[object, PvetopApp, Pilot]]:
    """A started sim and a dashboard polling it every 0.25 s, reading migration tasks every 0.05 s."""
    with running_sim() as sim, connect(sim) as client:
        set_failure_rate(sim, failure_rate)
        app = PvetopApp(client, read_only=read_only, interval=0.25, store=store, ruleset=ruleset)
        app.migrations_ui.poll = app.migrations_ui.lifecycle_poll = 0.05
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            yield sim, app, pilot
            app.paused = True  # no refresh lands while the app is taken down
            await pilot.pause(0.1)


@contextlib.asynccontextmanager
async def planned_pilot(
    store, install: Callable[[PvetopApp, object], None], room: Callable[[PvetopApp], object], **kwargs
) -> AsyncIterator[tuple[object, PvetopApp, Pilot]]:
    """``sim_pilot`` with a worker added by ``install(app, store)``, once the worker that
    ``room(app)`` holds has its first plan."""
    async with sim_pilot(store=store, **kwargs) as (sim, app, pilot):
        install(app, store)
        app.action_refresh_now()
        await wait_until(pilot, lambda: (worker := room(app).worker) is not None and worker.plan is not None)
        yield sim, app, pilot


async def drive(pilot, sim, until: Callable[[], bool], *, step: float = 5.0, limit: float = 3600) -> None:
    """Steps simulated time while the app polls, until ``until()`` holds (in lock-step with task reads)."""
    await simdrive.drive(sim, until, step=step, limit=limit, pause=pilot.pause, pause_seconds=0.01)


async def wait_until(pilot, until: Callable[[], bool], *, tries: int = 500) -> None:
    """Waits (without moving simulated time) for the app to catch up."""
    for _ in range(tries):
        if until():
            return
        await pilot.pause(0.01)
    raise AssertionError("the app never got there")


def select_row(table: DataTable, key: str) -> None:
    table.move_cursor(row=table.get_row_index(key))


async def open_evacuation(pilot, node: str) -> EvacuateScreen:
    """``e`` on ``node`` in the node table, once its plan is shown."""
    app = pilot.app
    select_row(app.node_table, node)
    app.node_table.focus()
    await pilot.press("e")
    await wait_until(pilot, lambda: isinstance(app.screen, EvacuateScreen))
    screen = app.screen
    await wait_until(pilot, lambda: screen.proposal is not None)
    return screen


def guest_cell(app: PvetopApp, vmid: int, column: str) -> str:
    return app.guest_table.cell_text(str(vmid), column)


def screen_text(app) -> str:
    """Everything the current screen shows, as plain text (Statics, labels, table cells)."""
    parts = []
    for widget in app.screen.query("*"):
        if isinstance(widget, DataTable):
            for row in range(widget.row_count):
                parts.append(" ".join(str(getattr(c, "plain", c)) for c in widget.get_row_at(row)))
        elif isinstance(widget, LiveTable):
            columns = [spec.key for spec in widget.shown_columns]
            for key in widget.keys_in_order:
                parts.append(" ".join(widget.cell_text(key, column) for column in columns))
        elif isinstance(widget, Static):
            parts.append(str(widget.render()))
    return "\n".join(parts)
