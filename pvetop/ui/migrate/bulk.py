"""``m`` with tagged guests: pick one target node for all of them, see the plan, confirm.

Each node row shows what the node would carry after taking every guest it can
(``policy.placement.plan_bulk_move``), how many moves that is and which guests it refuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from pvetop.engine.evacuation import fetch_preconditions
from pvetop.engine.report import move_line, unplaced_line
from pvetop.errors import UsageError
from pvetop.model import MigratePrecondition
from pvetop.policy.metrics import imbalance_text
from pvetop.policy.placement import BulkPlan, plan_bulk_move
from pvetop.text import visible
from pvetop.ui.dialog import TableDialog, TableRow
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.dialog import fmt_cell, usage_text

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp


class BulkMigrateScreen(TableDialog[int]):
    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    COLUMNS = (("Node", 12), ("Moves", 6), ("CPU now", 8), ("Memory now", 17), ("→ after", 17), ("Refused", 60))
    TABLE_ID = "targets"
    NOTES = "checking with Proxmox VE…"
    HINTS = ("enter: preview and confirm the move to the selected node",)

    def __init__(self, vmids: list[int]) -> None:
        super().__init__()
        self.vmids = vmids
        self.preconditions: dict[int, MigratePrecondition] = {}
        self.plans: dict[str, BulkPlan] = {}

    def heading(self) -> str:
        snapshot = self.app.planning_snapshot
        names = ", ".join(f"{vmid} {snapshot.guest_by_vmid[vmid].name}".strip() for vmid in self.vmids)
        return f"Move {len(self.vmids)} tagged guest(s): {names}"

    def started(self) -> None:
        self.run_worker(self._fetch_preconditions(), exclusive=True, group="preconditions", exit_on_error=False)

    async def _fetch_preconditions(self) -> None:
        snapshot = self.app.planning_snapshot
        self.preconditions = await fetch_preconditions(
            self.app.source, [snapshot.guest_by_vmid[vmid] for vmid in self.vmids]
        )
        self.query_one("#notes", Static).update("Proxmox VE's migrate preconditions are included.")
        self.fill()

    def rows(self) -> list[TableRow]:
        snapshot = self.app.planning_snapshot
        self.plans = {
            node.name: plan_bulk_move(
                snapshot, self.vmids, node.name, self.app.ruleset, mode="manual", preconditions=self.preconditions
            )
            for node in snapshot.nodes
        }
        return [self._row(plan) for plan in self.plans.values()]

    @staticmethod
    def _row(plan: BulkPlan) -> TableRow:
        cpu, before = usage_text(plan.target_before)
        _, after = usage_text(plan.target_after)
        refused = [unplaced_line(item) for item in plan.refused]
        dim = "" if plan.moves else "dim"
        cells = (
            fmt_cell(plan.target, dim or "bold"),
            fmt_cell(str(len(plan.moves)), dim),
            fmt_cell(cpu, dim),
            fmt_cell(before, dim),
            fmt_cell(after, dim),
            fmt_cell("; ".join(refused), dim),
        )
        detail = "\n".join([f"{plan.target} refuses {len(refused)}:", *refused]) if refused else ""
        return TableRow(plan.target, cells, detail)

    def choose(self, target: str) -> None:
        plan = self.plans[target]
        if not plan.moves:
            self.query_one("#error", Static).update(visible(f"{target} takes none of them"))
            return
        lines = [f"{len(plan.moves)} move(s) to {target}:", *(f"  {move_line(move)}" for move in plan.moves)]
        if plan.refused:
            lines += [f"not moved ({len(plan.refused)}):", *(f"  {unplaced_line(item)}" for item in plan.refused)]
        lines.append(f"cluster imbalance after: {imbalance_text(plan.after.imbalance)}")
        self.app.push_screen(
            ConfirmScreen("\n".join(lines), yes="Migrate"), lambda confirmed: self._start(plan) if confirmed else None
        )

    def _start(self, plan: BulkPlan) -> None:
        executor = self.app.migrations
        started = 0
        problems = []
        for move in plan.moves:
            try:
                executor.submit(move)
                started += 1
            except UsageError as exc:
                problems.append(exc.message)
        self.app.tagged.clear()
        self.app.refresh_marks()
        self.app.notify(
            f"{started} migration(s) to {plan.target} queued (t shows tasks)"
            + (f"; {'; '.join(problems)}" if problems else ""),
            title="Bulk move",
            timeout=5,
        )
        self.dismiss(started)

    def action_cancel(self) -> None:
        self.dismiss(0)
