"""`pvetop --demo` in tmux: shut a guest down with `x`, see it stopped, start it again, see it run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.terminal import filter_to, keys, start_demo, wait_for

GUEST = "nextcloud"
ACTION_SECONDS = 30.0  # demo time runs 10x: a 6 s shutdown takes well under a second, plus polling


def guest_line(screen: str) -> str:
    return next((line for line in screen.splitlines() if f" {GUEST} " in line and " vm " in line), "")


def pick(session: str, label: str) -> None:
    """In the power dialog: move the highlight to ``label`` and confirm with enter."""
    wait_for(session, lambda s: "Stop hard" in s, 10, "the power dialog")
    time.sleep(0.5)  # the option list takes the focus once mounted
    keys(session, "Home")
    for _ in range(["Start", "Shut down", "Reboot", "Stop hard"].index(label)):
        keys(session, "Down")
    time.sleep(0.3)
    keys(session, "Enter")


@pytest.mark.e2e
def test_shutdown_and_start_a_guest_from_the_keyboard_in_the_demo(session: str, tmp_path: Path):
    start_demo(session, tmp_path, (140, 42), env={"PVETOP_DB": str(tmp_path / "rules.sqlite")})
    wait_for(session, lambda s: "running" in guest_line(s), 15, f"{GUEST} running")
    filter_to(session, GUEST)

    keys(session, "x")
    pick(session, "Shut down")
    wait_for(session, lambda s: "stopped" in guest_line(s), ACTION_SECONDS, f"{GUEST} stopped")

    keys(session, "x")
    pick(session, "Start")
    screen = wait_for(session, lambda s: "running" in guest_line(s), ACTION_SECONDS, f"{GUEST} running again")
    assert "Traceback" not in screen

    keys(session, "t")
    screen = wait_for(session, lambda s: "qmstart" in s and "qmshutdown" in s, 10, "both tasks in the tasks pane")
    keys(session, "Escape", "q")
