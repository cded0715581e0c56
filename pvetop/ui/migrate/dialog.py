"""``m`` on a guest: every other node with its CPU and memory now and after the move, why some
cannot take the guest, the migration options, then a confirmation.

The list appears at once from the snapshot; Proxmox VE's own precondition (``GET .../migrate``:
local disks, local resources, storage missing on a node) is fetched in a thread and folded in
when it arrives. After the confirmation the dialog stays until PVE has accepted the request, so
a refusal is shown here, in PVE's words, and the user can change the options and try again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Static

from pvetop.engine.lifecycle import LifecycleJob
from pvetop.engine.migrations import JobState, MigrationJob, MoveOptions
from pvetop.engine.report import how
from pvetop.errors import PvetopError, UsageError
from pvetop.model import Guest, MigratePrecondition
from pvetop.policy.constraints import ha_local_disks_problem
from pvetop.policy.placement import MovePreview, PlannedMove, planned_move, preview_candidates
from pvetop.policy.projection import NodeUsage
from pvetop.pve import actions
from pvetop.text import visible
from pvetop.ui import formatting as fmt
from pvetop.ui.dialog import TableDialog, TableRow
from pvetop.ui.migrate.confirm import ConfirmScreen

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp


def usage_text(usage: NodeUsage) -> tuple[str, str]:
    """(CPU, memory) of a node as the dialogs show them."""
    if not usage.online:
        return "-", "-"
    return fmt.percent(usage.cpu_fraction).strip(), f"{fmt.used_of(usage.mem, usage.maxmem)} {usage.mem_fraction:.0%}"


def parse_positive(text: str, what: str, *, integer: bool) -> float | None:
    """An optional positive number from an input field; '' means not set."""
    text = text.strip()
    if not text:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a {'whole ' if integer else ''}number") from None
    if value <= 0:
        raise UsageError(f"{what} must be positive")
    return value


def first_choice(previews) -> int:
    """Where the cursor starts: the first node with no objection, else the first allowed one —
    never a reserved or maintenance node when a plain one exists."""
    allowed = [i for i, preview in enumerate(previews) if preview.verdict.allowed]
    clean = [i for i in allowed if not previews[i].verdict.warnings]
    return (clean or allowed or [0])[0]


class PreconditionArrived(Message):
    def __init__(self, precondition: MigratePrecondition | None, error: str = "") -> None:
        super().__init__()
        self.precondition = precondition
        self.error = error


class MigrateScreen(TableDialog[MigrationJob | None]):
    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    COLUMNS = (
        ("Node", 12),
        ("", 8),
        ("CPU now", 8),
        ("→ after", 8),
        ("Memory now", 17),
        ("→ after", 17),
        ("Why not / warnings", 60),
    )
    TABLE_ID = "candidates"
    NOTES = "checking with Proxmox VE…"
    HINTS = ("enter: migrate to the selected node", "tab: options")

    def __init__(self, vmid: int) -> None:
        super().__init__()
        self.vmid = vmid
        self._last_seen: Guest | None = None
        self.precondition: MigratePrecondition | None = None
        self.previews: dict[str, MovePreview] = {}
        self.job: MigrationJob | None = None

    @property
    def guest(self) -> Guest:
        """The guest as the latest refresh shows it (as it was, should it vanish meanwhile)."""
        current = self.app.planning_snapshot.guest_by_vmid.get(self.vmid)
        if current is not None:
            self._last_seen = current
        if self._last_seen is None:  # the app opens this dialog for a guest of the latest snapshot
            raise RuntimeError(f"guest {self.vmid} was never in a snapshot")
        return self._last_seen

    # --- layout --------------------------------------------------------------------------------

    def heading(self) -> str:
        guest = self.guest
        kind = "VM" if guest.type == "qemu" else "CT"
        return (
            f"Migrate {kind} {guest.vmid} {guest.name} — on {guest.node}, {guest.status}, "
            f"{fmt.used_of(guest.mem, guest.maxmem)} memory"
        )

    def compose_options(self) -> ComposeResult:
        guest = self.guest
        with Horizontal(classes="options"):
            if guest.type == "qemu":
                yield Checkbox("Online (live)", value=guest.running, disabled=not guest.running, id="online")
                yield Checkbox("With local disks", value=False, id="local-disks")
            else:
                yield Checkbox("Restart mode", value=guest.running, disabled=True, id="restart")
                yield Label("shutdown timeout s")
                yield Input(placeholder="180", id="timeout", type="integer")
            yield Label("bandwidth MiB/s")
            yield Input(placeholder="no limit", id="bwlimit", type="number")

    def started(self) -> None:
        self.app.migrations_ui.job_updated.subscribe(self, self.job_updated)
        self._fetch_precondition(self.guest)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in an option field confirms too: the move to the highlighted node."""
        event.stop()
        key = self.cursor_key
        if key is not None:
            self.choose(key)

    @work(thread=True, exclusive=True, group="precondition", exit_on_error=False)
    def _fetch_precondition(self, guest: Guest) -> None:
        client = self.app.client
        if client is None:  # the app opens this dialog only with a live connection
            return
        try:
            precondition = actions.migrate_precondition(client, guest)
        except PvetopError as exc:
            self.post_message(PreconditionArrived(None, exc.message))
            return
        self.post_message(PreconditionArrived(precondition))

    def on_precondition_arrived(self, message: PreconditionArrived) -> None:
        self.precondition = message.precondition
        self.fill()
        notes = []
        guest = self.guest
        if guest.ha_managed:
            notes.append(f"HA-managed ({guest.hastate}): the move goes through PVE's HA manager.")
        if message.error:
            notes.append(f"Proxmox VE's precondition check failed: {message.error}")
        elif self.precondition is not None and self.precondition.local_disks and guest.type == "qemu":
            disks = ", ".join(self.precondition.local_disks)
            notes.append(
                f"Local disks ({disks}): they are copied to the target — a live migration needs “With local disks”."
            )
            self.query_one("#local-disks", Checkbox).value = True
        self.query_one("#notes", Static).update(
            visible(" ".join(notes), multiline=True) or "Proxmox VE raises no objection."
        )

    def rows(self) -> list[TableRow]:
        app = self.app
        previews = preview_candidates(
            app.planning_snapshot, self.guest, app.ruleset, mode="manual", precondition=self.precondition
        )
        self.previews = {preview.target.node: preview for preview in previews}
        return [self._row(preview) for preview in previews]

    def first_row(self, rows: list[TableRow]) -> int:
        return first_choice(list(self.previews.values()))

    @staticmethod
    def _row(preview: MovePreview) -> TableRow:
        verdict = preview.verdict
        node = preview.target.node
        before_cpu, before_mem = usage_text(preview.target.before)
        after_cpu, after_mem = usage_text(preview.target.after)
        if verdict.allowed:
            state, style = ("ok", "green") if not verdict.warnings else ("warn", "yellow")
            notes = "; ".join(verdict.warnings)
        else:
            state, style = "blocked", "red"
            notes = "; ".join(verdict.blocks + verdict.warnings)
        dim = "" if verdict.allowed else "dim"
        cells = (
            fmt_cell(node, dim or "bold"),
            fmt_cell(state, style),
            fmt_cell(before_cpu, dim),
            fmt_cell(after_cpu, dim),
            fmt_cell(before_mem, dim),
            fmt_cell(after_mem, dim),
            fmt_cell(notes, dim),
        )
        return TableRow(node, cells, f"{node}: {notes}" if notes else "")

    # --- choosing and confirming ---------------------------------------------------------------

    def choose(self, target: str) -> None:
        """Builds the move for ``target`` from the options, or says what is wrong, then asks."""
        error = self.query_one("#error", Static)
        preview = self.previews[target]
        if not preview.verdict.allowed:
            error.update(
                visible(f"{target} cannot take {self.vmid}: {'; '.join(preview.verdict.blocks)}", multiline=True)
            )
            return
        try:
            move, options = self._move_to(target)
        except UsageError as exc:
            error.update(visible(exc.message, multiline=True))
            return
        error.update("")
        question = [f"Migrate {self.vmid} {move.name}: {move.source} → {move.target} ({how(move)})?"]
        if options.bwlimit_kib:
            question.append(f"Bandwidth limit {options.bwlimit_kib / 1024:g} MiB/s.")
        if self.guest.ha_managed:
            question.append("HA-managed: PVE's HA manager carries out the move.")
        if preview.verdict.warnings:
            question.append(
                "Warning (pins and locks bind only automation, so this is allowed): "
                + "; ".join(preview.verdict.warnings)
            )
        self.app.push_screen(
            ConfirmScreen("\n".join(question), yes="Migrate"),
            lambda confirmed: self._start(move, options) if confirmed else None,
        )

    def _move_to(self, target: str) -> tuple[PlannedMove, MoveOptions]:
        guest = self.guest
        move = planned_move(
            guest, guest.node, target, "migrate dialog", self.precondition, self.previews[target].verdict.warnings
        )
        bwlimit = parse_positive(self.query_one("#bwlimit", Input).value, "bandwidth", integer=False)
        options = MoveOptions(bwlimit_kib=None if bwlimit is None else max(1, round(bwlimit * 1024)))
        problem = ha_local_disks_problem(guest, self.precondition)
        if problem is not None:
            raise UsageError(problem)
        if guest.type == "qemu":
            online = self.query_one("#online", Checkbox).value
            local_disks = self.query_one("#local-disks", Checkbox).value
            if online and not local_disks and self.precondition is not None and self.precondition.local_disks:
                raise UsageError(
                    "this VM has local disks: a live migration needs “With local disks” "
                    "(or migrate it offline after shutting it down)"
                )
            move = replace(move, online=online, with_local_disks=local_disks)
        else:
            timeout = parse_positive(self.query_one("#timeout", Input).value, "shutdown timeout", integer=True)
            options = replace(options, restart_timeout=None if timeout is None else int(timeout))
        return move, options

    def _start(self, move: PlannedMove, options: MoveOptions) -> None:
        try:
            self.job = self.app.migrations.submit(move, options)
        except UsageError as exc:
            self.query_one("#error", Static).update(visible(exc.message, multiline=True))
            return
        self.query_one("#error", Static).update(visible(f"asking Proxmox VE to move {move.vmid} to {move.target}…"))

    def job_updated(self, job: MigrationJob | LifecycleJob) -> None:
        """Every job change is published to the dialog: ours decides whether the dialog closes."""
        if job is not self.job or not isinstance(job, MigrationJob) or not self.is_attached:
            return
        if job.state is JobState.RUNNING or job.succeeded:
            self.app.notify(
                f"{job.label}: started{' via HA manager' if job.via_ha else ''} (t shows tasks)",
                title="Migration",
                timeout=4,
            )
            self.job = None  # updates already published for it arrive after the dialog closes: ignored
            self.dismiss(job)
        elif job.state.finished:
            self.query_one("#error", Static).update(visible(f"Proxmox VE refused: {job.error}", multiline=True))
            self.job = None


def fmt_cell(text: str, style: str = "") -> Text:
    """A table cell as plain text (a DataTable would read a ``str`` as markup), controls made visible."""
    return Text(visible(text), style=style, no_wrap=True, overflow="ellipsis", end="")
