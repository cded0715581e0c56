"""Several pvetop daemons on one rules store (SQLite file, PostgreSQL) against the simulator in
``auto``: exactly one acts, ``kill -9`` of the actor hands over within the lease, no move is done
twice (the simulator's task record is the witness), and the dead actor's open intent is settled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pvetop.sim.runner import start_sim
from pvetop.store import open_store
from tests.sim.clients import token_api
from tests.store.backends import Databases, postgres_server  # noqa: F401  (a fixture)

CLUSTER = "lopsided"  # the "imbalanced" scenario: 3 nodes, one carrying everything
LEASE = 5.0


class Daemon:
    """A ``pvetop daemon`` process and the lines it has printed so far."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pvetop", "daemon", "--interval", "1", "--lease", str(LEASE)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def moving(self) -> str | None:
        """The move the daemon said it started and has not yet said the end of."""
        moves = [line.split("] ", 1)[1] for line in self.lines if "migrate: [" in line]
        running = [m.rsplit(":", 1)[0] for m in moves if m.endswith(": running")]
        ended = {m.rsplit(": ", 1)[0] for m in moves if not m.endswith(": running")}
        return next((m for m in reversed(running) if m not in ended), None)

    @property
    def acting(self) -> bool:
        acting = [line for line in self.lines if "lease: acting instance:" in line]
        return bool(acting) and "this instance" in acting[-1]


def wait_for(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - start


def migrations_per_guest(info) -> dict[str, int]:
    api = token_api(info)
    counts: dict[str, int] = {}
    for node in ("pve1", "pve2", "pve3"):
        for task in api.nodes(node).tasks.get(typefilter="qmigrate", limit=500):
            counts[task["id"]] = counts.get(task["id"], 0) + 1
    return counts


@pytest.fixture(params=["sqlite", "postgresql"])
def rules_db(request, tmp_path):
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    made = Databases(request.param, tmp_path, server)
    yield made.new("shared")
    made.drop_all()


def test_one_daemon_acts_a_killed_actor_is_replaced_and_no_move_is_done_twice(rules_db, tmp_path):
    with start_sim(scenario="imbalanced", seed=1, speed=10) as sim:
        info = sim.info
        env = dict(
            os.environ,
            PVETOP_HOST=",".join(f"{e['host']}:{e['port']}" for e in info["endpoints"]),
            PVETOP_USER=info["user"],
            PVETOP_TOKEN_NAME=info["token_name"],
            PVETOP_TOKEN_VALUE=info["token_value"],
            PVETOP_VERIFY_SSL=info["ca_file"],
            PVETOP_DB=rules_db,
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            PYTHONUNBUFFERED="1",
        )
        env.pop("PVETOP_READ_ONLY", None)
        with open_store(rules_db) as store:
            store.set_setting(CLUSTER, "balancer.mode", "auto")
            store.set_setting(CLUSTER, "balancer.hold", 1)
        first = Daemon(env, "first")
        wait_for(lambda: first.acting, 60, "the first daemon acts")
        second = Daemon(env, "second")
        try:
            wait_for(lambda: second.said("lease: acting instance:"), 60, "the second daemon reads the lease")
            assert not second.acting and second.said(f"(pid {first.process.pid})")

            wait_for(lambda: first.moving() is not None, 120, "the acting daemon starts a move")
            first.process.send_signal(signal.SIGKILL)  # mid-move: its intent stays open
            moving = first.moving()
            first.process.wait(timeout=30)
            handover = wait_for(lambda: second.acting, 30, "the second daemon takes over")
            assert handover <= LEASE + 5

            wait_for(lambda: second.said("intents: #"), 60, "the new actor looks at the dead actor's intents")

            def settled() -> bool:
                with open_store(rules_db, read_only="test") as store:
                    return store.coordination.open_intents(CLUSTER) == []

            wait_for(settled, 90, "every intent of the dead actor settled")  # a request never sent waits its grace
            time.sleep(3)  # the new actor goes on balancing for a few rounds
        finally:
            if second.process.poll() is None:
                second.process.send_signal(signal.SIGTERM)
                second.process.wait(timeout=60)
            first.process.kill()
            print("\n--- first\n" + "\n".join(first.lines) + "\n--- second\n" + "\n".join(second.lines))
        assert second.process.returncode == 0, "\n".join(second.lines)
        assert second.said("daemon: stopped; lease released")

        counts = migrations_per_guest(info)
        assert counts and max(counts.values()) == 1, counts  # no guest was moved twice
        with open_store(rules_db) as store:
            assert store.coordination.open_intents(CLUSTER) == []
            intents = store.coordination.intents(CLUSTER)
            by_first = [i for i in intents if i.pid == first.process.pid]
            assert by_first and all(i.state in ("done", "failed", "abandoned") for i in by_first)
            assert any("settled by" in i.detail for i in by_first)
            assert moving is not None and any(i.vmid == int(moving.split()[0]) for i in by_first)
            started = [
                e for e in store.recent_journal(CLUSTER, limit=1000) if e.action == "migrate" and e.result == "started"
            ]
            assert sorted(e.target for e in started) == sorted({e.target for e in started})
            # exactly one acts at a time: every move started before the take-over is the first
            # daemon's, every one after it the second's
            took_over = next(
                e.at
                for e in store.recent_journal(CLUSTER, limit=1000)
                if e.action == "lease.acquire" and e.pid == second.process.pid
            )
            assert {e.pid for e in started if e.at < took_over} == {first.process.pid}
            assert {e.pid for e in started if e.at >= took_over} <= {second.process.pid}
