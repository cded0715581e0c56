"""Each soak checker passes on a clean record and fails on a planted violation; the fault schedule
keeps its windows."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

from pvetop.sim.cluster import SimCluster
from tests.soak import checks
from tests.soak.checks import JournalRow, Rules, Sample, TaskRow
from tests.soak.soak import Soak

TOKEN = "root@pam!pvetop"


def move(vmid: int, start: float, end: float | None, *, source="a", target="b", user=TOKEN, kind="qmigrate", upid=""):
    return TaskRow(
        upid or f"UPID:{source}:{vmid}:{start:.0f}:{kind}", source, kind, vmid, user, start, end, "OK", target
    )


def sample(t: float, nodes: dict, guests: dict) -> Sample:
    return Sample(t, nodes, guests)


def test_task_target_reads_the_migration_log():
    lines = ["2026-01-01 00:00:00 starting migration of VM 101 to node 'pve2' (10.0.0.2)"]
    assert checks.task_target(lines) == "pve2"
    assert checks.task_target(["TASK OK"]) is None


def test_automatic_migrations_include_ha_followups_of_pvetop_requests_only():
    request = move(101, 10, 11, kind="hamigrate", upid="req")
    followup = move(101, 20, 80, user="root@pam", upid="follow")
    recovery = move(102, 20, 80, user="root@pam", upid="recovery")
    own = move(103, 5, 50, upid="own")
    found = checks.automatic_migrations([request, followup, recovery, own], TOKEN)
    assert [t.upid for t in found] == ["own", "follow"]


def test_rules_respected():
    rules = Rules(pins={101: frozenset({"a", "b"})}, locks=frozenset({102}), reservations=frozenset({"c"}))
    assert checks.rules_respected([move(101, 0, 10, target="b"), move(103, 0, 10, target="b")], rules) == []
    assert len(checks.rules_respected([move(101, 0, 10, target="d")], rules)) == 1
    assert len(checks.rules_respected([move(102, 0, 10, target="b")], rules)) == 1
    assert len(checks.rules_respected([move(103, 0, 10, target="c")], rules)) == 1


def test_quorum_kept_with_margin():
    three = {"a": ("online", 1), "b": ("online", 1), "c": ("off", 1)}
    assert checks.quorum_kept([sample(0, three, {})], margin=0) == []
    assert len(checks.quorum_kept([sample(0, three, {})], margin=1)) == 1
    two_off = {"a": ("online", 1), "b": ("off", 1), "c": ("off", 1)}
    assert len(checks.quorum_kept([sample(0, two_off, {})], margin=0)) == 1
    crashed = {"a": ("online", 1), "b": ("crashed", 1), "c": ("crashed", 1)}
    assert checks.quorum_kept([sample(0, crashed, {})], margin=0) == []  # the faults' doing


def test_no_running_guest_on_off_node():
    nodes = {"a": ("online", 1), "b": ("off", 1), "c": ("crashed", 1)}
    clean = sample(0, nodes, {1: ("a", "running"), 2: ("b", "stopped"), 3: ("c", "running")})
    assert checks.no_running_guest_on_off_node([clean]) == []
    planted = sample(0, nodes, {1: ("b", "running")})
    assert len(checks.no_running_guest_on_off_node([planted])) == 1


def test_guests_kept():
    first = sample(0, {}, {1: ("a", "running"), 2: ("a", "stopped"), 3: ("b", "running")})
    assert (
        checks.guests_kept(first, sample(9, {}, {1: ("b", "running"), 2: ("a", "stopped"), 3: ("b", "running")})) == []
    )
    assert len(checks.guests_kept(first, sample(9, {}, {1: ("a", "running"), 2: ("a", "stopped")}))) == 1
    stopped = sample(9, {}, {1: ("a", "stopped"), 2: ("a", "stopped"), 3: ("b", "running")})
    assert len(checks.guests_kept(first, stopped)) == 1
    assert checks.guests_kept(first, stopped, may_be_stopped=[1]) == []


def test_no_double_migration():
    assert checks.no_double_migration([move(1, 0, 10), move(1, 10, 20), move(2, 5, 15)]) == []
    assert len(checks.no_double_migration([move(1, 0, 10), move(1, 5, 20, upid="second")])) == 1
    assert len(checks.no_double_migration([move(1, 0, None), move(1, 500, 600, upid="second")])) == 1


def test_no_repeat_within_cooldown():
    assert checks.no_repeat_within_cooldown([move(1, 0, 10), move(1, 1900, 1950)], cooldown=1800) == []
    assert len(checks.no_repeat_within_cooldown([move(1, 0, 10), move(1, 600, 650)], cooldown=1800)) == 1


def test_caps_respected():
    caps = {"parallel": 2, "per_source": 1, "per_target": 1}
    clean = [move(1, 0, 10, source="a", target="b"), move(2, 5, 15, source="c", target="d"), move(3, 10, 20)]
    assert checks.caps_respected(clean, **caps) == []
    same_source = [move(1, 0, 10, source="a", target="b"), move(2, 5, 15, source="a", target="d")]
    assert any("from a" in p for p in checks.caps_respected(same_source, **caps))
    same_target = [move(1, 0, 10, source="a", target="b"), move(2, 5, 15, source="c", target="b")]
    assert any("to b" in p for p in checks.caps_respected(same_target, **caps))
    three = [
        move(1, 0, 10, source="a", target="b"),
        move(2, 1, 15, source="c", target="d"),
        move(3, 2, 9, source="e", target="f"),
    ]
    assert any("cluster-wide" in p for p in checks.caps_respected(three, **caps))


def test_writes_journaled():
    tasks = [move(1, 0, 10, upid="u1"), move(2, 0, 10, upid="u2", user="root@pam")]
    journal = [JournalRow(0, "balancer", "migrate", "qemu/1", "u1", "started")]
    assert checks.writes_journaled(tasks, journal, TOKEN) == []
    assert len(checks.writes_journaled([*tasks, move(3, 0, 10, upid="u3")], journal, TOKEN)) == 1


def test_store_intact(tmp_path):
    path = tmp_path / "rules.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)")
    connection.execute("CREATE INDEX ty ON t (y)")
    connection.executemany("INSERT INTO t (y) VALUES (?)", [(str(i),) for i in range(200)])
    connection.commit()
    connection.close()
    assert checks.store_intact(str(path)) == []
    # plant a broken index: rewrite its rows behind SQLite's back
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA writable_schema=ON")
    connection.execute("UPDATE sqlite_master SET sql='CREATE INDEX ty ON t (x)' WHERE name='ty'")
    connection.commit()
    connection.close()
    assert checks.store_intact(str(path)) != []


def test_no_local_disk_moves():
    assert checks.no_local_disk_moves([move(1, 0, 10), move(2, 0, 10, kind="vzmigrate")], local_disk_vms=[2]) == []
    assert len(checks.no_local_disk_moves([move(2, 0, 10)], local_disk_vms=[2])) == 1


def test_ha_never_moves_back():
    ours = move(5, 0, 60, source="a", target="b", upid="ours")
    back = move(5, 600, 660, source="b", target="a", user="root@pam", upid="back")
    onward = move(5, 600, 660, source="b", target="c", user="root@pam", upid="onward")
    assert checks.ha_never_moves_back([ours, onward], [ours], window=3600) == []
    assert checks.ha_never_moves_back([ours, back], [ours, back], window=3600) == []  # pvetop's own move back
    late = move(5, 7200, 7260, source="b", target="a", user="root@pam", upid="late")
    assert checks.ha_never_moves_back([ours, late], [ours], window=3600) == []
    failed = TaskRow("failed", "a", "qmigrate", 5, TOKEN, 0, 60, "migration aborted", "b")
    assert checks.ha_never_moves_back([failed, back], [failed], window=3600) == []  # it never left a
    assert len(checks.ha_never_moves_back([ours, back], [ours], window=3600)) == 1


def test_ha_move_back_to_a_partner_whose_migration_failed_is_the_ha_managers_answer_to_the_failure():
    """PVE migrates guest 6 along with 5 (positive affinity); 6's migration fails, so the CRM takes
    5 back to 6 on a: not where pvetop put 5. The same move back with 6's migration gone well,
    to another node, or from another node, is still found."""
    ours = move(5, 0, 60, source="a", target="b", upid="ours")
    back = move(5, 80, 140, source="b", target="a", user="root@pam", upid="back")
    failed = TaskRow("partner", "a", "qmigrate", 6, "root@pam", 2, 70, "migration aborted", "b")
    partners = {5: {6}, 6: {5}}
    assert checks.ha_never_moves_back([ours, failed, back], [ours], window=3600, partners=partners) == []
    assert len(checks.ha_never_moves_back([ours, failed, back], [ours], window=3600)) == 1  # no rule binds them
    went_well = TaskRow("partner", "a", "qmigrate", 6, "root@pam", 2, 70, "OK", "b")
    elsewhere = TaskRow("partner", "a", "qmigrate", 6, "root@pam", 2, 70, "migration aborted", "c")
    after = TaskRow("partner", "a", "qmigrate", 6, "root@pam", 2, 90, "migration aborted", "b")  # ends after
    for partner in (went_well, elsewhere, after):
        found = checks.ha_never_moves_back([ours, partner, back], [ours], window=3600, partners=partners)
        assert len(found) == 1, partner


def test_secrets_shown():
    token = "2c3f1d9e-5b7a-4c1e-9f0d-8a6b4e2c1f3a"
    clean = [("stdout", "migrated 101 to pve2"), ("journal", "user root@pam!pvetop, token <hidden>")]
    assert checks.secrets_shown(clean, [token, "", "hunter2-long-password"]) == []
    leaked = [("daemon log", f"Authorization: PVEAPIToken=root@pam!pvetop={token}")]
    assert checks.secrets_shown(leaked, [token]) == ["secret #1 shown in daemon log"]
    assert len(checks.secrets_shown([("stderr", f"...{token[5:20]}...")], [token])) == 1  # a piece of it


def test_memory_within():
    assert checks.memory_within(100_000, 109_000, limit=0.1, what="x") == []
    assert "grew 12.0 %" in checks.memory_within(100_000, 112_000, limit=0.1, what="x")[0]
    assert checks.memory_within(0, 112_000, limit=0.1, what="x") == ["no memory reading of x"]


def test_lag_within():
    assert checks.lag_within([0.001] * 99 + [0.5], p99_limit=0.1) == []  # one slow tick in 100
    assert len(checks.lag_within([0.001] * 98 + [0.5, 0.5], p99_limit=0.1)) == 1
    assert len(checks.lag_within([], p99_limit=0.1)) == 1
    assert checks.percentile([3, 1, 2], 0.5) == 2 and checks.percentile([], 0.99) == 0.0


def test_a_fault_window_passed_while_time_jumped_is_not_left_on():
    """The schedule's latency spike runs 10 to 20 minutes into a cycle. Seen from a round before it
    and one after it (the daemon followed a move meanwhile), it was ended and then started again,
    and stayed on until the next cycle's end; now it is not injected at all."""

    def run(*elapsed: float) -> tuple[float, int]:
        soak = Soak("homelab", dashboard=False)
        sim = SimpleNamespace(cluster=SimCluster("homelab", manual_clock=True), settle=lambda: None)
        for t in elapsed:
            soak._faults(sim, t, {})
        return sim.cluster.faults.latency_ms, soak.figures.faults["latency spike"]

    assert run(0, 700) == (150, 1)  # on within its window
    assert run(0, 700, 1300) == (0, 1)  # and off after it
    assert run(0, 1300) == (0, 0)  # passed whole within one jump
