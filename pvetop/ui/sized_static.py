"""A ``Static`` that lays the screen out again only when its text changes shape."""

from __future__ import annotations

from rich.text import Text
from textual.visual import VisualType
from textual.widgets import Static


class SizedStatic(Static):
    """Text of the same shape (as many lines, none longer) fits the box the last one was laid out
    in, so only the widget is redrawn: a layout lays out and draws the whole screen (~30 ms on a
    busy machine at 160×45), and the detail pane's boxes are written on every refresh.

    ``update(..., layout=False)`` keeps the box as it is (a placeholder shown in it for a moment),
    and the next text is measured against the box, not against the placeholder."""

    _shape: tuple[int, int] | None = None  # (lines, longest line) the box was laid out for

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if not layout:
            super().update(content, layout=False)
            return
        plain = content.plain if isinstance(content, Text) else content if isinstance(content, str) else None
        if plain is None:
            self._shape = None
            super().update(content)
            return
        rows = plain.splitlines()
        shape = (len(rows), max(map(len, rows), default=0))
        super().update(content, layout=shape != self._shape)
        self._shape = shape
