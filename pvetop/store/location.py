"""Where the rules live: ``--db`` / ``PVETOP_DB`` as a path or URL, else the platform data dir.

Every bad value becomes a ``UsageError`` naming the value (with any password masked), so a typo in
``--db`` never ends in a peewee traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee
import platformdirs

from pvetop.errors import UsageError

ENV_VAR = "PVETOP_DB"
DEFAULT_FILENAME = "pvetop.sqlite"
BUSY_TIMEOUT_MS = 15_000
POSTGRES_SCHEMES = ("postgresql", "postgres")
URL_HINT = "give a file path, sqlite:///relative/path, sqlite:////absolute/path or postgresql://user@host/dbname"


@dataclass(frozen=True, slots=True)
class Location:
    """A database to open plus a description of it that is safe to print."""

    database: peewee.Database
    display: str
    sqlite_path: Path | None = None


def default_path() -> Path:
    return Path(platformdirs.user_data_dir("pvetop")) / DEFAULT_FILENAME


def resolve(db: str | None) -> Location:
    """``db`` as given on the command line; None falls back to ``PVETOP_DB``, then the default."""
    if db is None:
        db = os.environ.get(ENV_VAR) or None
    if db is None:
        return sqlite_location(default_path())
    value = db.strip()
    if not value:
        raise UsageError("--db is empty", hint=URL_HINT)
    if "://" not in value:
        return sqlite_location(Path(value).expanduser())
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if parts.netloc or not path:
            raise UsageError(f"--db {value!r}: a sqlite URL needs a file path", hint=URL_HINT)
        return sqlite_location(Path(path).expanduser())
    if scheme in POSTGRES_SCHEMES:
        return postgres_location(value, parts)
    raise UsageError(f"--db {mask_password(value)!r}: unsupported database type {parts.scheme!r}", hint=URL_HINT)


def sqlite_location(path: Path) -> Location:
    if str(path) == ":memory:":
        raise UsageError("--db :memory: would forget every rule on exit; give a file path", hint=URL_HINT)
    if path.is_dir():
        raise UsageError(f"rules store {str(path)!r} is a directory; give a file path inside it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the directory for rules store {str(path)!r}: {exc.strerror or exc}") from None
    database = peewee.SqliteDatabase(
        str(path),
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": BUSY_TIMEOUT_MS,
            "synchronous": "full",  # a committed rule survives a power cut, not only kill -9
            "foreign_keys": 1,
        },
        # every write transaction takes the write lock up front: read-then-write from several
        # threads would otherwise fail with "database is locked" instead of waiting (FACTS.md)
        lock_type="IMMEDIATE",
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    return Location(database, str(path), sqlite_path=path)


def postgres_location(url: str, parts) -> Location:
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise UsageError(f"--db {mask_password(url)!r}: name the database after the host", hint=URL_HINT)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--db {mask_password(url)!r}: the port is not a number") from None
    connect: dict = {}
    if parts.hostname:
        connect["host"] = parts.hostname
    if port:
        connect["port"] = port
    if parts.username:
        connect["user"] = unquote(parts.username)
    if parts.password:
        connect["password"] = unquote(parts.password)
    return Location(peewee.PostgresqlDatabase(name, **connect), mask_password(url))


def mask_password(url: str) -> str:
    """The URL with its password replaced, for messages and the journal."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
