"""kill -9 in the middle of writing: every pin reported committed is there, and the file is sound."""

import os
import signal
import subprocess
import sys

from pvetop.store import open_store
from tests.store.backends import integrity_ok

WRITER = """
import sys
from pvetop.store import open_store
store = open_store(sys.argv[1])
vmid = 100
while True:
    store.pin_guest("crash", vmid, f"guest{vmid}", [f"pve{vmid % 3}"])
    print(vmid, flush=True)  # only after the commit returned
    vmid += 1
"""
REPORTED_BEFORE_KILL = 150


def test_pins_reported_committed_survive_sigkill(new_db):
    path = new_db("crash")
    open_store(path).close()  # the schema exists before the writer starts
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, path],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    reported = []
    try:
        for line in writer.stdout:
            reported.append(int(line))
            if len(reported) >= REPORTED_BEFORE_KILL:
                writer.send_signal(signal.SIGKILL)  # mid-loop: the next pin is being written
                break
        reported.extend(int(line) for line in writer.stdout.read().split())  # lines already in the pipe
    finally:
        writer.kill()
        writer.wait(timeout=30)
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    assert len(reported) >= REPORTED_BEFORE_KILL

    with open_store(path) as store:
        stored = {p.vmid: p for p in store.pins("crash")}
        assert set(reported) <= set(stored)
        assert all(stored[v].nodes == {f"pve{v % 3}"} and stored[v].name == f"guest{v}" for v in reported)
        # at most the one pin being written when the signal came may be there unreported
        assert len(stored) - len(reported) <= 1
        assert integrity_ok(store)
        journal = store.recent_journal("crash", limit=10_000)
        assert len(journal) == len(stored)  # each pin and its journal entry commit together
