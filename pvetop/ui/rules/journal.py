"""The journal view: the most recent actions on this cluster, by the user, the balancer and the power policy.

The cells are cut at their column's width; the highlighted entry is shown whole below the table.
Entries never change once written, so a row drawn once is kept for the next time the screen opens
(keyed by the entry's id) and only new entries are drawn; the store is read off the UI thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from pvetop.store.records import JournalEntry
from pvetop.text import visible
from pvetop.ui.footer import KeyFooter
from pvetop.ui.rules.controller import RulesController
from pvetop.ui.table import ColumnSpec, LiveTable, Row

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

LIMIT = 500


class JournalTable(LiveTable):
    COLUMNS = (
        ColumnSpec("time", "Time", 19, descending_first=True),
        ColumnSpec("actor", "Actor", 8),
        ColumnSpec("action", "Action", 18),
        ColumnSpec("target", "Target", 22),
        ColumnSpec("result", "Result", 10, grow=1),
        ColumnSpec("details", "Details", 60, grow=2),
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(sort_column="time", **kwargs)


def entry_details(entry: JournalEntry) -> str:
    details = json.dumps(dict(entry.params), sort_keys=True, separators=(", ", ": "))
    return f"{entry.upid}  {details}" if entry.upid else details


def entry_time(entry: JournalEntry) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))


def entry_row(entry: JournalEntry) -> Row:
    """One entry's row; sorted by when it was written (its id), newest first."""
    texts = (entry_time(entry), entry.actor, entry.action, entry.target, entry.result, entry_details(entry))
    order = (entry.id,) + tuple((text, entry.id) for text in texts[1:])
    return JournalTable.make_row(entry, tuple((text, "") for text in texts), order)


def entry_text(entry: JournalEntry) -> str:
    """The whole entry, for the box below the table."""
    return "\n".join(
        [
            f"{entry_time(entry)}  {entry.actor}  {entry.action}  {entry.target}",
            f"result: {entry.result}",
            entry_details(entry),
        ]
    )


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
        self.rows: dict[str, Row] = {}  # entry id -> its row, kept while the entry is among the shown

    def compose(self) -> ComposeResult:
        yield Static(id="journal-title")
        yield JournalTable(id="journal")
        yield Static(id="journal-entry", markup=False)
        yield KeyFooter()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self._reload(), group="journal", exclusive=True, exit_on_error=False)

    async def _reload(self) -> None:
        controller = RulesController(self.app, self.app.store)
        cluster = controller.cluster
        entries = await asyncio.to_thread(controller.store.recent_journal, cluster, LIMIT)
        kept = self.rows
        self.rows = {str(e.id): kept.get(str(e.id)) or entry_row(e) for e in entries}
        table = self.query_one(JournalTable)
        table.apply(self.rows)
        entries_text = f"{len(entries)} most recent entr{'y' if len(entries) == 1 else 'ies'}"
        self.query_one("#journal-title", Static).update(
            Text(visible(f" Journal of {cluster or 'every cluster'}: {entries_text}")) + " (escape: back)"
        )
        table.focus()
        self._show_entry()

    def on_live_table_row_highlighted(self, event: LiveTable.RowHighlighted) -> None:
        self._show_entry()

    def _show_entry(self) -> None:
        key = self.query_one(JournalTable).cursor_key
        row = self.rows.get(key or "")
        text = entry_text(row.item) if row is not None else ""
        self.query_one("#journal-entry", Static).update(visible(text, multiline=True))

    def action_close(self) -> None:
        self.app.pop_screen()
