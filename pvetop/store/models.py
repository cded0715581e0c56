"""peewee models of the current schema (see ``schema.py`` for its version and migrations).

Models are declared unbound; ``bind_models`` gives each open store its own subclasses, so two
stores (an export source and an import target, say) can be open in one process at once.
Times are epoch seconds (floats), which read the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from types import SimpleNamespace

import peewee

from pvetop.store.records import DEFAULT_BOOT_TIMEOUT


class BaseModel(peewee.Model):
    class Meta:
        database = None
        legacy_table_names = False


class SchemaInfo(BaseModel):
    """One row: the schema version this file was last written with."""

    version = peewee.IntegerField()

    class Meta:
        table_name = "pvetop_schema"


class GuestPin(BaseModel):
    cluster = peewee.CharField(max_length=255)
    vmid = peewee.IntegerField()
    name = peewee.TextField(default="")
    nodes = peewee.TextField()  # JSON list of node names, sorted
    note = peewee.TextField(default="")
    created_at = peewee.DoubleField()
    who = peewee.CharField(max_length=255, default="")

    class Meta:
        table_name = "guest_pin"
        indexes = ((("cluster", "vmid"), True),)


class GuestLock(BaseModel):
    cluster = peewee.CharField(max_length=255)
    vmid = peewee.IntegerField()
    name = peewee.TextField(default="")
    reason = peewee.TextField(default="")
    created_at = peewee.DoubleField()
    who = peewee.CharField(max_length=255, default="")

    class Meta:
        table_name = "guest_lock"
        indexes = ((("cluster", "vmid"), True),)


class NodeReservation(BaseModel):
    cluster = peewee.CharField(max_length=255)
    node = peewee.CharField(max_length=255)
    reason = peewee.TextField(default="")
    created_at = peewee.DoubleField()
    who = peewee.CharField(max_length=255, default="")

    class Meta:
        table_name = "node_reservation"
        indexes = ((("cluster", "node"), True),)


class NodeMaintenance(BaseModel):
    """Added in schema 2."""

    cluster = peewee.CharField(max_length=255)
    node = peewee.CharField(max_length=255)
    since = peewee.DoubleField()
    reason = peewee.TextField(default="")

    class Meta:
        table_name = "node_maintenance"
        indexes = ((("cluster", "node"), True),)


class NodePowerSettings(BaseModel):
    cluster = peewee.CharField(max_length=255)
    node = peewee.CharField(max_length=255)
    wol_mac = peewee.CharField(max_length=17, null=True)
    allow_power_off = peewee.BooleanField(default=False)
    boot_timeout = peewee.IntegerField(default=DEFAULT_BOOT_TIMEOUT)  # added in schema 2

    class Meta:
        table_name = "node_power"
        indexes = ((("cluster", "node"), True),)


class Setting(BaseModel):
    cluster = peewee.CharField(max_length=255)
    key = peewee.CharField(max_length=255)
    value = peewee.TextField()  # JSON

    class Meta:
        table_name = "setting"
        indexes = ((("cluster", "key"), True),)


class Journal(BaseModel):
    at = peewee.DoubleField(index=True)
    cluster = peewee.CharField(max_length=255, index=True)
    actor = peewee.CharField(max_length=32)
    action = peewee.CharField(max_length=64)
    target = peewee.TextField()
    params = peewee.TextField(default="{}")  # JSON, secrets removed
    result = peewee.TextField(default="")
    upid = peewee.TextField(null=True)
    host = peewee.CharField(max_length=255, default="")  # the pvetop instance that wrote it (schema 3)
    pid = peewee.IntegerField(default=0)

    class Meta:
        table_name = "journal"


class Lease(BaseModel):
    """One row per cluster: which pvetop instance may act on it, until when (schema 3)."""

    cluster = peewee.CharField(max_length=255, unique=True)
    holder = peewee.CharField(max_length=255)  # host:pid:nonce, unique per process run
    host = peewee.CharField(max_length=255)
    pid = peewee.IntegerField()
    token = peewee.IntegerField()  # fencing token: grows with every change of holder
    since = peewee.DoubleField()
    expires_at = peewee.DoubleField()

    class Meta:
        table_name = "lease"


class Intent(BaseModel):
    """An automatic action written down before its API call, completed with its UPID (schema 3)."""

    cluster = peewee.CharField(max_length=255, index=True)
    token = peewee.IntegerField()
    actor = peewee.CharField(max_length=32)
    action = peewee.CharField(max_length=64)
    vmid = peewee.IntegerField(null=True)
    source = peewee.CharField(max_length=255, default="")
    target = peewee.CharField(max_length=255, default="")
    created_at = peewee.DoubleField()
    host = peewee.CharField(max_length=255, default="")
    pid = peewee.IntegerField(default=0)
    upid = peewee.TextField(null=True)
    state = peewee.CharField(max_length=16, default="open", index=True)
    detail = peewee.TextField(default="")
    finished_at = peewee.DoubleField(null=True)

    class Meta:
        table_name = "intent"


MODELS = (
    SchemaInfo,
    GuestPin,
    GuestLock,
    NodeReservation,
    NodeMaintenance,
    NodePowerSettings,
    Setting,
    Journal,
    Lease,
    Intent,
)


def bind_models(database: peewee.Database) -> SimpleNamespace:
    """Subclasses of every model bound to ``database``, by class name (``models.GuestPin``)."""
    bound = {}
    for model in MODELS:
        meta = type("Meta", (), {"database": database, "table_name": model._meta.table_name})
        bound[model.__name__] = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
    return SimpleNamespace(**bound, all=tuple(bound.values()))
