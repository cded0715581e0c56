"""--db / PVETOP_DB: paths and URLs, the platform default, and clear errors for bad values."""

import socket

import pytest

from pvetop.errors import PvetopError, UsageError
from pvetop.store import location, open_store


def test_default_is_a_sqlite_file_in_the_platform_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PVETOP_DB", raising=False)
    monkeypatch.setattr(location.platformdirs, "user_data_dir", lambda app: str(tmp_path / "data" / app))
    with open_store(None) as store:
        store.reserve_node("c", "pve1")
    assert (tmp_path / "data" / "pvetop" / "pvetop.sqlite").is_file()


def test_env_variable_names_the_store_when_no_option_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("PVETOP_DB", str(tmp_path / "from-env.sqlite"))
    with open_store(None) as store:
        store.reserve_node("c", "pve1")
    assert (tmp_path / "from-env.sqlite").is_file()


@pytest.mark.parametrize(
    "make_value",
    [
        lambda d: f"sqlite:///{d}/abs.sqlite",  # sqlite:/// + an absolute path = four slashes
        lambda d: str(d / "plain.sqlite"),
        lambda d: f"{d}/nested/dirs/are/created.sqlite",
    ],
)
def test_paths_and_sqlite_urls(tmp_path, make_value):
    value = make_value(tmp_path)
    with open_store(value) as store:
        store.lock_guest("c", 100, "web")
    with open_store(value) as store:
        assert [lk.vmid for lk in store.locks("c")] == [100]


def test_relative_sqlite_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///rel.sqlite").close()
    assert (tmp_path / "rel.sqlite").is_file()


def test_sqlite_store_uses_wal(tmp_path):
    with open_store(str(tmp_path / "w.sqlite")) as store:
        assert store._db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "--db is empty"),
        ("mysql://u@h/db", "unsupported database type 'mysql'"),
        ("ftp://example/x", "unsupported database type"),
        ("sqlite://", "needs a file path"),
        ("sqlite://host/x.db", "needs a file path"),
        ("sqlite:///:memory:", "would forget every rule"),
        ("postgresql://u@localhost", "name the database"),
        ("postgresql://u@localhost:notaport/db", "port is not a number"),
    ],
)
def test_bad_values_give_a_clear_usage_error(value, message):
    with pytest.raises(UsageError, match=message):
        open_store(value)


def test_a_password_in_a_bad_url_is_not_echoed():
    with pytest.raises(UsageError) as caught:
        open_store("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(caught.value) and "u:***@h" in str(caught.value)


def test_unwritable_location_gives_a_clear_usage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot create the directory"):
        open_store(str(blocker / "rules.sqlite"))
    with pytest.raises(UsageError, match="is a directory"):
        open_store(str(tmp_path))


def test_unreachable_postgresql_gives_a_clear_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PvetopError, match="cannot open rules store postgresql://pvetop:\\*\\*\\*@127.0.0.1") as caught:
        open_store(f"postgresql://pvetop:hunter2@127.0.0.1:{port}/rules")
    assert "hunter2" not in str(caught.value)
    assert "refused" in str(caught.value).lower()  # the cause, named
    assert "the database was left untouched" in str(caught.value.hint)
