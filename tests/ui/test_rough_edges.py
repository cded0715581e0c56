"""Rough edges a new user hit on the demo (issue 12), each test carrying the edge's number."""

from __future__ import annotations

from dataclasses import replace

from textual.screen import Screen

from pvetop.store import open_store
from pvetop.ui.filtering import GuestFilter
from pvetop.ui.migrate.dialog import MigrateScreen, first_choice
from pvetop.ui.polling import with_known_names
from pvetop.ui.rules import install_rules
from pvetop.ui.rules.journal import JournalScreen
from pvetop.ui.table import SORT_DOWN, SORT_UP
from tests.ui.fixtures import small_cluster
from tests.ui.pilot import open_journal, settle, wait_for_data

SIZE = (160, 40)


def header_labels(table) -> dict[str, str]:
    return {spec.key: table.header_label(spec.key).plain for spec in table.shown_columns}


async def test_edge_01_every_sort_column_shows_its_arrow_and_no_header_moves(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        for table in (app.guest_table, app.node_table):
            unsorted = header_labels(table)
            for spec in (spec for spec in table.COLUMNS if spec.key not in table.hidden):  # shown ones
                table.sort_by(spec.key)
                assert table.shown_width(spec.key) >= len(spec.label + SORT_UP), spec.key
                shown = header_labels(table)
                assert shown[spec.key].endswith((SORT_UP, SORT_DOWN)), spec.key
                # every label keeps the same length: the arrow takes room kept free on each column
                assert {k: len(v) for k, v in shown.items()} == {k: len(v) for k, v in unsorted.items()}


async def test_edge_02_M_sorts_by_memory_share(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("M")
        assert app.guest_table.sort_column == "mem_pct" and app.guest_table.sort_reverse
        order = app.guest_table.keys_in_order
        assert order[0] == "100"  # 3 of 4 GiB (75 %) beats 104's 1 of 2 GiB and 101's 2 of 4 GiB
        assert app.guest_table.cell_text("100", "mem_pct") == " 75.0%"


async def test_edge_03_a_filter_that_cannot_mean_what_was_typed_says_why(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("slash", *"colour:red")
        await settle(pilot)
        caption = str(app.guest_caption.render())
        assert "no field “colour:”" in caption and "pool:" in caption
        assert app.guest_table.row_count == 0
    problems = GuestFilter.parse("web(").problems
    assert problems and "no regular expression" in problems[0]
    assert GuestFilter.parse("name:^web").problems == ()


async def test_edge_04_the_journal_owns_its_keys(app, tmp_path):
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        install_rules(app, store)
        async with app.run_test(size=SIZE) as pilot:
            await open_journal(pilot)
            await pilot.press("slash", "p", "m", "x", "n")
            await settle(pilot)
            assert isinstance(app.screen, JournalScreen)
            await pilot.press("escape")
            await settle(pilot)
            assert not app.paused and not app.filter_input.has_class("shown")
            assert app.screen is app.screen_stack[0]


async def test_edge_04_any_other_screen_owns_its_keys_too(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await app.push_screen(Screen())
        await pilot.press("p", "slash", "plus")
        await settle(pilot)
        assert not app.paused and app.interval == 60


async def test_edge_05_space_and_m_leave_the_guests_alone_while_the_node_table_has_focus(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.node_table.focus()
        await pilot.press("space", "m")
        await settle(pilot)
        assert not app.tagged and not isinstance(app.screen, MigrateScreen)


def test_edge_17_a_crashed_nodes_guests_keep_their_last_known_names():
    before = small_cluster()
    crashed = replace(
        before,
        guests=tuple(replace(g, name="", status="unknown") if g.node == "small1" else g for g in before.guests),
    )
    kept = with_known_names(crashed, before)
    assert kept.guest_by_vmid[103].name == "dns" and kept.guest_by_vmid[103].status == "unknown"
    assert with_known_names(before, before) is before


def test_edge_22_the_migrate_cursor_starts_on_a_node_without_objections():
    class Verdict:
        def __init__(self, allowed: bool, warnings: tuple[str, ...] = ()) -> None:
            self.allowed, self.warnings = allowed, warnings

    class Preview:
        def __init__(self, verdict: Verdict) -> None:
            self.verdict = verdict

    reserved = Preview(Verdict(True, ("reserved", "maintenance")))
    blocked = Preview(Verdict(False))
    plain = Preview(Verdict(True))
    assert first_choice([reserved, blocked, plain]) == 2
    assert first_choice([blocked, reserved]) == 1
    assert first_choice([blocked]) == 0


async def test_edge_12_ctrl_r_refreshes_once_while_paused(app, source):
    from tests.ui.fixtures import advanced

    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("p")
        assert app.paused
        source.snapshot = replace(
            advanced(source.snapshot, 5),
            guests=tuple(replace(g, cpu=0.5) if g.vmid == 103 else g for g in source.snapshot.guests),
        )
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.guest_table.cell_text("103", "cpu") == " 50.0%" and app.paused


def test_edge_13_uptime_has_one_format():
    from pvetop.ui import formatting as fmt

    assert fmt.uptime(143) == "0d 00:02" and fmt.uptime(86400 * 3 + 22 * 3600 + 47 * 60) == "3d 22:47"


def test_edge_14_imbalance_is_written_one_way_everywhere():
    """A percentage in the header, the dialogs, the report, the CLI and the planner's own words
    (trigger, summary, move reasons): never "0.51 above 0.25" beside "51%"."""
    import re

    from pvetop.cli import balance as cli_balance
    from pvetop.engine import report
    from pvetop.policy.balance import plan_balance
    from pvetop.policy.metrics import imbalance_change, imbalance_text
    from pvetop.ui import balancer, header
    from pvetop.ui.migrate import bulk
    from tests.policy.test_balance import hot_cluster

    assert imbalance_text(0.283) == "28%"
    for module in (report, header, balancer, bulk, cli_balance):
        assert {"imbalance_text", "imbalance_change"} & set(vars(module)), module.__name__
    plan = plan_balance(hot_cluster())
    words = [plan.trigger or "", plan.summary, *(step.move.reason for step in plan.moves)]
    assert plan.moves and all("%" in text for text in words)
    assert not [text for text in words if re.search(r"imbalance[^;]*\b0\.\d", text)], words
    assert imbalance_change(plan.before.imbalance, plan.after.imbalance) in plan.summary
