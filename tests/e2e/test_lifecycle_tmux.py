"""`pvetop --demo` in tmux: shut a guest down with `x`, see it stopped, start it again, see it run."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.terminal import keys, tmux, wait_for

GUEST = "nextcloud"
ACTION_SECONDS = 30.0  # demo time runs 10x: a 6 s shutdown takes well under a second, plus polling


def guest_line(screen: str) -> str:
    return next((line for line in screen.splitlines() if f" {GUEST} " in line and " vm " in line), "")


@pytest.fixture
def session():
    name = f"pvetop-e2e-power-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=10)


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
    command = f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m pvetop --demo; sleep 60"
    tmux(
        "new-session", "-d", "-x", "140", "-y", "42", "-s", session,
        "-e", f"HOME={tmp_path}",
        "-e", f"XDG_DATA_HOME={tmp_path / 'data'}",
        "-e", f"XDG_CONFIG_HOME={tmp_path / 'config'}",
        "-e", f"PVETOP_DB={tmp_path / 'rules.sqlite'}",
        command,
    )  # fmt: skip
    wait_for(session, lambda s: "running" in guest_line(s), 15, f"{GUEST} running")
    keys(session, "/")
    wait_for(session, lambda s: "filter: text or regex" in s, 5, "the filter field")
    keys(session, "-l", GUEST)
    keys(session, "Enter")
    wait_for(session, lambda s: f"filter “{GUEST}”" in s, 5, "the filter caption")

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
