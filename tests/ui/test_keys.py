"""Keys people know (htop's F-keys, Home/End) and every key rebindable by its binding id (issue 12)."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from pvetop.config import load_config
from pvetop.errors import UsageError
from pvetop.ui.app import PvetopApp
from pvetop.ui.help import HelpScreen
from pvetop.ui.keys import binding_ids, check_keymap
from tests.ui.pilot import settle, wait_for_data

SIZE = (160, 40)


def test_every_pvetop_binding_has_an_id():
    import pvetop.ui.balancer  # noqa: F401  (rooms whose screens are loaded by the dashboard)
    import pvetop.ui.rules  # noqa: F401
    from pvetop.ui.keys import _pvetop_classes

    missing = [
        f"{cls.__name__}: {item.key}"
        for cls in _pvetop_classes()
        for item in cls.__dict__.get("BINDINGS", [])
        if not (isinstance(item, Binding) and item.id)
    ]
    assert missing == []


async def test_htop_keys_f1_f3_f10_home_end(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        await pilot.press("f3")
        assert app.filter_input.has_class("shown") and app.focused is app.filter_input
        await pilot.press("escape")
        app.guest_table.focus()
        await pilot.press("end")
        assert app.guest_table.cursor_row == app.guest_table.row_count - 1
        await pilot.press("home")
        assert app.guest_table.cursor_row == 0
        await pilot.press("f10")
        await settle(pilot)
    assert app.return_code == 0


async def test_a_rebound_key_works_and_help_footer_and_palette_follow(source):
    app = PvetopApp(source, interval=60)
    app.use_keymap({"app.filter": "f2", "app.pause": "ctrl+t"})
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("slash")
        assert not app.filter_input.has_class("shown")  # the old key is gone
        await pilot.press("f2")
        assert app.filter_input.has_class("shown")
        await pilot.press("escape")
        app.guest_table.focus()
        await pilot.press("ctrl+t")
        assert app.paused
        footer_keys = {binding.key for _, binding, _, _ in app.screen.active_bindings.values()}
        assert "f2" in footer_keys and "slash" not in footer_keys
        await pilot.press("f1")
        help_text = str(app.screen.query_one("#help-text").render())
        assert "f2                Filter  [app.filter]" in help_text
        assert "Page Left" not in help_text and "tab shift+tab" in help_text and "Stop task" in help_text
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Filter"] == "Filter (f2)"


def test_unknown_binding_ids_are_refused_with_the_nearest_one(tmp_path):
    import pvetop.ui.app  # noqa: F401

    known = binding_ids()
    with pytest.raises(UsageError) as caught:
        check_keymap({"app.filtr": "f2"}, known)
    assert "did you mean 'app.filter'?" in caught.value.hint
    config = tmp_path / "config.toml"
    config.write_text('[keys]\n"app.filter" = "f2"\n')
    assert dict(load_config(config).keys) == {"app.filter": "f2"}
    config.write_text('[keys]\n"app.filter" = 2\n')
    with pytest.raises(UsageError):
        load_config(config)
