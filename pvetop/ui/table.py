"""A DataTable that follows a changing set of rows the way htop does.

``LiveTable.apply(rows)`` takes the rows to show as ``{row key: Row}``. ``build_rows`` makes
them (off the UI thread) from items that compare equal when nothing shown changed, re-using last
refresh's ``Row`` for an unchanged item, so the table skips it with an identity check. Of a
changed row only the changed cells are written; rows come and go by key; the order is
re-computed only when a sort value changed or rows were added; the cursor stays on its row key.

Columns have fixed widths, so nothing is ever re-measured (measuring cell widths is what makes a
5000-row DataTable slow). A few DataTable internals are used for the bulk operations the public
API only offers one cell or row at a time (each with a full refresh, or an O(n) re-index per
removed row) and for drawing: they are kept together at the bottom of the class. Textual is
pinned below 9; tests/ui/test_live_table.py checks them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual._types import SegmentLines
from textual.binding import Binding
from textual.cache import LRUCache
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey
from textual.widgets.data_table import Row as DataTableRow

from pvetop.text import visible

DRAWN_CELLS_CACHED = 6_000  # a few screens of cells, drawn
SORT_UP = " ▲"
SORT_DOWN = " ▼"
NO_SORT = "  "  # the arrow's room on a column that is not the sort column


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    key: str
    label: str
    width: int
    justify: Literal["left", "right"] = "left"
    descending_first: bool = False  # numbers: biggest first, like htop's CPU%
    long_name: str = ""  # for the command palette and captions when the label is terse

    @property
    def name(self) -> str:
        return self.long_name or self.label


def column_width(spec: ColumnSpec) -> int:
    """The spec's width, widened so its label and a sort arrow always fit."""
    return max(spec.width, cell_len(spec.label + SORT_UP))


# One cell: (text, rich style, justify). A plain tuple on purpose: the collector stops tracking
# tuples of strings, and a 4000-row table holds 60 000 cells that full collections would walk.
# A change makes a new tuple, so identity tells the render cache whether to draw it again.
Cell = tuple[str, str, str]


def fit_cell(text: str, width: int, padding: int, justify: str) -> str:
    """``text`` padded and justified to exactly ``width`` cells, cut with an ellipsis if long."""
    room = width - 2 * padding
    if cell_len(text) > room:
        text = set_cell_size(text, room - 1) + "…" if room > 1 else set_cell_size(text, room)
    gap = " " * (room - cell_len(text))
    body = gap + text if justify == "right" else text + gap
    return " " * padding + body + " " * padding


class Row:
    """A row ready to show: the item it was made from, its cells and its sort values.

    Rows are built off the UI thread (``build_rows``); a row whose item did not change is the
    very same object in the next refresh, so the table skips it with an identity check.
    """

    __slots__ = ("item", "cells", "sort_values")

    def __init__(self, item: Any, cells: tuple[Cell, ...], sort_values: tuple[Any, ...]) -> None:
        self.item = item
        self.cells = cells
        self.sort_values = sort_values


def build_rows(
    items: Mapping[str, Any], render: Callable[[Any], Row], previous: Mapping[str, Row] | None
) -> dict[str, Row]:
    """Rows for ``items``, re-using the previous refresh's row wherever the item is unchanged,
    and in a changed row the previous cell wherever its text and style are unchanged (the
    table re-draws a cell only when it is a new object)."""
    previous = previous or {}
    rows = {}
    for key, item in items.items():
        old = previous.get(key)
        if old is not None and old.item == item:
            rows[key] = old
            continue
        row = render(item)
        if old is not None:
            row.cells = tuple(
                before if before == new else new for before, new in zip(old.cells, row.cells, strict=True)
            )
        rows[key] = row
    return rows


class _LiveRowData(Mapping):
    """What DataTable keeps as a row's cells: a view of the table's current ``Row``, so a
    changed row needs no per-cell writes and ``get_cell`` always answers what is shown."""

    __slots__ = ("_state", "_key", "_index")

    def __init__(self, state: dict[str, Row], key: str, index: dict[str, int]) -> None:
        self._state = state
        self._key = key
        self._index = index

    def __getitem__(self, column_key: Any) -> Cell:
        return self._state[self._key].cells[self._index[column_key]]

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class LiveTable(DataTable):
    """Base of the node and guest tables: subclasses set ``COLUMNS``."""

    COLUMNS: ClassVar[tuple[ColumnSpec, ...]] = ()
    BINDINGS = [
        Binding("enter", "select_cursor", "Details", show=False, id="table.details"),
        Binding("P", "sort_by('cpu')", "Sort by CPU%", show=False, id="table.sort_cpu"),
        Binding("M", "sort_by('mem_pct')", "Sort by Mem%", show=False, id="table.sort_mem"),
        Binding(
            "greater_than_sign,full_stop", "sort_next", "Sort by the next column", show=False, id="table.sort_next"
        ),
        Binding(
            "less_than_sign,comma", "sort_previous", "Sort by the previous column", show=False, id="table.sort_previous"
        ),
        Binding("r", "sort_reverse", "Reverse sort", show=False, id="table.sort_reverse"),
        Binding("home", "scroll_top", "First row", show=False, id="table.first"),
        Binding("end", "scroll_bottom", "Last row", show=False, id="table.last"),
    ]

    class SortChanged(Message):
        """The user picked another sort column or direction (the app shows it in the footer)."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

    def __init__(
        self, *, sort_column: str, reverse: bool | None = None, hidden: frozenset[str] = frozenset(), **kwargs: Any
    ) -> None:
        # before DataTable's __init__: its watchers already ask for ordered_rows
        self._state: dict[str, Row] = {}
        self._row_keys: dict[str, RowKey] = {}
        self._order: list[str] = []  # row keys top to bottom, kept with DataTable's own index
        self._table_rows: dict[str, DataTableRow] = {}
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._specs = {spec.key: spec for spec in self.COLUMNS}
        self._column_index = {spec.key: i for i, spec in enumerate(self.COLUMNS)}
        self._drawn_cells: LRUCache[tuple, tuple[Cell, SegmentLines]] = LRUCache(DRAWN_CELLS_CACHED)
        self.sort_column = sort_column
        self.group_column: str | None = None  # tree view, see group_by
        self.sort_reverse = self._specs[sort_column].descending_first if reverse is None else reverse
        self.hidden = frozenset(key for key in hidden if key in self._specs and key != sort_column)
        for spec in self.COLUMNS:
            if spec.key not in self.hidden:
                self.add_column(self._label(spec), width=column_width(spec), key=spec.key)
        # what DataTable reads of a row: the shown columns, each at its place in the row's cells
        self._shown_index = {key: i for key, i in self._column_index.items() if key not in self.hidden}

    # --- the public surface ------------------------------------------------------------------

    @property
    def cursor_key(self) -> str | None:
        """Row key under the cursor (the thing the user is looking at), None when empty."""
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        key = self._row_locations.get_key(row)
        return key.value if key is not None else None

    def item(self, key: str) -> Any:
        return self._state[key].item

    def cell_text(self, key: str, column: str) -> str:
        """The text shown in one cell (what a user reads; tests check it)."""
        return self._state[key].cells[self._column_index[column]][0]

    @classmethod
    def make_row(cls, item: Any, cells: tuple[tuple[str, str], ...], sort_values: tuple[Any, ...]) -> Row:
        """A ``Row`` from (text, style) pairs in ``COLUMNS`` order; the cells show the cluster's
        names and tags, so any control character in them is made visible here (``pvetop.text``)."""
        return Row(
            item,
            tuple((visible(text), style, spec.justify) for (text, style), spec in zip(cells, cls.COLUMNS, strict=True)),
            sort_values,
        )

    @property
    def keys_in_order(self) -> list[str]:
        return [row.key.value for row in self.ordered_rows if row.key.value is not None]

    def apply(self, rows: Mapping[str, Row]) -> None:
        """Make the table show exactly ``rows``, touching only what changed."""
        followed = self.cursor_key
        state = self._state
        sort_index = self._column_index[self.sort_column]
        group_index = None if self.group_column is None else self._column_index[self.group_column]
        gone = [key for key in state if key not in rows]
        added: list[str] = []
        changed = resort = False
        for key, row in rows.items():
            old = state.get(key)
            if old is row:
                continue
            state[key] = row
            if old is None:
                added.append(key)
                continue
            changed = True
            if row.sort_values[sort_index] != old.sort_values[sort_index] or (
                group_index is not None and row.sort_values[group_index] != old.sort_values[group_index]
            ):
                resort = True
        if gone:
            for key in gone:
                del state[key]
            self._remove_rows(gone)
        for key in added:
            self._add_live_row(key)
        if changed:
            self._cells_changed()
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
            if key not in self.hidden:
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
        if event.column_key.value is not None:
            self.sort_by(event.column_key.value)

    # --- helpers -------------------------------------------------------------------------------

    def _label(self, spec: ColumnSpec) -> Text:
        """The header text; the arrow's room is kept on every column, so no header text moves
        when the sort column changes."""
        if spec.key != self.sort_column:
            return Text(spec.label + NO_SORT, justify=spec.justify)
        arrow = SORT_DOWN if self.sort_reverse else SORT_UP
        return Text(spec.label + arrow, justify=spec.justify, style="bold")

    def _resort(self) -> None:
        index = self._column_index[self.sort_column]
        state = self._state
        order = sorted(state, key=lambda key: state[key].sort_values[index], reverse=self.sort_reverse)
        if self.group_column is not None:  # stable: within a group, the sort order stays
            group = self._column_index[self.group_column]
            order.sort(key=lambda key: state[key].cells[group][0])
        self._set_order(order)

    def group_by(self, column: str | None) -> None:
        """Tree view: rows grouped under their value of ``column`` (None: a flat list again); the
        column shows the value once, on the group's first row, and tree lines below it."""
        if column is not None and column not in self._specs:
            raise ValueError(f"no column {column!r}")
        followed = self.cursor_key
        self.group_column = column
        self._drawn_cells.clear()
        self._resort()
        self._follow(followed)

    def _tree_text(self, row_index: int, text: str) -> str:
        """The group column's text in tree view: the value on a group's first row, then ├─ / └─."""
        order = self._order
        group = self._column_index[self.group_column or ""]
        state = self._state

        def value(index: int) -> str | None:
            return state[order[index]].cells[group][0] if 0 <= index < len(order) else None

        if value(row_index - 1) != text:
            return text
        return " ├─" if value(row_index + 1) == text else " └─"

    def _follow(self, key: str | None) -> None:
        if key is None or key not in self._state:
            return
        row = self._row_locations.get(RowKey(key))
        if row is not None and row != self.cursor_row:
            self.move_cursor(row=row, animate=False)

    # --- bulk operations on DataTable internals (see the module docstring) -------------------

    def _add_live_row(self, key: str) -> None:
        """``add_row``, then the row's cells become a view of ``_state`` (see ``_LiveRowData``)."""
        cells = self._state[key].cells
        if self.hidden:
            cells = tuple(cells[i] for i in self._shown_index.values())
        row_key = self.add_row(*cells, key=key)
        self._row_keys[key] = row_key
        self._order.append(key)  # add_row puts it last
        self._table_rows[key] = self.rows[row_key]
        # DataTable only reads a row's cells as a mapping; a view instead of a dict (see above)
        self._data[row_key] = _LiveRowData(self._state, key, self._shown_index)  # type: ignore[assignment]

    def _cells_changed(self) -> None:
        """What ``update_cell`` does after writing a cell, once for the whole refresh."""
        self._update_count += 1
        self.refresh()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        # DataTable keys its cell cache on a counter bumped by every update, so one changed
        # cell re-draws every visible cell, each through rich's Padding/Styled machinery.
        # Keyed on the cell object instead (replaced on change), a refresh re-draws only the
        # changed cells, and a one-line cell is drawn directly as a single segment.
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:  # the header row or the row labels
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        value = self._data[row_key][column_key]
        shown = value[0]
        if column_key.value == self.group_column:
            shown = self._tree_text(row_index, shown)
        cache_key = (
            row_key,
            column_key,
            row_index,
            shown,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        cached = self._drawn_cells.get(cache_key)
        if cached is not None and cached[0] is value:
            return cached[1]
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        _, cell_style, justify = value
        text = shown
        style = (
            base_style
            + Style.from_meta({"row": row_index, "column": column_index})
            + component_style
            + Style.parse(cell_style)
            + post_style
        )
        fitted = fit_cell(text, width, self.cell_padding, justify)
        lines = [self.cell_segments(column_key.value, fitted, style) or [Segment(fitted, style)]]
        self._drawn_cells[cache_key] = (value, lines)
        return lines

    def cell_segments(self, column: str | None, fitted: str, style: Style) -> list[Segment] | None:
        """A cell drawn in several colours (a subclass's tags); None: one style for the cell."""
        return None

    def _remove_rows(self, keys: list[str]) -> None:
        """``remove_row`` for many rows with one re-index instead of one per row."""
        gone = set(keys)
        for key in gone:
            row_key = self._row_keys.pop(key)
            del self._table_rows[key]
            del self.rows[row_key]
            del self._data[row_key]
        self._set_order([key for key in self._order if key not in gone])
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate  # clamp into the shorter table
        self.refresh(layout=True)

    def _set_order(self, keys: list[str]) -> None:
        row_keys = self._row_keys
        self._order = keys
        self._row_locations = TwoWayDict({row_keys[key]: index for index, key in enumerate(keys)})
        self._update_count += 1
        self.refresh()

    @property
    def ordered_rows(self) -> list[DataTableRow]:
        # From our own top-to-bottom key list: DataTable's walks its index with a lookup per row.
        cache_key = (self.row_count, self._update_count)
        rows = self._ordered_row_cache.get(cache_key)
        if rows is None:
            table_rows = self._table_rows
            rows = [table_rows[key] for key in self._order]
            self._ordered_row_cache[cache_key] = rows
        return rows

    def clear(self, columns: bool = False) -> LiveTable:
        """DataTable's ``clear``, forgetting our rows too (columns are fixed: keep them)."""
        if columns:
            raise ValueError("a LiveTable's columns are fixed")
        self._state.clear()
        self._row_keys.clear()
        self._order = []
        self._table_rows.clear()
        super().clear()
        return self

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        # Every row is one line high: one (row key, 0) per row, built in one pass per update
        # instead of DataTable's list-per-row (a third of a 4000-row frame).
        offsets = self._offset_cache.get(self._update_count)
        if offsets is None:
            offsets = [(row.key, 0) for row in self.ordered_rows]
            self._offset_cache[self._update_count] = offsets
        return offsets

    def _update_dimensions(self, new_rows) -> None:
        # Every column has a fixed width and every row is one line: measuring new rows' cells
        # (what DataTable does here) would change nothing and costs ~1 s for 4000 rows.
        super()._update_dimensions(())
