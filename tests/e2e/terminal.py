"""Driving pvetop in a real terminal: tmux commands, the visible screen, keys, waiting for text."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def pane(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def keys(session: str, *names: str) -> None:
    tmux("send-keys", "-t", session, *names)


def wait_for(session: str, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
    """The screen once ``predicate`` holds on it; fails with the last screen after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        screen = pane(session)
        if predicate(screen):
            return screen
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not seen within {timeout:g} s:\n{screen}")
        time.sleep(0.2)


def start_demo(
    session: str,
    tmp_path: Path,
    size: tuple[int, int],
    *options: str,
    env: dict[str, str] | None = None,
    then: str = "",
) -> None:
    """Starts ``pvetop --demo OPTIONS`` in a detached tmux window of ``size`` whose home is
    ``tmp_path`` (no config or data of the user's leaks in) with ``env`` added; the window stays
    60 s after pvetop exits, running the shell command ``then`` first."""
    argv = " ".join(shlex.quote(word) for word in (sys.executable, "-m", "pvetop", "--demo", *options))
    command = f"cd {shlex.quote(str(tmp_path))} && {argv}; {then}sleep 60"
    homes = {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    variables = [arg for name, value in {**homes, **(env or {})}.items() for arg in ("-e", f"{name}={value}")]
    width, height = size
    tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", session, *variables, command)


def filter_to(session: str, text: str) -> None:
    """Filters the dashboard's table down to ``text`` and goes back to the table."""
    keys(session, "/")
    wait_for(session, lambda s: "filter: text or regex" in s, 5, "the filter field")
    keys(session, "-l", text)
    keys(session, "Enter")
    wait_for(session, lambda s: f"filter “{text}”" in s, 5, "the filter caption")
