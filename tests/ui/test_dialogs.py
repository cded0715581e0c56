"""Dialogs: one key convention (issue 12, rough edge 24) and no text cut off for good (edge 6)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

import pvetop.ui
from pvetop.engine.lifecycle import DEFAULT_SHUTDOWN_TIMEOUT
from pvetop.policy.rules import RuleSet
from pvetop.store import open_store
from pvetop.ui.app import PvetopApp
from pvetop.ui.lifecycle import PowerScreen
from pvetop.ui.migrate.bulk import BulkMigrateScreen
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.dialog import MigrateScreen
from pvetop.ui.migrate.evacuate import EvacuateScreen
from pvetop.ui.rules import install_rules
from pvetop.ui.rules.dialogs import NodeSetDialog, PowerForm, PowerSettingsDialog
from tests.ui.fixtures import fixed_clock, memory_source, small_cluster
from tests.ui.migrate_pilot import open_evacuation, select_row, sim_pilot, wait_until
from tests.ui.pilot import open_journal, settle, wait_for_data

SIZE = (140, 40)


def modal_screens() -> list[type[ModalScreen]]:
    """Every modal screen class defined in pvetop.ui."""
    found = []
    for info in pkgutil.walk_packages(pvetop.ui.__path__, "pvetop.ui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ModalScreen) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def keys_of(cls: type[ModalScreen]) -> dict[str, str]:
    """key -> action, as Textual merges the class's and its bases' BINDINGS (subclass wins)."""
    bound: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        for binding in base.__dict__.get("BINDINGS", []):
            for key in binding.key.split(","):
                bound[key.strip()] = binding.action
    return bound


def hint_of(screen) -> str:
    return " ".join(str(hint.render()) for hint in screen.query(".dialog-hint"))


def test_edge_24_every_modal_screen_is_left_with_escape_and_dialogs_confirm_with_enter():
    screens = modal_screens()
    assert {ConfirmScreen, PowerScreen, NodeSetDialog, PowerSettingsDialog, MigrateScreen, EvacuateScreen} <= set(
        screens
    )
    for cls in screens:
        keys = keys_of(cls)
        assert "escape" in keys, cls
        confirming = {
            binding.action
            for base in cls.__mro__
            for binding in base.__dict__.get("BINDINGS", [])
            if binding.id == "dialog.confirm"
        }
        for action in confirming:  # whatever other keys it has, enter is among them
            assert keys["enter"] == action, cls


async def test_edge_24_confirm_screen_enter_yes_escape_no_y_and_n_as_aliases(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        answers: list[bool | None] = []
        for keys in (["enter"], ["escape"], ["y"], ["n"], ["tab", "enter"]):
            app.push_screen(ConfirmScreen("Go?", yes="Go"), answers.append)
            await settle(pilot)
            assert "Go (enter)" in str(app.screen.query_one("#yes").label)
            await pilot.press(*keys)
            await settle(pilot)
        assert answers == [True, False, True, False, False]  # tab, enter: the focused "No (esc)" button


async def test_edge_24_power_and_rules_dialogs_enter_confirms_escape_cancels(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        guest = app.latest.snapshot.guest_by_vmid[100]
        nodes = [("big", "big"), ("small1", "small1")]
        form = PowerForm("aa:bb:cc:dd:ee:ff", True, 300)
        dialogs = (
            (lambda: PowerScreen([guest]), ("shutdown", DEFAULT_SHUTDOWN_TIMEOUT)),
            (lambda: NodeSetDialog("Nodes", nodes, frozenset({"big"})), frozenset({"big"})),
            (lambda: PowerSettingsDialog("big", form, "from the node's config"), form),
        )
        for make, confirmed in dialogs:
            results: list[object] = []
            for key in ("enter", "escape"):
                dialog = make()
                app.push_screen(dialog, results.append)
                await settle(pilot)
                assert hint_of(dialog).endswith("esc: cancel") or "Cancel (esc)" in str(
                    dialog.query("Button").last().label
                )
                await pilot.press(key)
                await settle(pilot)
            assert results == [confirmed, None], make


async def test_edge_24_migrate_and_evacuate_confirm_with_enter():
    async with sim_pilot() as (sim, app, pilot):
        select_row(app.guest_table, "103")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrateScreen))
        dialog = app.screen
        assert hint_of(dialog).startswith("enter: migrate") and hint_of(dialog).endswith("esc: cancel")
        dialog.query_one("#bwlimit", Input).focus()
        await pilot.press("5", "enter")  # enter in an option field confirms the highlighted node too
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0])
        screen = await open_evacuation(pilot, "pve-mini1")
        assert hint_of(screen).startswith("enter: run")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0] and sim.cluster.tasks == []


def fully_shown(widget: Static, text: str) -> bool:
    """The widget holds the whole text and is tall enough for it wrapped at its width."""
    rendered = str(widget.render())
    if text not in rendered:
        return False
    width = widget.content_region.width
    needed = sum(max(1, -(-len(line) // width)) for line in rendered.splitlines())
    return width > 0 and widget.content_region.height >= needed and widget.screen.region.contains_region(widget.region)


async def test_edge_06_the_evacuate_hint_wraps():
    async with sim_pilot() as (sim, app, pilot):
        await pilot.resize_terminal(80, 30)
        screen = await open_evacuation(pilot, "pve-mini1")
        await settle(pilot)
        hint = screen.query_one(".dialog-hint", Static)
        assert fully_shown(hint, "esc: close (a running evacuation goes on)")
        assert hint.content_region.height >= 2  # it wraps at 80 columns instead of being cut


async def test_edge_06_an_evacuation_reason_shows_whole():
    async with sim_pilot(ruleset=RuleSet(pins={105: {"pve-mini1"}})) as (sim, app, pilot):
        await pilot.resize_terminal(80, 30)  # the reason column is out of sight, right of the table's edge
        screen = await open_evacuation(pilot, "pve-mini1")
        select_row(screen.query_one("#plan", DataTable), "held:105")
        await settle(pilot)
        assert fully_shown(screen.query_one("#detail", Static), "105 stays: pinned to pve-mini1 — space: move anyway")


async def test_edge_06_bulk_move_refused_guests_show_whole():
    async with sim_pilot() as (sim, app, pilot):
        for vmid in (105, 106, 110):
            select_row(app.guest_table, str(vmid))
            await pilot.press("space")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, BulkMigrateScreen))
        screen = app.screen
        await wait_until(pilot, lambda: "included" in str(screen.query_one("#notes", Static).render()))
        refusing = next(node for node, plan in screen.plans.items() if plan.refused)
        select_row(screen.query_one("#targets", DataTable), refusing)
        await settle(pilot)
        detail = screen.query_one("#detail", Static)
        for item in screen.plans[refusing].refused:
            assert fully_shown(detail, item.reason), item


async def test_edge_06_journal_result_and_details_show_whole(tmp_path):
    long_result = "failed: " + "PVE said the target storage is not available on this node; " * 3
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        store.journal("homelab", "balancer", "migrate", "guest/101", {"target": "small1"}, result=long_result)
        app = PvetopApp(memory_source(), clock=fixed_clock, interval=60)
        install_rules(app, store)
        async with app.run_test(size=SIZE) as pilot:
            await open_journal(pilot)
            entry = app.screen.query_one("#journal-entry", Static)
            assert fully_shown(entry, long_result.strip())
            assert '"target": "small1"' in str(entry.render())


@pytest.fixture
def long_config_source():
    source = memory_source(small_cluster())
    source.configs["guest/100"]["description"] = "Web frontend; " + "owner: team web, restore from backup job 7. " * 4
    return source


async def test_edge_06_config_values_show_whole(long_config_source):
    app = PvetopApp(long_config_source, clock=fixed_clock, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("enter")  # the guest under the cursor: 100
        await settle(pilot)
        description = long_config_source.configs["guest/100"]["description"]
        config = app.screen.query_one("#config", Static)
        assert description in str(config.render())
        assert config.content_region.height > len(long_config_source.configs["guest/100"]) - 1  # wrapped, not cut
