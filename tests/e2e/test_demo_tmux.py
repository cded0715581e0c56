"""`pvetop --demo` in a real terminal (tmux): it paints the cluster and `q` leaves no trace.

How fast the first paint comes is a figure of ``tests/bench/refresh.py`` (``first_paint_ms``), not
an assert here: on a loaded machine a wall-clock budget fails for reasons that are not pvetop's.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PAINT_WAIT_SECONDS = 60.0  # only stops a broken run from hanging
HOMELAB_NODE, HOMELAB_GUEST = "pve-big", "homeassistant"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def pane(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def pane_flag(session: str, name: str) -> str:
    return tmux("display-message", "-p", "-t", session, f"#{{{name}}}").strip()


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def session(tmp_path: Path):
    name = f"pvetop-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=10)


@pytest.mark.e2e
def test_demo_paints_nodes_and_guests_then_q_exits_cleanly(session: str, tmp_path: Path):
    exit_file = tmp_path / "exit-code"
    command = (
        f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m pvetop --demo; "
        f"echo $? > {shlex.quote(str(exit_file))}; sleep 60"
    )
    tmux(
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        session,
        "-e",
        f"HOME={tmp_path}",
        "-e",
        f"XDG_DATA_HOME={tmp_path / 'data'}",
        "-e",
        f"XDG_CONFIG_HOME={tmp_path / 'config'}",
        command,
    )

    painted = wait_for(
        lambda: all(text in pane(session) for text in (HOMELAB_NODE, HOMELAB_GUEST, "VMID")), PAINT_WAIT_SECONDS
    )
    assert painted, f"no node and guest names within {PAINT_WAIT_SECONDS}s:\n{pane(session)}"
    assert pane_flag(session, "alternate_on") == "1"

    tmux("send-keys", "-t", session, "q")
    assert wait_for(exit_file.exists, 10), f"pvetop did not exit on q:\n{pane(session)}"
    assert exit_file.read_text().strip() == "0"
    after = pane(session)
    assert pane_flag(session, "alternate_on") == "0", "still in the alternate screen"
    assert pane_flag(session, "cursor_flag") == "1", "cursor left hidden"
    assert pane_flag(session, "mouse_any_flag") == "0", "mouse reporting left on"
    assert HOMELAB_GUEST not in after and "Traceback" not in after
    assert after.strip() == "", f"pvetop printed something on exit:\n{after}"
