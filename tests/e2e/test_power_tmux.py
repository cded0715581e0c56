"""`pvetop --demo` in tmux: the power screen explains pve-big; power-off and wake by hand show progress.

The rules store is prepared first (failure margin 0 chosen, pve-big allowed, its guests on
local storage or its GPU marked to sleep with it); the demo's simulator runs 10x, so the drain, the
shutdown and the 180 s boot take a few tens of seconds. PVE's wakeonlan (through the node
pvetop talks to) wakes pve-big, since its MAC is only in its PVE node config.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pvetop.store import open_store
from tests.e2e.terminal import keys, start_demo, wait_for

NODE = "pve-big"


@pytest.mark.slow(seconds=45)
@pytest.mark.e2e
def test_power_screen_explains_and_powers_the_big_node_off_and_on_by_hand(session: str, tmp_path: Path):
    db = tmp_path / "rules.sqlite"
    with open_store(str(db)) as store:
        store.set_setting("homelab", "power.failure_margin", 0)
        # the dev lab sleeps with pve-big: the demo runs on the live clock, and at the midday peak of
        # the guests' daily curves (about 12:00-14:00 UTC) the minis cannot take it, so the power-off
        # would be refused at that time of day; postgres (HA) still drains
        store.set_setting(
            "homelab",
            "power.sleep_with_node",
            {"200": "gitlab", "201": "k8s-node1", "203": "builder", "204": "render-batch"},
        )
        store.set_node_power("homelab", NODE, allow_power_off=True)
        # a band above the demo's load at any hour: the share is below it all day, so the policy
        # judges every check (HA fit included) whatever the time of day the test runs at
        store.set_setting("homelab", "power.band_low", 75)
        store.set_setting("homelab", "power.band_high", 95)
    start_demo(session, tmp_path, (160, 45), "--db", str(db))
    wait_for(session, lambda s: NODE in s and "VMID" in s, 20, "the dashboard")
    keys(session, "W")
    screen = wait_for(
        session,
        lambda s: (
            "failure margin 0 (chosen" in s and row_of(s, NODE) is not None and row_of(s, "pve-mini1") is not None
        ),
        60,
        "pve-big's reasoning beside the node rows",
    )
    assert "HA guests fit: yes" in screen and "quorum 3/3 votes, 2 needed" in screen

    row, first = row_of(screen, NODE), row_of(screen, "pve-mini1")
    assert row is not None and first is not None
    for _ in range(max(0, row - first)):
        keys(session, "Down")
    keys(session, "x")
    wait_for(session, lambda s: "may power off" in s and "Drain pve-big" in s, 60, "the power-off confirmation")
    keys(session, "y")
    wait_for(session, lambda s: "powering pve-big off" in s, 20, "the power-off progress")
    wait_for(session, lambda s: "pve-big: done: offline" in s, 240, "pve-big offline")
    keys(session, "w")
    wait_for(session, lambda s: "waking pve-big" in s, 20, "the wake progress")
    wait_for(session, lambda s: "pve-big: done: online" in s, 240, "pve-big back online")


def row_of(screen: str, node: str) -> int | None:
    """The screen line the power table shows ``node`` on (a capture taken mid-draw may lack it)."""
    return next((i for i, line in enumerate(screen.splitlines()) if line.lstrip().startswith(node)), None)
