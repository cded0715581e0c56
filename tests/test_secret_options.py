"""A secret given on the command line is visible to every local user (ps, /proc/PID/cmdline): warn."""

from __future__ import annotations

import pytest

from pvetop.cli import build_parser
from pvetop.config import resolve_connection


def warnings_for(argv: list[str], env: dict[str, str]) -> list[str]:
    sink: list[str] = []
    resolve_connection(build_parser().parse_args(["status", *argv]), env=env, warn=sink.append)
    return sink


@pytest.mark.parametrize(
    ("argv", "variable"),
    [
        (["--token-name=pvetop", "--token-value=s3cret"], "PVETOP_TOKEN_VALUE"),
        (["--password=s3cret"], "PVETOP_PASSWORD"),
    ],
)
def test_a_secret_option_warns_and_names_the_safer_way(tmp_path, monkeypatch, argv, variable):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no user config file
    warnings = warnings_for(["--host=pve1", "--user=root@pam", *argv], {})
    assert len(warnings) == 1
    assert "visible to other local users" in warnings[0] and variable in warnings[0]
    assert "s3cret" not in warnings[0]


def test_secrets_from_the_environment_do_not_warn(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    env = {"PVETOP_TOKEN_NAME": "pvetop", "PVETOP_TOKEN_VALUE": "s3cret"}
    assert warnings_for(["--host=pve1", "--user=root@pam"], env) == []
