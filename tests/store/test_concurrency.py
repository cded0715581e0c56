"""The UI thread and two worker threads share one store for 10 s: no "database is locked", no lost update."""

import threading
import time

from pvetop.store import open_store

C = "busy"
DURATION = 10.0  # the figure: long enough for many thousands of interleavings


def test_three_threads_read_and_write_for_ten_seconds(new_db):
    store = open_store(new_db("shared"))
    errors: list[BaseException] = []
    increments = [0, 0, 0]
    expected_pins: list[dict[int, frozenset[str]]] = [{}, {}, {}]
    deadline = time.monotonic() + DURATION

    def work(index: int) -> None:
        base = 1000 * (index + 1)  # each thread owns its own vmids, so it knows what must be stored
        step = 0
        try:
            while time.monotonic() < deadline:
                vmid = base + step % 50
                if step % 3 == 2:
                    store.unpin(C, vmid)
                    expected_pins[index].pop(vmid, None)
                else:
                    nodes = frozenset({f"pve{step % 4}", f"pve{(step + index) % 4}"})
                    store.pin_guest(C, vmid, f"guest{vmid}", nodes)
                    expected_pins[index][vmid] = nodes
                store.update_setting(C, "counter", lambda value: value + 1, default=0, actor="balancer")
                increments[index] += 1
                ruleset = store.ruleset(C)  # a read between writes, as the UI and planners do
                assert ruleset.pins.get(vmid) == expected_pins[index].get(vmid)
                step += 1
        except BaseException as exc:  # any failure, "database is locked" included, fails the test
            errors.append(exc)
        finally:
            if index:
                store.close()  # a worker closes its own connection

    workers = [threading.Thread(target=work, args=(i,)) for i in (1, 2)]
    for worker in workers:
        worker.start()
    work(0)  # the main thread takes part too
    for worker in workers:
        worker.join()

    assert errors == []
    assert all(count > 0 for count in increments)
    assert store.get_setting(C, "counter") == sum(increments)  # no lost update
    stored = {p.vmid: p.nodes for p in store.pins(C)}
    assert stored == {vmid: nodes for mine in expected_pins for vmid, nodes in mine.items()}
    journaled = len(store.recent_journal(C, limit=10**9))
    pin_changes = sum(1 for e in store.recent_journal(C, limit=10**9) if e.action in ("pin", "unpin"))
    assert journaled - pin_changes == sum(increments)
    print(f"\nconcurrency: {sum(increments)} write transactions + reads in {DURATION:.0f} s, per thread {increments}")
    store.close()
