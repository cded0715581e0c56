"""Small pickers: F6 sorts by a column chosen from a list (htop's "Sort by"), ``C`` picks the
visible columns. Like every dialog: enter confirms, escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from pvetop.ui.dialog import Dialog
from pvetop.ui.table import ColumnSpec


class SortScreen(Dialog[str | None]):
    """Pick the sort column of a table; returns its key."""

    BINDINGS = [Binding("enter", "confirm", "Sort", priority=True, id="dialog.confirm")]

    def __init__(self, title: str, columns: tuple[ColumnSpec, ...], current: str) -> None:
        super().__init__()
        self.title_text = title
        self.columns = columns
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="dialog-title", markup=False)
            choices = OptionList(*(Option(spec.name, id=spec.key) for spec in self.columns))
            choices.highlighted = next((i for i, spec in enumerate(self.columns) if spec.key == self.current), 0)
            yield choices
            yield self.hint("enter: sort by it (again: reverse)")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_confirm()

    def action_confirm(self) -> None:
        choices = self.query_one(OptionList)
        if choices.highlighted is not None:
            self.dismiss(choices.get_option_at_index(choices.highlighted).id)


class ColumnsScreen(Dialog[frozenset[str] | None]):
    """Pick the visible columns of a table; returns the hidden ones' keys."""

    BINDINGS = [Binding("enter", "confirm", "Save", priority=True, id="dialog.confirm")]

    def __init__(self, title: str, columns: tuple[ColumnSpec, ...], hidden: frozenset[str], fixed: str) -> None:
        super().__init__()
        self.title_text = title
        self.columns = columns
        self.hidden = hidden
        self.fixed = fixed  # the key column, always shown

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield SelectionList[str](
                *((spec.name, spec.key, spec.key not in self.hidden) for spec in self.columns if spec.key != self.fixed)
            )
            yield self.hint("enter: save (kept for this profile)", "space: show/hide")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_confirm(self) -> None:
        shown = set(self.query_one(SelectionList).selected)
        self.dismiss(frozenset(spec.key for spec in self.columns if spec.key != self.fixed and spec.key not in shown))
