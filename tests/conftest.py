"""Fixtures shared across the suite: a manual-clock homelab simulator, a rules store, a store path
for the command line with no user environment leaking in. Modules that need another scenario or
scope define their own ``sim``."""

from __future__ import annotations

import pytest

from pvetop.store import open_store
from tests.engine.simdrive import running_sim


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
