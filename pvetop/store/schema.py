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

CURRENT_VERSION = 2


class StoreError(PvetopError):
    """The rules store cannot be used as it is (newer schema, foreign tables, bad import)."""


def _v2_node_maintenance_and_boot_timeout(models: SimpleNamespace) -> None:
    database = models.SchemaInfo._meta.database
    models.NodeMaintenance.create_table(safe=False)
    migrator = SchemaMigrator.from_database(database)
    migrate(migrator.add_column("node_power", "boot_timeout", peewee.IntegerField(default=DEFAULT_BOOT_TIMEOUT)))


MIGRATIONS: dict[int, Callable[[SimpleNamespace], None]] = {
    2: _v2_node_maintenance_and_boot_timeout,
}


def ensure_schema(models: SimpleNamespace, display: str) -> int:
    """Creates or upgrades the schema; returns the version the database had before (0 = new)."""
    database = models.SchemaInfo._meta.database
    with database.atomic():
        if not database.table_exists(models.SchemaInfo._meta.table_name):
            ours = [m._meta.table_name for m in models.all if database.table_exists(m._meta.table_name)]
            if ours:
                raise StoreError(
                    f"rules store {display} has pvetop tables ({', '.join(ours)}) but no schema version",
                    hint="it was not written by pvetop; use another --db",
                )
            database.create_tables(models.all)
            models.SchemaInfo.create(version=CURRENT_VERSION)
            return 0
        row = models.SchemaInfo.select().first()
        if row is None:
            raise StoreError(
                f"rules store {display} has an empty schema version table",
                hint="it was not written by pvetop; use another --db",
            )
        found = row.version
        if found > CURRENT_VERSION:
            raise StoreError(
                f"rules store {display} has schema version {found}, newer than this pvetop understands "
                f"({CURRENT_VERSION})",
                hint="upgrade pvetop, or use another --db; the file was left untouched",
            )
        for version in range(found + 1, CURRENT_VERSION + 1):
            MIGRATIONS[version](models)
        if found < CURRENT_VERSION:
            models.SchemaInfo.update(version=CURRENT_VERSION).execute()
        return found
