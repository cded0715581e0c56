"""A sparkline scaled against a fixed range, such as the resource's capacity.

Textual's ``Sparkline`` scales each series from its own minimum to its maximum: 6.0–6.9 % CPU
then fills the full height and a constant value draws as nothing. Here a bar's height is its
value's share of ``ceiling`` (100 % for CPU and memory), so a glance reads the level itself;
a value above zero always shows at least the lowest bar; and a chart with no history yet says
"loading…" instead of drawing an empty line.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"
LOADING = "loading…"


def column_values(values: Sequence[float], width: int) -> list[float]:
    """One value per column: the highest of the points that fall in it (a few points are stretched)."""
    count = len(values)
    if not count or width <= 0:
        return []
    columns = []
    for column in range(width):
        start = column * count // width
        end = max(start + 1, (column + 1) * count // width)
        columns.append(max(values[start:end]))
    return columns


def bar_levels(values: Sequence[float], ceiling: float, height: int) -> list[int]:
    """Each value's height in eighths of a line, 0..8*height, against ``ceiling``; above zero is at least 1."""
    steps = len(BARS) * height
    levels = []
    for value in values:
        share = min(1.0, max(0.0, value / ceiling)) if ceiling > 0 else 0.0
        level = round(share * steps)
        levels.append(max(level, 1) if value > 0 else 0)
    return levels


def bar_lines(values: Sequence[float], ceiling: float, width: int, height: int) -> list[str]:
    """The chart as ``height`` lines of ``width`` characters, top line first."""
    levels = bar_levels(column_values(values, width), ceiling, height)
    lines = []
    for line in reversed(range(height)):
        low = line * len(BARS)
        cells = []
        for level in levels:
            if level >= low + len(BARS):
                cells.append(BARS[-1])
            elif level > low:
                cells.append(BARS[level - low - 1])
            else:
                cells.append(" ")
        lines.append("".join(cells).ljust(width))
    return lines


class _Bars:
    """The renderable: the lines of ``bar_lines``, each bar coloured by its value."""

    def __init__(self, values: Sequence[float], ceiling: float, warn_at: float | None) -> None:
        self.values = values
        self.ceiling = ceiling
        self.warn_at = warn_at

    def _style(self, value: float) -> Style:
        if self.warn_at is not None:
            return Style(color="yellow" if value >= self.warn_at else "green")
        share = value / self.ceiling if self.ceiling > 0 else 0.0
        return Style(color="red" if share >= 0.9 else "yellow" if share >= 0.7 else "green")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height or 1
        styles = [self._style(value) for value in column_values(self.values, width)]
        for index, line in enumerate(bar_lines(self.values, self.ceiling, width, height)):
            if index:
                yield Segment.line()
            for char, style in zip(line, styles, strict=False):
                yield Segment(char, style)


class ScaledSparkline(Widget):
    """``data`` against ``ceiling`` (None: the highest point, from zero); ``data`` None: loading.

    ``warn_at``: bars at or above it are drawn in yellow (the balancer's threshold); without it,
    the colour follows the share of ``ceiling`` as the load bars do.
    """

    DEFAULT_CSS = "ScaledSparkline { height: 1; }"

    data: reactive[Sequence[float] | None] = reactive(None)
    ceiling: reactive[float | None] = reactive(None)
    warn_at: reactive[float | None] = reactive(None)

    def __init__(
        self,
        data: Sequence[float] | None = None,
        *,
        ceiling: float | None = None,
        warn_at: float | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.set_reactive(ScaledSparkline.data, data)
        self.set_reactive(ScaledSparkline.ceiling, ceiling)
        self.set_reactive(ScaledSparkline.warn_at, warn_at)

    def render(self) -> RenderableType:
        if self.data is None:
            return Text(LOADING, style="dim italic")
        if not self.data:
            return Text("no history yet", style="dim italic")
        ceiling = self.ceiling if self.ceiling is not None else max(self.data)
        return _Bars(self.data, ceiling, self.warn_at)
