"""The dashboard against a hostile or stuck source: it never crashes, marks data stale when a poll
overruns, and quitting never waits for a read blocked on the network."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.widgets import Static

from pvetop.errors import ApiError
from pvetop.model import ClusterSnapshot, CrsOptions
from pvetop.pve.parse import MalformedAnswer, build_snapshot
from pvetop.ui import polling
from pvetop.ui.app import PvetopApp
from pvetop.ui.source import MemorySource
from tests.pve.test_parse_fuzz import RESOURCES, STATUS
from tests.ui.fixtures import fixed_clock, memory_source

SIZE = (140, 40)


def header_text(app: PvetopApp) -> str:
    return str(app.query_one("#header", Static).render())


class StuckSource(MemorySource):
    """Answers normally until ``stuck`` is set, then blocks like a read that never returns."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        super().__init__(snapshot)
        self.stuck = threading.Event()
        self.release = threading.Event()

    def fetch_snapshot(self) -> ClusterSnapshot:
        if self.stuck.is_set():
            self.release.wait()
        return super().fetch_snapshot()


async def test_a_poll_that_overruns_marks_the_data_stale_while_it_waits(monkeypatch):
    monkeypatch.setattr(polling, "OVERRUN_FLOOR_SECONDS", 0.5, raising=False)
    source = StuckSource(memory_source().snapshot)
    app = PvetopApp(source, clock=fixed_clock, interval=0.2)  # overrun after max(3 x 0.2, 0.5) s
    try:
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(50):
                await pilot.pause(0.05)
                if app.latest is not None:
                    break
            assert app.latest is not None and not app.stale
            source.stuck.set()
            for _ in range(60):  # the header is redrawn every second; give it a few
                await pilot.pause(0.1)
                if app.stale:
                    break
            assert app.stale, "a poll stuck for seconds must make the data stale"
            assert "no answer from the cluster for" in header_text(app) and "STALE" in header_text(app)
            assert len(app.guest_table.keys_in_order) == len(source.snapshot.guests)  # the last data stays
            source.release.set()
            for _ in range(60):
                await pilot.pause(0.1)
                if not app.stale:
                    break
            assert not app.stale, "the answer that finally came makes the data fresh again"
    finally:
        source.release.set()


QUIT_WHILE_STUCK = textwrap.dedent(
    """
    import threading, time
    from pvetop.ui.app import PvetopApp
    from pvetop.ui.source import MemorySource
    from tests.ui.fixtures import small_cluster

    class Stuck(MemorySource):
        def fetch_snapshot(self):
            threading.Event().wait()  # a read that never returns

    app = PvetopApp(Stuck(small_cluster()), interval=1.0)
    app.call_later(lambda: app.set_timer(1.0, app.exit))
    started = time.monotonic()
    app.run(headless=True)
    print(f"app ended after {time.monotonic() - started:.1f} s", flush=True)
    """
)


def test_quitting_never_waits_for_a_blocked_read():
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", QUIT_WHILE_STUCK], capture_output=True, text=True, timeout=30, cwd="."
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("the process was still alive 30 s after the app quit, waiting for a read") from None
    assert result.returncode == 0, result.stderr
    assert "app ended after" in result.stdout
    assert time.monotonic() - started < 20


class HostileSource(MemorySource):
    """Parses raw API answers on every poll, as the real client does, and fails the same way."""

    def __init__(self, answers: list[tuple[Any, Any]]) -> None:
        super().__init__(ClusterSnapshot("", True, (), ()))
        self.answers = answers

    def fetch_snapshot(self) -> ClusterSnapshot:
        resources, status = self.answers[self.fetches % len(self.answers)]
        self.fetches += 1
        try:
            return build_snapshot(resources, status, crs=CrsOptions(), ha_rules=(), fetched_at=0.0, api_requests=2)
        except MalformedAnswer as exc:
            raise ApiError(
                200, f"unexpected answer from pve1:8006 to {exc.endpoint}: {exc.detail} [/] \x1b]0;x\x07"
            ) from None


async def drive(answers: list[tuple[Any, Any]]) -> None:
    app = PvetopApp(HostileSource(answers), clock=fixed_clock, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        for keys in (("ctrl+r",), ("n",), ("slash", "a", "escape"), ("ctrl+r",), ("enter",), ("escape",)):
            for key in keys:
                await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        assert app.latest is not None or app.stale  # it shows data or says why not
        header_text(app)  # the header renders


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(answers=st.lists(st.tuples(RESOURCES, STATUS), min_size=1, max_size=3))
def test_hostile_api_answers_never_crash_the_dashboard(answers: list[tuple[Any, Any]]) -> None:
    asyncio.run(drive(answers))


async def test_skipped_api_entries_are_shown_in_the_header():
    resources = [
        {"type": "node", "node": "pve1", "status": "online", "maxcpu": 4, "maxmem": 8},
        {"type": "qemu", "vmid": 100, "node": "pve1", "status": "running", "name": "ok"},
        {"type": "qemu", "vmid": 101, "node": "pve1", "status": 7, "name": "bad"},
        {"type": "node", "node": 5},
    ]
    status = [{"type": "cluster", "name": "c", "quorate": 1}]
    app = PvetopApp(HostileSource([(resources, status)]), clock=fixed_clock, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert app.latest is not None and [g.vmid for g in app.latest.snapshot.guests] == [100]
        text = header_text(app)
        assert "⚠ malformed API data skipped: GET /cluster/resources: skipped entry" in text
        assert "field 'status' is 7" in text and "(+1 more" in text
