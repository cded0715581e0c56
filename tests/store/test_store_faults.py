"""The store under faults and hostile files: each failure is one clear error naming its cause.

Listing commands open the store read-only and never wait for another instance's write lock; a
foreign SQLite file is refused and left as it was; a full disk, a read-only file, damaged pages
and unreadable row values each say what is wrong; a new store is private (0600 in a 0700 directory).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time

import peewee
import pytest

from pvetop.cli import main
from pvetop.store import Store, StoreError, open_store
from pvetop.store import location as location_mod

C = "homelab"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.delenv("PVETOP_DB", raising=False)
    monkeypatch.delenv("PVETOP_READ_ONLY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def seeded(path) -> str:
    with open_store(str(path)) as store:
        store.pin_guest(C, 100, "web", ["pve1"])
        store.lock_guest(C, 101, "db")
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- 12: reading never waits


def test_listing_while_another_instance_holds_the_write_lock(env, capsys, monkeypatch):
    db = seeded(env / "rules.sqlite")
    monkeypatch.setattr(location_mod, "BUSY_TIMEOUT_MS", 3000)  # 15 s in real use
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another pvetop in the middle of a write
    writer.execute("UPDATE guest_lock SET reason = 'being changed'")
    try:
        for listing in (["pins", "list"], ["locks", "list"], ["export"]):
            started = time.monotonic()
            code, out, err = run(capsys, *listing, "--cluster", C, "--db", db)
            assert code == 0, err
            assert time.monotonic() - started < 2.0, f"{listing} waited for the write lock"
        assert "web" in run(capsys, "pins", "list", "--cluster", C, "--db", db)[1]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# --------------------------------------------------------------------------- 13: clear errors


def test_a_foreign_sqlite_file_is_refused_and_left_untouched(env, capsys):
    foreign = env / "places.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        conn.execute("INSERT INTO moz_places (url) VALUES ('https://example.net')")
    conn.close()
    before, files_before = foreign.read_bytes(), sorted(os.listdir(env))

    for command in (["pins", "rm", "100", "--cluster", C], ["pins", "list", "--cluster", C]):
        code, _, err = run(capsys, *command, "--db", str(foreign))
        assert code == 1
        assert err.startswith(
            f"pvetop: error: {foreign} is not a pvetop rules store: it holds other tables (moz_places)"
        )
        assert "the file was left untouched" in err
    assert foreign.read_bytes() == before and sorted(os.listdir(env)) == files_before
    with sqlite3.connect(foreign) as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["moz_places"]


def test_a_full_disk_is_named_and_nothing_changes(env):
    db = seeded(env / "rules.sqlite")
    with open_store(db) as store:
        pages = store._db.execute_sql("PRAGMA page_count").fetchone()[0]
        store._db.execute_sql(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full" (SQLITE_FULL)
        with pytest.raises(StoreError, match=r"cannot use rules store .*: the disk is full") as full:
            store.pin_guest(C, 102, "big", ["pve1"], note="x" * 200_000)
        assert "nothing was changed" in str(full.value)
    with open_store(db) as store:
        assert [pin.vmid for pin in store.pins(C)] == [100]


def test_a_read_only_file_is_named(env):
    db = seeded(env / "rules.sqlite")
    # root ignores file modes, so SQLite itself is told to open the file read-only
    readonly = peewee.SqliteDatabase(f"file:{db}?mode=ro", uri=True)
    store = Store(readonly, db)
    store.open()
    try:
        with pytest.raises(StoreError, match="the file or its directory is not writable") as refused:
            store.lock_guest(C, 102, "x")
        assert "nothing was changed" in str(refused.value)
    finally:
        store.close()


def test_damaged_pages_are_named(env, capsys):
    db = seeded(env / "rules.sqlite")
    data = bytearray((env / "rules.sqlite").read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)  # every page after the first overwritten
    (env / "rules.sqlite").write_bytes(bytes(data))
    code, _, err = run(capsys, "pins", "list", "--cluster", C, "--db", db)
    assert code == 1
    assert err.startswith(f"pvetop: error: cannot open rules store {db}: the file is damaged")
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE guest_pin SET nodes = 'pve1,pve2'",  # not JSON
        "UPDATE guest_pin SET nodes = '5'",  # JSON, not a list
        "UPDATE guest_pin SET vmid = 'abc'",  # not a number
    ],
)
def test_bad_values_in_rows_are_named(env, capsys, statement):
    db = seeded(env / "rules.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute(statement)
    conn.close()
    code, _, err = run(capsys, "pins", "list", "--cluster", C, "--db", db)
    assert code == 1
    assert err.startswith(f"pvetop: error: rules store {db} holds a value pvetop cannot read")
    assert "internal error" not in err


# --------------------------------------------------------------------------- 14: private files


def test_a_new_store_is_private(env):
    where = env / "new" / "dir" / "rules.sqlite"
    with open_store(str(where)) as store:
        store.pin_guest(C, 100, "web", ["pve1"])
        assert stat.S_IMODE(where.stat().st_mode) == 0o600
        assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700
        for companion in ("rules.sqlite-wal", "rules.sqlite-shm"):  # SQLite copies the file's mode
            assert stat.S_IMODE((where.parent / companion).stat().st_mode) == 0o600


def test_the_default_store_is_private(env, capsys):
    code, _, err = run(capsys, "pins", "rm", "100", "--cluster", C)  # creates the default store
    assert code != 0 and "has no pin" in err
    path = location_mod.default_path()
    assert str(path).startswith(str(env / "data"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
