"""Schema versions: an older file is upgraded in place, a newer one refused and left untouched."""

import sqlite3
from pathlib import Path

import pytest

from pvetop.store import CURRENT_VERSION, NodePower, StoreError, open_store

FIXTURES = Path(__file__).parent / "fixtures"


def make_v1(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript((FIXTURES / "schema_v1.sql").read_text())


def schema_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version FROM pvetop_schema").fetchone()[0]


def test_a_fresh_store_gets_the_current_version(tmp_path):
    path = tmp_path / "new.sqlite"
    with open_store(str(path)) as store:
        assert store.found_version == 0
    assert schema_version(path) == CURRENT_VERSION


def test_a_version_1_file_is_upgraded_in_place_keeping_every_entry(tmp_path):
    path = tmp_path / "old.sqlite"
    make_v1(path)
    with open_store(str(path)) as store:
        assert store.found_version == 1
        pin = store.pin("homelab", 100)
        assert (pin.name, pin.nodes, pin.note, pin.who) == ("web", {"big", "small1"}, "keep near storage", "alice")
        assert store.lock("homelab", 101).reason == "licence bound"
        assert [r.node for r in store.reservations("homelab")] == ["small2"]
        # boot_timeout did not exist in version 1: the upgrade gives it the default
        assert store.node_power("homelab", "big") == NodePower("homelab", "big", "aa:bb:cc:dd:ee:01", True, 300)
        assert store.settings("homelab") == {"balancer.mode": "advise"}
        assert [e.action for e in store.recent_journal("homelab")] == ["pin"]
        # what version 2 added works on the upgraded file
        store.set_maintenance("homelab", "small2", reason="fan")
        store.set_node_power("homelab", "big", boot_timeout=900)
        assert [m.node for m in store.maintenance("homelab")] == ["small2"]
    assert schema_version(path) == CURRENT_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with open_store(str(path)) as again:
        assert again.found_version == CURRENT_VERSION
        assert again.node_power("homelab", "big").boot_timeout == 900


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "future.sqlite"
    open_store(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE pvetop_schema SET version = ?", (CURRENT_VERSION + 1,))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"schema version {CURRENT_VERSION + 1}, newer than this pvetop") as caught:
        open_store(str(path))
    assert "upgrade pvetop" in str(caught.value)
    assert schema_version(path) == CURRENT_VERSION + 1
    assert path.read_bytes() == before


def test_a_database_with_our_tables_but_no_version_is_refused(tmp_path):
    path = tmp_path / "odd.sqlite"
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "guest_pin" (id INTEGER PRIMARY KEY)')
    with pytest.raises(StoreError, match="no schema version"):
        open_store(str(path))


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not rules\n" * 200)
    with pytest.raises(StoreError, match="cannot open rules store .*notes.txt: the file is not an SQLite database"):
        open_store(str(path))
    assert path.read_text() == "these are not rules\n" * 200
