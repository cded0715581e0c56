"""The end-to-end tests run pvetop in a real terminal (tmux), sized by each test.

pytest-xdist's workers carry ``COLUMNS=80`` and ``LINES=24`` in their environment; a tmux server
started from them hands those on, and the dashboard then lays itself out for 80x24 whatever the
window's size. Every test here starts tmux without them.
"""

import subprocess
import uuid

import pytest


@pytest.fixture(autouse=True)
def terminal_sized_by_the_window(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def session():
    """A tmux session name of the test's own; the session is killed afterwards."""
    name = f"pvetop-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=10)
