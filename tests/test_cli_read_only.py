"""Read-only mode binds every write of every command, however it is asked for.

The flag before or after the command, ``PVETOP_READ_ONLY`` and a profile's ``read_only = true``
each make every write command refuse with one line and exit 2, and neither the cluster (no task)
nor the rules store (no journal row, same bytes) changes. Below the CLI, the client and the store
refuse writes themselves, so a command that forgets to ask still cannot write.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from pvetop.cli import main
from pvetop.config import settings_from_sim_info
from pvetop.errors import ReadOnlyRefused
from pvetop.model import Guest
from pvetop.pve import PveClient, actions
from pvetop.store import open_store
from tests.clirun import connection, run_driven
from tests.engine.simdrive import migration_tasks, running_sim

C = "homelab"

WRITE_COMMANDS = {
    "migrate": ["migrate", "103", "pve-big"],
    "evacuate": ["evacuate", "pve-mini2", "--yes"],
    "clear-maintenance": ["evacuate", "pve-mini2", "--clear-maintenance"],
    "guest shutdown": ["guest", "shutdown", "110"],
    "power off": ["power", "off", "pve-mini2", "--yes"],
    "power wake": ["power", "wake", "pve-mini2"],
    "power sleep-with-node": ["power", "sleep-with-node", "111"],
    "pins add": ["pins", "add", "103", "pve-big"],
    "pins rm": ["pins", "rm", "100"],
    "pins suggest --accept-all": ["pins", "suggest", "--accept-all"],
    "locks add": ["locks", "add", "103"],
    "locks rm": ["locks", "rm", "101"],
    "reserve": ["reserve", "pve-big"],
    "unreserve": ["unreserve", "pve-mini1"],
    "import": ["import", "IMPORT_FILE"],
    "reconcile --yes": ["reconcile", "--yes"],
}


@pytest.fixture(scope="module")
def sim():
    with running_sim() as running:
        yield running


@pytest.fixture
def db(db):
    path = Path(db)
    with open_store(db) as store:  # something for the removals to remove
        store.pin_guest(C, 100, "homeassistant", ["pve-mini1"])
        store.lock_guest(C, 101, "pihole")
        store.reserve_node(C, "pve-mini1")
        store.set_maintenance(C, "pve-mini2")
    return path


def guest_tasks(sim) -> int:
    with sim.cluster.lock:
        return len(sim.cluster.tasks)


def journal_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM journal").fetchone()[0]


def place(command: list[str], tmp_path: Path) -> list[str]:
    export = tmp_path / "rules.json"
    export.write_text(json.dumps({"format": "pvetop-rules", "version": 1, "clusters": {}}))
    return [str(export) if word == "IMPORT_FILE" else word for word in command]


@pytest.mark.parametrize("how", ["flag before the command", "flag after it", "environment", "profile"])
@pytest.mark.parametrize("name", list(WRITE_COMMANDS))
def test_every_write_command_refuses_in_read_only_mode(sim, db, tmp_path, monkeypatch, capsys, name, how):
    command = place(WRITE_COMMANDS[name], tmp_path)
    common = [*connection(sim), f"--db={db}"]
    if how == "flag before the command":
        argv = ["--read-only", *command, *common]
    elif how == "flag after it":
        argv = [*command, "--read-only", *common]
    elif how == "environment":
        monkeypatch.setenv("PVETOP_READ_ONLY", "1")
        argv = [*command, *common]
    else:
        config = tmp_path / "config.toml"
        config.write_text("[profiles.lab]\nread_only = true\n")
        argv = [*command, f"--config={config}", *common]
    tasks_before, rows_before, bytes_before = guest_tasks(sim), journal_rows(db), db.read_bytes()

    code, out, err = run_driven(sim, capsys, argv)

    assert code == 2, (out, err)
    assert err.startswith("pvetop: error: read-only mode (") and err.count("\n") == 1, err
    assert "refused; nothing was changed" in err
    assert guest_tasks(sim) == tasks_before
    assert journal_rows(db) == rows_before and db.read_bytes() == bytes_before


def test_a_false_environment_value_leaves_writes_allowed(sim, db, monkeypatch, capsys):
    monkeypatch.setenv("PVETOP_READ_ONLY", "0")
    code, out, err = run_driven(sim, capsys, ["locks", "add", "103", *connection(sim), f"--db={db}"])
    assert code == 0, err
    assert out.startswith("locked 103")


def test_a_bad_environment_value_is_a_usage_error(db, monkeypatch, capsys):
    monkeypatch.setenv("PVETOP_READ_ONLY", "maybe")
    assert main(["locks", "rm", "101", "--cluster", C, f"--db={db}"]) == 2
    assert "PVETOP_READ_ONLY: must be true or false, not 'maybe'" in capsys.readouterr().err


def test_reading_commands_still_work_in_read_only_mode(sim, db, capsys):
    code, out, err = run_driven(sim, capsys, ["--read-only", "pins", "list", *connection(sim), f"--db={db}"])
    assert code == 0, err
    assert "homeassistant" in out
    code, out, err = run_driven(sim, capsys, ["reconcile", "--dry-run", "--read-only", *connection(sim), f"--db={db}"])
    assert code == 0, err


def test_the_client_itself_refuses_writes_in_read_only_mode(sim):
    settings = settings_from_sim_info(sim.info)
    guest = Guest(103, "qemu", "pve-mini1", "running", name="nextcloud")
    before = len(migration_tasks(sim))
    with PveClient.connect(replace(settings, read_only="a test")) as client:
        client.fetch_snapshot()  # reads pass
        with pytest.raises(ReadOnlyRefused, match=r"read-only mode \(a test\): POST /nodes/pve-mini1/qemu/103/migrate"):
            actions.migrate(client, guest, "pve-big")
    assert len(migration_tasks(sim)) == before


def test_the_store_itself_refuses_writes_when_opened_read_only(db):
    before = db.read_bytes()
    with open_store(str(db), read_only="a test") as store:
        assert [pin.vmid for pin in store.pins(C)] == [100]
        with pytest.raises(ReadOnlyRefused, match="open read-only \\(a test\\)"):
            store.lock_guest(C, 103, "nextcloud")
        with pytest.raises(ReadOnlyRefused):
            store.journal(C, "user", "note", "cluster/homelab")
    assert db.read_bytes() == before
