"""Node basics as optional node-table columns (issue 12, daily essential "Node basics in the node
pane and optional columns"): hidden by default, chosen in the column chooser, sortable, kept in
the preferences, read per node only while shown — a refresh still costs 2 requests."""

from __future__ import annotations

from pvetop.model import NodeBasics
from pvetop.pve.parse import parse_node_basics
from pvetop.ui.app import PvetopApp
from pvetop.ui.choosers import ColumnsScreen
from pvetop.ui.prefs import load_prefs, save_prefs
from pvetop.ui.tables import NodeTable
from tests.ui.fixtures import fixed_clock, memory_source
from tests.ui.migrate_pilot import sim_pilot, wait_until
from tests.ui.pilot import settle, wait_for_data

SIZE = (200, 40)
BASICS = ("load", "iodelay", "swap", "ksm", "psi", "pveversion", "kernel")
GIB = 1024**3


def _status(load: str, kernel: str) -> dict:
    return {
        "loadavg": [load, "0.50", "0.25"],
        "wait": 0.012,
        "swap": {"used": GIB, "total": 8 * GIB},
        "ksm": {"shared": 3 * GIB},
        "pveversion": "pve-manager/9.1.1/42fe5ed9",
        "current-kernel": {"release": kernel},
        "uptime": 1000,
    }


def _counted_source():
    source = memory_source()
    source.configs["status/big"] = _status("7.25", "6.17.2-1-pve")
    source.configs["status/small1"] = _status("1.50", "6.8.12-4-pve")
    asked: list[str] = []
    original = source.node_status

    def node_status(node: str) -> dict:
        asked.append(node)
        return original(node)

    source.node_status = node_status
    return source, asked


async def test_basics_columns_are_hidden_by_default_and_cost_nothing():
    source, asked = _counted_source()
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        shown = [spec.key for spec in app.node_table.shown_columns]
        assert not set(BASICS) & set(shown) and "uptime" in shown
        assert asked == []  # no per-node request while no column needs one


async def test_chosen_basics_columns_show_sort_and_come_back_from_the_preferences(tmp_path):
    path = tmp_path / "prefs.json"
    source, asked = _counted_source()
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    app.save_prefs = lambda prefs: save_prefs("home", prefs, path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.node_table.focus()
        await pilot.press("C")
        await settle(pilot)
        assert isinstance(app.screen, ColumnsScreen)
        choices = app.screen.query_one("SelectionList")
        offered = {choices.get_option_at_index(i).value for i in range(choices.option_count)}
        assert set(BASICS) <= offered
        for key in ("load", "swap", "ksm", "pveversion", "kernel", "iodelay"):
            choices.select(key)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.node_table.cell_text("big", "load") == "7.25")
        await settle(pilot)
        table = app.node_table
        assert sorted(asked) == ["big", "small1"]  # each online node once; small2 is offline
        assert table.cell_text("big", "kernel") == "6.17.2-1-pve" and table.cell_text("big", "pveversion") == "9.1.1"
        assert table.cell_text("big", "swap").strip() == "12.5%" and table.cell_text("big", "ksm").strip() == "3.0G"
        assert table.cell_text("big", "iodelay").strip() == "1.2%"
        assert table.cell_text("small2", "load").strip() == "-"  # offline: nothing to read
        table.sort_by("load", reverse=True)
        await settle(pilot)
        assert table.keys_in_order[:2] == ["big", "small1"]
        table.sort_by("load", reverse=False)
        await settle(pilot)
        assert table.keys_in_order[-1] == "big"
        await pilot.press("ctrl+r")  # within the read interval: no second round of requests
        await settle(pilot)
        assert len(asked) == 2
    kept = load_prefs("home", path)
    assert kept.shown["nodes"] == ("iodelay", "kernel", "ksm", "load", "pveversion", "swap")
    assert "psi" not in kept.hidden.get("nodes", ())  # optional columns are not written as hidden

    asked.clear()
    again = PvetopApp(source, clock=fixed_clock, interval=60, prefs=kept)
    async with again.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await wait_until(pilot, lambda: again.node_table.cell_text("small1", "load") == "1.50")
        shown = {spec.key for spec in again.node_table.shown_columns}
        assert {"load", "kernel"} <= shown and "psi" not in shown


async def test_against_the_simulator_psi_comes_from_rrddata_and_a_refresh_stays_at_2_requests():
    async with sim_pilot() as (sim, app, pilot):
        app.node_table.focus()
        await pilot.press("C")
        await wait_until(pilot, lambda: isinstance(app.screen, ColumnsScreen))
        choices = app.screen.query_one("SelectionList")
        choices.select("load")
        choices.select("psi")
        await pilot.press("enter")
        online = [node.name for node in app.latest.snapshot.nodes if node.online]
        await wait_until(pilot, lambda: set(app.node_basics) == set(online))
        for name in online:
            assert app.node_table.cell_text(name, "load").strip() != "-"
            assert app.node_table.cell_text(name, "psi").strip() != "-"  # PVE 9's rrddata pressure
        before = app.latest
        app.action_refresh_now()
        await wait_until(pilot, lambda: app.latest is not before)
        assert app.latest.snapshot.api_requests == 2


def test_node_status_answers_are_read_leniently():
    basics = parse_node_basics(
        {"loadavg": ["1.5", "x", 2], "wait": "0.01", "swap": {"used": 1, "total": 0}, "ksm": "no", "pveversion": 9},
        {"pressurecpusome": 2.5, "pressureiofull": "bad", "time": 1},
    )
    assert basics.loadavg == (1.5, 2.0) and basics.io_delay == 0.01
    assert basics.swap_fraction is None and basics.ksm_shared is None
    assert basics.psi("cpusome") == 2.5 and basics.psi("iofull") is None
    assert basics.pve_release == "9" and basics.kernel == ""
    assert parse_node_basics(None) == NodeBasics()


def test_optional_columns_are_the_basics():
    assert set(BASICS) == NodeTable.OPTIONAL_COLUMNS
    assert {spec.key for spec in NodeTable.COLUMNS} >= NodeTable.OPTIONAL_COLUMNS
