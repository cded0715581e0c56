"""A dropped connection at start-up does not abort `pvetop evacuate`: reads are retried.

The cluster is the simulator behind a forwarder that hangs up on the first connection, as a
load balancer or a NAT timing out would; the evacuation must still run to the end.
"""

from __future__ import annotations

import json
import threading

from pvetop.cli import main
from tests.engine.simdrive import drive_thread, guest_node, running_sim
from tests.hostile import DroppingForwarder


def test_evacuate_survives_a_dropped_connection_at_start_up(tmp_path, capsys, monkeypatch):
    with running_sim() as sim, DroppingForwarder((sim.info["host"], sim.info["port"]), drop=1) as forwarder:
        info = sim.info
        monkeypatch.setenv("PVETOP_TOKEN_VALUE", info["token_value"])
        argv = [
            "evacuate",
            "pve-mini1",
            "--yes",
            "--json",
            "--poll",
            "0.01",
            f"--host=127.0.0.1:{forwarder.port}",
            f"--user={info['user']}",
            f"--token-name={info['token_name']}",
            f"--verify-ssl={info['ca_file']}",
            f"--db={tmp_path / 'rules.sqlite'}",
        ]
        result: dict[str, int] = {}
        thread = threading.Thread(target=lambda: result.setdefault("code", main(argv)))
        thread.start()
        drive_thread(sim, thread)
        out, err = capsys.readouterr()
        assert forwarder.dropped == 1 and forwarder.forwarded >= 1, err
        assert result["code"] == 0, err
        report = json.loads(out)
        assert report["complete"] and report["moves"]
        assert all(guest_node(sim, move["vmid"]) != "pve-mini1" for move in report["moves"])
