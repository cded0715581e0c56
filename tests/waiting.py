"""Waiting for something that happens on another thread or socket (a UDP packet, a worker)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], *, timeout: float = 10.0, what: str = "condition") -> None:
    """Polls ``condition`` for an event that arrives asynchronously (a UDP packet, a thread).

    Not a timing assertion: the timeout only stops a broken test from hanging.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
