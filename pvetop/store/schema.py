"""Schema versions: a fresh store gets the current schema, an older one is upgraded in place,
a newer one is refused (an older pvetop must not guess at rules it does not understand).

To change the schema: edit ``models.py``, bump ``CURRENT_VERSION`` and add the step that takes a
database from the previous version to it in ``MIGRATIONS``; keep a fixture of the old shape in
``tests/store/fixtures`` so the upgrade stays tested.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import peewee
from playhouse.migrate import SchemaMigrator, migrate

from pvetop.errors import PvetopError
from pvetop.store.records import DEFAULT_BOOT_TIMEOUT

CURRENT_VERSION = 3


class StoreError(PvetopError):
    """The rules store cannot be used as it is (newer schema, foreign tables, bad import)."""


def _v2_node_maintenance_and_boot_timeout(models: SimpleNamespace) -> None:
    database = models.SchemaInfo._meta.database
    models.NodeMaintenance.create_table(safe=False)
    migrator = SchemaMigrator.from_database(database)
    migrate(migrator.add_column("node_power", "boot_timeout", peewee.IntegerField(default=DEFAULT_BOOT_TIMEOUT)))


def _v3_acting_instance(models: SimpleNamespace) -> None:
    """Shared stores: the journal names the instance that wrote each entry; lease and intents."""
    database = models.SchemaInfo._meta.database
    migrator = SchemaMigrator.from_database(database)
    migrate(
        migrator.add_column("journal", "host", peewee.CharField(max_length=255, default="")),
        migrator.add_column("journal", "pid", peewee.IntegerField(default=0)),
    )
    database.create_tables([models.Lease, models.Intent])


MIGRATIONS: dict[int, Callable[[SimpleNamespace], None]] = {
    2: _v2_node_maintenance_and_boot_timeout,
    3: _v3_acting_instance,
}


def found_version(models: SimpleNamespace, display: str, *, foreign_check: bool) -> int | None:
    """The schema version the database holds, None for an empty one; only reads.

    ``foreign_check`` refuses a database holding tables that are not pvetop's (a SQLite file
    given to ``--db`` by mistake): nothing is added to it. A shared PostgreSQL database may hold
    other applications' tables, so there only pvetop's own tables are looked at.
    """
    database = models.SchemaInfo._meta.database
    tables = [name for name in database.get_tables() if not name.startswith("sqlite_")]
    if models.SchemaInfo._meta.table_name not in tables:
        ours = [m._meta.table_name for m in models.all if m._meta.table_name in tables]
        if ours:
            raise StoreError(
                f"rules store {display} has pvetop tables ({', '.join(ours)}) but no schema version",
                hint="it was not written by pvetop; use another --db (the file was left untouched)",
            )
        if foreign_check and tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"{display} is not a pvetop rules store: it holds other tables ({shown})",
                hint="give --db a new file or an existing pvetop store; the file was left untouched",
            )
        return None
    row = models.SchemaInfo.select().first()
    if row is None:
        raise StoreError(
            f"rules store {display} has an empty schema version table",
            hint="it was not written by pvetop; use another --db (the file was left untouched)",
        )
    if row.version > CURRENT_VERSION:
        raise StoreError(
            f"rules store {display} has schema version {row.version}, newer than this pvetop understands "
            f"({CURRENT_VERSION})",
            hint="upgrade pvetop, or use another --db; the file was left untouched",
        )
    return int(row.version)


def ensure_schema(models: SimpleNamespace, display: str, *, foreign_check: bool = True) -> int:
    """Creates or upgrades the schema; returns the version the database had before (0 = new)."""
    database = models.SchemaInfo._meta.database
    with database.atomic():
        found = found_version(models, display, foreign_check=foreign_check)
        if found is None:
            database.create_tables(models.all)
            models.SchemaInfo.create(version=CURRENT_VERSION)
            return 0
        for version in range(found + 1, CURRENT_VERSION + 1):
            MIGRATIONS[version](models)
        if found < CURRENT_VERSION:
            models.SchemaInfo.update(version=CURRENT_VERSION).execute()
        return found


def check_readable(models: SimpleNamespace, display: str) -> int | None:
    """For a store opened read-only: its version (None when empty); an old schema cannot be read
    as it is and cannot be upgraded without writing."""
    found = found_version(models, display, foreign_check=True)
    if found is not None and found < CURRENT_VERSION:
        raise StoreError(
            f"rules store {display} has schema version {found}, older than this pvetop's ({CURRENT_VERSION})",
            hint="any command that changes rules (or the dashboard without --read-only) upgrades it; "
            "the file was left untouched",
        )
    return found
