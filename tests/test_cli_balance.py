"""`pvetop plan`, `pvetop balance` and `pvetop settings` against the simulator."""

from __future__ import annotations

import json

import pytest

from pvetop.cli import main
from pvetop.store import open_store
from tests.clirun import connection, run_driven
from tests.engine.simdrive import migration_tasks, running_sim


@pytest.fixture
def sim():
    with running_sim("imbalanced") as running:
        yield running


def run(sim, db, capsys, *argv: str) -> tuple[int, str, str]:
    return run_driven(sim, capsys, [*argv, *connection(sim, db)])


def test_plan_json_has_the_documented_shape_and_writes_nothing(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "plan", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert set(plan) == {"imbalance_before", "imbalance_after", "moves", "held"}
    assert plan["imbalance_before"] > 0.25 > plan["imbalance_after"]
    assert plan["moves"] and all(
        set(move) == {"vmid", "name", "from", "to", "gib", "reason", "imbalance_after"} for move in plan["moves"]
    )
    assert [m["imbalance_after"] for m in plan["moves"]] == sorted(
        (m["imbalance_after"] for m in plan["moves"]), reverse=True
    )
    assert not migration_tasks(sim)
    with open_store(db) as store:
        assert store.recent_journal() == []


def test_plan_table_shows_reasons(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "plan")
    assert code == 0, err
    assert "mode: advise" in out and "REASON" in out and "imbalance" in out


def test_balance_yes_runs_until_even_and_journals_each_move(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "balance", "--yes", "--json", "--poll", "0.01")
    assert code == 0, err
    result = json.loads(out)
    assert result["moves"] and all(move["state"] == "ok" and move["reason"] for move in result["moves"])
    assert result["imbalance_after"] < 0.25 < result["imbalance_before"]
    with open_store(db) as store:
        done = [e for e in store.journal_entries("lopsided", actions=("migrate",)) if e.result == "ok"]
        assert len(done) == len(result["moves"]) and all(e.actor == "balancer" for e in done)


def test_balance_max_moves_and_no_confirmation_without_a_terminal(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "balance")
    assert code == 2 and "--yes" in err and not migration_tasks(sim)
    code, out, err = run(sim, db, capsys, "balance", "--yes", "--max-moves", "1", "--poll", "0.01")
    assert code == 0, err
    assert len(migration_tasks(sim)) == 1


def test_balance_refuses_in_read_only_mode(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "balance", "--yes", "--read-only")
    assert code == 2 and "read-only" in err and not migration_tasks(sim)


def test_settings_set_get_list_validated_and_journaled(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "settings", "set", "balancer.threshold", "0.3")
    assert code == 0, err
    code, out, err = run(sim, db, capsys, "settings", "get", "balancer.threshold")
    assert (code, out.strip()) == (0, "0.3")
    code, out, err = run(sim, db, capsys, "settings", "list", "--json")
    listed = {item["key"]: item for item in json.loads(out)["settings"]}
    assert listed["balancer.threshold"]["value"] == 0.3 and listed["balancer.threshold"]["set"]
    assert listed["balancer.mode"] == {"key": "balancer.mode", "value": "advise", "default": "advise", "set": False}
    assert any(key.startswith("power.") for key in listed)
    with open_store(db) as store:
        [entry] = store.journal_entries("lopsided", actions=("setting.set",))
        assert entry.target == "setting/balancer.threshold" and entry.params["value"] == 0.3


def test_settings_refuse_bad_keys_and_values_with_one_line(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "settings", "set", "balancer.treshold", "0.3")
    assert code == 2 and "did you mean 'balancer.threshold'" in err and "Traceback" not in err
    code, out, err = run(sim, db, capsys, "settings", "set", "balancer.mode", "sometimes")
    assert code == 2 and "must be one of off, advise, auto" in err
    code, out, err = run(sim, db, capsys, "settings", "set", "balancer.threshold", "7")
    assert code == 2 and "between" in err


def test_threshold_is_typed_as_shown_a_percentage_or_a_fraction(db, capsys):
    """Edge 14: pvetop shows imbalance as a percentage everywhere, so the threshold takes one too."""
    assert main(["settings", "set", "balancer.threshold", "30%", "--cluster", "c1", "--db", db]) == 0
    assert main(["settings", "get", "balancer.threshold", "--cluster", "c1", "--db", db]) == 0
    assert capsys.readouterr().out.strip().endswith("0.3")
    assert main(["settings", "set", "balancer.threshold", "300%", "--cluster", "c1", "--db", db]) == 2
    assert "between 1% and 100%" in capsys.readouterr().err
    assert main(["settings", "set", "balancer.threshold", "lots%", "--cluster", "c1", "--db", db]) == 2
    assert "must be a number or a percentage" in capsys.readouterr().err


def test_settings_offline_with_cluster(db, capsys):
    assert main(["settings", "set", "balancer.mode", "auto", "--cluster", "c1", "--db", db]) == 0
    assert main(["settings", "get", "balancer.mode", "--cluster", "c1", "--db", db]) == 0
    assert capsys.readouterr().out.strip().endswith("auto")


def test_plan_is_a_dry_run_whatever_the_mode(sim, db, capsys):
    run(sim, db, capsys, "settings", "set", "balancer.mode", "off")
    code, out, err = run(sim, db, capsys, "plan")
    assert code == 0 and "mode: off" in out and "REASON" in out
