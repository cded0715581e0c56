"""Waiting for the dashboard under Pilot: its polls, and what follows them, run to the end."""

from __future__ import annotations

from textual.worker import WorkerCancelled


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
