"""The dashboard driven by key presses against a fixed in-memory cluster."""

from __future__ import annotations

import gc
from dataclasses import replace

from textual.binding import Binding
from textual.widgets import Static

from pvetop.errors import ConnectionFailed
from pvetop.model import CrsOptions
from pvetop.policy.rules import RuleSet
from pvetop.ui.app import PvetopApp
from pvetop.ui.detail import GuestDetailScreen, NodeDetailScreen
from pvetop.ui.help import HelpScreen
from pvetop.ui.sparkline import ScaledSparkline
from tests.ui.fixtures import advanced, fixed_clock
from tests.ui.pilot import settle, wait_for_data

SIZE = (140, 40)


def header_text(app) -> str:
    return str(app.query_one("#header", Static).render())


def cell(table, key: str, column: str) -> str:
    return table.cell_text(key, column)


async def test_tables_hold_every_node_and_guest(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        assert app.node_table.keys_in_order == ["big", "small1", "small2"]
        assert app.guest_table.keys_in_order == ["100", "101", "102", "103", "104", "105", "9000"]
        assert cell(app.guest_table, "103", "name") == "dns"
        assert cell(app.guest_table, "104", "lock") == "backup"
        assert cell(app.guest_table, "100", "ha") == "started"
        assert cell(app.guest_table, "9000", "flags") == "T"
        assert cell(app.node_table, "big", "guests") == "2/4"
        header = header_text(app)
        assert "homelab" in header and "nodes 2/3 online" in header and "guests 4/7 running" in header
        assert "imbalance" in header and "data 0.0s old" in header
        assert "PVE rebalances" not in header


async def test_new_snapshot_updates_cells_and_rows_in_place(app, source):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        first = source.snapshot
        later = advanced(first, 10)
        guests = tuple(replace(g, cpu=0.5) if g.vmid == 103 else g for g in later.guests if g.vmid != 102)
        guests += (replace(guests[0], vmid=110, name="new-one"),)
        source.snapshot = replace(later, guests=guests)
        await pilot.press("ctrl+r")
        await settle(pilot)
        table = app.guest_table
        assert cell(table, "103", "cpu") == " 50.0%"
        assert "102" not in table.keys_in_order
        assert table.keys_in_order[-2:] == ["110", "9000"]
        assert cell(table, "100", "netin") == "977K/s"  # 1 MB/s between the two snapshots


async def test_sort_keys_and_header_click_keep_the_cursor_on_the_same_guest(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        table = app.guest_table
        table.select_key("103")
        await pilot.press("P")  # CPU%, busiest first
        assert table.sort_column == "cpu" and table.sort_reverse
        assert table.keys_in_order[:2] == ["101", "104"]
        assert table.cursor_key == "103"
        await pilot.press("r")
        assert not table.sort_reverse
        assert table.cursor_key == "103"
        await pilot.press("greater_than_sign")
        assert table.sort_column == "mem"
        await pilot.click(table, offset=(10, 0))  # the Name header
        await pilot.pause()
        assert table.sort_column == "name"
        assert table.keys_in_order[0] == "105"  # unnamed sorts first
        assert table.cursor_key == "103"
        assert "sorted by Name" in str(app.query_one("#guest-caption", Static).render())


async def test_cursor_follows_its_guest_when_a_refresh_reorders_rows(app, source):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        table = app.guest_table
        table.sort_by("cpu", reverse=True)
        table.select_key("103")
        before = table.cursor_row
        source.snapshot = replace(
            source.snapshot, guests=tuple(replace(g, cpu=0.99) if g.vmid == 103 else g for g in source.snapshot.guests)
        )
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert table.keys_in_order[0] == "103"
        assert table.cursor_key == "103" and table.cursor_row != before


async def test_filter_by_text_regex_and_field(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        table = app.guest_table
        await pilot.press("slash", *"web")
        assert table.keys_in_order == ["100", "101"]
        await pilot.press("enter")
        assert table.has_focus
        await pilot.press("slash", *["backspace"] * 3, *"^d")
        assert table.keys_in_order == ["102", "103"]  # db-old, dns
        await pilot.press(*["backspace"] * 2, *"node:small1 status:running")
        assert table.keys_in_order == ["103", "104"]
        await pilot.press(*["backspace"] * 26, *"tag:infra")
        assert table.keys_in_order == ["103"]
        assert "filter" in str(app.query_one("#guest-caption", Static).render())
        await pilot.press("escape")
        assert len(table.keys_in_order) == 7


async def test_node_selection_filters_guests(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.node_table.focus()
        await pilot.press("n")
        assert app.guest_table.keys_in_order == ["100", "101", "102", "9000"]
        await pilot.press("down")  # small1: the filter follows the node cursor
        await pilot.pause()
        assert app.guest_table.keys_in_order == ["103", "104"]
        await pilot.press("n")
        assert len(app.guest_table.keys_in_order) == 7


async def test_n_in_the_guest_table_shows_the_guests_on_that_guests_node(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.guest_table.select_key("103")  # dns, on small1
        await pilot.press("n")
        await pilot.pause()
        assert app.guest_table.keys_in_order == ["103", "104"]
        assert app.node_table.cursor_key == "small1"
        assert app.guest_table.cursor_key == "103"


async def test_guest_detail_shows_fields_config_and_history(app, source):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("enter")  # cursor starts on vmid 100
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GuestDetailScreen) and screen.vmid == 100
        fields = str(screen.query_one("#fields", Static).render())
        for expected in ("web-1", "maxmem", "4.0G", "hastate", "started", "prod, web", "net in rate"):
            assert expected in fields
        config = str(screen.query_one("#config", Static).render())
        assert "scsi0" in config and "digest" not in config
        sparklines = screen.query(ScaledSparkline)
        assert len(sparklines) == 4 and all(len(s.data) == 60 for s in sparklines)
        source.snapshot = replace(
            source.snapshot, guests=tuple(replace(g, cpu=0.77) if g.vmid == 100 else g for g in source.snapshot.guests)
        )
        await pilot.press("ctrl+r")  # the pane follows the live data
        await settle(pilot)
        assert "77.0%" in str(screen.query_one("#fields", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, GuestDetailScreen)
        await pilot.press("ctrl+r")  # a refresh after the pane closed reaches no closed pane
        await settle(pilot)
        assert app.is_running and app.latest is not None


async def test_node_detail_from_the_node_table(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.node_table.focus()
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NodeDetailScreen) and screen.node_name == "big"
        fields = str(screen.query_one("#fields", Static).render())
        assert "storage ceph" in fields and "2 running of 4" in fields
        assert "wakeonlan" in str(screen.query_one("#config", Static).render())
        await pilot.press("q")  # closes the pane, not the app
        assert not isinstance(app.screen, NodeDetailScreen) and app.is_running


async def test_help_lists_every_binding(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text", Static).render())
        for description in (
            "Quit",
            "Filter",
            "Pause/resume",
            "Interval +",
            "Reverse sort",
            "Sort by CPU%",
            "Details",
            "Node's guests",
            "Refresh now",
            "Back",
            "First row",
            "Stop task",
        ):
            assert description in text
        assert "Cursor up" not in text and "Page Left" not in text  # edge 25: no Textual-internal keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.click(offset=(1, 1))  # beside the box
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_offers_the_same_actions(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"sort guests by memory")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.guest_table.sort_column == "mem"
        await pilot.press("ctrl+p", *"details of the selected node")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeDetailScreen) and app.screen.node_name == "big"


async def test_interval_keys_and_pause(app, source):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("plus")
        assert app.interval == 60.0  # the longest step
        await pilot.press("minus", "minus")
        assert app.interval == 10.0
        assert "every 10s" in header_text(app)
        await pilot.press("p")
        assert app.paused and "PAUSED" in header_text(app)
        source.snapshot = replace(source.snapshot, guests=source.snapshot.guests[:2])
        fetches = source.fetches
        await pilot.pause(0.3)
        await settle(pilot)
        assert len(app.guest_table.keys_in_order) == 7  # frozen while paused
        assert source.fetches == fetches  # and not polling at all
        await pilot.press("ctrl+r")  # edge 12: one refresh while paused, which stays paused
        await settle(pilot)
        assert app.guest_table.keys_in_order == ["100", "101"] and app.paused
        assert source.fetches == fetches + 1
        await pilot.press("p")
        await settle(pilot)
        assert app.guest_table.keys_in_order == ["100", "101"] and not app.paused


async def test_failing_api_marks_data_stale_and_recovers(app, source):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        source.fail_with = ConnectionFailed("pve1:8006: connection refused")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.stale
        assert "STALE since" in header_text(app) and "connection refused" in header_text(app)
        assert len(app.guest_table.keys_in_order) == 7  # the last data stays
        source.fail_with = None
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert not app.stale and "STALE" not in header_text(app)


class WritingApp(PvetopApp):
    """A dashboard with one write action, as the migration and rules screens will add."""

    WRITE_ACTIONS = frozenset({"touch"})
    BINDINGS = [Binding("x", "touch", "Touch")]

    touched = 0

    def action_touch(self) -> None:
        self.touched += 1


async def test_read_only_refuses_write_actions_by_key_and_palette(source):
    for read_only, expected in ((False, 1), (True, 0)):
        app = WritingApp(source, clock=fixed_clock, read_only=read_only)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            await pilot.press("x")
            await app.run_action("touch")
            assert app.touched == 2 * expected
            assert ("READ-ONLY" in header_text(app)) is read_only


async def test_rules_and_tags_show_in_the_flag_columns(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.ruleset = RuleSet(pins={100: {"big"}}, locks={101}, reserved={"small1"})
        assert cell(app.guest_table, "100", "flags") == "P"
        assert cell(app.guest_table, "101", "flags") == "L"
        assert cell(app.node_table, "small1", "flags") == "R"
        app.tagged.update({100, 103})
        app.refresh_marks()
        assert cell(app.guest_table, "100", "flags") == "*P"
        assert cell(app.guest_table, "103", "flags") == "*"


async def test_unreachable_cluster_at_start_shows_the_reason(source):
    source.fail_with = ConnectionFailed("pve1:8006: no route to host")
    app = PvetopApp(source, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "no route to host" in header_text(app)
        assert app.guest_table.row_count == 0


async def test_header_says_when_pve_rebalances_ha_guests_itself(source):
    source.snapshot = replace(source.snapshot, crs=CrsOptions(ha="static", ha_auto_rebalance=True))
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        assert "PVE rebalances HA guests" in header_text(app)


async def wait_until(pilot, condition, timeout_polls: int = 400) -> None:
    for _ in range(timeout_polls):
        if condition():
            return
        await pilot.pause(0.025)
    raise AssertionError("condition never became true")


async def test_the_poller_retries_by_itself_and_recovers(source):
    app = PvetopApp(source, clock=fixed_clock, interval=0.2)  # timer-driven, no ctrl+r here
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        source.fail_with = ConnectionFailed("pve1:8006: connection refused")
        await wait_until(pilot, lambda: app.stale)
        assert "retry in" in header_text(app)
        source.fail_with = None
        await wait_until(pilot, lambda: not app.stale)
        assert "STALE" not in header_text(app)


async def test_mouse_click_selects_a_row_and_a_second_click_opens_it(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        table = app.guest_table
        await pilot.click(table, offset=(3, 4))  # header line, then 100, 101, 102, 103
        assert table.cursor_key == "103"
        await pilot.click(table, offset=(3, 4))
        await settle(pilot)
        assert isinstance(app.screen, GuestDetailScreen) and app.screen.vmid == 103


async def test_collector_tuning_lasts_as_long_as_the_app(app):
    before = gc.get_threshold()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        assert gc.get_threshold()[2] >= 100 and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_a_narrow_terminal_wraps_the_header_without_hiding_the_freshness_line(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_data(pilot)
        lines = app.header.render_lines(app.header.region.reset_offset)
        assert len(lines) >= 4
        assert "data 0.0s old" in "".join(segment.text for line in lines for segment in line)
