"""Fixtures shared across the suite: a manual-clock homelab simulator, a rules store, a store path
for the command line with no user environment leaking in. Modules that need another scenario or
scope define their own ``sim``."""

from __future__ import annotations

import pytest

from pvetop.store import open_store
from tests.engine.simdrive import running_sim


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow(seconds)`` run first, longest first: pytest-xdist hands out tests in
    collection order, so a slow test left for the end keeps one core busy while the other idles."""

    def expected_seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return marker.kwargs["seconds"] if marker else 0.0

    items.sort(key=expected_seconds, reverse=True)


@pytest.fixture
def sim():
    with running_sim() as running:
        yield running


@pytest.fixture
def store(tmp_path):
    with open_store(str(tmp_path / "rules.sqlite")) as opened:
        yield opened


@pytest.fixture
def db(tmp_path, monkeypatch):
    """The rules store's path for ``--db``; no ``PVETOP_*`` variable or user config file leaks in."""
    monkeypatch.delenv("PVETOP_DB", raising=False)
    monkeypatch.delenv("PVETOP_READ_ONLY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return str(tmp_path / "rules.sqlite")
