"""The dashboard: a header, the node table, the guest table, and a poller that never blocks.

Data flows one way. A poll fetches a snapshot in a daemon thread (the only network I/O on this
screen; quitting never waits for it), computes rates and totals, and posts ``SnapshotArrived``;
the app diffs it into the tables and publishes it as ``latest`` for the detail panes; the next
poll is armed only when this one has finished, so polls never overlap. A failed poll keeps the
last data, marks it stale with the reason and retries with a doubling delay; a poll that
overruns its interval marks the data stale while it still waits.

Hooks for other rooms: ``ruleset`` (pins, locks, reserved nodes; set it and the flag columns
follow), ``tagged`` (vmids for a bulk move; call ``refresh_marks`` after changing it), ``store``
(the rules store, when one is open), ``detail_panels`` (widgets mounted in the detail panes),
``add_app_binding`` (an app-wide key that help and the command palette list too),
``read_only`` with ``ReadOnlyGuard.WRITE_ACTIONS`` (write actions greyed out), ``header_notes`` (a
room's one-line state in the header).
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Static

from pvetop.engine.lifecycle import LifecycleRunner
from pvetop.engine.migrations import MigrationExecutor
from pvetop.model import ClusterSnapshot, NodeBasics
from pvetop.policy.rules import RuleSet
from pvetop.pve import PveClient
from pvetop.text import visible
from pvetop.ui.choosers import ColumnsScreen, SortScreen
from pvetop.ui.detail import DetailScreen, GuestDetailScreen, NodeDetailScreen
from pvetop.ui.filtering import NO_FILTER, GuestFilter
from pvetop.ui.footer import KeyFooter
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.header import ClusterHeader, Freshness, HeaderView
from pvetop.ui.health import HEALTH_BINDING, HealthScreen
from pvetop.ui.help import HelpScreen, help_text
from pvetop.ui.keys import keys_of
from pvetop.ui.lifecycle import LIFECYCLE_BINDINGS
from pvetop.ui.migrate import MIGRATION_BINDINGS, MigrationsController
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.node_basics import READ_EVERY, NodeBasicsArrived, fetch_node_basics
from pvetop.ui.polling import (
    PollFailed,
    Refresh,
    SnapshotArrived,
    backoff_delay,
    next_interval,
    poll_overrun_after,
    prepare,
    run_in_daemon_thread,
    with_marks,
)
from pvetop.ui.prefs import Prefs
from pvetop.ui.source import SnapshotSource
from pvetop.ui.storage import STORAGE_BINDING, StorageScreen
from pvetop.ui.table import LiveTable, Sorting
from pvetop.ui.tables import GuestTable, Marks, NodeTable, select_guests

FULL_GC_EVERY = 100  # middle-generation passes between two full ones (Python's default: 10)
FILTER_HELP = "filter: text or regex, all terms must match; name: vmid: tag: node: status: type: pool:"


class PvetopApp(ReadOnlyGuard, App):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "pvetop"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("q,f10", "quit", "Quit", id="app.quit"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("slash,f3", "filter", "Filter", id="app.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="app.clear_filter"),
        Binding("n", "node_guests", "Node's guests", id="app.node_guests"),
        Binding("p", "pause", "Pause/resume", id="app.pause"),
        Binding("plus,equals_sign", "interval(1)", "Interval +", key_display="+", id="app.interval_longer"),
        Binding("minus", "interval(-1)", "Interval -", key_display="-", id="app.interval_shorter"),
        Binding("ctrl+r", "refresh_now", "Refresh now", show=False, id="app.refresh_now"),
        Binding("f5", "tree", "Tree", show=False, id="app.tree", tooltip="Tree view: guests grouped under their node"),
        Binding("f6", "sort_menu", "Sort by…", show=False, id="app.sort_menu", tooltip="Sort the focused table by…"),
        Binding("f2,C", "columns", "Columns", show=False, id="app.columns", tooltip="Choose the visible columns"),
        *MIGRATION_BINDINGS,
        *LIFECYCLE_BINDINGS,
        HEALTH_BINDING,
        STORAGE_BINDING,
    ]

    WRITE_ACTIONS = frozenset({"migrate", "evacuate", "tag", "power"})

    latest: var[Refresh | None] = var(None, init=False)
    paused: var[bool] = var(False, init=False, bindings=True)

    def __init__(
        self,
        source: SnapshotSource,
        *,
        read_only: bool = False,
        interval: float = 2.0,
        ruleset: RuleSet | None = None,
        store: Any = None,
        clock: Callable[[], float] = time.time,
        clock_speed: float = 1.0,
        insecure_warning: str = "",
        prefs: Prefs | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.prefs = prefs or Prefs()  # as restored at start; see current_prefs
        self.save_prefs: Callable[[Prefs], str | None] | None = None  # set by whoever keeps them
        self.read_only = read_only
        self.interval = interval
        self.store = store
        # The one clock every timestamp and cluster duration is read from (the app's, its workers',
        # the store's): the demo's simulated one runs ``clock_speed`` times faster than real time.
        # The refresh pacing (interval, the data's age, a retry countdown) is in real seconds.
        self.clock = clock
        self.clock_speed = clock_speed
        self.insecure_warning = insecure_warning
        self.embedded_cluster = False  # the demo's simulator: it ends with the app
        self.detail_panels: dict[str, list[Callable[[Screen], Widget]]] = {"guest": [], "node": []}
        self._detail_screens: dict[type[DetailScreen], DetailScreen] = {}  # composed once, see open_detail
        self.added_bindings: list[Binding] = []  # see add_app_binding
        self.keymap: dict[str, str] = {}  # the user's keys by binding id, see use_keymap
        self.header_notes: dict[str, str] = {}  # a room's one-line state for the header (the balancer's mode)
        self.acting: Any = None  # which instance acts on the cluster (ui/acting.py), when a store is shared
        self.migrations_ui = MigrationsController(self)  # m, space, e, x, t and the jobs they start
        self._ruleset = ruleset or RuleSet.empty()
        self.tagged: set[int] = set()  # vmids tagged for a bulk move (space); see refresh_marks
        self.power_states: dict[str, str] = {}  # node -> the power policy's state (draining…); see refresh_marks
        self.node_basics: dict[str, NodeBasics] = {}  # for the optional node columns (node_basics.py)
        self._basics_read_at: float | None = None  # time.monotonic() of the last read started
        self._query: GuestFilter = NO_FILTER
        self._node_filter: str | None = None
        self._poll_timer: Timer | None = None
        self._armed_at = time.monotonic()  # when the pending poll was armed (see action_interval)
        self._show_paused_refresh = False  # the poll in flight was asked for while paused (ctrl+r)
        self._failures = 0
        self._stale_since: float | None = None
        self._stale_reason = ""
        self._poll_started: float | None = None  # time.monotonic() of the poll in flight
        self._retry_at: float | None = None
        self._gc_threshold: tuple[int, int, int] | None = None  # the collector's, while we tune it
        self._retired: list[Refresh] = []  # shown before: freed by the next poll's thread (see _fetch)

    # --- layout --------------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast of the app (a widget's ``notify`` ends here too, asking for markup): its
        text quotes guest names and PVE's error texts, so it is always shown as plain text, with
        control characters made visible."""
        del markup  # never parsed: "[/]" in an error text would crash the toast
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=False)

    def compose(self) -> ComposeResult:
        # Kept as attributes, not queried: polls, timers and table messages may still land while
        # the app exits, when a query would find nothing.
        self.header = ClusterHeader("connecting…", id="header")
        self.node_caption = Static(id="node-caption", classes="caption")
        self.node_table = NodeTable(id="nodes", **self._table_options("nodes", NodeTable))
        self.guest_caption = Static(id="guest-caption", classes="caption")
        self.guest_table = GuestTable(id="guests", **self._table_options("guests", GuestTable))
        self.filter_input = Input(placeholder=FILTER_HELP, id="filter")
        yield from (
            self.header,
            self.node_caption,
            self.node_table,
            self.guest_caption,
            self.guest_table,
            self.filter_input,
            KeyFooter(),
        )

    def _table_options(self, table: str, cls: type[NodeTable | GuestTable]) -> dict[str, Any]:
        """A table's sort and hidden columns as the user left them (unknown columns dropped);
        optional columns stay hidden unless the user chose to show them."""
        keys = {spec.key for spec in cls.COLUMNS}
        hidden = set(self.prefs.hidden.get(table, ())) | (cls.OPTIONAL_COLUMNS - set(self.prefs.shown.get(table, ())))
        options: dict[str, Any] = {"hidden": frozenset(k for k in hidden if k in keys)}
        column, reverse = self.prefs.sort.get(table, ("", False))
        if column in keys:
            options.update(sort_column=column, reverse=reverse)
        return options

    def current_prefs(self) -> Prefs:
        return Prefs(
            theme=self.theme,
            interval=self.interval,
            sort={
                "nodes": (self.node_table.sort_column, self.node_table.sort_reverse),
                "guests": (self.guest_table.sort_column, self.guest_table.sort_reverse),
            },
            hidden={
                "nodes": tuple(sorted(self.node_table.hidden - NodeTable.OPTIONAL_COLUMNS)),
                "guests": tuple(sorted(self.guest_table.hidden - GuestTable.OPTIONAL_COLUMNS)),
            },
            shown={
                "nodes": tuple(sorted(NodeTable.OPTIONAL_COLUMNS - self.node_table.hidden)),
                "guests": tuple(sorted(GuestTable.OPTIONAL_COLUMNS - self.guest_table.hidden)),
            },
            tree=self.guest_table.group_column is not None,
        )

    def _keep_prefs(self) -> None:
        if self.save_prefs is not None:
            problem = self.save_prefs(self.current_prefs())
            if problem:
                self.notify(problem, severity="warning", timeout=5)

    def on_mount(self) -> None:
        if self.prefs.tree:
            self.guest_table.group_by("node")
        self.guest_table.focus()
        self._show_captions()
        self._show_header()
        self.set_interval(1.0, self._show_header)
        self._poll_now()

    # --- polling -------------------------------------------------------------------------------

    def _poll_now(self, *, even_paused: bool = False) -> None:
        """Poll at once; ``even_paused``: one refresh while paused (ctrl+r), which stays paused."""
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self._retry_at = None
        if not self.paused or even_paused:
            self._show_paused_refresh = self.paused
            self._poll_started = time.monotonic()
            self._poll(self.marks, self.guest_table.sorting, self.take_retired())

    def _arm_poll(self, delay: float) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self._armed_at = time.monotonic()
        self._retry_at = self.clock() + delay * self.clock_speed if self._failures else None
        self._poll_timer = None if self.paused else self.set_timer(delay, self._poll_now)

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def _poll(self, marks: Marks, guest_sorting: Sorting, retired: list[Refresh]) -> None:
        """Fetches in a daemon thread; a cancelled poll (a newer one, or quitting) posts nothing."""
        previous = self.latest
        try:
            refresh = await run_in_daemon_thread(partial(self._fetch, marks, previous, guest_sorting, retired))
        except Exception as exc:  # any failure of the API or the network: show it, keep going
            self.post_message(PollFailed(str(exc) or type(exc).__name__))
            return
        self.post_message(SnapshotArrived(refresh))

    def _fetch(self, marks: Marks, previous: Refresh | None, guest_sorting: Sorting, retired: list[Refresh]) -> Refresh:
        """The blocking part of a poll (network, rates, rows, their order), off the UI thread,
        which also frees the ``retired`` refreshes: a large cluster's snapshot and rows are ~100k
        objects, ~5 ms to free, which the UI thread would pay in the frame that replaced them."""
        retired.clear()
        if self.source.slow_data_due:
            self.source.refresh_slow_data()
        snapshot = self.source.fetch_snapshot()
        return prepare(snapshot, previous, marks, self.clock(), guest_sorting)

    def take_retired(self) -> list[Refresh]:
        """The refreshes shown before the latest one, for a poll's thread to free (see ``_fetch``)."""
        retired, self._retired = self._retired, []
        return retired

    def _mark_overrun(self) -> None:
        """A poll far past its interval makes the data stale while it still waits for an answer."""
        if self._poll_started is None:
            return
        waited = time.monotonic() - self._poll_started
        if waited < poll_overrun_after(self.interval):
            return
        if self._stale_since is None:
            self._stale_since = self.clock()
        self._stale_reason = f"no answer from the cluster for {waited:.0f} s (still waiting)"

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        self._poll_started = None
        if self._shutting_down:
            return
        self._failures = 0
        self._stale_since = None
        if not self.paused or self._show_paused_refresh:
            self.apply_refresh(message.refresh)
            self._read_node_basics()
        self._show_paused_refresh = False
        self._arm_poll(self.interval)

    def _read_node_basics(self, *, now: bool = False) -> None:
        """Reads the nodes' basics every ``READ_EVERY`` seconds (``now``: at once), and only while
        an optional node column shows them: they cost a request per node, outside the refresh."""
        shown = NodeTable.OPTIONAL_COLUMNS - self.node_table.hidden
        if not shown or self.latest is None:
            return
        started = self._basics_read_at
        if not now and started is not None and time.monotonic() - started < READ_EVERY:
            return
        self._basics_read_at = time.monotonic()
        online = [node.name for node in self.latest.snapshot.nodes if node.online]
        self._fetch_node_basics(online, NodeTable.PSI_COLUMN in shown)

    @work(thread=True, exclusive=True, group="node-basics", exit_on_error=False)
    def _fetch_node_basics(self, nodes: list[str], with_psi: bool) -> None:
        basics = fetch_node_basics(self.source, nodes, with_psi=with_psi)
        self.post_message(NodeBasicsArrived(basics))

    def on_node_basics_arrived(self, message: NodeBasicsArrived) -> None:
        if not self._shutting_down:
            self.node_basics = message.basics
            self.refresh_marks()

    @property
    def _shutting_down(self) -> bool:
        """Polls, timers and table messages can land while the app exits, after its widgets are gone."""
        return self._exit or not self.header.is_attached

    def on_poll_failed(self, message: PollFailed) -> None:
        self._poll_started = None
        if self._shutting_down:
            return
        self._failures += 1
        if self._stale_since is None:
            self._stale_since = self.clock()
        self._stale_reason = message.reason.splitlines()[0] if message.reason else "unknown error"
        self._arm_poll(backoff_delay(self.interval, self._failures))
        self._show_header()

    @property
    def stale(self) -> bool:
        return self._stale_since is not None

    # --- rendering -----------------------------------------------------------------------------

    def apply_refresh(self, refresh: Refresh) -> None:
        """Show a new snapshot: diff both tables, then tell the detail panes (``latest``)."""
        marks = self.marks
        if refresh.marks != marks:  # rules or tags changed while it was fetched
            refresh = with_marks(refresh, marks)
        first = self.latest is None
        self.node_table.apply(refresh.node_rows)
        self.guest_table.use_tag_colors(refresh.snapshot.tag_colors)
        if self.latest is not None and self.latest is not refresh:
            self._retired.append(self.latest)
        self.latest = refresh
        self._apply_guests()
        self._show_header()
        if first:
            self._tune_gc()

    def _tune_gc(self) -> None:
        """Keep the collector's full passes out of the frames.

        Everything loaded so far (Textual, the first snapshot, an in-process simulator) lives as
        long as the app: frozen, full passes do not walk it. Each refresh of a big cluster makes
        ~10k new long-lived objects (guests, rows), which would trigger a full pass (50-400 ms)
        every other refresh: allowing 10x more young passes between full ones keeps those rare.
        Both are undone when the app ends (tests run many apps in one process).
        """
        gc.collect()
        gc.freeze()
        self._gc_threshold = gc.get_threshold()
        young, middle, old = self._gc_threshold
        gc.set_threshold(young, middle, max(old, FULL_GC_EVERY))

    async def on_unmount(self) -> None:
        self._keep_prefs()
        await self.migrations_ui.aclose()
        if self.acting is not None:
            await self.acting.stop()  # releases the lease at once, so another instance need not wait it out
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            gc.unfreeze()

    def _apply_guests(self) -> None:
        if self.latest is None:
            return
        latest = self.latest
        self.guest_table.apply(select_guests(latest.guest_rows, self._query, self._node_filter), latest.guest_update)
        self._show_captions()

    def _show_header(self) -> None:
        self._mark_overrun()
        refresh = self.latest
        if (refresh is None and not self.stale) or self._shutting_down:
            return
        now = self.clock()
        freshness = Freshness(
            age_seconds=None if refresh is None else (now - refresh.received_at) / self.clock_speed,
            stale_since=self._stale_since,
            stale_reason=self._stale_reason,
            retry_in=None if self._retry_at is None else max(0.0, self._retry_at - now) / self.clock_speed,
        )
        if refresh is None:
            # plain Text: the reason quotes the API, whose "[/]" would be taken for markup
            self.header.show_text(Text(f"cannot reach the cluster: {visible(self._stale_reason)} (retrying)"))
            return
        snapshot = refresh.snapshot
        self.header.show(
            HeaderView(
                cluster_name=snapshot.cluster_name,
                quorate=snapshot.quorate,
                totals=refresh.totals,
                balance=refresh.balance,
                freshness=freshness,
                interval=self.interval,
                paused=self.paused,
                read_only=self.read_only,
                insecure_warning=self.insecure_warning,
                pve_rebalances_ha=snapshot.crs.ha_auto_rebalance,
                notes=tuple(self.header_notes.values()),
                api_warnings=snapshot.warnings,
            )
        )

    def _show_captions(self) -> None:
        nodes, guests = self.node_table, self.guest_table
        total = len(self.latest.snapshot.guests) if self.latest else 0
        parts = [f"Guests {guests.row_count}/{total}", self._sort_caption(guests)]
        if guests.group_column:
            parts.append("tree: grouped by node (F5: flat)")
        if self._node_filter:
            parts.append(f"node {self._node_filter} (n: all nodes)")
        if self._query.active:
            parts.append(f"filter “{self._query.text}” (esc clears)")
            parts.extend(self._query.problems)
        # One line each (app.tcss): no layout, which would redraw the whole screen.
        self.guest_caption.update(Text(visible("  ·  ".join(parts))), layout=False)
        self.node_caption.update(Text(f"Nodes {nodes.row_count}  ·  {self._sort_caption(nodes)}"), layout=False)

    @staticmethod
    def _sort_caption(table: LiveTable) -> str:
        label = next(spec.name for spec in table.COLUMNS if spec.key == table.sort_column)
        return f"sorted by {label} {'▼' if table.sort_reverse else '▲'}"

    def on_live_table_sort_changed(self, message: LiveTable.SortChanged) -> None:
        if not self._shutting_down:
            self._show_captions()

    # --- rules and tags hooks ----------------------------------------------------------------------

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    @ruleset.setter
    def ruleset(self, ruleset: RuleSet) -> None:
        """New pins/locks/reservations: the flag columns and detail panes follow at once."""
        self._ruleset = ruleset
        self.refresh_marks()

    @property
    def marks(self) -> Marks:
        return Marks(self._ruleset, frozenset(self.tagged), dict(self.power_states), dict(self.node_basics))

    def refresh_marks(self) -> None:
        """Re-draw the flag columns after ``ruleset`` or ``tagged`` (vmids, space) changed."""
        if self.latest is not None:
            self.apply_refresh(self.latest)

    # --- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Every screen owns its keys: the dashboard's own actions run on the dashboard (and the
        guest/node actions in a detail pane), never through another screen such as the journal."""
        screen = self.screen
        if screen is not self.screen_stack[0] and action in DASHBOARD_ACTIONS:
            if not (isinstance(screen, DetailScreen) and action in DETAIL_PANE_ACTIONS):
                return False
        return super().check_action(action, parameters)

    # --- moves and guest power: run by ``migrations_ui`` --------------------------------------------

    @property
    def client(self) -> PveClient | None:
        """The live cluster connection behind ``source``; None for a fixed in-memory snapshot."""
        return self.source if isinstance(self.source, PveClient) else None

    @property
    def can_migrate(self) -> bool:
        """A live cluster connection (not a fixed in-memory snapshot) and data to plan on."""
        return self.client is not None and self.latest is not None

    @property
    def planning_snapshot(self) -> ClusterSnapshot:
        """The latest snapshot, for the migration screens: they open only once ``can_migrate``."""
        if self.latest is None:
            raise RuntimeError("a migration screen opened before the first snapshot")
        return self.latest.snapshot

    @property
    def migrations(self) -> MigrationExecutor:
        return self.migrations_ui.executor

    @property
    def lifecycle(self) -> LifecycleRunner:
        return self.migrations_ui.runner

    def action_tag(self) -> None:
        self.migrations_ui.tag()

    def action_migrate(self) -> None:
        self.migrations_ui.migrate()

    def action_evacuate(self) -> None:
        self.migrations_ui.evacuate()

    def action_power(self) -> None:
        self.migrations_ui.power()

    def action_tasks(self) -> None:
        self.migrations_ui.tasks()

    async def action_quit(self) -> None:
        """Quitting stops following migrations and never starts the queued ones: ask first."""
        question = self.migrations_ui.quit_question()
        if question is None:
            await super().action_quit()
        else:
            self.push_screen(ConfirmScreen(question, yes="Quit"), lambda confirmed: self.exit() if confirmed else None)

    def pop_screen(self) -> AwaitComplete:
        """A screen closed for good has its widgets' drawn lines dropped first: Textual keeps each
        widget's line cache alive after the widget is gone (an ``lru_cache`` on a method of it
        holds up to 1024 of them), ~1000 lines (~15k objects) for each walk through the screens."""
        closing = self.screen
        done = super().pop_screen()
        if not self.is_screen_installed(closing):
            for widget in closing.walk_children(with_self=True):
                widget.refresh()  # a refresh of the whole widget empties its line cache
        return done

    def action_take_over(self) -> None:
        if self.acting is not None:
            self.acting.action_take_over()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_text(self, self.help_sections(), HELP_EXTRAS)))

    def add_app_binding(self, key: str, action: str, description: str, *, binding_id: str = "") -> None:
        """Binds an app-wide key for another room (the rules store) and lists it in help and the
        command palette, which only see class ``BINDINGS`` otherwise. Its id (default:
        ``app.`` and the description) rebinds it like any other (call ``use_keymap`` first)."""
        binding_id = binding_id or "app." + re.sub(r"\W+", "_", description.lower()).strip("_")
        binding = Binding(key, action, description, id=binding_id)
        self.bind(keys_of(binding, self.keymap), action, description=description)
        self.added_bindings.append(binding)

    def use_keymap(self, keymap: Mapping[str, str]) -> None:
        """The user's keys by binding id: the keys, footer, help and palette follow them."""
        self.keymap = dict(keymap)
        self.set_keymap(self.keymap)

    def help_sections(self) -> list[tuple[str, list[type | Binding]]]:
        from pvetop.ui.migrate.tasks import TaskLogScreen, TasksScreen

        panels = [make for makers in self.detail_panels.values() for make in makers if isinstance(make, type)]
        return [
            ("Everywhere", [type(self), *self.added_bindings]),
            ("Node and guest tables", [GuestTable, NodeTable]),
            ("Detail panes (enter)", [DetailScreen, *panels]),
            ("Tasks pane (t)", [TasksScreen, TaskLogScreen]),
            ("Every dialog", [ConfirmScreen]),
            ("Help", [HelpScreen]),
        ]

    def action_filter(self) -> None:
        field = self.filter_input
        field.add_class("shown")
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.filter_input
        field.remove_class("shown")
        changed = self._query.active or self._node_filter is not None
        self._query = NO_FILTER
        self._node_filter = None
        with field.prevent(Input.Changed):
            field.value = ""
        self.guest_table.focus()
        if changed:
            self._apply_guests()

    def on_input_changed(self, message: Input.Changed) -> None:
        if message.input.id == "filter":
            self._query = GuestFilter.parse(message.value)
            self._apply_guests()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id == "filter":
            if not message.value.strip():
                message.input.remove_class("shown")
            self.guest_table.focus()

    def action_node_guests(self) -> None:
        """Show only the guests of one node (again: all): the selected guest's node when the
        guest table has focus, else the node under the node table's cursor."""
        if self._node_filter is not None:
            self._node_filter = None
        else:
            guest_key = self.guest_table.cursor_key
            if self.focused is self.guest_table and guest_key is not None:
                node = self.guest_table.item(guest_key).guest.node
                self.node_table.select_key(node)  # the node table shows which node it is
            else:
                node = self.node_table.cursor_key
            self._node_filter = node
        self._apply_guests()

    def on_live_table_row_highlighted(self, message: LiveTable.RowHighlighted) -> None:
        if message.table is self.node_table and self._node_filter is not None:
            node = message.row_key
            if node != self._node_filter:
                self._node_filter = node
                self._apply_guests()

    def on_live_table_row_selected(self, message: LiveTable.RowSelected) -> None:
        key = message.row_key
        if message.table is self.node_table:
            self.open_detail(NodeDetailScreen, key)
        elif message.table is self.guest_table:
            self.open_detail(GuestDetailScreen, int(key))

    def open_detail(self, kind: type[DetailScreen], subject: Any) -> None:
        """Shows the pane of a guest or node. Each kind is composed once and pointed at the next
        subject (composing it was the dashboard's slowest key); one already open under another
        screen is left there, and a fresh pane opens on top."""
        screen = self._detail_screens.get(kind)
        if screen is None:
            screen = self._detail_screens[kind] = kind(subject)
            self.install_screen(screen, f"detail-{kind.KIND}")
        elif screen in self.screen_stack:
            screen = kind(subject)
        else:
            screen.show_subject(subject)
        self.push_screen(screen)

    def action_details(self, table: str) -> None:
        target = self.guest_table if table == "guests" else self.node_table
        if target.cursor_key is not None:
            target.focus()
            target.action_select_cursor()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            if self._poll_timer is not None:
                self._poll_timer.stop()
                self._poll_timer = None
            self.notify("paused: the tables stay as they are (p resumes)", timeout=2)
        else:
            self._poll_now()
        self._show_header()

    def action_refresh_now(self) -> None:
        """Poll now; while paused, show that one refresh and stay paused."""
        self._poll_now(even_paused=True)

    def action_interval(self, step: int) -> None:
        """A new interval counts from the last poll: a shorter one never waits out the old one."""
        self.interval = next_interval(self.interval, step)
        self.notify(f"refresh every {self.interval:g}s", timeout=1.5)
        if self._poll_timer is not None and not self._failures:
            armed_at = self._armed_at
            self._arm_poll(max(0.0, armed_at + self.interval - time.monotonic()))
            self._armed_at = armed_at
        self._show_header()

    def action_health(self) -> None:
        self.push_screen(HealthScreen())

    def action_storage(self) -> None:
        self.push_screen(StorageScreen())

    def action_tree(self) -> None:
        """F5: guests grouped under their node (again: a flat list)."""
        self.guest_table.group_by(None if self.guest_table.group_column else "node")
        self._show_captions()
        self._keep_prefs()

    def _focused_table(self) -> tuple[str, LiveTable]:
        return ("nodes", self.node_table) if self.focused is self.node_table else ("guests", self.guest_table)

    def action_sort_menu(self) -> None:
        """F6: pick the focused table's sort column from a list (the current one again reverses)."""
        name, table = self._focused_table()

        def chosen(column: str | None) -> None:
            if column is not None:
                table.sort_by(column)
                self._keep_prefs()

        shown = tuple(spec for spec in table.COLUMNS if spec.key not in table.hidden)  # sorted by what it shows
        self.push_screen(SortScreen(f"Sort the {name} by", shown, table.sort_column), chosen)

    def action_columns(self) -> None:
        """F2 / C: show or hide the focused table's columns (kept in the preferences)."""
        name, table = self._focused_table()
        fixed = table.COLUMNS[0].key
        screen = ColumnsScreen(f"Columns of the {name} table", table.COLUMNS, table.hidden, fixed)

        def chosen(hidden: frozenset[str] | None) -> None:
            if hidden is not None:
                self._set_hidden(name, hidden)

        self.push_screen(screen, chosen)

    @work(group="columns", exclusive=True)
    async def _set_hidden(self, name: str, hidden: frozenset[str]) -> None:
        """A table's columns are fixed once built: build it again with the new ones, in place."""
        old: LiveTable = self.node_table if name == "nodes" else self.guest_table
        had_focus = self.focused is old
        options: dict[str, Any] = {
            "id": old.id,
            "sort_column": old.sort_column,
            "reverse": old.sort_reverse,
            "hidden": hidden,
        }
        new: LiveTable
        if name == "nodes":
            nodes = NodeTable(**options)
            await old.remove()
            await self.mount(nodes, before=self.guest_caption)
            self.node_table = new = nodes
            if self.latest is not None:
                nodes.apply(self.latest.node_rows)
            if NodeTable.OPTIONAL_COLUMNS & (old.hidden - hidden):  # a basics column just shown
                self._read_node_basics(now=True)
        else:
            guests = GuestTable(**options)
            await old.remove()
            await self.mount(guests, before=self.filter_input)
            self.guest_table = new = guests
            if old.group_column:
                guests.group_by(old.group_column)
            self._apply_guests()
        if had_focus:
            new.focus()
        self._keep_prefs()

    def action_sort(self, table: str, column: str) -> None:
        target = self.guest_table if table == "guests" else self.node_table
        target.sort_by(column)

    # --- command palette -------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists the app's bindings (with the keys in force) and every sort."""
        yield from super().get_system_commands(screen)
        for binding in [*self.BINDINGS, *self.added_bindings]:
            if isinstance(binding, Binding) and binding.description:
                keys = keys_of(binding, self.keymap)
                yield SystemCommand(
                    binding.tooltip or binding.description,
                    f"{binding.description} ({keys})",
                    self._runner(binding.action),
                )
        for table in ("guests", "nodes"):
            yield SystemCommand(
                f"Details of the selected {table[:-1]}", "Every field, config and history (enter)",
                self._runner(f"details('{table}')"),
            )  # fmt: skip
        for table, cls in (("guests", GuestTable), ("nodes", NodeTable)):
            for spec in cls.COLUMNS:
                yield SystemCommand(
                    f"Sort {table} by {spec.name}",
                    f"Again to reverse; or click the {spec.label} header",
                    self._runner(f"sort('{table}', '{spec.key}')"),
                )

    def _runner(self, action: str) -> Callable[[], Any]:
        return lambda: self.run_action(action)


# The dashboard's own actions (tables, filter, polling, guest and node actions) ...
DASHBOARD_ACTIONS = frozenset(
    {
        "filter",
        "clear_filter",
        "node_guests",
        "pause",
        "interval",
        "details",
        "sort",
        "migrate",
        "tag",
        "evacuate",
        "power",
        "tree",
        "health",
        "storage",
        "sort_menu",
        "columns",
    }
)
# ... and those a detail pane offers for its guest or node.
DETAIL_PANE_ACTIONS = frozenset({"migrate", "evacuate", "power"})

HELP_EXTRAS = [
    ("tab shift+tab", "move between the node table, the guest table and a dialog's fields"),
    ("click header", "sort by that column; click again to reverse"),
    ("click row", "select it; click again (or enter) for its details"),
    ("ctrl+p", "command palette: every action above, themes, screenshots"),
]
