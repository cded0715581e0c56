"""ProxLB 2.3.0, an independent PVE client, works against the simulator unchanged.

ProxLB reads permissions, nodes, node and guest RRD data, versions, pools, HA rules and status,
guest lists and configs, then migrates and polls task status. If the simulator drifted from PVE in
any of those, ProxLB crashes, plans nonsense or never sees its migrations finish. It runs as a
subprocess (`python -m proxlb`), exactly as an operator would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pvetop.sim.runner import start_sim
from tests.sim.clients import call, token_api

pytestmark = pytest.mark.peer

IMBALANCED_SCENARIO = "imbalanced"
PROXLB_TIMEOUT_SECONDS = 300


def proxlb_config(info: dict, *, token: bool) -> dict:
    """ProxLB's YAML config for the simulator (ProxLB's ssl_verification is a plain on/off)."""
    api = {
        "hosts": [f"{info['host']}:{info['port']}"],
        "user": info["user"],
        "ssl_verification": False,
        "timeout": 30,
    }
    if token:
        api.update(token_id=info["token_name"], token_secret=info["token_value"])
    else:
        api["pass"] = info["password"]
    return {
        "proxmox_api": api,
        "balancing": {
            "enable": True,
            "balance_types": ["vm", "ct"],
            "method": "memory",
            "mode": "used",
            "balanciness": 5,
            "parallel": True,
            "parallel_jobs": 4,
            "max_job_validation": 60,
        },
        "service": {"daemon": False, "log_level": "WARNING"},
    }


def run_proxlb(config: dict, tmp_path: Path, *extra_args: str) -> dict:
    """Runs ProxLB once; returns the JSON it prints (its plan with node_current/node_target)."""
    config_file = tmp_path / "proxlb.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "proxlb", "-c", str(config_file), "--json", *extra_args],
        capture_output=True,
        text=True,
        timeout=PROXLB_TIMEOUT_SECONDS,
        cwd=tmp_path,
    )
    transcript = f"stdout:\n{completed.stdout[-4000:]}\nstderr:\n{completed.stderr[-4000:]}"
    assert completed.returncode == 0, f"ProxLB exited {completed.returncode}\n{transcript}"
    # ProxLB survives many API failures by logging and carrying on with zeros; any such line means
    # the simulator answered something ProxLB could not use
    complaints = [line for line in completed.stdout.splitlines() if " - ERROR - " in line or " - CRITICAL - " in line]
    assert complaints == [], f"ProxLB logged errors:\n{transcript}"
    # ProxLB logs to stdout too; its JSON starts on a line of its own with "{"
    lines = completed.stdout.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "{"), None)
    assert start is not None, f"ProxLB printed no JSON\n{transcript}"
    plan, _ = json.JSONDecoder().raw_decode("".join(lines[start:]))
    return plan


def running_guests_on_online_nodes(resources: list[dict]) -> dict[str, dict]:
    online = {r["node"] for r in resources if r["type"] == "node" and r["status"] == "online"}
    return {
        r["name"]: r
        for r in resources
        if r["type"] in ("qemu", "lxc") and r["status"] == "running" and r["node"] in online
    }


def test_dry_run_lists_every_running_guest_with_its_current_and_target_node(tmp_path):
    with start_sim(scenario="homelab", seed=1, manual_clock=True) as sim:
        api = token_api(sim.info)
        resources = call(api, "GET", "/cluster/resources")
        plan = run_proxlb(proxlb_config(sim.info, token=True), tmp_path, "--dry-run")
        after = call(api, "GET", "/cluster/resources")

    expected = running_guests_on_online_nodes(resources)
    online = {r["node"] for r in resources if r["type"] == "node" and r["status"] == "online"}
    assert set(plan["nodes"]) == online
    assert set(plan["guests"]) == set(expected)
    for name, guest in plan["guests"].items():
        assert guest["id"] == expected[name]["vmid"]
        assert guest["node_current"] == expected[name]["node"]
        assert guest["node_target"] in online
    # a dry run must not touch the cluster
    assert {r["id"]: r.get("node") for r in after} == {r["id"]: r.get("node") for r in resources}
    assert not any(r.get("lock") for r in after)


def test_real_run_migrates_guests_and_the_sim_shows_them_on_their_new_nodes(tmp_path):
    with start_sim(scenario=IMBALANCED_SCENARIO, seed=1, speed=50, manual_clock=False) as sim:
        api = token_api(sim.info)
        plan = run_proxlb(proxlb_config(sim.info, token=False), tmp_path)
        resources = call(api, "GET", "/cluster/resources")
        tasks = call(api, "GET", "/cluster/tasks")

    moves = {name: g for name, g in plan["guests"].items() if g["node_current"] != g["node_target"]}
    assert moves, f"ProxLB found nothing to balance on {IMBALANCED_SCENARIO}: {plan['nodes']}"
    by_name = {r["name"]: r for r in resources if r["type"] in ("qemu", "lxc")}
    for name, move in moves.items():
        entry = by_name[name]
        assert entry["node"] == move["node_target"], f"{name} planned to {move['node_target']}, is on {entry['node']}"
        assert "lock" not in entry, entry
        migrations = [t for t in tasks if t["id"] == str(move["id"]) and t["type"] in ("qmigrate", "vzmigrate")]
        assert migrations, f"no migration task for {name} in /cluster/tasks"
        assert all(t.get("status") == "OK" for t in migrations), migrations
