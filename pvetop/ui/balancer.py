"""The balancer in the dashboard: ``b`` opens its screen; the worker runs beside the tables.

``install_balancer(app, store)`` is the one hook. The worker evaluates every refresh while its
screen is open, and every ``EVALUATE_EVERY`` seconds otherwise (stale data and lost quorum pause
it, read-only keeps it advising), runs its moves on the app's shared
migration executor (one queue, one set of limits with every other migration), and the header
shows its mode and, in advise mode, how many moves the plan has. The screen shows the mode
(switching to auto asks first), the imbalance against the threshold with its history, the plan
with reasons and predicted effect, the guests left alone and why, and the balancer's recent
moves; ``a`` applies the selected move, ``A`` the whole plan (re-planned after each batch).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from pvetop.engine.balancer import UNCHECKED, BalancerWorker, set_mode, unchecked
from pvetop.engine.migrations import MigrationExecutor
from pvetop.engine.report import job_status
from pvetop.errors import PvetopError
from pvetop.policy.balance import MODES, BalancePlan, BalancerConfig, trigger_threshold
from pvetop.policy.metrics import imbalance_text
from pvetop.text import visible
from pvetop.ui.footer import KeyFooter
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.keyed_table import KeyedTable
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.dialog import fmt_cell
from pvetop.ui.sparkline import ScaledSparkline

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

SCREEN_NAME = "balancer"
KEY = "b"
# Real seconds between two evaluations while the screen is closed: a plan on a 200-guest cluster
# takes a good part of a CPU second, and planning on every 2 s refresh kept a fifth of a core busy
# in a dashboard left open all day (an automatic move still waits for its trigger to hold).
EVALUATE_EVERY = 10.0


def header_note(mode: str, plan: BalancePlan | None) -> str:
    """What the header says about the balancer: its mode, and in advise mode the plan's size."""
    note = f"balancer {mode}"
    if mode == "advise" and plan is not None and plan.moves:
        note += f" · plan: {len(plan.moves)} move{'s' if len(plan.moves) != 1 else ''}"
    return note


class BalancerController:
    """Runs the worker on each refresh and keeps the header and the screen up to date."""

    def __init__(self, app: Any, store: Any) -> None:
        self.app = app
        self.store = store
        self.worker: BalancerWorker | None = None
        self._busy = False
        self._evaluated_at: float | None = None  # time.monotonic() of the last evaluation

    def _ensure_worker(self, cluster: str) -> BalancerWorker:
        if self.worker is None or self.worker.cluster != cluster:
            live = self.app.can_migrate
            executor = self.app.migrations if live else MigrationExecutor(None)
            self.worker = BalancerWorker(
                self.app.source if live else None,
                self.store,
                cluster,
                executor,
                clock=self.app.clock,
                read_only=self.app.read_only or not live,
                on_update=self._changed,
            )
        return self.worker

    def on_refresh(self, refresh: Any) -> None:
        """Watches ``app.latest``: one evaluation per refresh (or per ``EVALUATE_EVERY`` while the
        screen is closed), never two at once."""
        if refresh is None or self._busy:
            return
        now = time.monotonic()
        recent = self._evaluated_at is not None and now - self._evaluated_at < EVALUATE_EVERY
        if recent and not isinstance(self.app.screen, BalancerScreen):
            return
        self._evaluated_at = now
        self._busy = True
        self.app.run_worker(self._evaluate(refresh), group="balancer", exit_on_error=False)

    async def _evaluate(self, refresh: Any) -> None:
        try:
            worker = self._ensure_worker(refresh.snapshot.cluster_name)
            started = await worker.step(refresh.snapshot, stale=self.app.stale)
            for job in started:
                self.app.notify(f"balancer: {job.label}", title="Balancer", timeout=4)
        except PvetopError as exc:
            self.app.notify(f"balancer: {exc.message}", severity="warning", timeout=6)
        finally:
            self._busy = False
            self._changed("plan")

    def _changed(self, what: str) -> None:
        worker = self.worker
        if worker is None:
            return
        self.app.header_notes["balancer"] = header_note(worker.mode, worker.plan)
        if what == "alert" and worker.alerts:
            self.app.notify(worker.alerts[-1], title="Balancer", severity="error", timeout=10)
        if isinstance(self.app.screen, BalancerScreen):
            self.app.screen.show()


class BalancerScreen(ReadOnlyGuard, Screen):
    WRITE_ACTIONS = frozenset({"apply_one", "apply_all", "mode"})
    DEFAULT_CSS = """
    BalancerScreen { layout: vertical; }
    BalancerScreen .caption { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    BalancerScreen #balancer-status { height: auto; padding: 0 1; }
    BalancerScreen #balancer-history { height: 2; margin: 0 1; }
    BalancerScreen #balancer-moves { height: 1fr; min-height: 4; }
    BalancerScreen #balancer-held { height: auto; max-height: 8; }
    BalancerScreen #balancer-recent { height: auto; max-height: 6; }
    """
    BINDINGS = [
        Binding("escape,b", "app.pop_screen", "Back", id="balancer.back"),
        Binding("a", "apply_one", "Apply move", id="balancer.apply_one"),
        Binding("A", "apply_all", "Apply plan", key_display="A", id="balancer.apply_all"),
        Binding("o", "mode", "Mode", id="balancer.mode"),
        Binding("r", "replan", "Re-plan", id="balancer.replan"),
    ]

    if TYPE_CHECKING:
        app: PvetopApp  # installed in the dashboard app only

    def __init__(self, controller: BalancerController) -> None:
        super().__init__()
        self.controller = controller
        self._show_pending = False
        self._status_lines = 0

    def compose(self) -> ComposeResult:
        yield Static(id="balancer-status")
        yield Static(
            "Imbalance, one bar per evaluation (newest right)", classes="caption", id="balancer-history-caption"
        )
        yield ScaledSparkline(id="balancer-history")
        yield Static("Plan", classes="caption", id="balancer-plan-caption")
        yield KeyedTable(id="balancer-moves", cursor_type="row", zebra_stripes=True)
        yield Static("Left alone (moving them would help)", classes="caption")
        yield KeyedTable(id="balancer-held", cursor_type="row")
        yield Static("Recent balancer moves", classes="caption")
        yield KeyedTable(id="balancer-recent", cursor_type="row")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#balancer-moves", DataTable).add_columns(
            "#", "VMID", "Name", "From", "To", "GiB", "Imbalance after", "Reason"
        )
        self.query_one("#balancer-held", DataTable).add_columns("VMID", "Name", "Node", "Why")
        self.query_one("#balancer-recent", DataTable).add_columns("VMID", "Name", "From", "To", "Result")
        self.query_one("#balancer-moves", DataTable).focus()
        self.show()

    def show(self) -> None:
        """Re-draws from the worker's state; several asks in one turn of the loop (an evaluation
        reports its plan, its jobs and the end of its run) draw once."""
        if not self._show_pending:
            self._show_pending = True
            self.call_later(self._show_now)

    def _show_now(self) -> None:
        self._show_pending = False
        if not self.is_attached:
            return
        worker = self.controller.worker
        plan = worker.plan if worker is not None else None
        status = self._status(worker)
        lines = len(status.plain.splitlines())  # the status box grows with them: a new layout
        self.query_one("#balancer-status", Static).update(status, layout=lines != self._status_lines)
        self._status_lines = lines
        self._show_history(worker)
        planned = [
            (
                str(number),
                str(step.move.vmid),
                *(fmt_cell(text) for text in (step.move.name, step.move.source, step.move.target)),
                f"{step.gib:.1f}",
                imbalance_text(step.imbalance_after),
                fmt_cell(step.move.reason),
            )
            for number, step in enumerate(plan.moves if plan is not None else (), 1)
        ]
        self._fill("#balancer-moves", planned)
        caption = plan.summary if plan is not None else "no plan yet"
        # captions are one line high: a new text needs no layout
        self.query_one("#balancer-plan-caption", Static).update(Text(visible(f"Plan: {caption}")), layout=False)
        held = [
            (str(item.vmid), *(fmt_cell(text) for text in (item.name, item.node, item.reason)))
            for item in (plan.held if plan is not None else ())
        ]
        self._fill("#balancer-held", held)
        recent = [
            (
                str(job.vmid),
                *(fmt_cell(text) for text in (job.move.name, job.move.source, job.move.target, job_status(job))),
            )
            for job in reversed(worker.jobs if worker is not None else [])
        ]
        self._fill("#balancer-recent", recent)

    def _fill(self, selector: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows keyed by their position: the same count updates cells in place."""
        self.query_one(selector, KeyedTable).show_rows([(str(index), row) for index, row in enumerate(rows)])

    def _show_history(self, worker: BalancerWorker | None) -> None:
        """Imbalance against a fixed scale, 0 to twice the threshold (or the highest seen, if
        higher): a bar at mid-height is at the threshold, and bars above it are yellow."""
        history = list(worker.history) if worker is not None else []
        config = worker.last_config if worker is not None else BalancerConfig()
        plan = worker.plan if worker is not None else None
        threshold = trigger_threshold(config, len(plan.before.loads)) if plan is not None else config.threshold
        ceiling = min(1.0, max(threshold * 2, *history)) if history else threshold * 2
        chart = self.query_one("#balancer-history", ScaledSparkline)
        chart.ceiling, chart.warn_at = ceiling, threshold
        chart.data = history or None  # "loading…" until the first evaluation
        caption = (
            "Imbalance, one bar per evaluation (newest right), "
            f"scale 0–{imbalance_text(ceiling)}, threshold {imbalance_text(threshold)}"
        )
        self.query_one("#balancer-history-caption", Static).update(caption, layout=False)

    def _status(self, worker: BalancerWorker | None) -> Text:
        text = Text()
        if worker is None:
            return Text("waiting for the first refresh…", style="italic")
        config = worker.last_config
        text.append("mode ", style="bold")
        text.append(worker.mode, style="bold cyan" if worker.mode == "auto" else "bold")
        text.append("  (o: change)   ")
        plan = worker.plan
        if plan is not None:
            before = plan.before
            threshold = trigger_threshold(config, len(before.loads))
            style = "bold yellow" if before.imbalance > threshold else "green"
            text.append(f"imbalance {imbalance_text(before.imbalance)}", style=style)
            text.append(f" / threshold {imbalance_text(threshold)}")
            text.append(f"   memory spread {before.memory_spread:.0f} pts")
            if before.hottest:
                text.append(f", hottest {before.hottest} {before.hottest_memory:.0%}")
            text.append(f"\ntrigger: {plan.trigger or 'none'}")
            if plan.trigger:
                text.append(
                    f" (held {worker.trigger.held} evaluation{'s' if worker.trigger.held != 1 else ''}; "
                    f"auto acts after {config.hold})"
                )
        if worker.paused:
            text.append(f"\npaused: {worker.paused}", style="yellow")
        latest = self.app.latest
        if latest is not None and latest.snapshot.crs.ha_auto_rebalance:
            text.append(
                "\nPVE rebalances HA guests itself (crs ha-auto-rebalance): the balancer leaves them to it",
                style="cyan",
            )
        return text

    # --- actions -------------------------------------------------------------------------------

    def _plan(self) -> tuple[BalancerWorker, BalancePlan] | None:
        worker = self.controller.worker
        plan = worker.plan if worker is not None else None
        if worker is None or plan is None or not plan.moves:
            self.app.notify("no plan to apply", severity="warning", timeout=3)
            return None
        return worker, plan

    async def action_apply_one(self) -> None:
        found = self._plan()
        if found is None:
            return
        worker, plan = found
        row = max(0, self.query_one("#balancer-moves", DataTable).cursor_row)
        step = plan.moves[min(row, len(plan.moves) - 1)]
        group = [s for s in plan.moves if s.move.reason == step.move.reason]  # guests that move together
        if any(unchecked(s) for s in group):
            self.app.notify(UNCHECKED, title=f"Balancer: VM {step.vmid}", severity="warning", timeout=6)
        await self._run(worker.apply(group))

    async def action_apply_all(self) -> None:
        found = self._plan()
        if found is None:
            return
        worker, _plan = found
        self.app.run_worker(
            self._run(worker.balance(self.app.source.fetch_snapshot, actor="user")),
            group="balancer-apply",
            exclusive=True,
            exit_on_error=False,
        )

    async def _run(self, work: Any) -> None:
        try:
            jobs = await work
        except PvetopError as exc:
            self.app.notify(exc.message, severity="error", timeout=6)
            return
        if jobs:
            self.app.notify(f"{len(jobs)} move(s) started", title="Balancer", timeout=3)
        self.show()

    def action_mode(self) -> None:
        worker = self.controller.worker
        if worker is None:
            return
        following = MODES[(MODES.index(worker.mode) + 1) % len(MODES)]
        if following == "auto":
            question = (
                "Switch the balancer to auto? It will migrate guests by itself (within the rules, the "
                "migration limits and the cooldowns) whenever the cluster stays imbalanced."
            )
            self.app.push_screen(
                ConfirmScreen(question, yes="Auto"), lambda yes: self._set_mode("auto") if yes else None
            )
        else:
            self._set_mode(following)

    def _set_mode(self, mode: str) -> None:
        self.app.run_worker(self._store_mode(mode), group="balancer-mode", exit_on_error=False)

    async def _store_mode(self, mode: str) -> None:
        worker = self.controller.worker
        if worker is None:
            return
        try:
            worker.mode = await asyncio.to_thread(set_mode, self.controller.store, worker.cluster, mode)
        except PvetopError as exc:
            self.app.notify(exc.message, severity="error", timeout=6)
            return
        self.app.notify(f"balancer mode: {mode}", timeout=3)
        self.action_replan()

    def action_replan(self) -> None:
        latest = self.app.latest
        if latest is not None:
            self.controller.on_refresh(latest)


def install_balancer(app: Any, store: Any) -> BalancerController:
    """Call once, before ``app.run()``: the worker follows every refresh, ``b`` opens the screen."""
    controller = BalancerController(app, store)
    app.balancer = controller
    app.watch(app, "latest", controller.on_refresh, init=False)
    app.install_screen(BalancerScreen(controller), SCREEN_NAME)
    app.add_app_binding(KEY, f"push_screen('{SCREEN_NAME}')", "Balancer")
    return controller
