"""`pvetop migrate` and `pvetop evacuate` against the simulator (manual clock, stepped by the test)."""

from __future__ import annotations

import io
import json

import pytest

from pvetop.store import open_store
from tests.clirun import run
from tests.engine.simdrive import guest_node, max_overlap, migration_tasks, set_failure_rate


def test_migrate_wait_json_exits_0_with_the_tasks_result(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "migrate", "103", "pve-big", "--wait", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["state"] == "ok" and result["exitstatus"] == "OK" and result["target"] == "pve-big"
    assert result["upid"].startswith("UPID:pve-mini1:") and ":qmigrate:103:" in result["upid"]
    assert "% (" in err  # progress lines go to stderr while stdout carries the JSON
    assert guest_node(sim, 103) == "pve-big"
    with open_store(db) as store:
        assert [e.result for e in store.recent_journal("homelab")] == ["ok", "started"]


def test_migrate_refused_by_pve_exits_4_with_its_text(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "migrate", "103", "pve-big", "--offline", "--wait", "--json")
    assert code == 4
    assert json.loads(out)["state"] == "failed"
    assert "can't migrate running VM without --online" in err
    assert guest_node(sim, 103) == "pve-mini1"


def test_local_disk_vm_needs_the_flag_and_then_succeeds(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "migrate", "104", "pve-big", "--wait")
    assert code == 4 and "has local disks" in err and "--with-local-disks" in err
    assert migration_tasks(sim) == []

    code, out, err = run(sim, db, capsys, "migrate", "104", "pve-big", "--wait", "--with-local-disks")
    assert code == 0, err
    assert "done" in out and "task: UPID:" in out
    assert guest_node(sim, 104) == "pve-big"


def test_migrate_without_wait_returns_once_started(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "migrate", "102", "pve-mini2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["state"] == "running" and ":vzmigrate:102:" in result["upid"] and result["restart"]


def test_ha_guest_goes_through_the_ha_manager(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "migrate", "100", "pve-big", "--wait", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["via_ha"] and ":hamigrate:100:" in result["ha_upid"] and ":qmigrate:100:" in result["upid"]
    assert "HA-managed" in err


def test_injected_failure_exits_4_with_the_log_line(sim, db, capsys):
    set_failure_rate(sim, 1.0)
    code, out, err = run(sim, db, capsys, "migrate", "103", "pve-big", "--wait")
    assert code == 4
    assert "failed: migration problems: ERROR: online migrate failure - aborting" in err
    assert guest_node(sim, 103) == "pve-mini1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("migrate", "999", "pve-big"), "no guest 999"),
        (("migrate", "abc", "pve-big"), "is not a number"),
        (("migrate", "103", "nowhere"), "no node 'nowhere'"),
        (("migrate", "103", "pve-mini1"), "already on this node"),
        (("migrate", "103", "pve-big", "--bwlimit", "0"), "--bwlimit"),
        (("evacuate", "nowhere", "--yes"), "no node 'nowhere'"),
    ],
)
def test_bad_usage_is_a_clear_error(sim, db, capsys, argv, message):
    code, out, err = run(sim, db, capsys, *argv)
    assert code in (2, 4) and message in err and "Traceback" not in err


def test_evacuate_without_terminal_or_yes_refuses(sim, db, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1")
    assert code == 2
    assert "needs a confirmation and stdin is not a terminal" in err and "--yes" in err
    assert "evacuate pve-mini1: 7 move(s)" in out and "runs at most 2 at once" in out
    assert migration_tasks(sim) == []


def test_evacuate_yes_json_moves_everything_and_marks_maintenance(sim, db, capsys):
    with open_store(db) as store:
        store.reserve_node("homelab", "pve-mini2")
    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1", "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["complete"] and len(result["moves"]) == 7
    assert {move["target"] for move in result["moves"]} == {"pve-big"}
    assert all(move["state"] == "ok" for move in result["moves"])
    with open_store(db) as store:
        assert [m.node for m in store.maintenance("homelab")] == ["pve-mini1"]

    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1", "--clear-maintenance")
    assert code == 0 and "maintenance cleared" in out
    with open_store(db) as store:
        assert store.maintenance("homelab") == []


def test_evacuate_leaves_pinned_guests_unless_told(sim, db, capsys):
    with open_store(db) as store:
        store.pin_guest("homelab", 105, "paperless", ["pve-mini1"])
    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1", "--yes")
    assert code == 4
    assert "held by a pin or lock (1)" in out and "1 left on pve-mini1 (105)" in out
    assert guest_node(sim, 105) == "pve-mini1"

    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1", "--yes", "--move-pinned")
    assert code == 0, err
    assert guest_node(sim, 105) != "pve-mini1"


def test_ha_vm_with_local_disks_is_refused_before_asking_pve(sim, db, capsys):
    with sim.cluster.lock:  # make the HA guest's disk local
        sim.cluster.guests[100].disks[0].storage = "local-lvm"
    code, out, err = run(sim, db, capsys, "migrate", "100", "pve-big", "--wait", "--with-local-disks")
    assert code == 4 and "HA-managed and has local disks" in err and "does not copy local disks" in err
    assert migration_tasks(sim) == []


def test_evacuate_parallel_sets_the_moves_at_once(sim, db, capsys):
    with open_store(db) as store:
        store.reserve_node("homelab", "pve-mini2")
    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1", "--yes", "--parallel", "3")
    assert code == 0, err
    assert "runs at most 3 at once" in out
    # the evacuation's moves; PVE's CRM then takes HA vm:100 back to the minis its rule prefers
    record = [task for task in migration_tasks(sim) if "to node 'pve-big'" in " ".join(t for _, t in task.lines)]
    assert len(record) == 7 and max_overlap(record) == 3


def test_evacuate_parallel_must_be_sensible(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "evacuate", "pve-mini1", "--yes", "--parallel", "0")
    assert code == 2 and "max_parallel must be a whole number between 1 and 64" in err
    assert out == "" and migration_tasks(sim) == []
