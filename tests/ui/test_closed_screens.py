"""Screens closed for good leave nothing drawn behind (a dashboard left open all day must not grow)."""

from __future__ import annotations

import gc

from textual.strip import Strip

from tests.ui.pilot import wait_for_data

WALK = ("S", "escape", "H", "escape", "enter", "escape", "question_mark", "escape")


def live_strips() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Strip))


async def test_the_drawn_lines_of_closed_screens_are_freed(app):
    """Textual keeps a removed widget's line cache alive (an ``lru_cache`` on one of its methods
    holds up to 1024 of them): before ``pop_screen`` emptied them, each walk through the storage,
    health, detail and help screens left their lines behind (the soak's homelab walk ~1000 lines,
    ~15k objects)."""
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for_data(pilot)

        async def walk() -> None:
            for key in WALK:
                await pilot.press(key)
                await pilot.pause(0.1)

        await walk()
        before = live_strips()
        for _ in range(4):
            await walk()
        after = live_strips()
    assert after - before < 200, f"{after - before} more strips alive after 4 walks through the screens"
