"""Fixtures for the dashboard tests: an app on an in-memory cluster that polls only when told."""

from __future__ import annotations

import pytest

from pvetop.ui.app import PvetopApp
from tests.ui.fixtures import fixed_clock, memory_source


@pytest.fixture
def source():
    return memory_source()


@pytest.fixture
def app(source):
    """Polls only when a test says so (ctrl+r): a timer poll racing a test's own is noise."""
    return PvetopApp(source, clock=fixed_clock, interval=60)
