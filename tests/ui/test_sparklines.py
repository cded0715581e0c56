"""Rough edge 16 (issue 12): sparklines scale against the resource's capacity and say "loading…"."""

from __future__ import annotations

import threading

import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from pvetop.store import open_store
from pvetop.ui.app import PvetopApp
from pvetop.ui.balancer import BalancerScreen, install_balancer
from pvetop.ui.detail import HistoryChart, history_series
from pvetop.ui.source import MemorySource
from pvetop.ui.sparkline import LOADING, ScaledSparkline, bar_lines
from tests.ui.fixtures import fixed_clock, memory_source
from tests.ui.pilot import settle, wait_for_data


def test_edge_16_a_narrow_band_stays_low_against_capacity():
    # 6.0-6.9 % of the CPU: min-to-max scaling filled the full height; against 100 % it is the lowest bar
    (line,) = bar_lines([6.0, 6.3, 6.9, 6.1], ceiling=100.0, width=4, height=1)
    assert line == "▁▁▁▁"
    top, bottom = bar_lines([6.0, 6.9, 50.0, 100.0], ceiling=100.0, width=4, height=2)
    assert bottom == "▁▁██" and top == "   █"


def test_edge_16_a_constant_value_is_drawn_at_its_level_not_as_zero():
    (line,) = bar_lines([40.0] * 10, ceiling=100.0, width=5, height=1)
    assert line == "▃▃▃▃▃"
    (low,) = bar_lines([0.2, 0.0], ceiling=100.0, width=2, height=1)
    assert low == "▁ "  # above zero always shows, zero shows nothing


def test_edge_16_more_points_than_columns_keep_each_columns_peak():
    (line,) = bar_lines([0, 0, 100, 0, 0, 0], ceiling=100.0, width=3, height=1)
    assert line == " █ "


def test_edge_16_cpu_and_memory_are_scaled_to_100_percent_rates_to_their_peak():
    rows = [{"cpu": 0.065, "mem": 1, "maxmem": 4, "netin": 10.0, "netout": 0.0}]
    cpu, memory, netin, netout = history_series(rows)
    assert (cpu.ceiling, memory.ceiling) == (100.0, 100.0)
    assert netin.ceiling is None and netin.points == [10.0]


class _Charts(App):
    def compose(self) -> ComposeResult:
        yield ScaledSparkline(id="chart")


async def test_edge_16_loading_until_there_is_history():
    app = _Charts()
    async with app.run_test(size=(20, 3)) as pilot:
        chart = app.query_one(ScaledSparkline)
        assert LOADING in str(chart.render())
        chart.ceiling, chart.data = 100.0, []
        await pilot.pause()
        assert "no history yet" in str(chart.render())
        chart.data = [50.0, 50.0]
        await pilot.pause()
        assert not isinstance(chart.render(), Text)  # bars now


class _SlowHistory(MemorySource):
    """History that arrives only when the test lets it."""

    def __init__(self) -> None:
        base = memory_source()
        super().__init__(base.snapshot, rrddata=base.rrddata, configs=base.configs)
        self.history_may_come = threading.Event()

    def guest_rrddata(self, guest, timeframe="hour"):
        self.history_may_come.wait(10)
        return super().guest_rrddata(guest, timeframe)


async def test_edge_16_detail_pane_says_loading_then_draws_against_capacity():
    source = _SlowHistory()
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for_data(pilot)
        await pilot.press("enter")
        await pilot.pause()
        charts = list(app.screen.query(HistoryChart))
        assert charts and all(chart.query_one(ScaledSparkline).data is None for chart in charts)
        assert LOADING in str(charts[0].query_one(ScaledSparkline).render())
        source.history_may_come.set()
        await settle(pilot)
        cpu = charts[0].query_one(ScaledSparkline)
        assert cpu.ceiling == 100.0 and cpu.data
        title = str(charts[0].query_one("#chart-title").render())
        assert "scale 0–100.0%" in title


@pytest.fixture
def store(tmp_path):
    with open_store(str(tmp_path / "rules.sqlite"), clock=fixed_clock) as opened:
        yield opened


async def test_edge_16_balancer_history_against_twice_the_threshold(store):
    source = memory_source()
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    install_balancer(app, store)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_data(pilot)
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BalancerScreen)
        chart = app.screen.query_one("#balancer-history", ScaledSparkline)
        worker = app.balancer.worker
        threshold = worker.last_config.threshold
        assert list(chart.data or []) == list(worker.history)
        assert chart.warn_at == threshold
        assert chart.ceiling == min(1.0, max(threshold * 2, *worker.history))
        caption = str(app.screen.query_one("#balancer-history-caption").render())
        assert f"threshold {threshold * 100:.0f}%" in caption
