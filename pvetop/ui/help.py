"""`?`: every key the dashboard answers to, grouped by where it works.

Built from the classes' own ``BINDINGS`` so a binding added anywhere shows up here too, with
the keys in force (the user's ``[keys]`` table) and each binding's id, the name to rebind it by.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from pvetop.ui.keys import keys_of

HelpSection = tuple[str, list[BindingType]]


def _bindings(sources: Iterable[type | Binding]) -> list[Binding]:
    """Bindings of the classes (and their pvetop bases) or given directly, most specific first,
    each key once. Textual's own widget keys (a table's page-left, a scroll's end) are left out:
    they are what any terminal UI does, not pvetop's."""
    seen: set[str] = set()
    result: list[Binding] = []
    for source in sources:
        items = (
            [source]
            if isinstance(source, Binding)
            else [
                item
                for base in source.__mro__
                if base.__module__.startswith("pvetop.")
                for item in base.__dict__.get("BINDINGS", [])
            ]
        )
        for item in items:
            binding = item if isinstance(item, Binding) else Binding(*item)
            keys = {key.strip() for key in binding.key.split(",")}
            if keys <= seen or not binding.description:  # every key already listed (a subclass rebinds it)
                continue
            seen |= keys
            result.append(binding)
    return result


def help_text(app, sections: list[tuple[str, list[type | Binding]]], extra: list[tuple[str, str]]) -> Text:
    text = Text()
    for title, classes in sections:
        bindings = _bindings(classes)
        if not bindings:
            continue
        if text:
            text.append("\n\n")
        text.append(title, style="bold underline")
        keymap = getattr(app, "keymap", {})
        for binding in bindings:
            shown = keys_of(binding, keymap)
            keys = " ".join(app.get_key_display(Binding(key.strip(), binding.action)) for key in shown.split(","))
            text.append(f"\n  {keys:<18}", style="bold cyan")
            text.append(binding.description)
            if binding.id:
                text.append(f"  [{binding.id}]", style="dim")
    if extra:
        text.append("\n\nMouse and more", style="bold underline")
        for keys, description in extra:
            text.append(f"\n  {keys:<18}", style="bold cyan")
            text.append(description)
    return text


class HelpScreen(ModalScreen[None]):
    """A scrollable list of bindings; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close help", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-width: 95%; height: 90%; border: round $accent; padding: 0 1;
        background: $surface;
    }
    """

    def __init__(self, text: Text) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "pvetop keys"
            scroll.border_subtitle = "esc closes"
            yield Static(self._text, id="help-text")

    def action_close(self) -> None:
        self.dismiss()

    def on_click(self, event) -> None:
        if event.widget is self:  # a click beside the box closes it, as escape does
            self.dismiss()
