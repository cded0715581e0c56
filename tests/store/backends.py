"""The store's two backends for the tests: SQLite files and a throwaway PostgreSQL server.

Every store test runs against both. PostgreSQL comes from ``PVETOP_TEST_POSTGRES_URL`` (set by
``.ci/run``, which starts the server with ``.ci/postgres``); without it the tests start their own
server the same way where they can (root, Debian's PostgreSQL). Each test gets a database of its
own, dropped afterwards, so tests stay independent under pytest-xdist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

BACKENDS = ("sqlite", "postgresql")
URL_VAR = "PVETOP_TEST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "postgres"


def _admin_connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get(URL_VAR)
    if url:
        yield url
        return
    if os.environ.get("CI"):
        pytest.fail(f"{URL_VAR} is not set: .ci/run starts PostgreSQL and sets it (see .ci/postgres)")
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip(f"no PostgreSQL for the store tests: set {URL_VAR}, or run as root to start one")
    directory = tempfile.mkdtemp(prefix="pvetop-pg-")
    started = subprocess.run([str(SCRIPT), "start", directory], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"could not start PostgreSQL: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(SCRIPT), "stop", directory], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


class Databases:
    """Makes fresh databases of one backend; each is dropped when the test ends."""

    def __init__(self, backend: str, tmp_path: Path, server: str | None) -> None:
        self.backend = backend
        self._tmp_path = tmp_path
        self._server = server
        self._created: list[str] = []

    def new(self, label: str = "rules") -> str:
        """A ``--db`` value for an empty database of this backend."""
        if self.backend == "sqlite":
            return str(self._tmp_path / f"{label}.sqlite")
        assert self._server is not None
        name = f"pvetop_{label}_{uuid.uuid4().hex[:12]}"
        with _admin_connect(self._server) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return with_database(self._server, name)

    def drop_all(self) -> None:
        if not self._created:
            return
        assert self._server is not None
        with _admin_connect(self._server) as admin:
            for name in self._created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def integrity_ok(store) -> bool:
    """SQLite checks its pages; PostgreSQL's WAL makes a committed row durable, so a read that works is the check."""
    database = store._db
    if database.__class__.__name__.startswith("Sqlite"):
        return database.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"
    return database.execute_sql("SELECT 1").fetchone()[0] == 1


NewDatabase = Callable[[str], str]
