"""The one base class of pvetop's dialogs: a framed box in the middle of the screen, styled by
``dialog.tcss``, with one key convention — enter confirms (or applies), escape cancels, and the
hint line at the bottom says so in the same words everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from pvetop.text import visible

ResultT = TypeVar("ResultT")

DIALOG_TCSS = Path(__file__).with_name("dialog.tcss")  # absolute: subclasses live in other folders


class Dialog(ModalScreen[ResultT]):
    """Subclasses compose their content inside one ``Vertical`` and bind enter to their confirm
    action; escape is bound here to ``action_cancel``, which dismisses with no result."""

    CSS_PATH = DIALOG_TCSS
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]
    CANCEL_HINT = "esc: cancel"

    def hint(self, *keys: str) -> Static:
        """The hint line: what the keys do (enter first), then how to leave."""
        return Static(" · ".join([*keys, self.CANCEL_HINT]), classes="dialog-hint", markup=False)

    def action_cancel(self) -> None:
        self.dismiss()


@dataclass(frozen=True, slots=True)
class TableRow:
    """One row of a ``TableDialog``: its key, its cells, and its whole text for the detail line."""

    key: str
    cells: tuple[Text | str, ...]
    detail: str = ""


class TableDialog(Dialog[ResultT]):
    """A dialog around one table of choices (migrate, bulk move, evacuate): a title, notes, the
    table, the highlighted row's whole text (the cells are cut at their width), the subclass's
    options, an error line and the hint. Enter on a row calls ``choose`` with its key."""

    COLUMNS: ClassVar[tuple[tuple[str, int], ...]] = ()  # (label, width)
    NOTES = ""  # what the notes line says until the subclass knows more
    HINTS: ClassVar[tuple[str, ...]] = ()
    TABLE_ID = "choices"

    def __init__(self) -> None:
        super().__init__()
        self.details: dict[str, str] = {}

    def heading(self) -> str:
        raise NotImplementedError

    def rows(self) -> list[TableRow]:
        raise NotImplementedError

    def choose(self, key: str) -> None:
        raise NotImplementedError

    def first_row(self, rows: list[TableRow]) -> int:
        """Where the cursor starts when the table is filled the first time."""
        return 0

    def compose_options(self) -> ComposeResult:
        """Fields below the table (none by default)."""
        yield from ()

    def started(self) -> None:
        """Called once the table is filled the first time: start fetching what it lacks."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(visible(self.heading()), classes="dialog-title", markup=False)
            yield Static(self.NOTES, id="notes", classes="dialog-notes", markup=False)
            yield DataTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
            yield Static("", id="detail", markup=False)
            yield from self.compose_options()
            yield Static("", id="error", classes="dialog-error", markup=False)
            yield self.hint(*self.HINTS)

    @property
    def table(self) -> DataTable:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    def on_mount(self) -> None:
        table = self.table
        for label, width in self.COLUMNS:
            table.add_column(label, width=width)
        self.fill()
        table.focus()
        self.started()

    def fill(self) -> None:
        """(Re)draws the table from ``rows``; the cursor stays on its line."""
        table = self.table
        rows = self.rows()
        cursor = table.cursor_row if table.row_count else self.first_row(rows)
        table.clear()
        self.details = {row.key: row.detail for row in rows}
        for row in rows:
            table.add_row(*row.cells, key=row.key)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._show_detail()

    @property
    def cursor_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _show_detail(self) -> None:
        key = self.cursor_key
        text = self.details.get(key, "") if key is not None else ""
        self.query_one("#detail", Static).update(visible(text, multiline=True))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.choose(event.row_key.value)
