"""SVG snapshots of the dashboard on a fixed in-memory cluster and a frozen clock.

Regenerate after an intended change with ``pytest tests/ui/test_snapshots.py --snapshot-update``
and look at the report before committing. (``snap_compare`` only works in plain ``def`` tests.)
"""

from __future__ import annotations

from pvetop.ui.app import PvetopApp
from tests.ui.fixtures import advanced, fixed_clock, memory_source, small_cluster
from tests.ui.pilot import settle, wait_for_data

TERMINAL = (120, 36)


def dashboard(*keys: str):
    """The app and the steps to run: two polls 2 s apart (so rates show), then ``keys``."""
    source = memory_source()
    app = PvetopApp(source, clock=fixed_clock, interval=60)

    async def run_before(pilot) -> None:
        await wait_for_data(pilot)
        source.snapshot = advanced(small_cluster(), 2)
        await pilot.press("ctrl+r")
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await settle(pilot)

    return {"app": app, "run_before": run_before, "terminal_size": TERMINAL}


def test_main_screen(snap_compare):
    assert snap_compare(**dashboard())


def test_guest_detail(snap_compare):
    assert snap_compare(**dashboard("enter"))


def test_node_detail(snap_compare):
    assert snap_compare(**dashboard("shift+tab", "enter"))


def test_help(snap_compare):
    assert snap_compare(**dashboard("question_mark"))


def test_filtered_and_sorted_by_cpu(snap_compare):
    assert snap_compare(**dashboard("P", "slash", *"prod", "enter"))


def test_power_dialog(snap_compare):
    """``x`` on a guest: the start/shutdown/reboot/stop dialog (pushed directly: the in-memory source cannot write)."""
    setup = dashboard()
    before = setup["run_before"]

    async def run_before(pilot) -> None:
        from pvetop.ui.lifecycle import PowerScreen

        await before(pilot)
        app = pilot.app
        await app.push_screen(PowerScreen([app.latest.snapshot.guest_by_vmid[100]]))
        await settle(pilot)

    return_value = snap_compare(**{**setup, "run_before": run_before})
    assert return_value


def test_tree_view(snap_compare):
    """F5: guests grouped under their node."""
    assert snap_compare(**dashboard("f5"))


def test_sort_menu(snap_compare):
    """F6: the sort column picked from a list."""
    assert snap_compare(**dashboard("f6"))


def test_column_chooser(snap_compare):
    """F2 / C: the visible columns."""
    assert snap_compare(**dashboard("C"))


class ApiAnswers:
    """Canned answers for the views that read the API when opened (health, a storage's guests)."""

    ANSWERS = {
        "cluster/status": [
            {"type": "cluster", "name": "homelab", "quorate": 1, "nodes": 3},
            {"type": "node", "name": "big", "nodeid": 1, "online": 1, "ip": "10.0.0.1", "local": 1},
            {"type": "node", "name": "small1", "nodeid": 2, "online": 1, "ip": "10.0.0.2"},
            {"type": "node", "name": "small2", "nodeid": 3, "online": 0, "ip": "10.0.0.3"},
        ],
        "cluster/config/nodes": [{"node": n, "quorum_votes": 1} for n in ("big", "small1", "small2")],
        "cluster/ha/status/current": [
            {"type": "master", "node": "big", "status": "big (active, Thu Jan  1 00:00:00 2026)"},
            {"type": "lrm", "node": "big", "status": "big (active, watchdog active, Thu Jan  1 00:00:00 2026)"},
            {"type": "lrm", "node": "small1", "status": "small1 (idle, watchdog standby, Thu Jan  1 2026)"},
            {"type": "service", "sid": "vm:100", "node": "big", "state": "started", "request_state": "started"},
        ],
        "cluster/ha/status/manager_status": {
            "manager_status": {"node_status": {"big": "online", "small1": "online", "small2": "fence"}}
        },
        "nodes/big/storage/ceph/content": [{"vmid": 100, "size": 32 * 1024**3}, {"vmid": 101, "size": 8 * 1024**3}],
    }

    def get(self, path: str, **params):
        return self.ANSWERS[path]


def with_api(screen_key: str, *more: str):
    setup = dashboard()
    app = setup["app"]
    answers = ApiAnswers()
    app.source.get = answers.get  # the in-memory source gains the few reads these views make
    return dashboard_keys(setup, screen_key, *more)


def dashboard_keys(setup, *keys: str):
    before = setup["run_before"]

    async def run_before(pilot) -> None:
        await before(pilot)
        await pilot.press(*keys)
        await settle(pilot)
        await pilot.pause(0.2)
        await settle(pilot)

    return {**setup, "run_before": run_before}


def test_health_view(snap_compare):
    """H: quorum, corosync members, HA master and LRMs, HA resources with their rules."""
    assert snap_compare(**with_api("H"))


def test_storage_view(snap_compare):
    """S: one row per storage and node."""
    assert snap_compare(**dashboard("S"))


def test_storage_guests(snap_compare):
    """S, enter on a storage: the guests with volumes on it."""
    assert snap_compare(**with_api("S", "home", "enter"))
