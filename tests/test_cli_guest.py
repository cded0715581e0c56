"""`pvetop guest start|shutdown|stop|reboot` against the simulator (manual clock, stepped by the test)."""

from __future__ import annotations

import json

from pvetop.cli import main
from tests.clirun import connection, run


def status_of(sim, vmid: int) -> tuple[str, str]:
    with sim.cluster.lock:
        guest = sim.cluster.guests[vmid]
        return guest.status, guest.ha_state


def test_shutdown_wait_json_then_start_again(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "guest", "shutdown", "103", "--wait", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["action"] == "shutdown" and [j["state"] for j in document["jobs"]] == ["ok"]
    assert document["jobs"][0]["upid"].split(":")[5] == "qmshutdown"
    assert status_of(sim, 103)[0] == "stopped"
    code, out, err = run(sim, db, capsys, "guest", "start", "103", "--wait")
    assert code == 0, err
    assert "start 103 (nextcloud): started" in out and status_of(sim, 103)[0] == "running"


def test_ha_guest_and_tag_selection_go_through_the_ha_manager(sim, db, capsys):
    code, out, err = run(sim, db, capsys, "guest", "shutdown", "100", "--wait", "--json")
    assert code == 0, err
    job = json.loads(out)["jobs"][0]
    assert job["via_ha"] and job["ha_upid"].split(":")[5] == "hastop" and job["upid"].split(":")[5] == "qmshutdown"
    assert status_of(sim, 100) == ("stopped", "stopped")
    code, out, err = run(sim, db, capsys, "guest", "start", "--tag", "media", "--json")
    assert code == 0, err
    assert [j["vmid"] for j in json.loads(out)["jobs"]] == [104]


def test_hard_stop_needs_yes_off_a_terminal_and_failures_exit_4(sim, db, capsys):
    code = main(["guest", "stop", "103", *connection(sim, db)])
    assert code == 2 and "add --yes" in capsys.readouterr().err
    code, out, err = run(sim, db, capsys, "guest", "stop", "103", "--yes", "--wait")
    assert code == 0, err
    assert status_of(sim, 103)[0] == "stopped"
    code, out, err = run(sim, db, capsys, "guest", "reboot", "103", "--wait")
    assert code == 4 and "not running" in err


def test_bad_usage_is_one_line_exit_2(sim, db, capsys):
    assert main(["guest", "start", *connection(sim, db)]) == 2
    assert main(["guest", "start", "99999", *connection(sim, db)]) == 2
    assert main(["guest", "stop", "103", "--force-stop", *connection(sim, db)]) == 2
    err = capsys.readouterr().err
    assert "name the guests" in err and "no guest 99999" in err and "--force-stop is for shutdown" in err
    assert "Traceback" not in err
