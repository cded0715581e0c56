"""The acting-instance lease and move intents, on SQLite and PostgreSQL: exactly one instance acts."""

import threading

import pytest

from pvetop.store import open_store
from pvetop.store.coordination import LeaseLost
from tests.clocks import ManualClock

C = "shared"
TTL = 20.0


@pytest.fixture
def instances(new_db):
    """Two pvetop instances (two opened stores, each its own identity) sharing one database."""
    url, clock = new_db("shared"), ManualClock()
    first, second = open_store(url, clock=clock), open_store(url, clock=clock)
    yield first, second, clock
    first.close()
    second.close()


def test_the_first_claim_acts_and_the_second_instance_is_told_who_does(instances):
    first, second, _ = instances
    mine = first.coordination.claim(C, ttl=TTL)
    theirs = second.coordination.claim(C, ttl=TTL)
    assert mine.acting and mine.token == 1
    assert not theirs.acting
    assert (theirs.host, theirs.pid, theirs.token) == (first.instance.host, first.instance.pid, 1)
    assert theirs.describe() == f"{first.instance.host} (pid {first.instance.pid})"


def test_renewing_keeps_the_token_and_pushes_the_expiry(instances):
    first, _, clock = instances
    first.coordination.claim(C, ttl=TTL)
    clock.now += TTL - 1
    renewed = first.coordination.claim(C, ttl=TTL)
    assert renewed.token == 1 and renewed.expires_at == clock.now + TTL


def test_a_dead_holder_is_replaced_once_its_lease_expires_and_not_before(instances):
    first, second, clock = instances
    first.coordination.claim(C, ttl=TTL)
    clock.now += TTL - 0.5  # a blip shorter than the lease: still the first instance's
    assert not second.coordination.claim(C, ttl=TTL).acting
    clock.now += 1  # the holder never renewed: gone
    taken = second.coordination.claim(C, ttl=TTL)
    assert taken.acting and taken.token == 2  # a new holder gets a new fencing token
    assert not first.coordination.claim(C, ttl=TTL).acting
    acquired = [e for e in second.recent_journal(C) if e.action == "lease.acquire"]
    assert [e.params["term"] for e in acquired] == [2, 1]
    assert acquired[0].params["previous"] == f"{first.instance.host} (pid {first.instance.pid})"


def test_a_user_can_take_over_from_a_live_holder_and_it_is_journaled(instances):
    first, second, _ = instances
    first.coordination.claim(C, ttl=TTL)
    taken = second.coordination.claim(C, ttl=TTL, take_over=True)
    assert taken.acting and taken.token == 2
    entry = second.recent_journal(C, limit=1)[0]
    assert (entry.action, entry.actor, entry.pid) == ("lease.take_over", "user", second.instance.pid)


def test_a_clean_stop_releases_the_lease_at_once(instances):
    first, second, _ = instances
    first.coordination.claim(C, ttl=TTL)
    assert first.coordination.release(C)
    assert second.coordination.claim(C, ttl=TTL).acting
    assert not first.coordination.release(C)  # not its lease any more: nothing to release


def test_an_intent_is_written_only_under_the_current_lease(instances):
    first, second, clock = instances
    token = first.coordination.claim(C, ttl=TTL).token
    opened = first.coordination.open_intent(C, token=token, actor="balancer", action="migrate", vmid=101, target="b")
    assert opened.state == "open" and opened.host == first.instance.host
    clock.now += TTL + 1
    second.coordination.claim(C, ttl=TTL)  # the first instance paused too long: replaced
    with pytest.raises(LeaseLost, match="not acting on shared any more"):
        first.coordination.open_intent(C, token=token, actor="balancer", action="migrate", vmid=102, target="b")
    assert [i.vmid for i in second.coordination.open_intents(C)] == [101]  # the refused one left no row


def test_intents_keep_their_upid_and_end_in_one_of_the_final_states(instances):
    first, _, _ = instances
    token = first.coordination.claim(C, ttl=TTL).token
    opened = first.coordination.open_intent(C, token=token, actor="power", action="migrate", vmid=7, target="n2")
    upid = "UPID:n1:0000AAAA:0000BBBB:6553F000:qmigrate:7:root@pam:"
    first.coordination.record_upid(opened.id, upid)
    done = first.coordination.finish_intent(opened.id, state="done", detail="OK")
    assert (done.state, done.upid, done.detail) == ("done", upid, "OK") and done.finished_at is not None
    assert first.coordination.open_intents(C) == []
    with pytest.raises(ValueError, match="an intent ends as one of"):
        first.coordination.finish_intent(opened.id, state="open")


def test_journal_entries_name_the_instance_that_wrote_them(instances):
    first, second, _ = instances
    first.pin_guest(C, 100, "web", ["n1"])
    second.lock_guest(C, 101, "db")
    by_action = {e.action: (e.host, e.pid) for e in first.recent_journal(C)}
    assert by_action["pin"] == (first.instance.host, first.instance.pid)
    assert by_action["lock"] == (second.instance.host, second.instance.pid)


def test_many_instances_claiming_at_once_give_exactly_one_holder(new_db):
    url, clock = new_db("race"), ManualClock()
    stores = [open_store(url, clock=clock) for _ in range(6)]
    results = []
    start = threading.Barrier(len(stores))

    def claim(store):
        start.wait()
        results.append(store.coordination.claim(C, ttl=TTL))
        store.close()

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.acting for r in results) == 1
    assert {r.token for r in results} == {1}
