"""Driving pvetop in a real terminal: tmux commands, the visible screen, keys, waiting for text."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


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
