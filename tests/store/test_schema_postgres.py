"""Schema versions on PostgreSQL: the same upgrade and refusal rules as the SQLite file has."""

import re
from pathlib import Path

import pytest

from pvetop.store import CURRENT_VERSION, NodePower, StoreError, open_store
from tests.store.backends import Databases, _admin_connect

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def pg(request, tmp_path):
    made = Databases("postgresql", tmp_path, request.getfixturevalue("postgres_server"))
    yield made
    made.drop_all()


def v1_for_postgres() -> str:
    """Version 1's tables as peewee created them on PostgreSQL (serial keys, double precision times)."""
    sql = (FIXTURES / "schema_v1.sql").read_text()
    sql = re.sub(r"^--.*$", "", sql, flags=re.M)
    sql = sql.replace('"id" INTEGER NOT NULL PRIMARY KEY', '"id" SERIAL NOT NULL PRIMARY KEY')
    sql = sql.replace(" REAL ", " DOUBLE PRECISION ").replace('"allow_power_off" INTEGER', '"allow_power_off" BOOLEAN')
    sql = sql.replace("'aa:bb:cc:dd:ee:01', 1)", "'aa:bb:cc:dd:ee:01', true)")
    tables = re.findall(r'CREATE TABLE "(\w+)"', sql)
    resync = "".join(
        f"SELECT setval(pg_get_serial_sequence('\"{t}\"', 'id'), COALESCE(MAX(id), 1)) FROM \"{t}\";" for t in tables
    )
    return sql + resync


def version_of(url: str) -> int:
    with _admin_connect(url) as db:
        return db.execute("SELECT version FROM pvetop_schema").fetchone()[0]


def test_a_fresh_database_gets_the_current_version(pg):
    url = pg.new("fresh")
    with open_store(url) as store:
        assert store.found_version == 0
    assert version_of(url) == CURRENT_VERSION


def test_a_version_1_database_is_upgraded_in_place_keeping_every_entry(pg):
    url = pg.new("old")
    with _admin_connect(url) as db:
        db.execute(v1_for_postgres())
    with open_store(url) as store:
        assert store.found_version == 1
        pin = store.pin("homelab", 100)
        assert (pin.name, pin.nodes, pin.note, pin.who) == ("web", {"big", "small1"}, "keep near storage", "alice")
        assert store.node_power("homelab", "big") == NodePower("homelab", "big", "aa:bb:cc:dd:ee:01", True, 300)
        assert store.settings("homelab") == {"balancer.mode": "advise"}
        store.set_maintenance("homelab", "small2", reason="fan")
        store.pin_guest("homelab", 102, "new", ["big"])  # new rows get fresh ids after the upgrade
        assert [m.node for m in store.maintenance("homelab")] == ["small2"]
    assert version_of(url) == CURRENT_VERSION


def test_a_newer_schema_is_refused_and_left_untouched(pg):
    url = pg.new("future")
    open_store(url).close()
    with _admin_connect(url) as db:
        db.execute("UPDATE pvetop_schema SET version = %s", (CURRENT_VERSION + 1,))
    with pytest.raises(StoreError, match=f"schema version {CURRENT_VERSION + 1}, newer than this pvetop"):
        open_store(url)
    assert version_of(url) == CURRENT_VERSION + 1
