"""`pvetop pins|locks|reserve|unreserve|export|import|reconcile`: scripts get clear output and exit codes.

Commands that read or remove rules work offline with --cluster; the others connect to a simulated
cluster (see the connected tests below) exactly as they would to a real one.
"""

import json
import re

import pytest

from pvetop.cli import main
from pvetop.store import open_store
from tests.clirun import connection

C = "homelab"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def seed(db):
    with open_store(db) as store:
        store.pin_guest(C, 100, "web", ["pve1", "pve2"], note="near storage", who="alice")
        store.lock_guest(C, 101, "db", reason="licence")
        store.reserve_node(C, "pve3", reason="lab")
        store.set_node_power(C, "pve3", wol_mac="aa:bb:cc:dd:ee:03", allow_power_off=True)
        store.set_setting(C, "balancer.mode", "advise")


def test_pins_and_locks_list_offline(db, capsys):
    seed(db)
    code, out, _ = run(capsys, "pins", "list", "--cluster", C, "--db", db)
    assert code == 0
    assert out.splitlines()[0].split() == ["VMID", "NAME", "NODES", "NOTE", "BY", "SINCE"]
    assert "100" in out and "pve1,pve2" in out and "near storage" in out
    code, out, _ = run(capsys, "pins", "list", "--json", "--cluster", C, "--db", db)
    listed = json.loads(out)
    assert listed["cluster"] == C and [(p["vmid"], p["nodes"]) for p in listed["pins"]] == [(100, ["pve1", "pve2"])]
    code, out, _ = run(capsys, "locks", "list", "--json", "--cluster", C, "--db", db)
    assert [(lk["vmid"], lk["reason"]) for lk in json.loads(out)["locks"]] == [(101, "licence")]
    code, out, _ = run(capsys, "locks", "list", "--cluster", "elsewhere", "--db", db)
    assert out == "cluster elsewhere: no locks\n"


def test_removals_work_offline_and_are_journaled(db, capsys):
    seed(db)
    assert run(capsys, "pins", "rm", "100", "--cluster", C, "--db", db)[0] == 0
    assert run(capsys, "locks", "rm", "101", "--cluster", C, "--db", db)[0] == 0
    code, out, _ = run(capsys, "unreserve", "pve3", "--cluster", C, "--db", db)
    assert code == 0 and out == "released pve3\n"
    with open_store(db) as store:
        assert store.ruleset(C).pins == {} and not store.ruleset(C).locks and not store.ruleset(C).reserved
        latest = store.recent_journal(C, limit=3)
        assert [(e.actor, e.action) for e in latest] == [("user", "unreserve"), ("user", "unlock"), ("user", "unpin")]


def test_removing_what_is_not_there_is_an_error(db, capsys):
    # edge 18: a missing rule is bad usage (2, like an unknown guest), with a hint where to look
    code, _, err = run(capsys, "pins", "rm", "100", "--cluster", C, "--db", db)
    assert (
        code == 2
        and err == "pvetop: error: guest 100 has no pin in cluster 'homelab'\n  hint: `pvetop pins` lists them\n"
    )
    code, _, err = run(capsys, "locks", "rm", "101", "--cluster", C, "--db", db)
    assert code == 2 and err.startswith("pvetop: error: guest 101 has no lock in cluster 'homelab'\n")
    code, _, err = run(capsys, "unreserve", "pve3", "--cluster", C, "--db", db)
    assert code == 2 and err.startswith("pvetop: error: node pve3 is not reserved in cluster 'homelab'\n")
    code, _, err = run(capsys, "pins", "rm", "abc", "--cluster", C, "--db", db)
    assert code == 2 and "vmid 'abc' is not a number" in err


def test_export_then_import_into_an_empty_store(db, tmp_path, capsys):
    seed(db)
    out_file = tmp_path / "rules.json"
    code, _, err = run(capsys, "export", "--cluster", C, "--output", str(out_file), "--db", db)
    assert code == 0 and "exported homelab" in err
    document = json.loads(out_file.read_text())
    assert document["format"] == "pvetop-rules" and "journal" not in out_file.read_text()
    empty = str(tmp_path / "empty.sqlite")
    code, out, _ = run(capsys, "import", str(out_file), "--db", empty)
    assert code == 0 and out.startswith("imported into cluster homelab: 1 pins, 1 locks, 1 reservations")
    with open_store(db) as source, open_store(empty) as target:
        assert target.rules(C) == source.rules(C)
        assert target.settings(C) == source.settings(C)
    code, out, _ = run(capsys, "export", "--all-clusters", "--db", empty)
    assert json.loads(out)["clusters"] == document["clusters"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", r"not valid JSON \(line 1, column 2"),
        (
            '{"format": "pvetop-rules", "version": 1, '
            '"clusters": {"homelab": {"pins": [{"vmid": 5, "nodes": ["pve1"]}]}}}',
            r"clusters.homelab.pins\[0\].vmid: vmid 5 is out of range",
        ),
        ("[]", r"\(top\): expected an object, found a list"),
    ],
)
def test_import_checks_the_whole_file_first(db, tmp_path, capsys, content, message):
    seed(db)
    with open_store(db) as store:
        before = store.export(C)["clusters"]
    bad = tmp_path / "in.json"
    bad.write_text(content)
    code, out, err = run(capsys, "import", str(bad), "--db", db)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"pvetop: error: {bad}: ") and "nothing was imported" in err
    assert re.search(message, err)
    with open_store(db) as store:
        assert store.export(C)["clusters"] == before


def test_import_of_a_missing_file_is_a_usage_error(db, tmp_path, capsys):
    code, _, err = run(capsys, "import", str(tmp_path / "nope.json"), "--db", db)
    assert code == 2 and "cannot read" in err and "No such file" in err


@pytest.mark.parametrize(
    "value, message",
    [
        ("mysql://u@h/x", "unsupported database type"),
        ("sqlite:///:memory:", "would forget every rule"),
    ],
)
def test_bad_db_value_is_a_usage_error(capsys, value, message):
    code, _, err = run(capsys, "pins", "list", "--cluster", C, "--db", value)
    assert code == 2 and message in err and "Traceback" not in err


def test_unwritable_db_path_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "pins", "rm", "100", "--cluster", C, "--db", str(tmp_path / "file" / "rules.sqlite"))
    assert code == 2 and "cannot create the directory" in err


def test_a_listing_neither_creates_the_store_nor_its_directory(tmp_path, capsys):
    where = tmp_path / "new" / "rules.sqlite"
    code, out, _ = run(capsys, "pins", "list", "--cluster", C, "--db", str(where))
    assert code == 0 and out == f"cluster {C}: no pins\n"
    assert not where.parent.exists()


def test_pvetop_db_environment_variable(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "env.sqlite")
    monkeypatch.setenv("PVETOP_DB", path)
    seed(path)
    code, out, _ = run(capsys, "locks", "list", "--cluster", C)
    assert code == 0 and "licence" in out


# --------------------------------------------------------------------------- connected to a simulated cluster


@pytest.fixture(scope="module")
def sim():
    from pvetop.sim.runner import start_sim

    with start_sim(scenario="homelab", seed=1, manual_clock=True) as running:
        yield running


@pytest.fixture
def conn(sim):
    return connection(sim)


def test_pins_add_checks_the_cluster_and_records_name_and_user(sim, db, conn, capsys):
    code, out, err = run(capsys, "pins", "add", "103", "pve-mini2", "pve-big", "--note", "big disks", "--db", db, *conn)
    assert code == 0 and out == "pinned 103 (nextcloud) to pve-big, pve-mini2\n"
    assert "outside its pin" in err  # it runs on pve-mini1 today
    with open_store(db) as store:
        pin = store.pin(C, 103)
        assert (pin.name, pin.nodes, pin.note, pin.who) == (
            "nextcloud",
            {"pve-big", "pve-mini2"},
            "big disks",
            "root@pam",
        )
        (entry,) = store.recent_journal(C)
        assert (entry.actor, entry.action, entry.target) == ("user", "pin", "guest/103")
        assert sim.info["token_value"] not in repr(entry)  # no secret in the journal
    code, out, _ = run(capsys, "pins", "list", "--db", db, *conn)
    assert "NOW ON" in out and "pve-mini1 (outside)" in out
    code, out, _ = run(capsys, "pins", "list", "--json", "--db", db, *conn)
    assert json.loads(out)["pins"][0]["node"] == "pve-mini1"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pins", "add", "999", "pve-big"], "no guest 999 in cluster 'homelab'"),
        (["pins", "add", "103", "pve-big", "pve-gone"], "cluster homelab has no node pve-gone"),
        (["locks", "add", "998"], "no guest 998 in cluster 'homelab'"),
        (["reserve", "pve-nope"], "cluster homelab has no node pve-nope"),
        (["reserve", "pve-big", "--cluster", "other"], "--cluster other but the API at 127.0.0.1"),
    ],
)
def test_rules_naming_what_the_cluster_lacks_are_refused(db, conn, capsys, argv, message):
    code, _, err = run(capsys, *argv, "--db", db, *conn)
    assert code == 2 and message in err and "Traceback" not in err
    with open_store(db) as store:
        assert store.recent_journal(None) == []


def test_locks_and_reservations_connected(db, conn, capsys):
    assert run(capsys, "locks", "add", "104", "--reason", "GPU passthrough", "--db", db, *conn)[0] == 0
    assert run(capsys, "reserve", "pve-big", "--reason", "lab", "--db", db, *conn)[0] == 0
    code, out, _ = run(capsys, "locks", "list", "--db", db, *conn)
    assert "jellyfin" in out and "GPU passthrough" in out
    code, out, _ = run(capsys, "export", "--db", db, *conn)  # connected: the cluster's own name
    assert code == 0 and list(json.loads(out)["clusters"]) == [C]
    assert run(capsys, "unreserve", "pve-big", "--db", db, *conn)[0] == 0
    with open_store(db) as store:
        assert store.ruleset(C).locks == {104} and store.ruleset(C).reserved == frozenset()
        assert [(e.action, e.params.get("who")) for e in reversed(store.recent_journal(C))] == [
            ("lock", "root@pam"),
            ("reserve", "root@pam"),
            ("unreserve", None),
        ]


def test_suggested_pins_from_ha_node_affinity(db, conn, capsys):
    code, out, _ = run(capsys, "pins", "suggest", "--json", "--db", db, *conn)
    listed = json.loads(out)["suggestions"]
    assert [(s["vmid"], s["nodes"], s["source"]) for s in listed] == [
        (100, ["pve-mini1", "pve-mini2"], "ha-rule:ha-on-minis"),
        (112, ["pve-mini1", "pve-mini2"], "ha-rule:ha-on-minis"),
    ]
    with open_store(db) as store:
        assert store.pins(C) == []  # listing changes nothing
    code, out, _ = run(capsys, "pins", "suggest", "--accept", "112", "--db", db, *conn)
    assert code == 0 and out.startswith("pinned 112 (vaultwarden) to pve-mini1, pve-mini2")
    code, _, err = run(capsys, "pins", "suggest", "--accept", "101", "--db", db, *conn)
    assert code == 2 and "nothing is suggested for guest 101" in err
    with open_store(db) as store:
        assert [(p.vmid, p.note) for p in store.pins(C)] == [(112, "from ha-rule:ha-on-minis")]


def test_reconcile_lists_then_applies_only_when_confirmed(db, conn, capsys):
    with open_store(db) as store:
        store.pin_guest(C, 150, "old-vm", ["pve-big"])
        store.lock_guest(C, 101, "adguard")  # 101 is "pihole" now
        store.pin_guest(C, 103, "nextcloud", ["pve-mini1", "pve-retired"])
        store.reserve_node(C, "pve-retired")
        before = store.rules(C)
    code, out, _ = run(capsys, "reconcile", "--db", db, *conn)  # no terminal to ask on: nothing applied
    assert code == 0 and "4 rule(s) no longer match" in out and "nothing changed (pass --yes" in out
    assert "guest 150 (old-vm) no longer exists" in out and "now belongs to 'pihole', not 'adguard'" in out
    assert "keep only pve-mini1" in out
    code, out, _ = run(capsys, "reconcile", "--dry-run", "--json", "--db", db, *conn)
    assert json.loads(out)["applied"] is False and len(json.loads(out)["changes"]) == 4
    with open_store(db) as store:
        assert store.rules(C) == before
    code, out, _ = run(capsys, "reconcile", "--yes", "--db", db, *conn)
    assert code == 0 and "applied 4 change(s)" in out
    with open_store(db) as store:
        assert [(p.vmid, p.nodes) for p in store.pins(C)] == [(103, {"pve-mini1"})]
        assert store.locks(C) == [] and store.reservations(C) == []
    code, out, _ = run(capsys, "reconcile", "--db", db, *conn)
    assert "nothing to reconcile" in out


def test_the_dashboard_refuses_a_bad_db_before_connecting(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "--db", str(tmp_path / "file" / "rules.sqlite"), "--host", "127.0.0.1:1")
    assert code == 2 and "cannot create the directory for rules store" in err and "Traceback" not in err
