"""The footer frees the keys of its past recomposes (a dashboard left open all day must not grow)."""

from __future__ import annotations

import gc

from tests.ui.pilot import wait_for_data


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
