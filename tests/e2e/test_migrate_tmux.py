"""`pvetop --demo` in tmux: select a guest, `m`, pick a node, confirm, and see the guest arrive there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.terminal import filter_to, keys, start_demo, wait_for

GUEST, SOURCE, TARGET = "nextcloud", "pve-mini1", "pve-big"
MIGRATION_SECONDS = 30.0  # demo time runs 10x: the sim's ~60 s migration takes ~6 s


def guest_line(screen: str) -> str:
    return next((line for line in screen.splitlines() if f" {GUEST} " in line), "")


@pytest.mark.e2e
def test_migrate_a_guest_from_the_keyboard_in_the_demo(session: str, tmp_path: Path):
    start_demo(session, tmp_path, (130, 42), env={"PVETOP_DB": str(tmp_path / "rules.sqlite")})
    screen = wait_for(session, lambda s: SOURCE in guest_line(s), 15, f"{GUEST} on {SOURCE}")

    filter_to(session, GUEST)  # selects the guest

    keys(session, "m")
    screen = wait_for(
        session, lambda s: f"Migrate VM 103 {GUEST}" in s and "checking" not in s, 10, "the migrate dialog"
    )
    lines = screen.splitlines()
    header = next(i for i, line in enumerate(lines) if "CPU now" in line)
    rows = {
        node: next(i for i, line in enumerate(lines) if i > header and f" {node} " in line)
        for node in (TARGET, "pve-mini2")
    }
    if rows[TARGET] > rows["pve-mini2"]:
        keys(session, "Down")
    keys(session, "Enter")
    wait_for(session, lambda s: f"{SOURCE} → {TARGET}" in s and "Migrate (enter)" in s, 5, "the confirmation")
    keys(session, "y")

    screen = wait_for(
        session,
        lambda s: TARGET in guest_line(s) and "migrate" not in guest_line(s),
        MIGRATION_SECONDS,
        f"{GUEST} on {TARGET}",
    )
    assert "Traceback" not in screen
    keys(session, "q")
