"""``e`` on a node: where every guest would go, a decision for pinned or locked guests, a
confirmation, then the moves with live progress (the execution goes on if the screen is closed).

The plan comes from ``engine.evacuation.prepare_evacuation`` (PVE's preconditions, then the
pure planner). Guests held only by a pin or lock stay unless the user marks them (space) to move
anyway, which re-plans with those rules lifted for this evacuation. Running it marks the node
``maintenance`` until it is cleared here (``c``) or with ``pvetop evacuate NODE --clear-maintenance``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.widgets import Static

from pvetop.engine.evacuation import (
    HA_MAINTENANCE_NOTE,
    EvacuationProposal,
    EvacuationResult,
    finish_evacuation,
    prepare_evacuation,
    start_evacuation,
)
from pvetop.engine.lifecycle import LifecycleJob
from pvetop.engine.migrations import MigrationJob
from pvetop.engine.report import how, job_status, limits_text, plan_lines
from pvetop.errors import PvetopError
from pvetop.text import visible
from pvetop.ui.dialog import TableDialog, TableRow
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.dialog import fmt_cell

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp


class EvacuateScreen(ReadOnlyGuard, TableDialog[None]):
    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    BINDINGS = [
        Binding("enter,x", "run", "Run evacuation", id="dialog.confirm", priority=True),
        Binding("space", "toggle_override", "Move anyway / keep", id="evacuate.toggle_override"),
        Binding("c", "clear_maintenance", "Clear maintenance", id="evacuate.clear_maintenance"),
    ]
    WRITE_ACTIONS = frozenset({"run", "clear_maintenance"})
    COLUMNS = (("VMID", 6), ("Name", 16), ("To", 12), ("How", 22), ("Status / reason", 80))
    TABLE_ID = "plan"
    NOTES = "planning…"
    HINTS = ("enter: run", "space: move a pinned/locked guest anyway (or keep it)", "c: clear maintenance")
    CANCEL_HINT = "esc: close (a running evacuation goes on)"

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.base: EvacuationProposal | None = None  # the plan as the rules have it
        self.proposal: EvacuationProposal | None = None  # with the user's "move anyway" choices
        self.jobs: dict[int, MigrationJob] = {}
        self.result: EvacuationResult | None = None

    def heading(self) -> str:
        return f"Evacuate {self.node}"

    def started(self) -> None:
        self.app.migrations_ui.job_updated.subscribe(self, self.job_updated)
        self.run_worker(self._prepare(), exclusive=True, group="evacuation-plan", exit_on_error=False)

    async def _prepare(self) -> None:
        app = self.app
        try:
            self.base = await prepare_evacuation(
                app.source, app.planning_snapshot, self.node, app.ruleset, now=app.clock()
            )
        except PvetopError as exc:
            self.query_one("#error", Static).update(visible(f"cannot plan: {exc.message}", multiline=True))
            return
        self.proposal = self.base
        self._show()

    # --- showing -------------------------------------------------------------------------------

    def _show(self) -> None:
        proposal = self.proposal
        if proposal is None:
            return
        plan = proposal.plan
        notes = [
            plan_lines(plan)[0]
            + (f", {len(plan.needs_decision)} held by a pin or lock" if plan.needs_decision else "")
            + (f", {len(plan.unplaceable)} nowhere to go" if plan.unplaceable else ""),
            limits_text(self.app.migrations.limits),
        ]
        if self.node in self.app.ruleset.maintenance:
            notes.append(f"{self.node} is in maintenance (c clears it).")
        if self.app.store is None:
            notes.append("No rules store is open: the node cannot be marked maintenance.")
        if self.result is not None:
            notes.append(f"Done: {self.result.summary()}.")
        elif self.jobs:
            notes.append(f"Running… {HA_MAINTENANCE_NOTE}.")
        self.query_one("#notes", Static).update(visible(" · ".join(notes), multiline=True))
        self.fill()

    def rows(self) -> list[TableRow]:
        proposal = self.proposal
        if proposal is None:
            return []
        plan = proposal.plan
        guests = proposal.snapshot.guest_by_vmid
        rows = []
        for move in plan.moves:
            job = self.jobs.get(move.vmid)
            if job is not None:
                status = job_status(job)
            else:
                overridden = " (moved anyway: pin/lock lifted)" if move.vmid in proposal.overrides else ""
                status = "planned" + overridden + (f"; warning: {'; '.join(move.warnings)}" if move.warnings else "")
            via_ha = " via HA" if move.vmid in guests and guests[move.vmid].ha_managed else ""
            texts = (str(move.vmid), move.name, move.target, how(move) + via_ha, status)
            rows.append(
                TableRow(f"move:{move.vmid}", tuple(fmt_cell(text) for text in texts), f"{move.vmid}: {status}")
            )
        staying = (
            ("held", plan.needs_decision, "yellow", " — space: move anyway"),
            ("stuck", plan.unplaceable, "red", ""),
        )
        for kind, items, style, suffix in staying:
            for item in items:
                reason = item.reason + suffix
                cells = (fmt_cell(str(item.vmid), style), fmt_cell(item.name), "—", "stays", fmt_cell(reason, style))
                rows.append(TableRow(f"{kind}:{item.vmid}", cells, f"{item.vmid} stays: {reason}"))
        return rows

    def job_updated(self, job: MigrationJob | LifecycleJob) -> None:
        if self.jobs.get(job.vmid) is job and self.is_attached:
            self._show()

    # --- actions -------------------------------------------------------------------------------

    def action_toggle_override(self) -> None:
        if self.proposal is None or self.base is None or self.jobs:
            return
        kind, _, vmid = (self.cursor_key or "").partition(":")
        chosen = set(self.proposal.overrides)
        if kind == "held":
            chosen.add(int(vmid))
        elif kind == "move" and int(vmid) in chosen:
            chosen.discard(int(vmid))
        else:
            return
        self.proposal = self.base.decide(chosen)
        self._show()

    def action_run(self) -> None:
        if self.proposal is None or self.jobs:
            return
        plan = self.proposal.plan
        lines = plan_lines(plan) + [f"{self.node} will be marked maintenance until you clear it."]
        self.app.push_screen(
            ConfirmScreen("\n".join(lines), yes="Evacuate"), lambda confirmed: self._start() if confirmed else None
        )

    def _start(self) -> None:
        if self.proposal is not None:
            self.app.run_worker(self._execute(self.proposal), group="evacuation", exit_on_error=False)

    async def _execute(self, proposal: EvacuationProposal) -> None:
        app = self.app
        jobs = await start_evacuation(app.migrations, proposal)
        self.jobs = {job.vmid: job for job in jobs}
        self._refresh_rules()
        if self.is_attached:
            self._show()
        self.result = await finish_evacuation(app.migrations, proposal, jobs)
        app.notify(
            f"{self.node}: {self.result.summary()}",
            title="Evacuation",
            severity="information" if self.result.complete else "error",
            timeout=8,
        )
        if self.is_attached:
            self._show()

    def _refresh_rules(self) -> None:
        app = self.app
        if app.store is not None and app.latest is not None:
            app.ruleset = app.store.ruleset(app.latest.snapshot.cluster_name)

    def action_clear_maintenance(self) -> None:
        app = self.app
        if app.store is None or app.latest is None:
            return
        cleared = app.store.clear_maintenance(app.latest.snapshot.cluster_name, self.node)
        self._refresh_rules()
        app.notify(f"{self.node}: maintenance cleared" if cleared else f"{self.node} was not in maintenance", timeout=3)
        if self.proposal is not None:
            self._show()

    def choose(self, key: str) -> None:
        """Enter is bound to ``run`` here (the whole plan, not a row)."""
        self.action_run()
