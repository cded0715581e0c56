"""A table that follows a changing set of rows the way htop does, drawn one line at a time.

``LiveTable.apply(rows)`` takes the rows to show as ``{row key: Row}``. ``build_rows`` makes
them (off the UI thread) from items that compare equal when nothing shown changed, re-using last
refresh's ``Row`` for an unchanged item, so the table skips it with an identity check. Rows come
and go by key; the order is re-computed only when a sort value changed or rows were added; the
cursor stays on its row key.

The table is a ``ScrollView`` that draws its own lines (Textual's Line API, as Textual's ``Log``
widget does): line 0 is the header, line ``1 + i`` the ``i``-th row of ``keys_in_order``. A
row's drawn line is cached with what it was drawn from (the ``Row`` object, cursor, hover, tree
text), so a frame draws again only the rows that are new or changed, and a refresh that moved no
row repaints only the lines of the changed rows. Columns have fixed widths, so nothing is ever
measured per cell; spare width (a wide terminal) goes to the columns a spec lets grow, up to
their longest text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from pvetop.text import visible

LINES_CACHED = 2_000  # drawn rows kept: a few screens, and the rows a re-sort brings back
CELL_PADDING = 1  # blank cells on each side of every column
SORT_UP = " ▲"
SORT_DOWN = " ▼"
NO_SORT = "  "  # the arrow's room on a column that is not the sort column
HEADER = -1  # the hover row of the header line


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    key: str
    label: str
    width: int
    justify: Literal["left", "right"] = "left"
    descending_first: bool = False  # numbers: biggest first, like htop's CPU%
    long_name: str = ""  # for the command palette and captions when the label is terse
    grow: int = 0  # share of a wide terminal's spare width, up to the column's longest text

    @property
    def name(self) -> str:
        return self.long_name or self.label


def column_width(spec: ColumnSpec) -> int:
    """The spec's width, widened so its label and a sort arrow always fit."""
    return max(spec.width, cell_len(spec.label + SORT_UP))


def grown_widths(widths: list[int], wanted: list[int], weights: list[int], spare: int) -> list[int]:
    """``widths`` with ``spare`` cells shared among the columns of non-zero weight, by weight,
    each growing at most up to its ``wanted`` width (what its longest text needs)."""
    widths = list(widths)
    while spare > 0:
        hungry = [i for i, weight in enumerate(weights) if weight and wanted[i] > widths[i]]
        if not hungry:
            break
        total = sum(weights[i] for i in hungry)
        given = 0
        for i in hungry:
            share = min(wanted[i] - widths[i], max(1, spare * weights[i] // total), spare - given)
            widths[i] += share
            given += share
        spare -= given
    return widths


# One cell: (text, rich style, justify). A plain tuple on purpose: the collector stops tracking
# tuples of strings, and a 4000-row table holds 60 000 cells that full collections would walk.
Cell = tuple[str, str, str]


def fit_cell(text: str, width: int, padding: int, justify: str) -> str:
    """``text`` padded and justified to exactly ``width`` cells, cut with an ellipsis if long."""
    room = width - 2 * padding
    length = len(text) if text.isascii() else cell_len(text)  # most cells: numbers and names
    if length > room:
        text = set_cell_size(text, room - 1) + "…" if room > 1 else set_cell_size(text, room)
        length = cell_len(text)
    gap = " " * (room - length)
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
    and in a changed row the previous cell wherever its text and style are unchanged."""
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


# A table's order: (sort column, reversed, tree group column or None), columns as indexes into COLUMNS.
Sorting = tuple[int, bool, int | None]


def order_rows(rows: Mapping[str, Row], sorting: Sorting) -> tuple[str, ...]:
    """``rows``' keys top to bottom under ``sorting`` (in tree view grouped by the group column's
    text, the sort order kept within a group)."""
    column, reverse, group = sorting
    order = sorted(rows, key=lambda key: rows[key].sort_values[column], reverse=reverse)
    if group is not None:
        order.sort(key=lambda key: rows[key].cells[group][0])
    return tuple(order)


class RowChanges(NamedTuple):
    """How new rows differ from the ones before them, by row key."""

    added: tuple[str, ...]
    changed: frozenset[str]
    gone: tuple[str, ...]
    resort: bool  # rows came or went, or a sort (or tree group) value changed
    remeasure: bool  # rows came or went, or the text of a column that grows changed


def row_changes(
    before: Mapping[str, Row], after: Mapping[str, Row], sorting: Sorting, growing: tuple[int, ...]
) -> RowChanges:
    """What changed from ``before`` to ``after``; an unchanged row is the same object (``build_rows``)."""
    known = before.get
    column, _, group = sorting
    added: list[str] = []
    changed: list[str] = []
    resort = remeasure = False
    for key, row in [(key, row) for key, row in after.items() if known(key) is not row]:
        old = known(key)
        if old is None:
            added.append(key)
            continue
        changed.append(key)
        if not resort and (
            row.sort_values[column] != old.sort_values[column]
            or (group is not None and row.sort_values[group] != old.sort_values[group])
        ):
            resort = True
        if not remeasure:
            for i in growing:  # build_rows keeps an unchanged cell: identity says it is
                if row.cells[i] is not old.cells[i] and row.cells[i][0] != old.cells[i][0]:
                    remeasure = True
    gone = tuple(before.keys() - after.keys()) if len(before) + len(added) != len(after) else ()
    if added or gone:
        resort = remeasure = True
    return RowChanges(tuple(added), frozenset(changed), gone, resort, remeasure)


class RowsUpdate:
    """A table's next rows, what changed since the rows ``before`` them and their order under
    ``sorting``, worked out where time is cheap (a poll worker, off the UI thread). On a
    4000-guest cluster, looking at every row and sorting them was most of what a refresh cost the
    UI thread (~10 ms on a busy machine); a table that shows ``before`` takes these rows from it
    in time that grows with the rows on screen (``LiveTable.apply``)."""

    __slots__ = ("before", "rows", "sorting", "changes", "keys", "index")

    def __init__(
        self, before: Mapping[str, Row], rows: Mapping[str, Row], sorting: Sorting, growing: tuple[int, ...]
    ) -> None:
        self.before = before
        self.rows = rows
        self.sorting = sorting
        self.changes = row_changes(before, rows, sorting, growing)
        self.keys = order_rows(rows, sorting)
        self.index = {key: place for place, key in enumerate(self.keys)}


class Look(NamedTuple):
    """The styles a frame is drawn with (the widget's and its component classes'): a new look
    (focus, theme) makes every cached line stale."""

    base: Style
    header: Style
    cursor: Style
    fixed: Style
    fixed_cursor: Style
    hover: Style
    header_hover: Style


class Column(NamedTuple):
    """A shown column as drawn: its spec, where its text is in a row's cells, its width."""

    spec: ColumnSpec
    cell: int
    width: int  # padding included


class DrawnRow:
    """A row's line as last drawn, with what it was drawn from, and cropped to the last view."""

    __slots__ = ("row", "cursor", "hover", "tree", "fixed", "scrolling", "fill", "view", "line")

    def __init__(
        self,
        row: Row,
        cursor: bool,
        hover: bool,
        tree: str | None,
        fixed: list[Segment],
        scrolling: list[Segment],
        fill: Style,
    ) -> None:
        self.row = row
        self.cursor = cursor
        self.hover = hover
        self.tree = tree
        self.fixed = fixed  # the columns that stay put when the table scrolls sideways
        self.scrolling = scrolling  # the others
        self.fill = fill  # the style of the room right of the last column
        self.view: tuple[int, int] | None = None  # (scroll x, width) of ``line``
        self.line = Strip([])


class LiveTable(ScrollView, can_focus=True):
    """Base of the node, guest and storage tables: subclasses set ``COLUMNS``."""

    COLUMNS: ClassVar[tuple[ColumnSpec, ...]] = ()
    ALLOW_SELECT = False
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
        # moving the cursor: what every table does, so help leaves them out (no description)
        Binding("up", "cursor_up", show=False, id="table.up"),
        Binding("down", "cursor_down", show=False, id="table.down"),
        Binding("pageup", "page_up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", show=False, id="table.page_down"),
        Binding("ctrl+home", "scroll_top", show=False, id="table.top"),
        Binding("ctrl+end", "scroll_bottom", show=False, id="table.bottom"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "live-table--fixed",
        "live-table--fixed-cursor",
        "live-table--hover",
        "live-table--header-hover",
    }
    # Textual's DataTable look, so these tables sit beside the dialogs' DataTables unnoticed.
    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .live-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .live-table--header { background-tint: $foreground 5%; }
            & > .live-table--fixed-cursor {
                color: $block-cursor-foreground;
                background: $block-cursor-background;
            }
        }
        & > .live-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .live-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .live-table--fixed { background: $secondary-muted; color: $foreground; }
        & > .live-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .live-table--fixed-cursor { background: $block-cursor-blurred-background; color: $foreground; }
        & > .live-table--header-hover { background: $accent 30%; }
        & > .live-table--hover { background: $block-hover-background; }
    }
    """

    class SortChanged(Message):
        """The user picked another sort column or direction (the app shows it in the footer)."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> LiveTable:
            return self.table

    class RowMessage(Message):
        """A message about one row of the table (its key names it)."""

        def __init__(self, table: LiveTable, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.row_key = row_key

        @property
        def control(self) -> LiveTable:
            return self.table

    class RowHighlighted(RowMessage):
        """The cursor moved onto another row (keys, mouse, ``move_cursor``, ``select_key``)."""

    class RowSelected(RowMessage):
        """Enter on a row, or a click on the row already under the cursor."""

    def __init__(
        self,
        *,
        sort_column: str,
        reverse: bool | None = None,
        hidden: frozenset[str] = frozenset(),
        fixed_columns: int = 0,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._specs = {spec.key: spec for spec in self.COLUMNS}
        self._column_index = {spec.key: i for i, spec in enumerate(self.COLUMNS)}
        self.sort_column = sort_column
        self.group_column: str | None = None  # tree view, see group_by
        self.sort_reverse = self._specs[sort_column].descending_first if reverse is None else reverse
        self.hidden = frozenset(key for key in hidden if key in self._specs and key != sort_column)
        self.fixed_columns = fixed_columns  # how many of the shown columns stay put sideways
        self.shown_columns = tuple(spec for spec in self.COLUMNS if spec.key not in self.hidden)
        self._state: Mapping[str, Row] = {}  # the rows shown: the caller's, never changed in place
        self._order: tuple[str, ...] = ()  # row keys top to bottom
        self._index: Mapping[str, int] = {}  # row key -> its place in _order
        self._cursor = 0
        self._hover: int | None = None  # the row under the mouse (HEADER: the header)
        self._wanted = {spec.key: 0 for spec in self.shown_columns if spec.grow}  # longest text
        self._columns: tuple[Column, ...] = ()
        self._fixed_width = 0
        self._look: Look | None = None
        self._drawn: LRUCache[str, DrawnRow] = LRUCache(LINES_CACHED)
        self._header: dict[tuple[Any, ...], Strip] = {}
        self._cell_styles: dict[tuple[str, bool, bool, bool], Style] = {}  # see _style
        self._lay_out(0)

    # --- the public surface ------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def cursor_key(self) -> str | None:
        """Row key under the cursor (the thing the user is looking at), None when empty."""
        order = self._order
        return order[min(self._cursor, len(order) - 1)] if order else None

    @property
    def keys_in_order(self) -> list[str]:
        return list(self._order)

    @property
    def sorting(self) -> Sorting:
        """How the rows are ordered now, for a ``RowsUpdate`` made elsewhere (see ``apply``)."""
        group = None if self.group_column is None else self._column_index[self.group_column]
        return self._column_index[self.sort_column], self.sort_reverse, group

    def get_row_index(self, key: str) -> int:
        """Where the row ``key`` is shown, top to bottom (KeyError when it is not)."""
        return self._index[key]

    def item(self, key: str) -> Any:
        return self._state[key].item

    def cell(self, key: str, column: str) -> Cell:
        """One cell as the table holds it: (text, style, justify)."""
        return self._state[key].cells[self._column_index[column]]

    def cell_text(self, key: str, column: str) -> str:
        """The text shown in one cell (what a user reads; tests check it)."""
        return self.cell(key, column)[0]

    def header_label(self, column: str) -> Text:
        """The header text; the arrow's room is kept on every column, so no header text moves
        when the sort column changes."""
        spec = self._specs[column]
        if spec.key != self.sort_column:
            return Text(spec.label + NO_SORT, justify=spec.justify)
        arrow = SORT_DOWN if self.sort_reverse else SORT_UP
        return Text(spec.label + arrow, justify=spec.justify, style="bold")

    def shown_width(self, column: str) -> int:
        """A shown column's width as drawn, its padding included."""
        return next(drawn.width for drawn in self._columns if drawn.spec.key == column)

    @classmethod
    def make_row(cls, item: Any, cells: tuple[tuple[str, str], ...], sort_values: tuple[Any, ...]) -> Row:
        """A ``Row`` from (text, style) pairs in ``COLUMNS`` order; the cells show the cluster's
        names and tags, so any control character in them is made visible here (``pvetop.text``)."""
        return Row(
            item,
            tuple((visible(text), style, spec.justify) for (text, style), spec in zip(cells, cls.COLUMNS, strict=True)),
            sort_values,
        )

    @classmethod
    def growing(cls) -> tuple[int, ...]:
        """Where the columns that grow are in a row's cells."""
        return tuple(i for i, spec in enumerate(cls.COLUMNS) if spec.grow)

    def apply(self, rows: Mapping[str, Row], update: RowsUpdate | None = None) -> None:
        """Make the table show exactly ``rows``, touching only what changed; the table keeps
        ``rows`` (not a copy), so they must not change afterwards. ``update``: for ``rows`` or for
        a superset of them (the same ``Row`` objects: the same poll before a filter), used when it
        is for this table's ``sorting``."""
        before = self._state
        if rows is before:
            return
        if update is not None and update.sorting != self.sorting:
            update = None
        if update is not None and update.rows is rows and update.before is before:
            changes = update.changes
        else:
            changes = row_changes(before, rows, self.sorting, self.growing())
        followed = self.cursor_key
        self._state = rows
        for key in changes.gone:  # a row that left keeps no drawn line (the journal's rows come
            self._drawn.discard(key)  # and go by entry id: an LRU alone held 2,000 of them)
        if changes.remeasure:
            self._measure()
        if changes.resort:
            self._resort(update)
            self._cursor = min(self._cursor, max(0, len(self._order) - 1))
            if changes.added or changes.gone:
                self._sized()
            self._follow(followed, announce=False)
        elif changes.changed:
            top = self.scroll_offset.y
            on_screen = self._order[top : top + self.size.height]
            self._refresh_rows(top + place for place, key in enumerate(on_screen) if key in changes.changed)

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by ``column``; picking the current column again flips the direction."""
        if column not in self._specs:
            raise ValueError(f"no column {column!r}")
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else self._specs[column].descending_first
        self.sort_column, self.sort_reverse = column, reverse
        followed = self.cursor_key
        self._resort()
        self._follow(followed, announce=False)
        self.post_message(self.SortChanged(self))

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row ``key`` (False when it is not shown)."""
        if key not in self._index:
            return False
        self._follow(key, announce=True)
        return True

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        """Put the cursor on the ``row``-th row (clamped into the table)."""
        self._move(row, animate=animate, scroll=scroll)

    def group_by(self, column: str | None) -> None:
        """Tree view: rows grouped under their value of ``column`` (None: a flat list again); the
        column shows the value once, on the group's first row, and tree lines below it."""
        if column is not None and column not in self._specs:
            raise ValueError(f"no column {column!r}")
        followed = self.cursor_key
        self.group_column = column
        self._resort()
        self._follow(followed, announce=False)

    def clear(self) -> LiveTable:
        """Forget every row (the columns stay)."""
        self._state = {}
        self._set_order(())
        self._cursor = 0
        self._sized()
        return self

    def cell_segments(self, column: str | None, fitted: str, style: Style) -> list[Segment] | None:
        """A cell drawn in several colours (a subclass's tags); None: one style for the cell."""
        return None

    def redraw(self) -> None:
        """Draw every line again (a subclass changed how ``cell_segments`` colours cells)."""
        self._forget_drawn()
        self.refresh()

    # --- actions, mouse ------------------------------------------------------------------------

    def action_sort_next(self) -> None:
        self._sort_step(1)

    def action_sort_previous(self) -> None:
        self._sort_step(-1)

    def action_sort_by(self, column: str) -> None:
        if column in self._specs:  # P and M on a table without CPU or memory columns do nothing
            self.sort_by(column)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def action_cursor_up(self) -> None:
        self._set_hover(None)
        self._move(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._set_hover(None)
        self._move(self._cursor + 1)

    def action_page_down(self) -> None:
        """A page down, the cursor with it (as DataTable does)."""
        self._set_hover(None)
        page = self._page_height()
        self.scroll_relative(y=page, animate=False, force=True)
        self._move(self._cursor + page, scroll=False)

    def action_page_up(self) -> None:
        self._set_hover(None)
        page = self._page_height()
        self.scroll_relative(y=-page, animate=False, force=True)
        self._move(self._cursor - page, scroll=False)

    def action_scroll_top(self) -> None:
        self._set_hover(None)
        self._move(0)

    def action_scroll_bottom(self) -> None:
        self._set_hover(None)
        self._move(len(self._order) - 1)

    def action_select_cursor(self) -> None:
        self._set_hover(None)
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def _sort_step(self, step: int) -> None:
        index = (self._column_index[self.sort_column] + step) % len(self.COLUMNS)
        self.sort_by(self.COLUMNS[index].key)

    def on_click(self, event: events.Click) -> None:
        """A header sorts by its column (again: reversed); a row gets the cursor, and a click on
        the row already under the cursor selects it (its details)."""
        where = self._under_mouse(event)
        if where is None:
            return
        row, x = where
        self._set_hover(row)
        event.stop()
        if row == HEADER:
            column = self._column_at(x)
            if column is not None:
                self.sort_by(column)
            return
        if row == self._cursor:
            self.action_select_cursor()
            self._set_hover(row)
        else:
            self._move(row, animate=True)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        where = self._under_mouse(event)
        self._set_hover(None if where is None else where[0])

    def on_leave(self, event: events.Leave) -> None:
        self._set_hover(None)

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def watch_show_vertical_scrollbar(self) -> None:
        """The scrollbar takes room from the columns (after the layout that shows it)."""
        self.call_after_refresh(self._fit)

    def _under_mouse(self, event: events.MouseEvent) -> tuple[int, int] | None:
        """(row or HEADER, x in the content) under the mouse; None beside the rows."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        if offset.y == 0:
            return HEADER, offset.x
        row = offset.y - 1 + self.scroll_offset.y
        return (row, offset.x) if row < len(self._order) else None

    def _column_at(self, x: int) -> str | None:
        """The column drawn at ``x`` in the content (the fixed ones do not scroll)."""
        if x >= self._fixed_width:
            x += self.scroll_offset.x
        start = 0
        for drawn in self._columns:
            if start <= x < start + drawn.width:
                return drawn.spec.key
            start += drawn.width
        return None

    # --- rows, order, cursor -------------------------------------------------------------------

    def _resort(self, update: RowsUpdate | None = None) -> None:
        """Order the rows, as ``update`` has them when it is for this table's sorting (see ``apply``)."""
        state = self._state
        if update is None or update.sorting != self.sorting:
            self._set_order(order_rows(state, self.sorting))
        elif len(update.keys) == len(state):
            self._order, self._index = update.keys, update.index
            self.refresh()
        else:  # ordered before a filter
            self._set_order(tuple(key for key in update.keys if key in state))

    def _set_order(self, keys: tuple[str, ...]) -> None:
        self._order = keys
        self._index = {key: index for index, key in enumerate(keys)}
        self.refresh()

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

    def _follow(self, key: str | None, *, announce: bool) -> None:
        """The cursor back on the row ``key`` after the order changed."""
        if key is not None and key in self._index:
            self._move(self._index[key], announce=announce, scroll=self._index[key] != self._cursor)

    def _move(self, row: int, *, animate: bool = False, scroll: bool = True, announce: bool = True) -> None:
        """The cursor to ``row`` (clamped), scrolled into view; a new row under it is announced."""
        before = self.cursor_key
        old, self._cursor = self._cursor, max(0, min(row, len(self._order) - 1))
        if old != self._cursor:
            self._refresh_rows((old, self._cursor))
        if scroll:
            self._scroll_cursor_into_view(animate)
        key = self.cursor_key
        if announce and key is not None and key != before:
            self.post_message(self.RowHighlighted(self, key))

    def _scroll_cursor_into_view(self, animate: bool = False) -> None:
        fixed = self._fixed_width
        table_width = self.virtual_size.width
        region = Region(self.scroll_offset.x + fixed, self._cursor + 1, max(1, table_width - fixed), 1)
        self.scroll_to_region(region, animate=animate, spacing=Spacing(1, 0, 0, fixed), force=True)

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _set_hover(self, row: int | None) -> None:
        if row != self._hover:
            old, self._hover = self._hover, row
            self._refresh_rows(index for index in (old, row) if index is not None)

    def _refresh_rows(self, rows: Iterable[int]) -> None:
        """Repaint the lines of these row indexes (HEADER: the header) if they are in view."""
        top = self.scroll_offset.y
        height = self.size.height
        for index in rows:
            if index == HEADER:
                self.refresh_line(self.scroll_offset.y)  # the header line does not scroll
            elif top <= index < top + height:
                self.refresh_line(index + 1)

    # --- widths ----------------------------------------------------------------------------------

    def _measure(self) -> None:
        """The longest text of each growing column, which is as wide as it will grow."""
        if not self._wanted:
            return
        rows = self._state.values()
        wanted = {
            key: max((cell_len(row.cells[self._column_index[key]][0]) for row in rows), default=0) + 2 * CELL_PADDING
            for key in self._wanted
        }
        if wanted != self._wanted:
            self._wanted = wanted
            self._fit()

    def _fit(self) -> None:
        """The columns laid out in the room the table has now (a scrollbar takes some)."""
        if self.is_mounted:
            self._lay_out(self.scrollable_content_region.width)

    def _lay_out(self, room: int) -> None:
        """Each shown column's width in ``room`` cells: its own, and a share of what is left
        for the columns that grow."""
        specs = self.shown_columns
        widths = [column_width(spec) + 2 * CELL_PADDING for spec in specs]
        spare = room - sum(widths)
        if spare > 0 and self._wanted:
            wanted = [self._wanted.get(spec.key, 0) for spec in specs]
            widths = grown_widths(widths, wanted, [spec.grow for spec in specs], spare)
        columns = tuple(
            Column(spec, self._column_index[spec.key], width) for spec, width in zip(specs, widths, strict=True)
        )
        if columns == self._columns:
            return
        self._columns = columns
        self._fixed_width = sum(column.width for column in columns[: self.fixed_columns])
        self._forget_drawn()
        self._sized()

    def _sized(self) -> None:
        self.virtual_size = Size(sum(column.width for column in self._columns), len(self._order) + 1)
        self.refresh()

    # --- drawing ---------------------------------------------------------------------------------

    def _forget_drawn(self) -> None:
        self._drawn.clear()
        self._header.clear()
        self._cell_styles.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        look = self._current_look()
        if look != self._look:
            self._look = look
            self._forget_drawn()
        return super().render_lines(crop)

    def _current_look(self) -> Look:
        # A table mounted in place of another (new columns) can be drawn once before its CSS
        # is applied: plain styles then, and the look that follows draws every line again.
        def style(name: str) -> Style:
            return self.get_component_rich_style(name, default=Style.null())

        return Look(
            self.rich_style,
            style("live-table--header"),
            style("live-table--cursor"),
            style("live-table--fixed"),
            style("live-table--fixed-cursor"),
            style("live-table--hover"),
            style("live-table--header-hover"),
        )

    def render_line(self, y: int) -> Strip:
        if self._look is None:
            self._look = self._current_look()
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            return self._header_line(scroll_x, width)
        index = y - 1 + scroll_y
        order = self._order
        if index >= len(order):
            return Strip.blank(width, self._look.base)
        key = order[index]
        row = self._state[key]
        cursor = index == self._cursor
        hover = index == self._hover
        tree = None
        if self.group_column is not None:
            tree = self._tree_text(index, row.cells[self._column_index[self.group_column]][0])
        drawn = self._drawn.get(key)
        if (
            drawn is None
            or drawn.row is not row
            or drawn.cursor != cursor
            or drawn.hover != hover
            or drawn.tree != tree
        ):
            drawn = self._draw_row(row, cursor, hover, tree)
            self._drawn[key] = drawn
        view = (scroll_x, width)
        if drawn.view != view:
            drawn.line = self._crop(drawn.fixed, drawn.scrolling, drawn.fill, scroll_x, width)
            drawn.view = view
        return drawn.line

    def _crop(self, fixed: list[Segment], scrolling: list[Segment], fill: Style, scroll_x: int, width: int) -> Strip:
        """The fixed columns, then the others from ``scroll_x`` on, filled out to ``width``: one
        ``Strip`` made when nothing is cut (each costs Textual seven caches)."""
        fixed_width = self._fixed_width
        room = width - fixed_width
        if room <= 0:
            return Strip(fixed, fixed_width).crop(0, width)
        scrolling_width = sum(column.width for column in self._columns) - fixed_width
        if scroll_x == 0 and scrolling_width <= room:
            spare = [Segment(" " * (room - scrolling_width), fill)] if scrolling_width < room else []
            return Strip([*fixed, *scrolling, *spare], width)
        cropped = Strip(scrolling, scrolling_width).crop(scroll_x, scroll_x + room)
        return Strip.join([Strip(fixed, fixed_width), cropped]).extend_cell_length(width, fill)

    def _draw_row(self, row: Row, cursor: bool, hover: bool, tree: str | None) -> DrawnRow:
        """One row's line: each cell fitted to its column, in its style (see ``_cell_style``)."""
        segments: tuple[list[Segment], list[Segment]] = ([], [])
        cells = row.cells
        for position, column in enumerate(self._columns):
            text, cell_style, justify = cells[column.cell]
            if tree is not None and column.spec.key == self.group_column:
                text = tree
            in_fixed = position < self.fixed_columns
            style = self._style(cell_style, in_fixed, cursor, hover)
            fitted = fit_cell(text, column.width, CELL_PADDING, justify)
            parts = self.cell_segments(column.spec.key, fitted, style)
            segments[0 if in_fixed else 1].extend([Segment(fitted, style)] if parts is None else parts)
        return DrawnRow(row, cursor, hover, tree, *segments, self._style("", False, cursor, hover))

    def _style(self, cell_style: str, fixed: bool, cursor: bool, hover: bool) -> Style:
        """A cell's style as DataTable makes it (composed once per look, see ``_cell_style``)."""
        how = (cell_style, fixed, cursor, hover)
        style = self._cell_styles.get(how)
        if style is None:
            assert self._look is not None
            style = self._cell_styles[how] = self._cell_style(self._look, *how)
        return style

    @staticmethod
    def _cell_style(look: Look, cell_style: str, fixed: bool, cursor: bool, hover: bool) -> Style:
        """The cell's own style over the row's (the fixed columns' own), the hover's and the
        cursor's over that, the cursor's colour winning over the cell's (its background does not)."""
        over = Style()
        if hover:
            over += look.hover
        if cursor:
            over += look.cursor
            if fixed:
                over += look.fixed_cursor
        if not cell_style and not fixed:
            return look.base + over  # the room right of the last column, too
        return (look.fixed if fixed else look.base) + over + Style.parse(cell_style) + Style.from_color(over.color)

    def _header_line(self, scroll_x: int, width: int) -> Strip:
        hover = self._hover == HEADER
        key = (self.sort_column, self.sort_reverse, hover, scroll_x, width)
        line = self._header.get(key)
        if line is None:
            self._header.clear()
            line = self._header[key] = self._crop(*self._draw_header(hover), scroll_x, width)
        return line

    def _draw_header(self, hover: bool) -> tuple[list[Segment], list[Segment], Style]:
        """The header's cells as DataTable draws them: each label padded and justified by rich."""
        look = self._look
        assert look is not None
        over = look.hover + look.header_hover if hover else Style()
        before, after = look.header + over, Style.from_color(color=over.color)
        console = self.app.console
        options = self.app.console_options
        cells: list[list[Segment]] = []
        for column in self._columns:
            label = Padding(self.header_label(column.spec.key), (0, CELL_PADDING))
            rendered = console.render(label, options.update_dimensions(column.width, 1).update(no_wrap=True))
            styled = Segment.apply_style(rendered, style=before, post_style=after)
            cells.append(next(iter(Segment.split_and_crop_lines(styled, column.width, include_new_lines=False))))
        split = self.fixed_columns
        fixed = [segment for cell in cells[:split] for segment in cell]
        scrolling = [segment for cell in cells[split:] for segment in cell]
        return fixed, scrolling, before
