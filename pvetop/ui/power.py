"""The power policy in the dashboard: ``W`` opens its screen; the worker runs beside the tables.

``install_power(app, store)`` is the one hook. The worker evaluates at most every
``power.interval`` seconds on the app's refreshes (stale data, lost quorum and read-only pause it)
and runs its drains on the app's shared migration executor. The screen shows the mode, quorum and
failure margin, the binding share against the band, every node's power state with the policy's
reasons, the energy saved, and alerts. Keys: ``w`` wake the selected node, ``x`` power it off (the
confirmation lists the same checks; overriding a refusal needs a second, explicit confirmation),
``t`` test-wake, ``F`` choose the failure margin (the risk is stated first), ``o`` the mode. The
guest pane gets a panel to mark a guest to sleep with its node.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from pvetop.engine.migrations import MigrationExecutor
from pvetop.engine.power import PowerOutcome, PowerWorker, energy, mark_sleep_with_node, sleep_marks
from pvetop.errors import PvetopError
from pvetop.policy.power import FAILURE_MARGIN_RISK, NodeDecision
from pvetop.text import visible
from pvetop.ui.detail import follow_refreshes
from pvetop.ui.footer import KeyFooter
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.sized_static import SizedStatic

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

SCREEN_NAME = "power"
KEY = "W"
MODES = ("off", "advise", "auto")
STATE_STYLES = {"on": "green", "off": "dim", "failed": "bold red", "waking": "yellow", "draining": "yellow"}


class PowerController:
    """Runs the worker on the app's refreshes and keeps the header and the screen up to date."""

    def __init__(self, app: Any, store: Any) -> None:
        self.app = app
        self.store = store
        self.worker: PowerWorker | None = None
        self.mode = "off"
        self._busy = False
        self._again = False
        self._last = float("-inf")

    def ensure_worker(self, cluster: str) -> PowerWorker:
        if self.worker is None or self.worker.cluster != cluster:
            live = self.app.can_migrate
            self.worker = PowerWorker(
                self.app.source if live else None,
                self.store,
                cluster,
                executor=self.app.migrations if live else MigrationExecutor(None),
                clock=self.app.clock,
                read_only=self.app.read_only or not live,
                on_update=self._changed,
            )
        return self.worker

    def on_refresh(self, refresh: Any) -> None:
        """Watches ``app.latest``: one evaluation per ``power.interval``."""
        self.evaluate(refresh)

    def evaluate(self, refresh: Any, *, force: bool = False) -> None:
        """An evaluation now (``force``) or when the interval has passed, never two at once."""
        if refresh is None:
            return
        if self._busy:
            self._again = self._again or force  # asked while one runs: once more when it ends
            return
        worker = self.worker
        interval = worker.settings().interval if worker is not None else 0.0
        if not force and self.app.clock() - self._last < interval:
            return
        self._busy = True
        self._last = self.app.clock()
        self.app.run_worker(self._evaluate(refresh), group="power", exit_on_error=False)

    async def _evaluate(self, refresh: Any) -> None:
        try:
            worker = self.ensure_worker(refresh.snapshot.cluster_name)
            settings = await asyncio.to_thread(worker.settings)
            self.mode = settings.mode
            if self.mode == "off":
                await worker.evaluate(refresh.snapshot, settings)  # the screen still explains each node
            else:
                await worker.step(refresh.snapshot, settings)
        except PvetopError as exc:
            self.app.notify(f"power: {exc.message}", severity="warning", timeout=6)
        finally:
            self._busy = False
            self._changed("plan")
        if self._again:
            self._again = False
            self.evaluate(self.app.latest, force=True)

    def _changed(self, what: str) -> None:
        worker = self.worker
        if worker is None:
            return
        note = f"power {self.mode}"
        moving = {n: t.state for n, t in worker.tracks.items() if t.state not in ("on", "off")}
        if moving:
            note += " · " + ", ".join(f"{n} {s}" for n, s in sorted(moving.items()))
        elif worker.plan is not None and worker.plan.action is not None and self.mode == "advise":
            action = worker.plan.action
            note += f" · advice: {action.action.replace('_', ' ')} {action.node}"
        self.app.header_notes["power"] = note
        states = {n: t.state for n, t in worker.tracks.items() if t.state != "on"}
        if states != self.app.power_states:
            self.app.power_states = states
            self.app.refresh_marks()
        if what == "alert" and worker.alerts:
            self.app.notify(worker.alerts[-1], title="Power", severity="error", timeout=15)
        screen = self.app.screen
        if isinstance(screen, PowerScreen):
            screen.show()


def decision_text(decision: NodeDecision) -> str:
    return "; ".join(decision.reasons)


class PowerScreen(ReadOnlyGuard, Screen):
    WRITE_ACTIONS = frozenset({"wake", "power_off", "test_wake", "margin", "mode"})
    DEFAULT_CSS = """
    PowerScreen { layout: vertical; }
    PowerScreen .caption { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    PowerScreen #power-status { height: auto; padding: 0 1; }
    PowerScreen #power-nodes { height: auto; max-height: 12; }
    PowerScreen #power-why { height: 1fr; min-height: 4; padding: 0 1; overflow-y: auto; }
    PowerScreen #power-energy { height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,W", "app.pop_screen", "Back", id="power.back"),
        Binding("w", "wake", "Wake", id="power.wake"),
        Binding("x", "power_off", "Power off", id="power.power_off"),
        Binding("t", "test_wake", "Test wake", id="power.test_wake"),
        Binding("F", "margin", "Failure margin", key_display="F", id="power.margin"),
        Binding("o", "mode", "Mode", id="power.mode"),
        Binding("r", "replan", "Re-plan", id="power.replan"),
    ]

    if TYPE_CHECKING:
        app: PvetopApp

    def __init__(self, controller: PowerController) -> None:
        super().__init__()
        self.controller = controller
        self.progress: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="power-status")
        yield Static("Nodes: power state, what the policy wants and why", classes="caption")
        yield DataTable(id="power-nodes", cursor_type="row", zebra_stripes=True)
        yield Static("Why (selected node)", classes="caption", id="power-why-caption")
        yield Static(id="power-why")
        yield Static("Energy", classes="caption")
        yield Static(id="power-energy")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#power-nodes", DataTable).add_columns("Node", "State", "Action", "Reasons")
        self.query_one("#power-nodes", DataTable).focus()
        self.show()
        self.action_replan()

    def show(self) -> None:
        if not self.is_attached:
            return
        worker = self.controller.worker
        plan = worker.plan if worker is not None else None
        self.query_one("#power-status", Static).update(self._status(worker))
        table = self.query_one("#power-nodes", DataTable)
        cursor = table.cursor_row
        table.clear()
        for decision in plan.decisions if plan is not None else ():
            track = worker.tracks.get(decision.node) if worker is not None else None
            state = track.state if track is not None else decision.state
            detail = f" ({track.detail})" if track is not None and track.detail else ""
            table.add_row(
                Text(visible(decision.node), style="bold"),
                Text(visible(state + detail), style=STATE_STYLES.get(state, "yellow")),
                Text(decision.action.replace("_", " "), style="bold cyan" if decision.action != "keep" else ""),
                Text(visible(decision_text(decision)), end=""),
                key=decision.node,
            )
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
        self._show_why()
        self.query_one("#power-energy", Static).update(self._energy(worker))

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_why()

    def _show_why(self) -> None:
        """The selected node's reasons in full, one per line (the table cell is cut at its width)."""
        worker = self.controller.worker
        node = self._selected()
        why = self.query_one("#power-why", Static)
        if worker is None or worker.plan is None or node is None:
            why.update("")
            return
        decision = worker.plan.decision(node)
        self.query_one("#power-why-caption", Static).update(
            Text(visible(f"Why: {node} — {decision.action.replace('_', ' ')}"))
        )
        why.update(Text(visible("\n".join(f"• {reason}" for reason in decision.reasons), multiline=True)))

    def _status(self, worker: PowerWorker | None) -> Text:
        if worker is None or worker.plan is None:
            return Text("waiting for the first evaluation…", style="italic")
        plan = worker.plan
        settings = worker.settings()
        text = Text()
        text.append("mode ", style="bold")
        text.append(settings.mode, style="bold cyan" if settings.mode == "auto" else "bold")
        text.append("  (o: change)   ")
        quorum = plan.quorum
        text.append(f"quorum {quorum.votes_online}/{quorum.votes_total} votes, {quorum.votes_needed} needed")
        if quorum.qdevice:
            text.append(f" (QDevice {quorum.qdevice})")
        text.append(f"   failure margin now {plan.failure_margin}, required {settings.failure_margin}")
        if settings.failure_margin == 0:
            text.append(" (chosen: one more failure loses quorum)", style="bold yellow")
        text.append("  (F: choose)")
        text.append(
            f"\nmax share {plan.share * 100:.0f} % · "
            f"band {settings.band_low * 100:.0f}–{settings.band_high * 100:.0f} %"
        )
        if plan.below_for:
            text.append(f" · below for {plan.below_for / 60:.0f} of {settings.below_window / 60:.0f} min")
        if plan.above_for:
            text.append(f" · above for {plan.above_for / 60:.0f} of {settings.above_window / 60:.0f} min")
        if plan.paused:
            text.append(f"\npaused: {plan.paused}", style="yellow")
        for node, line in sorted(self.progress.items()):
            text.append(f"\n{node}: {line}", style="cyan")
        for alert in worker.alerts[-3:]:
            text.append(f"\nalert: {alert}", style="bold red")
        return text

    def _energy(self, worker: PowerWorker | None) -> Text:
        if worker is None or worker.store is None:
            return Text("no rules store: nothing recorded", style="dim")
        settings = worker.settings()
        report = energy(worker.store, worker.cluster, settings, now=self.app.clock())
        text = Text(f"{report.total_hours:.1f} node-hours off, {report.total_kwh:.2f} kWh saved")
        text.append(f"  (idle watts: setting power.idle_watts = {settings.idle_watts_text})", style="dim")
        for node, hours in sorted(report.hours_off.items()):
            text.append(f"\n  {node}: {hours:.1f} h, {report.kwh_saved[node]:.2f} kWh")
        return text

    # --- actions -------------------------------------------------------------------------------

    def _selected(self) -> str | None:
        table = self.query_one("#power-nodes", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _worker(self) -> PowerWorker | None:
        latest = self.app.latest
        if latest is None:
            self.app.notify("no cluster data yet", severity="warning", timeout=3)
            return None
        return self.controller.ensure_worker(latest.snapshot.cluster_name)

    def action_replan(self) -> None:
        self.controller.evaluate(self.app.latest, force=True)

    def action_wake(self) -> None:
        node, worker = self._selected(), self._worker()
        if node is None or worker is None:
            return
        self._run(node, worker.wake(node, actor="user"), f"waking {node}")

    def action_test_wake(self) -> None:
        node, worker = self._selected(), self._worker()
        if node is None or worker is None:
            return
        self._run(node, worker.test_wake(node), f"test wake of {node}")

    def action_power_off(self) -> None:
        node, worker = self._selected(), self._worker()
        if node is None or worker is None:
            return
        self.app.run_worker(self._ask_power_off(worker, node), group="power-check", exit_on_error=False)

    async def _ask_power_off(self, worker: PowerWorker, node: str) -> None:
        try:
            check = await worker.check_power_off(node)
        except PvetopError as exc:
            self.app.notify(exc.message, severity="error", timeout=6)
            return
        lines = "\n".join(f"  - {reason}" for reason in check.reasons)
        if check.refusals:
            question = f"{node} should stay on:\n{lines}\n\nOverride and power it off anyway?"
            self.app.push_screen(
                ConfirmScreen(question, yes="Override"),
                lambda yes: self._confirm_override(worker, node, check) if yes else None,
            )
        else:
            self._confirm_power_off(worker, node, check, f"{node} may power off:\n{lines}", force=False)

    def _confirm_override(self, worker: PowerWorker, node: str, check: NodeDecision) -> None:
        question = (
            f"Really power {node} off against {len(check.refusals)} refusal(s)? "
            "Running guests that cannot move keep it on regardless."
        )
        self._confirm_power_off(worker, node, check, question, force=True)

    def _confirm_power_off(
        self, worker: PowerWorker, node: str, check: NodeDecision, text: str, *, force: bool
    ) -> None:
        moves = len(check.drain.moves) if check.drain else 0
        question = f"{text}\n\nDrain {node} ({moves} moves), shut it down and wait until it is offline?"
        self.app.push_screen(
            ConfirmScreen(question, yes="Power off"),
            lambda yes: (
                self._run(node, worker.power_off(node, actor="user", force=force), f"powering {node} off")
                if yes
                else None
            ),
        )

    def _run(self, node: str, work: Any, what: str) -> None:
        self.progress[node] = f"{what}…"
        self.show()
        self.app.run_worker(self._follow(node, work), group=f"power-{node}", exit_on_error=False)

    async def _follow(self, node: str, work: Any) -> None:
        try:
            outcome: PowerOutcome = await work
        except PvetopError as exc:
            self.progress[node] = f"error: {exc.message}"
        else:
            self.progress[node] = ("done: " if outcome.ok else "not done: ") + outcome.detail
            self.app.notify(
                f"{node}: {outcome.detail}", title="Power", severity="information" if outcome.ok else "error", timeout=8
            )
        self.show()
        self.action_replan()

    def action_mode(self) -> None:
        current = self.controller.mode
        following = MODES[(MODES.index(current) + 1) % len(MODES)] if current in MODES else "off"
        if following == "auto":
            question = (
                "Switch the power policy to auto? It will drain nodes, shut them down and wake them by itself "
                "(one at a time, within quorum and the failure margin)."
            )
            self.app.push_screen(
                ConfirmScreen(question, yes="Auto"), lambda yes: self._set("power.mode", "auto") if yes else None
            )
        else:
            self._set("power.mode", following)

    def action_margin(self) -> None:
        worker = self.controller.worker
        if worker is None:
            return
        if worker.settings().failure_margin == 0:
            self._set("power.failure_margin", 1)
            return
        question = (
            "Set the failure margin to 0? Nodes may then sleep until the cluster has exactly a majority of "
            f"votes left: {FAILURE_MARGIN_RISK}. The choice is journaled."
        )
        self.app.push_screen(
            ConfirmScreen(question, yes="Margin 0"), lambda yes: self._set("power.failure_margin", 0) if yes else None
        )

    def _set(self, key: str, value: Any) -> None:
        worker = self.controller.worker
        if worker is None:
            return
        self.app.run_worker(self._store(worker, key, value), group="power-setting", exit_on_error=False)

    async def _store(self, worker: PowerWorker, key: str, value: Any) -> None:
        try:
            await asyncio.to_thread(worker.store.set_setting, worker.cluster, key, value)
        except PvetopError as exc:
            self.app.notify(exc.message, severity="error", timeout=6)
            return
        if key == "power.mode":
            self.controller.mode = value
        self.app.notify(f"{key} = {value}", timeout=3)
        self.action_replan()


class GuestPowerPanel(ReadOnlyGuard, SizedStatic):
    """In the guest pane: whether the guest sleeps with its node (z toggles)."""

    DEFAULT_CSS = """
    GuestPowerPanel { height: auto; border: round $primary; padding: 0 1; }
    GuestPowerPanel:focus { border: round $accent; }
    """
    BINDINGS = [Binding("z", "toggle_sleep", "Sleep with node", id="guest.sleep_with_node")]
    WRITE_ACTIONS = frozenset({"toggle_sleep"})
    can_focus = True

    if TYPE_CHECKING:
        app: PvetopApp

    def __init__(self, screen: Any) -> None:
        super().__init__(id="guest-power")
        self.vmid: int = screen.vmid
        self.border_title = "power"

    def on_mount(self) -> None:
        follow_refreshes(self, self.show)
        self.show()

    def show_subject(self, vmid: int) -> None:
        self.vmid = vmid
        self.show()

    def _cluster_data(self) -> tuple[Any, str] | None:
        latest, store = self.app.latest, self.app.store
        if latest is None or store is None:
            return None
        return latest.snapshot, latest.snapshot.cluster_name

    def show(self) -> None:
        context = self._cluster_data()
        if context is None:
            self.update(Text("waiting for cluster data…", style="dim"))
            return
        snapshot, cluster = context
        marked = sleep_marks(self.app.store, cluster).get(self.vmid)
        guest = snapshot.guest_by_vmid.get(self.vmid)
        text = Text("sleeps with its node  ", style="bold")
        if marked is not None and guest is not None and marked in ("", guest.name):
            text.append("yes", style="bold magenta")
            text.append(f"  shut down before {guest.node} powers off, started after its wake", style="dim")
        else:
            text.append("no")
            text.append("  if it cannot migrate, its node stays on", style="dim")
        text.append("\nz sleep with node / stay awake (tab to focus this panel)", style="dim")
        self.update(text)

    def action_toggle_sleep(self) -> None:
        context = self._cluster_data()
        if context is None:
            return
        snapshot, cluster = context
        guest = snapshot.guest_by_vmid.get(self.vmid)
        if guest is None:
            return
        on = self.vmid not in sleep_marks(self.app.store, cluster)
        mark_sleep_with_node(self.app.store, cluster, guest, on)
        self.app.notify(f"{self.vmid} {'sleeps with' if on else 'no longer sleeps with'} its node", timeout=3)
        self.show()


def install_power(app: Any, store: Any) -> PowerController:
    """Call once, before ``app.run()``: the worker follows the refreshes, ``W`` opens the screen."""
    controller = PowerController(app, store)
    app.power = controller
    app.watch(app, "latest", controller.on_refresh, init=False)
    app.install_screen(PowerScreen(controller), SCREEN_NAME)
    app.add_app_binding(KEY, f"push_screen('{SCREEN_NAME}')", "Power")
    if store is not None:
        app.detail_panels["guest"].append(GuestPowerPanel)
    return controller
