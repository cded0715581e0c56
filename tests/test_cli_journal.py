"""`pvetop journal [--since T] [--json]`: the history, each entry with its instance, actor and result."""

import json
import os
import socket

import pytest

from pvetop.cli import main
from pvetop.cli.journal import parse_since
from pvetop.store import open_store

C = "homelab"
T0 = 1_800_000_000.0


@pytest.fixture
def db(db):
    """A store with a few journal entries (one of another cluster) at T0, T0 + 1, ..."""
    clock = iter(range(int(T0), int(T0) + 100))
    with open_store(db, clock=lambda: float(next(clock))) as store:
        store.pin_guest(C, 100, "web", ["pve1"])
        store.journal(
            C, "balancer", "migrate", "guest/101", {"to": "pve2"}, "OK", upid="UPID:pve1:1:2:3:qmigrate:101:root@pam:"
        )
        store.journal(C, "power", "power_off", "node/pve-big", {}, "node is off")
        store.journal("other", "user", "pin", "guest/7", {})
    return db


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lists_every_entry_oldest_first_with_instance_actor_subject_and_upid(db, capsys):
    code, out, _ = run(capsys, "journal", "--db", db, "--cluster", C, "--json")
    assert code == 0
    entries = json.loads(out)["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("user", "pin"),
        ("balancer", "migrate"),
        ("power", "power_off"),
    ]
    migrate = entries[1]
    assert migrate["vmid"] == 101 and migrate["upid"].startswith("UPID:pve1") and migrate["result"] == "OK"
    assert entries[2]["node"] == "pve-big" and entries[2]["vmid"] is None
    assert migrate["instance"] == {"host": socket.gethostname(), "pid": os.getpid()}
    assert T0 < migrate["epoch"] < entries[2]["epoch"]


def test_since_keeps_only_later_entries_and_the_table_names_the_instance(db, capsys):
    _, out, _ = run(capsys, "journal", "--db", db, "--cluster", C, "--json")
    since = json.loads(out)["entries"][1]["epoch"]  # the balancer's move
    code, out, _ = run(capsys, "journal", "--db", db, "--cluster", C, "--since", str(since))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "INSTANCE", "ACTOR", "ACTION", "TARGET", "RESULT", "UPID"]
    assert len(lines) == 3 and "balancer" in lines[1] and "power_off" in lines[2]
    assert f"{socket.gethostname()} ({os.getpid()})" in lines[1]


def test_since_reads_relative_times_dates_and_epochs():
    assert parse_since("2h", now=T0) == T0 - 7200
    assert parse_since("30m", now=T0) == T0 - 1800
    assert parse_since(str(T0)) == T0
    assert parse_since("2026-12-06") < parse_since("2026-12-06 14:30")


def test_a_bad_since_is_a_usage_error_not_a_traceback(db, capsys):
    assert main(["journal", "--db", db, "--cluster", C, "--since", "yesterday"]) == 2
    assert "'yesterday' is not a time" in capsys.readouterr().err


def test_control_characters_in_entries_are_shown_not_obeyed(db, capsys):
    with open_store(db) as store:
        store.journal(C, "user", "pin", "guest/5", {}, "\x1b]0;pwned\x07")
    _, out, _ = run(capsys, "journal", "--db", db, "--cluster", C)
    assert "\x1b" not in out and "␛]0;pwned␇" in out


def test_an_empty_journal_says_so(db, capsys):
    code, out, _ = run(capsys, "journal", "--db", db, "--cluster", "nowhere")
    assert code == 0 and "no journal entries for cluster nowhere" in out
