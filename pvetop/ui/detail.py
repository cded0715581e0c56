"""Detail panes (enter on a row): every field, the config summary and an hour of history.

History (rrddata) and config are fetched only for the entity shown, in a thread worker, again
every minute while the pane is open (the hour timeframe has one point per minute). The fields
follow the live snapshot. Panels other rooms contribute (pins, locks, node reservations) are
mounted in ``#extras`` from ``app.detail_panels[kind]``; the first focusable one gets focus, so
its bindings are live while the pane is open.

The dashboard composes each kind of pane once and points it, and its panels, at the next guest
or node (``show_subject``): composing its ~40 widgets cost ~300 ms of the event loop on a busy
machine, the dashboard's slowest key; showing the composed pane again costs a fifth of that.
While put away, a pane follows no refresh and reads no history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

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
from pvetop.ui.sized_static import SizedStatic
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


def pane_shown(widget: Widget) -> bool:
    """The widget's detail pane is open (on top, or under a dialog), not composed and put away:
    what follows the refreshes waits until the pane shows again."""
    return widget.screen in widget.app.screen_stack


def follow_refreshes(panel: Widget, show: Callable[[], None]) -> None:
    """For a panel's ``on_mount``: ``show`` after each refresh while its pane is open."""
    panel.watch(panel.app, "latest", lambda _refresh: show() if pane_shown(panel) else None, init=False)


class SubjectPanel(Protocol):
    """A panel another room adds to the panes (``app.detail_panels``): made with the pane's
    screen, told when the pane moves on to another guest or node."""

    def show_subject(self, subject: Any) -> None: ...


class HistoryLoaded(Message):
    """History and config, already turned into what the pane shows (in the worker), for the
    subject they were read for (the pane may show another one by the time they arrive)."""

    def __init__(self, subject: object, series: list[Series], config: list[tuple[str, str]]) -> None:
        super().__init__()
        self.subject = subject
        self.series = series
        self.config = config


class HistoryFailed(Message):
    def __init__(self, subject: object, reason: str) -> None:
        super().__init__()
        self.subject = subject
        self.reason = reason


class HistoryChart(Vertical):
    """A titled sparkline with the latest and the highest value of the hour, drawn against the
    resource's capacity (CPU and memory: 0-100 %) so its height reads as the level."""

    DEFAULT_CSS = """
    HistoryChart { height: 3; }
    HistoryChart #chart-title { width: 1fr; height: 1; }
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
        self.query_one("#chart-title", Label).update(title, layout=False)  # its line is as wide as the pane
        chart = self.query_one(ScaledSparkline)
        chart.ceiling = series.ceiling
        chart.data = series.points

    def clear(self) -> None:
        """Back to "loading…", as composed (the pane shows another subject)."""
        self.query_one("#chart-title", Label).update("", layout=False)
        self.query_one(ScaledSparkline).data = None


class DetailScreen(ReadOnlyGuard, Screen):
    """Shared frame of the guest and node panes; subclasses say what entity and how to fetch."""

    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    KIND: ClassVar[str]
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="detail.back"),
        Binding("question_mark,f1", "app.help", "Help", id="app.help"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="detail-fields") as fields:
                fields.border_title = "fields"
                yield SizedStatic(id="fields")
            with Vertical(id="detail-side"):
                with Vertical(id="history") as history:
                    history.border_title = "last hour"
                    for index in range(4):
                        yield HistoryChart(id=f"chart-{index}")
                with VerticalScroll(id="detail-config") as config:
                    config.border_title = "config"
                    yield SizedStatic("loading config…", id="config")
                yield Vertical(*self._extension_panels(), id="extras")
        yield KeyFooter()

    def __init__(self, subject: Any) -> None:
        super().__init__()
        self._set_subject(subject)

    def _extension_panels(self) -> list[Widget]:
        return [make(self) for make in getattr(self.app, "detail_panels", {}).get(self.KIND, [])]

    @property
    def subject(self) -> object:
        """What the pane shows (a guest's VMID, a node's name)."""
        raise NotImplementedError

    def _set_subject(self, subject: Any) -> None:
        raise NotImplementedError

    def show_subject(self, subject: Any) -> None:
        """Points the pane, and each of its panels, at another guest or node before it is shown
        again (the same one again: everything is read anew)."""
        self._set_subject(subject)
        if not self.is_mounted:
            return
        for chart in self.query(HistoryChart):
            chart.clear()
        self.query_one("#config", SizedStatic).update("loading config…", layout=False)
        for panel in self.query_one("#extras").children:
            cast(SubjectPanel, panel).show_subject(subject)
        self._show_fields(self.app.latest)  # not in the screen stack yet
        self._load_history()

    def on_mount(self) -> None:
        self.watch(self.app, "latest", self._on_refresh)
        self._load_history()
        self.set_interval(HISTORY_SECONDS, self._reload_history)
        focusable = [w for w in self.query_one("#extras").query("*") if w.focusable]
        if focusable:
            focusable[0].focus()

    def action_close(self) -> None:
        self.dismiss()

    # --- live fields ---------------------------------------------------------------------------

    def _on_refresh(self, refresh: Refresh | None) -> None:
        if pane_shown(self):
            self._show_fields(refresh)

    def _show_fields(self, refresh: Refresh | None) -> None:
        if refresh is None:
            return
        entity = self.find(refresh)
        title = self.query_one("#detail-title", Static)
        if entity is None:
            title.update(Text(visible(f"{self.describe()} is no longer in the cluster"), style="bold red"))
            return
        title.update(self.title_text(entity, refresh), layout=False)  # one line, as wide as the pane
        text = _table_text(self.extra_fields(entity, refresh) + field_lines(entity))
        self.query_one("#fields", SizedStatic).update(text)

    # --- history and config ----------------------------------------------------------------------

    def _reload_history(self) -> None:
        if pane_shown(self):
            self._load_history()

    @work(thread=True, exclusive=True, group="detail-history", exit_on_error=False)
    def _load_history(self) -> None:
        subject = self.subject
        try:
            rrddata, config = self.fetch_history()
            loaded = HistoryLoaded(subject, history_series(rrddata), self.box_lines(config))
        except Exception as exc:  # network, API or answer trouble: say so in the pane, keep it open
            if not get_current_worker().is_cancelled:
                self.post_message(HistoryFailed(subject, str(exc) or type(exc).__name__))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(loaded)

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        if message.subject != self.subject:
            return
        for index, series in enumerate(message.series):
            self.query_one(f"#chart-{index}", HistoryChart).show(series)
        lines = message.config
        self.query_one("#config", SizedStatic).update(_table_text(lines) if lines else Text("no config", style="dim"))

    def on_history_failed(self, message: HistoryFailed) -> None:
        if message.subject != self.subject:
            return
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

    @property
    def subject(self) -> int:
        return self.vmid

    def _set_subject(self, vmid: int) -> None:
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

    @property
    def subject(self) -> str:
        return self.node_name

    def _set_subject(self, node_name: str) -> None:
        self.node_name = node_name
        self._status: dict[str, Any] = {}

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
        return node_basics(self._status) + config_lines(config)


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
