"""Waiting for the dashboard under Pilot: its polls, and what follows them, run to the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.worker import WorkerCancelled

from pvetop.store import open_store
from pvetop.ui.app import PvetopApp
from pvetop.ui.rules.journal import JournalScreen
from tests.ui.fixtures import fixed_clock, memory_source


async def settle(pilot) -> None:
    """Let running polls finish and what follows them (messages, watchers, the workers those
    start, such as a detail pane's history fetch) run to the end."""
    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:  # a poll replaced by a newer one (exclusive workers): expected
            pass
        await pilot.pause()


async def wait_for_data(pilot) -> None:
    for _ in range(200):
        await settle(pilot)
        if pilot.app.latest is not None:
            return
    raise AssertionError("the dashboard never received a snapshot")


async def open_journal(pilot) -> JournalScreen:
    """The journal screen (``j``) once the dashboard has data."""
    await wait_for_data(pilot)
    await pilot.press("j")
    await settle(pilot)
    assert isinstance(pilot.app.screen, JournalScreen)
    return pilot.app.screen


def screen_snapshot(
    snap_compare: Any,
    tmp_path: Path,
    install: Callable[[PvetopApp, Any], None],
    key: str,
    *,
    terminal_size: tuple[int, int],
    ready: Callable[[PvetopApp], bool] = lambda app: True,
) -> bool:
    """Compares the SVG of the screen ``key`` opens on the fixed cluster, once ``ready(app)`` (or
    a second has passed), after ``install(app, store)`` has added its worker with an empty store."""
    app = PvetopApp(memory_source(), clock=fixed_clock, interval=60)

    async def run_before(pilot) -> None:
        await wait_for_data(pilot)
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)
        for _ in range(50):
            if ready(app):
                break
            await pilot.pause(0.02)
        await settle(pilot)

    with open_store(str(tmp_path / "rules.sqlite"), clock=fixed_clock) as store:
        install(app, store)
        return snap_compare(app, run_before=run_before, terminal_size=terminal_size)
