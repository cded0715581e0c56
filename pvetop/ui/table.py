"""A DataTable that follows a changing set of rows the way htop does.

``LiveTable.apply(items)`` takes the new rows as ``{row key: item}``; an item is any value that
compares equal when nothing shown in its row changed (the subclass decides what goes in it).
Rows whose item did not change cost one comparison; changed rows are re-formatted and only
their changed cells are written; rows come and go by key; the order is re-computed only when a
sort value changed or rows were added; the cursor stays on the same row key throughout.

Columns have fixed widths, so nothing is ever re-measured (FACTS: measuring is what makes a
5000-row DataTable slow). A few DataTable internals are used for the bulk operations the public
API only offers one cell or row at a time (each with a full refresh, or an O(n) re-index per
removed row); they are kept together at the bottom of the class. Textual is pinned below 9.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

# (text, rich style) of one cell, and the row's values to sort by, one per column
CellView = tuple[str, str]
RowView = tuple[tuple[CellView, ...], tuple[Any, ...]]

SORT_UP = " ▲"
SORT_DOWN = " ▼"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    key: str
    label: str
    width: int
    justify: Literal["left", "right"] = "left"
    descending_first: bool = False  # numbers: biggest first, like htop's CPU%


class _RowState:
    __slots__ = ("item", "cells", "sort_values")

    def __init__(self, item: Any, cells: tuple[CellView, ...], sort_values: tuple[Any, ...]):
        self.item = item
        self.cells = cells
        self.sort_values = sort_values


class LiveTable(DataTable):
    """Base of the node and guest tables: subclasses set ``COLUMNS`` and ``render_row``."""

    COLUMNS: ClassVar[tuple[ColumnSpec, ...]] = ()
    BINDINGS = [
        Binding("enter", "select_cursor", "Details", show=False),
        Binding("P", "sort_by('cpu')", "Sort by CPU%", show=False),
        Binding("M", "sort_by('mem')", "Sort by memory", show=False),
        Binding("greater_than_sign,.", "sort_next", "Sort →", show=False),
        Binding("less_than_sign,comma", "sort_previous", "Sort ←", show=False),
        Binding("r", "sort_reverse", "Reverse sort", show=False),
    ]

    class SortChanged(Message):
        """The user picked another sort column or direction (the app shows it in the footer)."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

    def __init__(self, *, sort_column: str, reverse: bool | None = None, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._specs = {spec.key: spec for spec in self.COLUMNS}
        self._column_index = {spec.key: i for i, spec in enumerate(self.COLUMNS)}
        self._state: dict[str, _RowState] = {}
        self.sort_column = sort_column
        self.sort_reverse = self._specs[sort_column].descending_first if reverse is None else reverse
        for spec in self.COLUMNS:
            self.add_column(self._label(spec), width=spec.width, key=spec.key)

    # --- what subclasses provide -------------------------------------------------------------

    def render_row(self, item: Any) -> RowView:
        """The cells (text, style) and sort values of one row, in ``COLUMNS`` order."""
        raise NotImplementedError

    # --- the public surface ------------------------------------------------------------------

    @property
    def cursor_key(self) -> str | None:
        """Row key under the cursor (the thing the user is looking at), None when empty."""
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        return self._row_locations.get_key(row).value

    def item(self, key: str) -> Any:
        return self._state[key].item

    @property
    def keys_in_order(self) -> list[str]:
        return [row.key.value for row in self.ordered_rows]

    def apply(self, items: Mapping[str, Hashable]) -> None:
        """Make the table show exactly ``items``, touching only what changed."""
        followed = self.cursor_key
        state = self._state
        render_row = self.render_row
        sort_index = self._column_index[self.sort_column]
        gone = [key for key in state if key not in items]
        added: list[str] = []
        cell_updates: list[tuple[str, str, Text]] = []
        resort = False
        columns = self.COLUMNS
        for key, item in items.items():
            old = state.get(key)
            if old is not None and old.item == item:
                continue
            cells, sort_values = render_row(item)
            if old is None:
                state[key] = _RowState(item, cells, sort_values)
                added.append(key)
                continue
            for index, (new_cell, old_cell) in enumerate(zip(cells, old.cells)):
                if new_cell != old_cell:
                    cell_updates.append((key, columns[index].key, self._text(new_cell, columns[index])))
            if sort_values[sort_index] != old.sort_values[sort_index]:
                resort = True
            old.item, old.cells, old.sort_values = item, cells, sort_values
        if gone:
            for key in gone:
                del state[key]
            self._remove_rows(gone)
        for key in added:
            self.add_row(*(self._text(cell, spec) for cell, spec in zip(state[key].cells, columns)), key=key)
        if cell_updates:
            self._write_cells(cell_updates)
        if added or resort:
            self._resort()
        self._follow(followed)

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by ``column``; picking the current column again flips the direction."""
        if column not in self._specs:
            raise ValueError(f"no column {column!r}")
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else self._specs[column].descending_first
        previous = self.sort_column
        self.sort_column, self.sort_reverse = column, reverse
        for key in {previous, column}:
            self.columns[ColumnKey(key)].label = self._label(self._specs[key])
        followed = self.cursor_key
        self._resort()
        self._follow(followed)
        self.post_message(self.SortChanged(self))

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row ``key`` (False when it is not shown)."""
        if key not in self._state:
            return False
        self._follow(key)
        return True

    # --- actions, header clicks ------------------------------------------------------------

    def action_sort_next(self) -> None:
        self._sort_step(1)

    def action_sort_previous(self) -> None:
        self._sort_step(-1)

    def action_sort_by(self, column: str) -> None:
        self.sort_by(column)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def _sort_step(self, step: int) -> None:
        index = (self._column_index[self.sort_column] + step) % len(self.COLUMNS)
        self.sort_by(self.COLUMNS[index].key)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_key.value)

    # --- helpers -------------------------------------------------------------------------------

    def _label(self, spec: ColumnSpec) -> Text:
        if spec.key != self.sort_column:
            return Text(spec.label, justify=spec.justify)
        arrow = SORT_DOWN if self.sort_reverse else SORT_UP
        return Text(spec.label + arrow, justify=spec.justify, style="bold")

    @staticmethod
    def _text(cell: CellView, spec: ColumnSpec) -> Text:
        text, style = cell
        return Text(text, style=style, justify=spec.justify, no_wrap=True, overflow="ellipsis", end="")

    def _resort(self) -> None:
        index = self._column_index[self.sort_column]
        state = self._state
        order = sorted(state, key=lambda key: state[key].sort_values[index], reverse=self.sort_reverse)
        self._set_order(order)

    def _follow(self, key: str | None) -> None:
        if key is None or key not in self._state:
            return
        row = self._row_locations.get(RowKey(key))
        if row is not None and row != self.cursor_row:
            self.move_cursor(row=row, animate=False)

    # --- bulk operations on DataTable internals (see the module docstring) -------------------

    def _write_cells(self, updates: list[tuple[str, str, Text]]) -> None:
        """``update_cell`` for many cells with one refresh instead of one per cell."""
        data = self._data
        for row_key, column_key, value in updates:
            data[RowKey(row_key)][ColumnKey(column_key)] = value
        self._update_count += 1
        self.refresh()

    def _remove_rows(self, keys: list[str]) -> None:
        """``remove_row`` for many rows with one re-index instead of one per row."""
        doomed = {RowKey(key) for key in keys}
        remaining = [row.key for row in self.ordered_rows if row.key not in doomed]
        for row_key in doomed:
            del self.rows[row_key]
            del self._data[row_key]
        self._set_order([key.value for key in remaining])
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate  # clamp into the shorter table
        self.refresh(layout=True)

    def _set_order(self, keys: list[str]) -> None:
        self._row_locations = TwoWayDict({RowKey(key): index for index, key in enumerate(keys)})
        self._update_count += 1
        self.refresh()

    def _update_dimensions(self, new_rows) -> None:
        # Every column has a fixed width and every row is one line: measuring new rows' cells
        # (what DataTable does here) would change nothing and costs ~1 s for 4000 rows.
        super()._update_dimensions(())
