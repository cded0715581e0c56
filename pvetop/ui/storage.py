"""``S``: the storage view — one row per storage and node (a shared storage once), with the
tables' own sort keys (P, M, <, >, r, F6) and ``/`` to filter; enter lists the guests that keep
volumes on the selected storage (one request, when asked).

The rows come from the snapshot the dashboard already has (``/cluster/resources`` lists every
storage), so the view costs no request of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Static

from pvetop.errors import PvetopError
from pvetop.model import ClusterSnapshot, Storage
from pvetop.pve.storage import storage_guests
from pvetop.ui import formatting as fmt
from pvetop.ui.footer import KeyFooter
from pvetop.ui.health import api_client
from pvetop.ui.table import ColumnSpec, LiveTable, Row, build_rows

STORAGE_BINDING = Binding("S", "storage", "Storage", id="app.storage", tooltip="Storage view")
SHARED = "shared"


@dataclass(frozen=True, slots=True)
class StorageRow:
    storage: Storage
    where: str  # the node, or "shared"


class StorageTable(LiveTable):
    COLUMNS = (
        ColumnSpec("storage", "Storage", 14, grow=1),
        ColumnSpec("where", "Node", 12, long_name="node, or shared"),
        ColumnSpec("type", "Type", 9),
        ColumnSpec("content", "Content", 26, grow=1),
        ColumnSpec("cpu", "Used", 13, "right", True, long_name="used / total"),
        ColumnSpec("mem_pct", "Use%", 6, "right", True),
        ColumnSpec("status", "Status", 9),
    )  # keys "cpu"/"mem_pct": the tables' P and M sort keys sort by used bytes and share here

    def __init__(self, **kwargs) -> None:
        super().__init__(sort_column="storage", **kwargs)


def render_storage(item: StorageRow) -> Row:
    store = item.storage
    share = store.disk / store.maxdisk if store.maxdisk else 0.0
    available = store.status == "available"
    cells = (
        (store.storage, "bold"),
        (item.where, "cyan" if item.where == SHARED else ""),
        (store.plugintype, ""),
        (",".join(store.content), ""),
        (fmt.used_of(store.disk, store.maxdisk), ""),
        (
            fmt.percent(share) if store.maxdisk else "-",
            "bold red" if share >= 0.9 else ("yellow" if share >= 0.7 else ""),
        ),
        (store.status, "green" if available else "bold red"),
    )
    key = (store.storage, item.where)
    sort_values = (key, (item.where, store.storage), (store.plugintype, key), (cells[3][0], key), (store.disk, key),
                   (share, key), (store.status, key))  # fmt: skip
    return StorageTable.make_row(item, cells, sort_values)


def storage_rows(snapshot: ClusterSnapshot, query: str = "") -> dict[str, Row]:
    """One row per storage and node, a shared storage once; ``query`` (a regex or text) filters."""
    items: dict[str, StorageRow] = {}
    for store in snapshot.storage:
        where = SHARED if store.shared else store.node
        items.setdefault(f"{store.storage}@{where}", StorageRow(store, where))
    if query:
        try:
            pattern = re.compile(query, re.IGNORECASE)
        except re.error:
            pattern = re.compile(re.escape(query), re.IGNORECASE)
        items = {
            key: item
            for key, item in items.items()
            if any(
                pattern.search(text)
                for text in (item.storage.storage, item.where, item.storage.plugintype, *item.storage.content)
            )
        }
    return build_rows(items, render_storage, None)


class StorageScreen(Screen):
    DEFAULT_CSS = """
    StorageScreen #storage-caption { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    StorageScreen StorageTable { height: 1fr; }
    StorageScreen Input { display: none; }
    StorageScreen Input.shown { display: block; }
    """
    BINDINGS = [
        Binding("escape,q,S", "close", "Back", id="storage.back"),
        Binding("slash,f3", "filter", "Filter", id="storage.filter"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="storage-caption")
        yield StorageTable(id="storage")
        yield Input(placeholder="filter storage: name, node, type, content (text or regex)", id="storage-filter")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(StorageTable).focus()
        self.show()

    def show(self) -> None:
        latest = getattr(self.app, "latest", None)
        if latest is None:
            return
        table = self.query_one(StorageTable)
        query = self.query_one("#storage-filter", Input).value.strip()
        table.apply(storage_rows(latest.snapshot, query))
        caption = f"Storage {table.row_count}  ·  enter: its guests  ·  / filter  ·  esc back"
        self.query_one("#storage-caption", Static).update(caption + (f"  ·  filter “{query}”" if query else ""))

    def action_filter(self) -> None:
        field = self.query_one("#storage-filter", Input)
        field.add_class("shown")
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(StorageTable).focus()

    def on_live_table_row_selected(self, event: LiveTable.RowSelected) -> None:
        event.stop()
        item = event.table.item(event.row_key)
        self.app.push_screen(StorageGuestsScreen(item.storage, item.where))

    def action_close(self) -> None:
        self.dismiss()


class GuestsArrived(Message):
    def __init__(self, sizes: dict[int, int] | None, error: str = "") -> None:
        super().__init__()
        self.sizes = sizes
        self.error = error


class StorageGuestsScreen(ModalScreen[None]):
    """The guests with volumes on one storage, biggest first."""

    DEFAULT_CSS = """
    StorageGuestsScreen { align: center middle; }
    StorageGuestsScreen > Vertical { width: 80; max-width: 95%; height: 80%; border: thick $primary;
                                     background: $surface; padding: 0 1; }
    StorageGuestsScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q", "close", "Back", id="dialog.cancel")]

    def __init__(self, storage: Storage, where: str) -> None:
        super().__init__()
        self.storage = storage
        self.where = where

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Guests on {self.storage.storage} ({self.where}): reading…", id="storage-guests-title")
            yield DataTable(id="storage-guests", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("VMID", 6), ("Name", 20), ("Node", 12), ("Status", 8), ("On this storage", 15)):
            table.add_column(label, width=width)
        table.focus()
        self._fetch()

    @work(thread=True, exit_on_error=False)
    def _fetch(self) -> None:
        try:
            self.post_message(
                GuestsArrived(storage_guests(api_client(self.app), self.storage.node, self.storage.storage))
            )
        except (PvetopError, AttributeError) as exc:
            self.post_message(GuestsArrived(None, getattr(exc, "message", "") or "this data source has no API"))

    def on_guests_arrived(self, message: GuestsArrived) -> None:
        title = self.query_one("#storage-guests-title", Static)
        if message.sizes is None:
            title.update(f"Guests on {self.storage.storage}: cannot read its content: {message.error}")
            return
        latest = getattr(self.app, "latest", None)
        guests = latest.snapshot.guest_by_vmid if latest is not None else {}
        table = self.query_one(DataTable)
        for vmid, size in sorted(message.sizes.items(), key=lambda pair: -pair[1]):
            guest = guests.get(vmid)
            table.add_row(
                str(vmid),
                guest.name if guest else "-",
                guest.node if guest else "-",
                guest.status if guest else "-",
                fmt.human_bytes(size),
                key=str(vmid),
            )
        title.update(f"Guests on {self.storage.storage} ({self.where}): {len(message.sizes)}  ·  esc closes")

    def action_close(self) -> None:
        self.dismiss(None)
