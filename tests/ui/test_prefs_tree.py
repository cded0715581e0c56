"""Tree view (F5), sort menu (F6), column chooser (F2/C) and preferences kept per profile (issue 12)."""

from __future__ import annotations

from pvetop.ui.app import PvetopApp
from pvetop.ui.choosers import ColumnsScreen, SortScreen
from pvetop.ui.prefs import Prefs, load_prefs, save_prefs
from tests.ui.fixtures import fixed_clock
from tests.ui.pilot import settle, wait_for_data

SIZE = (160, 40)


async def test_f5_groups_the_guests_under_their_node(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.guest_table.sort_by("cpu")  # busiest first, within each node
        await pilot.press("f5")
        await settle(pilot)
        order = app.guest_table.keys_in_order
        nodes = [app.guest_table.item(key).guest.node for key in order]
        assert nodes == sorted(nodes)  # grouped
        big = [key for key in order if app.guest_table.item(key).guest.node == "big"]
        assert big[:2] == ["101", "100"]  # 92 % before 35 %: the sort holds inside the group
        assert app.guest_table._tree_text(0, "big") == "big"
        assert app.guest_table._tree_text(1, "big") == " ├─"
        assert "tree: grouped by node" in str(app.guest_caption.render())
        await pilot.press("f5")
        assert app.guest_table.group_column is None


async def test_f6_sorts_by_a_column_picked_from_a_list(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("f6")
        await settle(pilot)
        assert isinstance(app.screen, SortScreen)
        app.screen.query_one("OptionList").highlighted = 1  # Name
        await pilot.press("enter")
        await settle(pilot)
        assert app.guest_table.sort_column == "name"


async def test_column_chooser_hides_a_column_and_preferences_come_back(source, tmp_path):
    path = tmp_path / "prefs.json"
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    app.save_prefs = lambda prefs: save_prefs("home", prefs, path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert isinstance(app.screen, ColumnsScreen)
        choices = app.screen.query_one("SelectionList")
        choices.deselect("tags")
        choices.deselect("netout")
        await pilot.press("enter")
        await settle(pilot)
        assert "tags" not in [spec.key for spec in app.guest_table.shown_columns]
        assert app.guest_table.row_count == 7 and app.guest_table.cell_text("100", "name") == "web-1"
        app.guest_table.sort_by("cpu")
        await pilot.press("f5")
        app.theme = "nord"
    kept = load_prefs("home", path)
    assert kept.hidden["guests"] == ("netout", "tags") and kept.sort["guests"] == ("cpu", True)
    assert kept.tree and kept.theme == "nord" and kept.interval == 60
    assert load_prefs("other", path) == Prefs()

    again = PvetopApp(source, clock=fixed_clock, interval=60, prefs=kept)
    async with again.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        assert "tags" not in [spec.key for spec in again.guest_table.shown_columns]
        assert again.guest_table.sort_column == "cpu" and again.guest_table.group_column == "node"


def test_broken_prefs_files_mean_defaults(tmp_path):
    path = tmp_path / "prefs.json"
    path.write_text("{not json")
    assert load_prefs("home", path) == Prefs()
    path.write_text('{"home": {"interval": "fast", "sort": {"guests": ["cpu"]}, "hidden": {"x": ["a"]}}}')
    assert load_prefs("home", path) == Prefs()
