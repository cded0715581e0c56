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
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
POSTGRES_SCHEMES = ("postgresql", "postgres")
URL_HINT = "give a file path, sqlite:///relative/path, sqlite:////absolute/path or postgresql://user@host/dbname"


@dataclass(frozen=True, slots=True)
class Location:
    """A database to open plus a description of it that is safe to print.

    ``missing``: a SQLite file opened for reading that does not exist yet (nothing is stored).
    """

    database: peewee.Database
    display: str
    sqlite_path: Path | None = None
    missing: bool = False


def default_path() -> Path:
    return Path(platformdirs.user_data_dir("pvetop")) / DEFAULT_FILENAME


def resolve(db: str | None, *, read_only: bool = False) -> Location:
    """``db`` as given on the command line; None falls back to ``PVETOP_DB``, then the default.

    ``read_only`` opens a SQLite file so that it cannot be changed (and never waits for the
    write lock another pvetop holds): nothing is created, not even the directory.
    """
    if db is None:
        db = os.environ.get(ENV_VAR) or None
    if db is None:
        return sqlite_location(default_path(), read_only=read_only)
    value = db.strip()
    if not value:
        raise UsageError("--db is empty", hint=URL_HINT)
    if "://" not in value:
        return sqlite_location(Path(value).expanduser(), read_only=read_only)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if parts.netloc or not path:
            raise UsageError(f"--db {value!r}: a sqlite URL needs a file path", hint=URL_HINT)
        return sqlite_location(Path(path).expanduser(), read_only=read_only)
    if scheme in POSTGRES_SCHEMES:
        return postgres_location(value, parts)
    raise UsageError(f"--db {mask_password(value)!r}: unsupported database type {parts.scheme!r}", hint=URL_HINT)


def sqlite_location(path: Path, *, read_only: bool = False) -> Location:
    if str(path) == ":memory:":
        raise UsageError("--db :memory: would forget every rule on exit; give a file path", hint=URL_HINT)
    if path.is_dir():
        raise UsageError(f"rules store {str(path)!r} is a directory; give a file path inside it")
    if path.exists() and not path.is_file():
        raise UsageError(
            f"rules store {str(path)!r} is not a regular file (a device, pipe or socket); give a file path"
        )
    if read_only:
        return _read_only_sqlite(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    except OSError as exc:
        raise UsageError(f"cannot create the directory for rules store {str(path)!r}: {exc.strerror or exc}") from None
    try:
        _create_private(path)
    except OSError as exc:
        raise UsageError(f"cannot create rules store {str(path)!r}: {exc.strerror or exc}") from None
    database = peewee.SqliteDatabase(
        str(path),
        pragmas={
            "busy_timeout": BUSY_TIMEOUT_MS,
            "synchronous": "full",  # a committed rule survives a power cut, not only kill -9
            "foreign_keys": 1,
        },
        # every write transaction takes the write lock up front: read-then-write from several
        # threads would otherwise fail with "database is locked" instead of waiting
        lock_type="IMMEDIATE",
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    return Location(database, str(path), sqlite_path=path)


def _create_private(path: Path) -> None:
    """A new store file is created readable by its owner only (it names the cluster's guests and
    who changed what); SQLite gives its -wal and -shm files the same mode. An existing file is
    left as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def empty_database() -> peewee.SqliteDatabase:
    """Stands in for a store that does not exist yet. One connection shared by every thread: a
    second connection to ``:memory:`` would be another, table-less database."""
    return peewee.SqliteDatabase(":memory:", thread_safe=False, check_same_thread=False)


def _read_only_sqlite(path: Path) -> Location:
    if not path.exists():
        return Location(empty_database(), f"{path} (not created yet)", sqlite_path=path, missing=True)
    database = peewee.SqliteDatabase(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        pragmas={"busy_timeout": BUSY_TIMEOUT_MS, "foreign_keys": 1},
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
