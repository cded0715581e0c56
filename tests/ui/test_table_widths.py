"""Column widths on a wide terminal (issue 12, rough edge 21): spare width goes to the columns
that can use it (tags, names) instead of staying empty right of a cut-off tags column."""

from __future__ import annotations

from dataclasses import replace

from pvetop.ui.app import PvetopApp
from pvetop.ui.table import grown_widths
from tests.ui.fixtures import fixed_clock
from tests.ui.pilot import wait_for_data

WIDE = (220, 60)
LONG_TAGS = ("backup", "gpu", "prod", "staging", "tenant-a")  # as the large demo tags its guests


def test_spare_width_is_shared_by_weight_up_to_what_each_column_needs():
    assert grown_widths([10, 5, 20], [30, 0, 60], [1, 0, 2], 30) == [20, 5, 40]
    assert grown_widths([10, 5, 20], [12, 0, 60], [1, 0, 2], 30) == [12, 5, 48]  # the name's need is met first
    assert grown_widths([10, 5, 20], [12, 0, 24], [1, 0, 2], 30) == [12, 5, 24]  # both met: the rest stays free
    assert grown_widths([10, 5, 20], [30, 0, 60], [1, 0, 2], 0) == [10, 5, 20]
    assert sum(grown_widths([10, 5, 20], [99, 0, 99], [1, 0, 2], 7)) == 35 + 7  # never more than the spare


def shown_lines(table) -> list[str]:
    region = table.scrollable_content_region
    return [table.render_line(y).text[: region.width] for y in range(region.height)]


def with_tags(source, vmid: int, tags: tuple[str, ...]) -> None:
    guests = source.snapshot.guests
    source.snapshot = replace(
        source.snapshot, guests=tuple(replace(g, tags=tags) if g.vmid == vmid else g for g in guests)
    )


async def test_edge_21_at_220x60_the_tags_get_the_spare_width_and_are_not_cut(app, source):
    with_tags(source, 100, LONG_TAGS)
    async with app.run_test(size=WIDE) as pilot:
        await wait_for_data(pilot)
        await pilot.pause()
        table = app.guest_table
        tags = " ".join(LONG_TAGS)
        row = next(line for line in shown_lines(table) if line.split()[:2] == ["100", "web-1"])
        assert row.rstrip().endswith(tags)  # whole, no "…"
        assert table.shown_width("tags") == len(tags) + 2  # as wide as its longest text, padding included


async def test_edge_21_tags_longer_than_the_spare_width_take_all_of_it(app, source):
    with_tags(source, 100, tuple(f"tenant-{n:02}" for n in range(12)))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for_data(pilot)
        await pilot.pause()
        table = app.guest_table
        room = table.scrollable_content_region.width
        assert table.virtual_size.width == room  # no empty columns right of the table
        row = next(line for line in shown_lines(table) if line.split()[:2] == ["100", "web-1"])
        assert row.rstrip().endswith("…")  # the rest of the tags, cut where the screen ends
        assert table.shown_width("name") == 14 + 2  # the names here are short: no more than its own width


async def test_edge_21_narrow_terminals_keep_the_columns_as_they_are(source):
    with_tags(source, 100, LONG_TAGS)
    for size in ((80, 24), (160, 45)):
        app = PvetopApp(source, clock=fixed_clock, interval=60)
        async with app.run_test(size=size) as pilot:
            await wait_for_data(pilot)
            await pilot.pause()
            table = app.guest_table
            assert table.shown_width("tags") == 22 and table.shown_width("name") == 16  # scrolls sideways as before
            header = shown_lines(table)[0]
            assert header.split()[:4] == ["VMID", "▲", "Name", "T"]
