"""`pvetop --demo` in tmux: `b` shows the balancer's plan with reasons, `a` applies its first move,
the guest table shows the guest on its new node, and the journal has the move with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pvetop.store import open_store
from tests.e2e.terminal import filter_to, keys, start_demo, tmux, wait_for

MIGRATION_SECONDS = 40.0  # demo time runs 10x: a homelab migration takes a few real seconds
RECENT_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*?)\s*$")
MOVE_ROW = re.compile(r"^\s*1\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+[\d.]+\s+[\d.]+%?\s+(.*?)\s*$")


def recent_move(screen: str) -> tuple[int, str, str, str, str] | None:
    """The newest row under "Recent balancer moves": vmid, name, from, to, result."""
    lines = screen.split("Recent balancer moves", 1)[-1].splitlines()[2:]
    for line in lines:
        found = RECENT_ROW.match(line)
        if found:
            vmid, name, source, target, result = found.groups()
            return int(vmid), name, source, target, result
    return None


def first_move(screen: str) -> tuple[int, str, str, str, str] | None:
    for line in screen.splitlines():
        found = MOVE_ROW.match(line)
        if found:
            vmid, name, source, target, reason = found.groups()
            return int(vmid), name, source, target, reason
    return None


@pytest.mark.e2e
def test_balancer_plan_apply_and_journal_in_the_demo(session: str, tmp_path: Path):
    db = tmp_path / "rules.sqlite"
    start_demo(session, tmp_path, (160, 45), "--db", str(db))
    # the header wraps where its notes run long (the demo's loads follow the time of day)
    wait_for(
        session, lambda s: "balancer advise · plan:" in " ".join(s.split()), 20, "the balancer's plan in the header"
    )
    keys(session, "b")
    size = tmux("display", "-p", "-t", session, "#{window_width}x#{window_height}").strip()
    # a frame drawn between the table's new rows and their column widths clips every cell to its
    # header's width ("pve…"): wait for the row drawn whole
    screen = wait_for(
        session,
        lambda s: (move := first_move(s)) is not None and not any("…" in field for field in move[2:]),
        10,
        f"the plan on the balancer screen ({size})",
    )
    vmid, name, source, target, reason = first_move(screen)
    assert reason.startswith(source) and "trigger: imbalance" in screen, f"{size}:\n{screen}"
    keys(session, "a")
    screen = wait_for(session, lambda s: recent_move(s) is not None, 10, "the applied move under recent moves")
    vmid, name, source, target, _result = recent_move(screen)
    wait_for(session, lambda s: "done" in (recent_move(s) or ("",) * 5)[4], MIGRATION_SECONDS, "the move done")
    keys(session, "Escape")
    # a "/" right after Escape would read as alt+/ (one escape sequence)
    wait_for(session, lambda s: "Recent balancer moves" not in s, 5, "the dashboard again")
    filter_to(session, name)  # the moved guest in view, wherever its VMID sorts

    def guest_line(screen: str) -> str:
        return next((line for line in screen.splitlines() if f" {name} " in line and f" {vmid} " in line), "")

    # the narrow recent-moves column may clip the node's name: the journal below says it in full
    screen = wait_for(
        session,
        lambda s: source not in guest_line(s) and "running" in guest_line(s),
        15,
        f"{name} off {source}",
    )
    assert "Traceback" not in screen
    keys(session, "q")
    wait_for(session, lambda s: "pvetop" not in s.splitlines()[0] if s.splitlines() else True, 10, "the app to quit")
    with open_store(str(db)) as store:
        done = [
            e
            for cluster in store.clusters()
            for e in store.journal_entries(cluster, actions=("migrate",))
            if e.result == "ok"
        ]
    assert [(e.target, e.actor) for e in done] == [(f"guest/{vmid}", "user")]
    assert target.rstrip("▌") in done[0].params["target"] and done[0].params["target"] in guest_line(screen)
    assert done[0].params["reason"].startswith(f"{source} load")
