"""Command-line rough edges of issue 12, each test carrying the edge's number."""

from __future__ import annotations

import json

import pytest
import requests

from pvetop.cli import main
from pvetop.sim.runner import start_sim
from tests.clirun import connection


@pytest.fixture(scope="module")
def sim():
    with start_sim(scenario="homelab", seed=1, manual_clock=True) as running:
        yield running


def test_edge_10_status_counts_every_request_and_lists_guests(sim, db, capsys, monkeypatch):
    sent = []
    original = requests.Session.send

    def counting(self, request, **kwargs):
        sent.append(request.url)
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counting)
    assert main(["status", "--json", *connection(sim, db)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["api_requests"] == len(sent) and len(sent) > 2
    assert main(["status", *connection(sim, db)]) == 0
    text = capsys.readouterr().out
    assert "homeassistant" in text and "VMID" in text  # guests too, not only nodes


def test_edge_11_json_errors_are_one_json_object(sim, db, capsys):
    code = main(["migrate", "99999", "pve-big", "--wait", "--json", *connection(sim, db)])
    out = capsys.readouterr().out
    assert code == 2 and json.loads(out) == {"error": "no guest 99999 in cluster 'homelab'", "exit_code": 2}
    code = main(["guest", "start", "--json", "--bogus", *connection(sim, db)])
    assert code == 2 and json.loads(capsys.readouterr().out)["exit_code"] == 2


def test_edge_18_pins_without_action_lists_and_errors_agree(sim, db, capsys):
    assert main(["pins", *connection(sim, db)]) == 0
    assert "no pins" in capsys.readouterr().out
    assert main(["pins", "rm", "100", *connection(sim, db)]) == 2
    err = capsys.readouterr().err
    assert "guest 100 has no pin in cluster 'homelab'" in err and "`pvetop pins` lists them" in err
    assert main(["pins", "add", "99999", "pve-big", *connection(sim, db)]) == 2
    pins_err = capsys.readouterr().err
    assert main(["migrate", "99999", "pve-big", *connection(sim, db)]) == 2
    assert (
        "no guest 99999 in cluster 'homelab'" in pins_err
        and "no guest 99999 in cluster 'homelab'" in capsys.readouterr().err
    )


def test_edge_19_typos_get_a_suggestion_and_the_subcommands_usage(capsys):
    assert main(["pin", "list"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'pins'?" in err
    assert main(["guest", "start", "100", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pvetop guest") and "unrecognized arguments: --bogus" in err


def test_edge_26_db_that_is_no_file_and_demo_scenarios_in_help(capsys):
    assert main(["--db", "/dev/null", "pins", "--cluster", "x"]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and "rollback" not in err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "imbalanced" in capsys.readouterr().out


def test_edge_26_sim_prints_the_environment_lines(sim):
    from argparse import Namespace

    from pvetop.cli.sim import describe

    text = describe(sim, Namespace(seed=1, speed=1.0))
    assert f"export PVETOP_TOKEN_VALUE={sim.info['token_value']}" in text and "export PVETOP_HOST=" in text
