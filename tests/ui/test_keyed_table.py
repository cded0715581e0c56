"""KeyedTable: the same rows in the same order change cells in place; other rows rebuild the table."""

from __future__ import annotations

from textual.app import App, ComposeResult

from pvetop.ui.keyed_table import KeyedTable


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield KeyedTable(cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(KeyedTable).add_columns("VMID", "Node")


def cells(table: KeyedTable) -> list[list[object]]:
    return [table.get_row_at(index) for index in range(table.row_count)]


async def test_same_keys_update_cells_in_place_and_keep_the_cursor():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        table.show_rows([("100", ("100", "pve1")), ("101", ("101", "pve2")), ("102", ("102", "pve3"))])
        table.move_cursor(row=2)
        await pilot.pause()
        cleared = []
        table.clear = lambda *args, **kwargs: cleared.append(True)  # type: ignore[method-assign]
        table.show_rows([("100", ("100", "pve1")), ("101", ("101", "pve9")), ("102", ("102", "pve3"))])
        await pilot.pause()
        assert not cleared, "the same keys must not clear the table"
        assert cells(table) == [["100", "pve1"], ["101", "pve9"], ["102", "pve3"]]
        assert table.cursor_row == 2


async def test_other_keys_rebuild_and_keep_the_cursor_within_the_rows():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        table.show_rows([(str(vmid), (str(vmid), "pve1")) for vmid in range(100, 105)])
        table.move_cursor(row=4)
        await pilot.pause()
        table.show_rows([("200", ("200", "pve2")), ("201", ("201", "pve3"))])
        await pilot.pause()
        assert cells(table) == [["200", "pve2"], ["201", "pve3"]]
        assert table.cursor_row == 1
        table.show_rows([])
        await pilot.pause()
        assert table.row_count == 0
