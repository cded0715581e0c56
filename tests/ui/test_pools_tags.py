"""Pools and tags (issue 12): a pool column and pool: filter, tags in PVE's tag colours."""

from __future__ import annotations

from dataclasses import replace

from rich.style import Style

from pvetop.pve.parse import parse_tag_colors
from pvetop.ui.tags import computed_rgb, tag_style
from tests.ui.pilot import settle, wait_for_data

SIZE = (200, 40)


def test_tag_colours_follow_the_color_map_else_pves_computed_colour():
    assert parse_tag_colors({"tag-style": {"color-map": "prod:FF0000;web:00FF00:000000;bad:xyz"}}) == (
        ("prod", "FF0000", ""),
        ("web", "00FF00", "000000"),
    )
    assert parse_tag_colors({"tag-style": "shape=circle,color-map=lab:112233"}) == (("lab", "112233", ""),)
    assert parse_tag_colors({}) == ()
    overrides = {"prod": ("FF0000", ""), "web": ("00FF00", "000000")}
    assert tag_style("prod", overrides) == Style(bgcolor="#FF0000", color="#FFFFFF")  # white reads better on red
    rgb = computed_rgb("infra")
    assert rgb == computed_rgb("infra") and all(76 <= channel <= 255 for channel in rgb)  # blended 70 % over white
    assert computed_rgb("infra") != computed_rgb("prod")


async def test_pool_column_pool_filter_and_coloured_tags(app, source):
    source.snapshot = replace(
        source.snapshot,
        guests=tuple(replace(g, pool="web") if g.vmid in (100, 101) else g for g in source.snapshot.guests),
        tag_colors=(("prod", "FF0000", "FFFFFF"),),
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        assert app.guest_table.cell_text("100", "pool") == "web"
        assert app.guest_table.tag_colors == {"prod": ("FF0000", "FFFFFF")}
        segments = app.guest_table.cell_segments("tags", " prod web ", Style())
        styled = {segment.text: segment.style for segment in segments if segment.text.strip()}
        assert styled["prod"].bgcolor.name == "#ff0000" and styled["web"].bgcolor is not None
        await pilot.press("slash", *"pool:web")
        await settle(pilot)
        assert sorted(app.guest_table.keys_in_order) == ["100", "101"]
