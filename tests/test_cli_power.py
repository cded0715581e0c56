"""`pvetop power plan|off|wake|report|sleep-with-node` against the homelab simulator (manual clock)."""

from __future__ import annotations

import json

from pvetop.cli import main
from pvetop.store import open_store
from tests.clirun import connection, run

BIG = "pve-big"


def configure(sim, db, *, margin: int) -> None:
    with open_store(db) as store:
        store.set_setting("homelab", "power.failure_margin", margin)
        store.set_setting("homelab", "power.wake_method", "packet")
        store.set_setting("homelab", "power.wol_host", "127.0.0.1")
        store.set_setting("homelab", "power.wol_port", sim.info["wol_port"])
        store.set_node_power("homelab", BIG, allow_power_off=True)


def test_plan_json_has_the_documented_shape_and_margin_one_says_why(sim, db, capsys):
    configure(sim, db, margin=1)
    code, out, err = run(sim, db, capsys, "power", "plan", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["quorum"] == {"votes_total": 3, "votes_needed": 2, "failure_margin": 1}
    assert sorted(n["node"] for n in plan["nodes"]) == [BIG, "pve-mini1", "pve-mini2"]
    for node in plan["nodes"]:
        assert set(node) == {"node", "state", "action", "reasons"} and node["action"] in ("keep", "power_off", "wake")
        assert node["state"] == "on" and node["reasons"]
    big = next(n for n in plan["nodes"] if n["node"] == BIG)
    assert big["action"] == "keep"
    assert any("failure margin 0 below the required 1" in r for r in big["reasons"])


def test_off_refused_exits_4_with_the_reasons_then_sleep_marks_let_it_power_off_and_wake(sim, db, capsys):
    configure(sim, db, margin=1)
    code, out, err = run(sim, db, capsys, "power", "off", BIG, "--yes")
    assert code == 4 and "failure margin 0 below the required 1" in out and "refused" in err
    configure(sim, db, margin=0)
    with sim.cluster.lock:
        local = [
            g.vmid
            for g in sim.cluster.guests.values()
            if g.node == BIG and g.status == "running" and any(d.storage == "big-zfs" for d in g.disks)
        ]
    for vmid in local:
        code, out, err = run(sim, db, capsys, "power", "sleep-with-node", str(vmid))
        assert code == 0 and "sleeps with its node" in out
    code, out, err = run(sim, db, capsys, "power", "off", BIG, "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and result["detail"] == "offline"
    assert "pve-big: draining" in err and "pve-big: shutting down" in err and "pve-big: off" in err
    with sim.cluster.lock:
        assert not sim.cluster.nodes[BIG].reachable
    code, out, err = run(sim, db, capsys, "power", "wake", BIG, "--wait")
    assert code == 0, err
    assert "pve-big: waking (magic packet to 3C:EC:EF:42:9B:20)" in out and "pve-big: online" in out
    code, out, err = run(sim, db, capsys, "power", "report", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["cluster"] == "homelab" and [n["node"] for n in report["nodes"]] == [BIG]


def test_unknown_node_and_guest_are_usage_errors(sim, db, capsys):
    assert main(["power", "off", "nope", "--yes", *connection(sim, db)]) == 2
    assert "no node 'nope'" in capsys.readouterr().err
    assert main(["power", "sleep-with-node", "4242", *connection(sim, db)]) == 2
    assert "no guest 4242" in capsys.readouterr().err


def test_failure_margin_zero_through_settings_needs_yes_and_is_journaled(db, capsys):
    code = main(["settings", "set", "power.failure_margin", "0", "--cluster", "homelab", "--db", db])
    assert code == 2
    err = capsys.readouterr().err
    assert "one more node failure loses quorum" in err and "self-fence" in err and "--yes" in err
    assert main(["settings", "set", "power.failure_margin", "0", "--yes", "--cluster", "homelab", "--db", db]) == 0
    with open_store(db) as store:
        assert store.get_setting("homelab", "power.failure_margin") == 0
        entries = store.journal_entries("homelab", actions=("setting.set",), target="setting/power.failure_margin")
        assert [e.params["value"] for e in entries] == [0]
