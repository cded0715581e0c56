"""Fixtures shared across the suite: a manual-clock homelab simulator, a rules store, a store path
for the command line with no user environment leaking in. Modules that need another scenario or
scope define their own ``sim``."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from pvetop.store import open_store
from tests.engine.simdrive import running_sim


@pytest.hookimpl(wrapper=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Generator[None, int, int]:
    """``-n auto``: half as many workers again as cores. Most tests wait on a simulator, a terminal
    or a subprocess a good part of their time: on 2 cores, 2 workers kept them 59 % busy (579 s),
    3 workers 74 % (452 s). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` is taken as it is."""
    cores = yield
    return cores if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") else cores + cores // 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow(seconds)`` run first, longest first: with ``--dist loadgroup`` each test
    goes to the next worker with room, so the slow ones start at once, one per worker (``--dist
    load`` handed the first worker a chunk of consecutive tests, every slow one among them), and a
    slow test left for the end would keep one core busy while the others idle."""

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
