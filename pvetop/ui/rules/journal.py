"""The journal view: the most recent actions on this cluster, by the user, the balancer and the power policy."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from pvetop.text import visible
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

    def compose(self) -> ComposeResult:
        yield Static(id="journal-title")
        yield DataTable(id="journal", cursor_type="row", zebra_stripes=True)
        yield Footer()

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
        for entry in entries:
            details = json.dumps(dict(entry.params), sort_keys=True, separators=(", ", ": "))
            if entry.upid:
                details = f"{entry.upid}  {details}"
            table.add_row(
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at)),
                *(
                    Text(visible(value), end="")
                    for value in (entry.actor, entry.action, entry.target, entry.result, details)
                ),
                key=str(entry.id),
            )
        entries_text = f"{len(entries)} most recent entr{'y' if len(entries) == 1 else 'ies'}"
        self.query_one("#journal-title", Static).update(
            Text(visible(f" Journal of {cluster or 'every cluster'}: {entries_text}")) + " (escape: back)"
        )
        table.focus()

    def action_close(self) -> None:
        self.app.pop_screen()
