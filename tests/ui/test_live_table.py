"""LiveTable: rows follow the data by key, only changed cells are written, the cursor stays put."""

from __future__ import annotations

import gc
import weakref

from textual.app import App

from pvetop.ui.table import ColumnSpec, LiveTable, RowsUpdate, build_rows


class Fruit(LiveTable):
    COLUMNS = (ColumnSpec("name", "Name", 8), ColumnSpec("count", "Count", 5, "right", True))

    def __init__(self) -> None:
        super().__init__(sort_column="name")
        self.sorts = 0

    def _resort(self, update: RowsUpdate | None = None) -> None:
        self.sorts += 1
        super()._resort(update)


def render(item: tuple[str, int]):
    name, count = item
    return Fruit.make_row(item, ((name, ""), (str(count), "bold" if count > 5 else "")), (name, (count, name)))


class FruitApp(App):
    def compose(self):
        yield Fruit()


def rows(previous=None, **counts: int):
    return build_rows({name: (name, count) for name, count in counts.items()}, render, previous)


async def test_apply_adds_updates_and_removes_by_key_touching_only_changed_cells():
    app = FruitApp()
    async with app.run_test() as pilot:
        table = app.query_one(Fruit)
        first = rows(pear=3, apple=1, fig=7)
        table.apply(first)
        assert table.keys_in_order == ["apple", "fig", "pear"]
        apple_name, fig_count = table.cell("apple", "name"), table.cell("fig", "count")

        second = rows(first, apple=2, fig=7, kiwi=1)  # apple changed, pear gone, kiwi new
        assert second["fig"] is first["fig"]  # unchanged rows are re-used, not rebuilt
        sorts = table.sorts
        table.apply(second)
        await pilot.pause()
        assert table.keys_in_order == ["apple", "fig", "kiwi"]
        assert table.cell("apple", "count") == ("2", "", "right")
        assert table.cell("apple", "name") is apple_name  # same text: not rewritten
        assert table.cell("fig", "count") is fig_count
        assert table.sorts == sorts + 1  # a row was added

        table.apply(rows(second, apple=3, fig=7, kiwi=1))  # the sort column (name) did not change
        assert table.sorts == sorts + 1


async def test_a_rows_update_made_off_the_ui_thread_is_applied_as_the_rows_alone_would_be():
    app = FruitApp()
    async with app.run_test() as pilot:
        table = app.query_one(Fruit)
        table.sort_by("count")
        first = rows(apple=1, fig=7, kiwi=4, pear=3)
        table.apply(first, RowsUpdate({}, first, table.sorting, Fruit.growing()))
        assert table.keys_in_order == ["fig", "kiwi", "pear", "apple"]
        table.select_key("pear")

        second = rows(first, apple=9, fig=7, kiwi=4, plum=5)  # apple changed and moves, pear gone, plum new
        update = RowsUpdate(first, second, table.sorting, Fruit.growing())
        assert update.changes.added == ("plum",) and update.changes.gone == ("pear",)
        assert update.changes.changed == {"apple"}
        table.apply(second, update)
        await pilot.pause()
        assert table.keys_in_order == ["apple", "fig", "plum", "kiwi"]
        assert table.cell_text("apple", "count") == "9" and table.get_row_index("kiwi") == 3

        third = rows(second, apple=9, fig=2, kiwi=4, plum=5)
        filtered = {key: third[key] for key in ("fig", "kiwi")}  # a filter over the poll's rows
        table.apply(filtered, RowsUpdate(second, third, table.sorting, Fruit.growing()))
        assert table.keys_in_order == ["kiwi", "fig"]

        stale = RowsUpdate(filtered, third, table.sorting, Fruit.growing())
        table.sort_by("name")  # after the update was made: its order is not this table's
        table.apply(third, stale)
        assert table.keys_in_order == ["apple", "fig", "kiwi", "plum"]


async def test_cursor_stays_on_its_row_through_sorting_and_removals():
    app = FruitApp()
    async with app.run_test() as pilot:
        table = app.query_one(Fruit)
        current = rows(apple=1, fig=7, kiwi=4, pear=3)
        table.apply(current)
        table.select_key("kiwi")
        table.sort_by("count")  # numbers sort biggest first
        assert table.keys_in_order == ["fig", "kiwi", "pear", "apple"]
        assert table.cursor_key == "kiwi"
        table.sort_by("count")  # again: reversed
        assert table.keys_in_order == ["apple", "pear", "kiwi", "fig"] and table.cursor_key == "kiwi"
        table.apply(rows(current, fig=7, kiwi=9))
        await pilot.pause()
        assert table.keys_in_order == ["fig", "kiwi"] and table.cursor_key == "kiwi"
        assert table.header_label("count").plain == "Count ▲"


async def test_clear_forgets_every_row_and_apply_starts_over():
    app = FruitApp()
    async with app.run_test():
        table = app.query_one(Fruit)
        table.apply(rows(apple=1, fig=7))
        table.clear()
        assert table.row_count == 0 and table.keys_in_order == []
        table.apply(rows(kiwi=2, apple=5))
        assert table.keys_in_order == ["apple", "kiwi"] and table.cell_text("apple", "count") == "5"


class Wide(LiveTable):
    COLUMNS = tuple(ColumnSpec(f"c{i}", f"C{i}", 6) for i in range(8))

    def __init__(self) -> None:
        super().__init__(sort_column="c0", fixed_columns=1)


def wide_row(n: int):
    return Wide.make_row(n, tuple((f"{n}.{i}", "") for i in range(8)), (n, *range(7)))


class WideApp(App):
    def compose(self):
        yield Wide()


def screen_lines(app) -> list[str]:
    table = app.query_one(Wide)
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


async def test_keys_page_through_rows_and_the_fixed_column_stays_when_scrolled_sideways():
    app = WideApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Wide)
        table.apply(build_rows({str(n): n for n in range(100)}, wide_row, None))
        table.focus()
        await pilot.pause()
        page = table.scrollable_content_region.height - 1  # the header stays on top
        await pilot.press("pagedown")
        assert table.cursor_row == page and table.cursor_key == str(page)
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_key == "99"
        assert screen_lines(app)[-1].split()[0] == "99.0"  # scrolled down to it
        await pilot.press("home", "down", "down")
        assert table.cursor_key == "2"
        table.scroll_to(x=20, animate=False)
        await pilot.pause()
        header, first = screen_lines(app)[:2]
        assert header.split()[0] == "C0" and "C1" not in header  # C0 stays, C1.. scrolled away
        assert first.split()[0] == "0.0" and "0.1" not in first


async def test_the_row_under_the_mouse_is_shown_and_a_header_click_sorts():
    app = WideApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Wide)
        table.apply(build_rows({str(n): n for n in range(20)}, wide_row, None))
        await pilot.pause()
        plain = table.render_line(3)
        await pilot.hover(table, offset=(2, 3))  # the third row
        await pilot.pause()
        hovered = table.render_line(3)
        assert hovered.text == plain.text and hovered != plain  # same text, the hover's background
        await pilot.click(table, offset=(10, 0))  # the C1 header
        assert table.sort_column == "c1"
        await pilot.click(table, offset=(10, 0))
        assert table.sort_column == "c1" and table.sort_reverse


class Entry:
    """An item a weak reference can follow."""

    def __init__(self, name: str) -> None:
        self.name = name


def entry_rows(*names: str):
    return {name: Fruit.make_row(Entry(name), ((name, ""), ("1", "")), (name, (1, name))) for name in names}


async def test_a_row_that_left_the_table_is_not_kept_drawn():
    """Rows keyed by something that only grows (the journal's entry ids) come and go for as long as
    the dashboard runs: a drawn line kept for each one that left would grow with them."""
    app = FruitApp()
    async with app.run_test() as pilot:
        table = app.query_one(Fruit)
        first = entry_rows("a", "b", "c")
        table.apply(first)
        await pilot.pause()  # every row drawn
        left = weakref.ref(first["a"].item)
        table.apply({key: row for key, row in first.items() if key != "a"} | entry_rows("d"))
        await pilot.pause()
        del first
        gc.collect()
        assert left() is None
