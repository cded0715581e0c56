"""`pvetop --demo` in a real terminal (tmux): it paints the cluster and `q` leaves no trace.

How fast the first paint comes is a figure of ``tests/bench/refresh.py`` (``first_paint_ms``), not
an assert here: on a loaded machine a wall-clock budget fails for reasons that are not pvetop's.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.e2e.terminal import keys, pane, start_demo, tmux, wait_for

PAINT_WAIT_SECONDS = 60.0  # only stops a broken run from hanging
HOMELAB_NODE, HOMELAB_GUEST = "pve-big", "homeassistant"


def pane_flag(session: str, name: str) -> str:
    return tmux("display-message", "-p", "-t", session, f"#{{{name}}}").strip()


@pytest.mark.e2e
def test_demo_paints_nodes_and_guests_then_q_exits_cleanly(session: str, tmp_path: Path):
    exit_file = tmp_path / "exit-code"
    start_demo(session, tmp_path, (120, 40), then=f"echo $? > {shlex.quote(str(exit_file))}; ")

    names = (HOMELAB_NODE, HOMELAB_GUEST, "VMID")
    wait_for(session, lambda s: all(text in s for text in names), PAINT_WAIT_SECONDS, "node and guest names")
    assert pane_flag(session, "alternate_on") == "1"

    keys(session, "q")
    wait_for(session, lambda s: exit_file.exists(), 10, "pvetop's exit on q")
    assert exit_file.read_text().strip() == "0"
    after = pane(session)
    assert pane_flag(session, "alternate_on") == "0", "still in the alternate screen"
    assert pane_flag(session, "cursor_flag") == "1", "cursor left hidden"
    assert pane_flag(session, "mouse_any_flag") == "0", "mouse reporting left on"
    assert HOMELAB_GUEST not in after and "Traceback" not in after
    assert after.strip() == "", f"pvetop printed something on exit:\n{after}"
