"""The footer frees the keys of its past recomposes (a dashboard left open all day must not grow)."""

from __future__ import annotations

import gc

from textual.binding import Binding
from textual.screen import Screen

from pvetop.ui.footer import KeyFooter
from tests.ui.pilot import settle, wait_for_data


def live_footer_keys() -> int:
    """Counted by class name: Textual does not export ``FooterKey``."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj).__name__ == "FooterKey")


async def test_footer_keys_of_past_recomposes_are_freed(app):
    """Each focus move recomposes the footer; before ``KeyFooter`` every recompose left its keys
    alive through their ``data_bind`` to the footer (about 30 keys per move here)."""
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for_data(pilot)
        for _ in range(3):
            await pilot.press("tab")
            await pilot.pause(0.1)
        before = live_footer_keys()
        for _ in range(20):
            await pilot.press("tab")
            await pilot.pause(0.1)
        after = live_footer_keys()
    assert after <= before + 40, f"{after - before} more footer keys alive after 20 focus moves"


class Installed(Screen):
    """A screen kept installed, as the balancer and power screens are."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self):
        yield KeyFooter()


async def shown_keys(pilot, footer: KeyFooter) -> list:
    """The footer's keys once it has composed them and the screen has settled."""
    for _ in range(100):
        await settle(pilot)
        keys = list(footer.children)
        if keys:
            return keys
        await pilot.pause(0.05)
    raise AssertionError("the footer never showed its keys")


async def test_footers_are_composed_again_only_when_their_keys_change(app):
    """Each recompose styles its ~20 new keys twice (~50 ms of the event loop on a busy machine,
    the soak's slow ticks after opening or closing a screen): the dashboard's footer stays as it
    is under a screen opened over it and when it comes back, and an installed screen's footer
    when it closes and opens again."""
    app.install_screen(Installed(), "installed")
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for_data(pilot)
        dashboard = app.screen.query_one(KeyFooter)
        dashboard_keys = await shown_keys(pilot, dashboard)
        await pilot.press("S")  # the storage screen, opaque, over the dashboard
        await settle(pilot)
        await pilot.press("escape")
        assert await shown_keys(pilot, dashboard) == dashboard_keys
        await app.push_screen("installed")
        installed = app.screen.query_one(KeyFooter)
        installed_keys = await shown_keys(pilot, installed)
        await pilot.press("escape")
        await settle(pilot)
        await app.push_screen("installed")
        assert await shown_keys(pilot, installed) == installed_keys
        await pilot.press("escape")
        assert await shown_keys(pilot, dashboard) == dashboard_keys
