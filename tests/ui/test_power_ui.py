"""``W``: the power screen against the simulator (Pilot) and on a fixed cluster (SVG snapshot)."""

from __future__ import annotations

import contextlib

from pvetop.engine.power import mark_sleep_with_node
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.power import PowerScreen, install_power
from tests.ui.migrate_pilot import drive, planned_pilot, screen_text, select_row, wait_until
from tests.ui.pilot import screen_snapshot

BIG = "pve-big"


@contextlib.asynccontextmanager
async def power_pilot(store, **kwargs):
    async with planned_pilot(store, install_power, lambda app: app.power, **kwargs) as (sim, app, pilot):
        app.power.worker.poll = 0.05  # real seconds between its looks at a node going down or coming up
        await pilot.press("W")
        await wait_until(pilot, lambda: isinstance(app.screen, PowerScreen))
        yield sim, app, pilot


def configure(store, sim) -> None:
    store.set_setting("homelab", "power.wake_method", "packet")
    store.set_setting("homelab", "power.wol_host", "127.0.0.1")
    store.set_setting("homelab", "power.wol_port", sim.info["wol_port"])
    store.set_node_power("homelab", BIG, allow_power_off=True)


def big_reasons(app) -> str:
    return "; ".join(app.power.worker.plan.decision(BIG).reasons)


async def test_screen_shows_the_big_nodes_reasoning_and_how_to_choose_margin_zero(store):
    async with power_pilot(store) as (sim, app, pilot):
        text = screen_text(app)
        assert "mode off" in text and "failure margin now 1, required 1" in text
        assert "after power-off 2 of 3 votes, failure margin 0 below the required 1" in text
        assert "power.failure_margin 0" in big_reasons(app)


async def test_failure_margin_choice_states_the_risk_and_is_journaled(store):
    async with power_pilot(store) as (sim, app, pilot):
        configure(store, sim)
        await pilot.press("F")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "one more node failure loses quorum" in app.screen.question and "self-fence" in app.screen.question
        await pilot.press("y")
        await wait_until(pilot, lambda: store.get_setting("homelab", "power.failure_margin") == 0)
        entries = store.journal_entries("homelab", actions=("setting.set",), target="setting/power.failure_margin")
        assert [e.params["value"] for e in entries] == [0]
        await wait_until(pilot, lambda: "failure margin 0 (chosen " in big_reasons(app))


async def test_power_off_by_hand_asks_twice_when_refused_then_wake_shows_progress(store):
    async with power_pilot(store) as (sim, app, pilot):
        configure(store, sim)
        with sim.cluster.lock:
            local = [
                g
                for g in sim.cluster.guests.values()
                if g.node == BIG and g.status == "running" and any(d.storage == "big-zfs" for d in g.disks)
            ]
        snapshot = app.latest.snapshot
        for guest in local:
            mark_sleep_with_node(store, "homelab", snapshot.guest_by_vmid[guest.vmid], True)
        select_row(app.screen.query_one("#power-nodes"), BIG)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert (
            "should stay on" in app.screen.question and "failure margin 0 below the required 1" in app.screen.question
        )
        await pilot.press("y")  # override: a second, explicit confirmation follows
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and "Really" in app.screen.question)
        assert "Drain pve-big" in app.screen.question
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, PowerScreen))
        assert "powering pve-big off" in screen_text(app)
        await drive(pilot, sim, lambda: "done: offline" in screen_text(app), step=2.0)
        with sim.cluster.lock:
            assert not sim.cluster.nodes[BIG].reachable
        await wait_until(pilot, lambda: app.node_table.cell_text(BIG, "status") == "off")  # the power state
        await pilot.press("w")
        await wait_until(pilot, lambda: "waking pve-big" in screen_text(app))
        await wait_until(pilot, lambda: app.node_table.cell_text(BIG, "status") == "waking")
        await drive(pilot, sim, lambda: "done: online" in screen_text(app), step=2.0)
        with sim.cluster.lock:
            assert sim.cluster.nodes[BIG].reachable
        forced = [e for e in store.journal_entries("homelab", actions=("power.off",)) if e.result == "started"]
        assert forced and forced[0].params["forced"] is True


async def test_read_only_greys_out_the_power_keys(store):
    async with power_pilot(store, read_only=True) as (sim, app, pilot):
        for action in ("wake", "power_off", "test_wake", "margin", "mode"):
            assert app.screen.check_action(action, ()) is None
        assert "read-only" in screen_text(app)


def test_power_screen_snapshot(snap_compare, tmp_path):
    assert screen_snapshot(
        snap_compare,
        tmp_path,
        install_power,
        "W",
        terminal_size=(140, 36),
        ready=lambda app: app.power.worker is not None and app.power.worker.plan is not None,
    )
