"""Detail panes (enter on a row): every field, the config summary and an hour of history.

History (rrddata) and config are fetched only for the entity shown, in a thread worker, again
every minute while the pane is open (the hour timeframe has one point per minute). The fields
follow the live snapshot. Panels other rooms contribute (pins, locks, node reservations) are
mounted in ``#extras`` from ``app.detail_panels[kind]``; the first focusable one gets focus, so
its bindings are live while the pane is open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from pvetop.model import Guest, Node
from pvetop.pve.parse import parse_node_basics
from pvetop.text import visible
from pvetop.ui import formatting as fmt
from pvetop.ui.footer import KeyFooter
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.polling import Refresh
from pvetop.ui.sparkline import ScaledSparkline
from pvetop.ui.tables import guest_flags, node_flags

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

HISTORY_SECONDS = 60.0
BYTE_FIELDS = {"mem", "maxmem", "memhost", "disk", "maxdisk", "netin", "netout", "diskread", "diskwrite"}
CONFIG_HIDDEN = {"digest"}


@dataclasses.dataclass(frozen=True)
class Series:
    """One sparkline: a title, the points, how to print a point, and the top of its scale
    (``None``: the highest point, for rates, whose capacity PVE does not report)."""

    title: str
    points: list[float]
    show: Callable[[float], str]
    ceiling: float | None = None


def field_lines(entity: Node | Guest) -> list[tuple[str, str]]:
    """Every field of a node or guest, units made readable."""
    lines = []
    for field in dataclasses.fields(entity):
        value = getattr(entity, field.name)
        if field.name in BYTE_FIELDS:
            shown = fmt.human_bytes(value)
        elif field.name == "cpu":
            shown = fmt.percent(value).strip()
        elif field.name == "uptime":
            shown = fmt.uptime(value)
        elif isinstance(value, tuple):
            shown = ", ".join(map(str, value)) or "-"
        elif value is None or value == "":
            shown = "-"
        else:
            shown = str(value)
        lines.append((field.name, shown))
    return lines


def config_lines(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The config as sorted ``key: value`` lines, values whole: a long one (a description, a disk)
    wraps in the box, which scrolls, so every value can be read."""
    return [(key, str(config[key]).replace("\n", " ⏎ ")) for key in sorted(config) if key not in CONFIG_HIDDEN]


def _table_text(lines: Iterable[tuple[str, str]]) -> Text:
    """``key  value`` lines; both may come from the API (config keys and values, storage names)."""
    lines = [(visible(key), visible(value)) for key, value in lines]
    width = max((len(key) for key, _ in lines), default=0)
    text = Text()
    for index, (key, value) in enumerate(lines):
        if index:
            text.append("\n")
        text.append(key.ljust(width), style="bold")
        text.append("  " + value)
    return text


def _number(value: Any) -> float | None:
    """A point of rrddata as a number; gaps (None) and anything unreadable are skipped."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _column(rows: list[dict[str, Any]], *names: str, scale: float = 1.0) -> list[float]:
    """One rrd column (the first of ``names`` a row has)."""
    points = []
    for row in rows:
        value = next((v for v in (_number(row.get(name)) for name in names) if v is not None), None)
        if value is not None:
            points.append(value * scale)
    return points


def _mem_fraction(rows: list[dict[str, Any]], used: tuple[str, ...], total: tuple[str, ...]) -> list[float]:
    points = []
    for row in rows:
        used_value = next((v for v in (_number(row.get(n)) for n in used) if v is not None), None)
        total_value = next((v for v in (_number(row.get(n)) for n in total) if v), None)
        if used_value is not None and total_value:
            points.append(used_value / total_value * 100)
    return points


def history_series(rows: list[dict[str, Any]]) -> list[Series]:
    """CPU, memory and network sparklines from guest or node rrddata (the names differ)."""
    return [
        Series("CPU", _column(rows, "cpu", scale=100), _percent_text, ceiling=100.0),
        Series("Memory", _mem_fraction(rows, ("mem", "memused"), ("maxmem", "memtotal")), _percent_text, ceiling=100.0),
        Series("Net in", _column(rows, "netin"), fmt.human_rate),
        Series("Net out", _column(rows, "netout"), fmt.human_rate),
    ]


def _percent_text(value: float) -> str:
    return f"{value:.1f}%"


class HistoryLoaded(Message):
    """History and config, already turned into what the pane shows (in the worker)."""

    def __init__(self, series: list[Series], config: list[tuple[str, str]]) -> None:
        super().__init__()
        self.series = series
        self.config = config


class HistoryFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class HistoryChart(Vertical):
    """A titled sparkline with the latest and the highest value of the hour, drawn against the
    resource's capacity (CPU and memory: 0-100 %) so its height reads as the level."""

    DEFAULT_CSS = """
    HistoryChart { height: 3; }
    HistoryChart ScaledSparkline { height: 2; }
    """

    def compose(self) -> ComposeResult:
        yield Label(id="chart-title")
        yield ScaledSparkline()  # "loading…" until the history arrives

    def show(self, series: Series) -> None:
        title = Text(series.title, style="bold")
        if series.points:
            title.append(f"  now {series.show(series.points[-1])}  max {series.show(max(series.points))}")
            scale = series.show(series.ceiling) if series.ceiling is not None else "the hour's max"
            title.append(f"  (scale 0–{scale})", style="dim")
        else:
            title.append("  no data", style="dim")
        self.query_one("#chart-title", Label).update(title)
        chart = self.query_one(ScaledSparkline)
        chart.ceiling = series.ceiling
        chart.data = series.points


class DetailScreen(ReadOnlyGuard, Screen):
    """Shared frame of the guest and node panes; subclasses say what entity and how to fetch."""

    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    KIND: ClassVar[str]
    _fields_shape = (0, 0)  # (lines, longest line) of the fields box's text
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="detail.back"),
        Binding("question_mark,f1", "app.help", "Help", id="app.help"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="detail-fields") as fields:
                fields.border_title = "fields"
                yield Static(id="fields")
            with Vertical(id="detail-side"):
                with Vertical(id="history") as history:
                    history.border_title = "last hour"
                    for index in range(4):
                        yield HistoryChart(id=f"chart-{index}")
                with VerticalScroll(id="detail-config") as config:
                    config.border_title = "config"
                    yield Static("loading config…", id="config")
                yield Vertical(*self._extension_panels(), id="extras")
        yield KeyFooter()

    def _extension_panels(self) -> list[Widget]:
        return [make(self) for make in getattr(self.app, "detail_panels", {}).get(self.KIND, [])]

    def on_mount(self) -> None:
        self.watch(self.app, "latest", self._on_refresh)
        self._load_history()
        self.set_interval(HISTORY_SECONDS, self._load_history)
        focusable = [w for w in self.query_one("#extras").query("*") if w.focusable]
        if focusable:
            focusable[0].focus()

    def action_close(self) -> None:
        self.dismiss()

    # --- live fields ---------------------------------------------------------------------------

    def _on_refresh(self, refresh: Refresh | None) -> None:
        if refresh is None:
            return
        entity = self.find(refresh)
        title = self.query_one("#detail-title", Static)
        if entity is None:
            title.update(Text(visible(f"{self.describe()} is no longer in the cluster"), style="bold red"))
            return
        # text of the same shape (as many lines, none longer) needs no new layout: without one, a
        # refresh redraws the two widgets only (a layout lays out and draws the whole pane, ~100 ms
        # a refresh on smb)
        title.update(self.title_text(entity, refresh), layout=False)
        text = _table_text(self.extra_fields(entity, refresh) + field_lines(entity))
        rows = text.plain.splitlines()
        shape = (len(rows), max(map(len, rows), default=0))
        self.query_one("#fields", Static).update(text, layout=shape != self._fields_shape)
        self._fields_shape = shape

    # --- history and config ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="detail-history", exit_on_error=False)
    def _load_history(self) -> None:
        try:
            rrddata, config = self.fetch_history()
            loaded = HistoryLoaded(history_series(rrddata), self.box_lines(config))
        except Exception as exc:  # network, API or answer trouble: say so in the pane, keep it open
            if not get_current_worker().is_cancelled:
                self.post_message(HistoryFailed(str(exc) or type(exc).__name__))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(loaded)

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        for index, series in enumerate(message.series):
            self.query_one(f"#chart-{index}", HistoryChart).show(series)
        lines = message.config
        self.query_one("#config", Static).update(_table_text(lines) if lines else Text("no config", style="dim"))

    def on_history_failed(self, message: HistoryFailed) -> None:
        self.notify(f"history unavailable: {message.reason}", severity="warning", timeout=4)

    # --- what subclasses provide -------------------------------------------------------------------

    def describe(self) -> str:
        raise NotImplementedError

    def find(self, refresh: Refresh) -> Node | Guest | None:
        raise NotImplementedError

    def title_text(self, entity: Any, refresh: Refresh) -> Text:
        raise NotImplementedError

    def extra_fields(self, entity: Any, refresh: Refresh) -> list[tuple[str, str]]:
        raise NotImplementedError

    def fetch_history(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        raise NotImplementedError

    def box_lines(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """What the config box shows (a node's adds its live basics first)."""
        return config_lines(config)


class GuestDetailScreen(DetailScreen):
    KIND = "guest"

    def __init__(self, vmid: int) -> None:
        super().__init__()
        self.vmid = vmid
        self._guest: Guest | None = None

    def describe(self) -> str:
        return f"guest {self.vmid}"

    def find(self, refresh: Refresh) -> Guest | None:
        guest = refresh.snapshot.guest_by_vmid.get(self.vmid)
        if guest is not None:
            self._guest = guest  # kept for the history fetch, which runs in a thread
        return guest

    def title_text(self, guest: Guest, refresh: Refresh) -> Text:
        kind = "VM" if guest.type == "qemu" else "CT"
        text = Text(visible(f" {kind} {guest.vmid} {guest.name} "), style="bold reverse")
        text.append(visible(f"  on {guest.node}  {guest.status}"))
        return text

    def extra_fields(self, guest: Guest, refresh: Refresh) -> list[tuple[str, str]]:
        netin, netout = refresh.rates.get(guest.vmid, (None, None))
        ruleset = self.app.ruleset
        pinned = ruleset.pinned_to(guest.vmid)
        return [
            ("net in rate", fmt.human_rate(netin)),
            ("net out rate", fmt.human_rate(netout)),
            ("pinned to", ", ".join(sorted(pinned)) if pinned else "-"),
            ("locked", "yes" if ruleset.is_locked(guest.vmid) else "no"),
            ("flags", guest_flags(guest, refresh.marks) or "-"),
        ]

    def fetch_history(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        guest = self._guest
        if guest is None:
            return [], {}
        source = self.app.source
        return source.guest_rrddata(guest, "hour"), source.guest_config(guest)


class NodeDetailScreen(DetailScreen):
    KIND = "node"

    def __init__(self, node_name: str) -> None:
        super().__init__()
        self.node_name = node_name

    def describe(self) -> str:
        return f"node {self.node_name}"

    def find(self, refresh: Refresh) -> Node | None:
        return refresh.snapshot.node_by_name.get(self.node_name)

    def title_text(self, node: Node, refresh: Refresh) -> Text:
        text = Text(visible(f" Node {node.name} "), style="bold reverse")
        text.append(visible(f"  {node.status}"), style="green" if node.online else "bold red")
        return text

    def extra_fields(self, node: Node, refresh: Refresh) -> list[tuple[str, str]]:
        snapshot = refresh.snapshot
        guests = snapshot.guests_by_node.get(node.name, ())
        running = sum(1 for guest in guests if guest.running)
        storage = [s for s in snapshot.storage if s.node == node.name]
        ruleset = self.app.ruleset
        lines = [
            ("guests", f"{running} running of {len(guests)}"),
            ("memory", f"{fmt.used_of(node.mem, node.maxmem)} ({node.mem_fraction * 100:.0f}%)"),
            ("balance load", f"{node.load * 100:.0f}% (mean of CPU and memory share; not the load average)"),
            ("flags", node_flags(node, ruleset) or "-"),
        ]
        for item in storage:
            shared = " shared" if item.shared else ""
            lines.append(
                (f"storage {item.storage}", f"{fmt.used_of(item.disk, item.maxdisk)} {item.plugintype}{shared}")
            )
        return lines

    def fetch_history(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        source = self.app.source
        status = getattr(source, "node_status", None)  # GET /nodes/{node}/status, for the open pane only
        self._status = status(self.node_name) if status is not None else {}
        return source.node_rrddata(self.node_name, "hour"), source.node_config(self.node_name)

    def box_lines(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        return node_basics(getattr(self, "_status", {})) + config_lines(config)


def node_basics(status: dict[str, Any]) -> list[tuple[str, str]]:
    """A node's basics from ``/nodes/{node}/status``: what PVE gives, nothing made up."""
    if not status:
        return []
    basics = parse_node_basics(status)
    lines = []
    if basics.loadavg:
        lines.append(("load average", " ".join(f"{value:g}" for value in basics.loadavg)))
    if basics.io_delay is not None:
        lines.append(("IO delay", f"{basics.io_delay * 100:.1f}%"))
    if basics.swap_total is not None:
        swap = basics.swap_fraction
        shown = "-" if swap is None else f"{fmt.used_of(basics.swap_used or 0, basics.swap_total)} ({swap * 100:.0f}%)"
        lines.append(("swap", shown))
    if basics.ksm_shared is not None:
        lines.append(("KSM sharing", fmt.human_bytes(basics.ksm_shared)))
    lines.extend((f"PSI {name}", f"{value:.2f}") for name, value in basics.pressure)  # where PVE gives it
    if basics.pveversion:
        lines.append(("PVE version", basics.pveversion))
    if basics.kernel:
        lines.append(("kernel", basics.kernel))
    if basics.uptime is not None:
        lines.append(("uptime", fmt.uptime(basics.uptime)))
    return lines
