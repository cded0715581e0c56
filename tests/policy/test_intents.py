"""Settling intents left open by an instance that died: follow, done, failed, abandoned or wait."""

from pvetop.policy.intents import PendingIntent, TaskSeen, matching_task, settle, task_from_entry

T0 = 1_800_000_000.0
UPID = "UPID:n1:0000AAAA:0000BBBB:6B49D200:qmigrate:101:root@pam!pvetop:"


def migrate(upid=None, created_at=T0):
    return PendingIntent(1, "migrate", 101, "n1", "n2", created_at, upid)


def task(running=False, ok=True, start=T0 + 1, vmid="101", kind="qmigrate", upid=UPID):
    return TaskSeen(upid, kind, vmid, start, running, None if running else ok)


def test_a_request_that_reached_the_cluster_is_followed_not_repeated():
    settled = settle(
        migrate(), tasks=[task(running=True)], guest_nodes={101: "n1"}, online_nodes=frozenset(), now=T0 + 5
    )
    assert (settled.outcome, settled.upid) == ("follow", UPID)


def test_a_finished_task_closes_the_intent_with_its_result():
    ok = settle(migrate(), tasks=[task()], guest_nodes={101: "n2"}, online_nodes=frozenset(), now=T0 + 500)
    failed = settle(migrate(), tasks=[task(ok=False)], guest_nodes={101: "n1"}, online_nodes=frozenset(), now=T0 + 500)
    assert (ok.outcome, failed.outcome) == ("done", "failed")


def test_no_task_and_the_guest_on_its_source_is_abandoned_once_old_enough():
    tasks = [task(start=T0 - 3600)]  # an older migration of the same guest is not this one
    young = settle(migrate(), tasks=tasks, guest_nodes={101: "n1"}, online_nodes=frozenset(), now=T0 + 10)
    old = settle(migrate(), tasks=tasks, guest_nodes={101: "n1"}, online_nodes=frozenset(), now=T0 + 600)
    assert (young.outcome, old.outcome) == ("wait", "abandoned")
    assert "still on n1" in old.reason


def test_a_guest_already_on_its_target_is_done_even_without_its_task():
    settled = settle(migrate(), tasks=[], guest_nodes={101: "n2"}, online_nodes=frozenset(), now=T0 + 600)
    assert settled.outcome == "done"


def test_a_known_upid_is_matched_exactly():
    other = task(upid=UPID.replace("AAAA", "CCCC"), running=True)
    assert matching_task(migrate(upid=UPID), [other]) is None
    assert matching_task(migrate(upid=UPID), [other, task()]) == task()


def test_only_migrations_of_the_same_guest_match():
    assert matching_task(migrate(), [task(vmid="102"), task(kind="qmstart")]) is None
    assert matching_task(migrate(), [task(kind="hamigrate")]).type == "hamigrate"


def test_power_intents_settle_on_the_node_state():
    off = PendingIntent(2, "power_off", None, "big", "big", T0)
    wake = PendingIntent(3, "wake", None, "", "big", T0)
    up, down = frozenset({"big", "a"}), frozenset({"a"})
    assert settle(off, tasks=[], guest_nodes={}, online_nodes=down, now=T0 + 5).outcome == "done"
    assert settle(off, tasks=[], guest_nodes={}, online_nodes=up, now=T0 + 5).outcome == "wait"
    assert settle(wake, tasks=[], guest_nodes={}, online_nodes=up, now=T0 + 5).outcome == "done"
    assert settle(wake, tasks=[], guest_nodes={}, online_nodes=down, now=T0 + 900).outcome == "abandoned"


def test_cluster_task_entries_are_read_and_bad_ones_skipped():
    running = {"upid": UPID, "type": "qmigrate", "id": "101", "starttime": int(T0)}
    stopped = dict(running, endtime=int(T0) + 9, status="migration aborted")
    assert task_from_entry(running).running
    assert task_from_entry(stopped).ok is False
    assert task_from_entry(dict(stopped, status="WARNINGS: 1")).ok is True
    assert task_from_entry({"type": "qmigrate"}) is None
