"""`pvetop status` against a hostile server, as a user runs it (a subprocess): bounded in time,
one clear error line with the right exit code, JSON that is JSON, and quiet when piped to head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.hostile import TOKEN_SECRET, data, drip, raw


def pvetop(server, *argv: str, timeout: float = 60, shell_tail: str = "") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVETOP_")}
    env["PVETOP_TOKEN_VALUE"] = TOKEN_SECRET
    options = [
        f"--host=127.0.0.1:{server.port}",
        "--user=root@pam",
        "--token-name=pvetop",
        f"--verify-ssl={server.ca_file}",
        *argv,
    ]
    command = [sys.executable, "-m", "pvetop", "status", *options]
    if shell_tail:
        return subprocess.run(
            " ".join(command) + " | " + shell_tail + "; exit ${PIPESTATUS[0]}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("pvetop: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_status_ends_near_its_timeout_when_the_server_drips(hostile):
    hostile.set("cluster/resources", drip(b'{"data": []}' + b" " * 100_000, 0.05))
    started = time.monotonic()
    try:
        result = pvetop(hostile, "--timeout", "2", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("pvetop status --timeout 2 was still running after 60 s against a dripping server")
    took = time.monotonic() - started
    line = one_error(result, 3)
    assert "GET /cluster/resources got no complete answer within 2 s" in line
    assert took < 20, took  # start-up plus ~2 s, never the drip's minutes


def test_malformed_json_is_an_unexpected_answer_exit_4(hostile):
    hostile.set("cluster/status", raw(b'{"data": {"not": "a list"}}'))
    line = one_error(pvetop(hostile), 4)
    assert "unexpected answer from" in line and "GET /cluster/status: expected a list, got dict" in line


def test_a_top_level_list_is_an_unexpected_answer_not_an_internal_error(hostile):
    hostile.set("cluster/resources", raw(b"[1, 2, 3]"))
    line = one_error(pvetop(hostile), 4)
    assert "to GET /cluster/resources" in line and "internal error" not in line


def test_status_json_never_holds_nan_or_infinity(hostile):
    resources = json.loads(hostile.answers["/api2/json/cluster/resources"].body)["data"]
    resources[0]["cpu"] = "HUGE"
    body = json.dumps({"data": resources}).replace('"HUGE"', "1e400")  # json reads 1e400 as Infinity
    hostile.set("cluster/resources", raw(body))
    result = pvetop(hostile, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))
    assert [node["name"] for node in document["nodes"]] == ["pve1", "pve2"]  # pve2 from /cluster/status
    assert document["nodes"][0]["maxcpu"] == 0  # pve1's resource entry was skipped, membership stays
    assert len(document["warnings"]) == 1 and "field 'cpu' is inf" in document["warnings"][0]
    assert "pvetop: warning: GET /cluster/resources: skipped entry 'node/pve1'" in result.stderr


def test_status_json_piped_to_head_ends_quietly(hostile):
    guests = [
        {"type": "qemu", "vmid": vmid, "node": "pve1", "id": f"qemu/{vmid}", "status": "running", "name": f"g{vmid}"}
        for vmid in range(100, 3100)
    ]
    hostile.set("cluster/resources", data(guests))
    result = pvetop(hostile, "--json", shell_tail="head -1")
    assert result.stdout == "{\n"
    assert "BrokenPipe" not in result.stderr and "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr and "internal error" not in result.stderr
    assert result.returncode == 141
