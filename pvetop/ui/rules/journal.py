"""The journal view: the most recent actions on this cluster, by the user, the balancer and the power policy.

The cells are cut at their column's width; the highlighted entry is shown whole below the table.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from pvetop.text import visible
from pvetop.ui.footer import KeyFooter
from pvetop.ui.rules.controller import RulesController

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

LIMIT = 500
COLUMNS = (("time", 19), ("actor", 8), ("action", 18), ("target", 22), ("result", 10), ("details", 60))


class JournalScreen(Screen):
    """Installed once; every time it is shown it re-reads the journal (newest first)."""

    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    BINDINGS = [
        Binding("escape,q", "close", "Back", id="journal.back"),
        Binding("ctrl+r", "reload", "Reload", id="journal.reload"),
    ]

    DEFAULT_CSS = """
    JournalScreen #journal { height: 1fr; }
    JournalScreen #journal-entry { height: auto; max-height: 10; padding: 0 1; background: $boost; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, str] = {}  # row key -> the entry's whole text

    def compose(self) -> ComposeResult:
        yield Static(id="journal-title")
        yield DataTable(id="journal", cursor_type="row", zebra_stripes=True)
        yield Static(id="journal-entry", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width, key=label)

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        controller = RulesController(self.app, self.app.store)
        cluster = controller.cluster
        entries = controller.store.recent_journal(cluster, limit=LIMIT)
        table = self.query_one(DataTable)
        table.clear()
        self.entries = {}
        for entry in entries:
            details = json.dumps(dict(entry.params), sort_keys=True, separators=(", ", ": "))
            if entry.upid:
                details = f"{entry.upid}  {details}"
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
            values = (entry.actor, entry.action, entry.target, entry.result, details)
            table.add_row(at, *(Text(visible(value), end="") for value in values), key=str(entry.id))
            self.entries[str(entry.id)] = "\n".join(
                [f"{at}  {entry.actor}  {entry.action}  {entry.target}", f"result: {entry.result}", details]
            )
        entries_text = f"{len(entries)} most recent entr{'y' if len(entries) == 1 else 'ies'}"
        self.query_one("#journal-title", Static).update(
            Text(visible(f" Journal of {cluster or 'every cluster'}: {entries_text}")) + " (escape: back)"
        )
        table.focus()
        self._show_entry()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_entry()

    def _show_entry(self) -> None:
        table = self.query_one(DataTable)
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        self.query_one("#journal-entry", Static).update(visible(self.entries.get(key or "", ""), multiline=True))

    def action_close(self) -> None:
        self.app.pop_screen()
