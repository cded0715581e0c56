"""Helpers for driving the dashboard with Pilot."""

from __future__ import annotations

import pytest
from textual.worker import WorkerCancelled

from pvetop.ui.app import PvetopApp
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


@pytest.fixture
def source():
    return memory_source()


@pytest.fixture
def app(source):
    """Polls only when a test says so (ctrl+r): a timer poll racing a test's own is noise."""
    return PvetopApp(source, clock=fixed_clock, interval=60)
