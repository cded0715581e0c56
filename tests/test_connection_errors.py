"""`pvetop status` as a user runs it: every connection problem is one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pvetop.sim.runner import start_sim
from tests.pve.connection import closed_port


@pytest.fixture(scope="module")
def sim():
    with start_sim(scenario="homelab", seed=1, port=0, manual_clock=True) as running:
        yield running


def run_status(tmp_path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("PVETOP_", "REQUESTS_CA"))}
    clean.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pvetop", "status", *argv], capture_output=True, text=True, env=clean, timeout=60
    )


def connection(sim, *, token: bool = True, **overrides: str) -> list[str]:
    info = sim.info
    options = {"--host": f"{info['host']}:{info['port']}", "--user": info["user"], "--verify-ssl": info["ca_file"]}
    if token:
        options.update({"--token-name": info["token_name"], "--token-value": info["token_value"]})
    else:
        options["--password"] = info["password"]
    options.update(overrides)
    # --key=value, as scripts should pass secrets: a value starting with "-" is not taken for an option
    return [f"{key}={value}" for key, value in options.items() if value is not None]


def assert_one_clear_error(result: subprocess.CompletedProcess, *needles: str, code: int = 3) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("pvetop: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_status_prints_the_cluster(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim))
    assert result.returncode == 0, result.stderr
    assert f"cluster {sim.cluster.cluster_name}: quorate" in result.stdout
    assert all(name in result.stdout for name in sim.cluster.nodes)


def test_a_password_starting_with_a_dash_works_in_the_key_value_form(tmp_path):
    with start_sim(scenario="quorum3", seed=1, port=0, manual_clock=True, password="-starts-with-dash") as dashed:
        result = run_status(tmp_path, *connection(dashed, token=False))
    assert result.returncode == 0, result.stderr
    assert "3/3 nodes online" in result.stdout


def test_generated_sim_passwords_are_safe_to_paste_after_password():
    from pvetop.sim.auth import new_password

    passwords = [new_password() for _ in range(200)]
    assert all(pw.isalnum() and len(pw) == 16 for pw in passwords)
    assert len(set(passwords)) == 200


def test_status_json_has_normalised_fields(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim, token=False), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cluster"] == sim.cluster.cluster_name and data["quorate"] is True
    assert {n["name"] for n in data["nodes"]} == set(sim.cluster.nodes)
    assert {g["vmid"] for g in data["guests"]} == set(sim.cluster.guests)
    guest = data["guests"][0]
    assert guest["maxmem"] == sim.cluster.guests[guest["vmid"]].memory and 0 <= guest["cpu"] <= 1
    assert isinstance(guest["tags"], list) and isinstance(guest["template"], bool)
    assert data["api_requests"] > 2  # every request made, the connection's too (see test_cli_edges.py)


def test_settings_from_the_environment(sim, tmp_path):
    info = sim.info
    env = {
        "PVETOP_HOST": f"127.0.0.1:{closed_port()},{info['host']}:{info['port']}",
        "PVETOP_USER": info["user"],
        "PVETOP_TOKEN_NAME": info["token_name"],
        "PVETOP_TOKEN_VALUE": info["token_value"],
        "PVETOP_VERIFY_SSL": info["ca_file"],
    }
    result = run_status(tmp_path, env=env)
    assert result.returncode == 0, result.stderr


def test_wrong_password(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim, token=False, **{"--password": "wrong"}))
    assert_one_clear_error(result, "login as root@pam", "401 authentication failure")
    assert "wrong" not in result.stderr  # the password is never echoed


def test_bad_token(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim, **{"--token-value": "not-the-secret"}))
    assert_one_clear_error(result, "API token root@pam!pvetop was refused", "401")
    assert "not-the-secret" not in result.stderr


def test_unreachable_host(sim, tmp_path):
    port = closed_port()
    result = run_status(tmp_path, *connection(sim, **{"--host": f"127.0.0.1:{port}"}))
    assert_one_clear_error(result, f"cannot reach 127.0.0.1:{port}", "Connection refused")


def test_tls_verification_failure_says_how_to_fix_it(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim, **{"--verify-ssl": None}))
    assert_one_clear_error(result, "certificate verify failed", "--verify-ssl CA_FILE", "--fingerprint")


def test_wrong_fingerprint(sim, tmp_path):
    wrong = ":".join(["AB"] * 32)
    result = run_status(tmp_path, *connection(sim, **{"--verify-ssl": None, "--fingerprint": wrong}))
    assert_one_clear_error(result, f"expected {wrong}", f"presented {sim.info['fingerprint']}")


def test_fingerprint_pin_connects(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim, **{"--verify-ssl": None, "--fingerprint": sim.info["fingerprint"]}))
    assert result.returncode == 0, result.stderr


def test_verify_off_warns_on_stderr(sim, tmp_path):
    result = run_status(tmp_path, *connection(sim, **{"--verify-ssl": "false"}))
    assert result.returncode == 0 and "TLS verification is OFF" in result.stderr


def test_malformed_config_file(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[profiles.home]\nhost = "pve1"\nuser = root@pam\n')
    result = run_status(tmp_path, "--config", str(config))
    assert_one_clear_error(result, str(config), "line 3", code=2)


def test_missing_settings_name_what_to_set(tmp_path):
    result = run_status(tmp_path)
    assert_one_clear_error(result, "no Proxmox VE host", "PVETOP_HOST", "--host", code=2)
