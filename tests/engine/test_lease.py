"""The lease keeper: one instance acts, a dead one is replaced after its lease, a blip changes nothing."""

import asyncio

import pytest

from pvetop.engine.lease import LeaseKeeper
from pvetop.store import open_store
from tests.clocks import ManualClock

C = "trio"


@pytest.fixture
def two(tmp_path):
    clock = ManualClock()
    path = str(tmp_path / "shared.sqlite")
    first, second = open_store(path, clock=clock), open_store(path, clock=clock)
    changes: list[tuple[str, bool]] = []
    keepers = [
        LeaseKeeper(store, C, ttl=20.0, clock=clock, on_change=lambda s, n=name: changes.append((n, s.acting)))
        for name, store in (("first", first), ("second", second))
    ]
    yield keepers, clock, changes
    first.close()
    second.close()


async def test_exactly_one_of_two_instances_acts_and_the_other_says_who(two):
    (first, second), _, changes = two
    await first.claim()
    await second.claim()
    assert first.acting and not second.acting
    assert first.token == 1 and second.token is None
    assert "acting instance: this instance since" in first.describe()
    assert f"(pid {first.state.pid})" in second.describe()
    assert changes == [("first", True), ("second", False)]


async def test_a_dead_holder_is_replaced_after_its_lease_expires(two):
    (first, second), clock, _ = two
    await first.claim()
    clock.now += first.renew_every  # first is killed: it never renews again
    assert not (await second.claim()).acting
    clock.now += 20.0
    assert (await second.claim()).acting and second.token == 2
    assert not first.acting  # by its own clock its lease is over too: it stops acting


async def test_a_store_blip_shorter_than_the_lease_keeps_the_holder_acting(two, monkeypatch):
    (first, second), clock, _ = two
    await first.claim()

    def unreachable(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(first.store.coordination, "claim", unreachable)
    clock.now += 10.0
    await first.claim()
    assert first.acting and "cannot reach the rules store" in first.last_error
    clock.now += 11.0  # the blip outlasted the lease: stop acting, another instance may take over
    assert not first.acting


async def test_a_clean_stop_releases_at_once_and_take_over_is_possible(two):
    (first, second), _, _ = two
    runner = asyncio.create_task(first.run())
    for _ in range(500):  # its first claim runs in a thread
        if first.acting:
            break
        await asyncio.sleep(0.01)
    assert first.acting
    await second.take_over()
    assert second.acting
    first.stop()
    await runner
    assert not first.acting
    assert [e.action for e in second.store.recent_journal(C)][:2] == ["lease.take_over", "lease.acquire"]
