"""``t``: running and recent tasks, ours and the cluster's; enter opens a log, ``s`` stops a task.

Our migrations come from the app's executor (progress, "via HA manager", PVE's error text).
The cluster's tasks come from ``GET /cluster/tasks`` in a thread worker every ``POLL`` seconds;
for a running migration that is not ours the log is read too, so its progress shows as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Log, Static

from pvetop.engine.lifecycle import LifecycleJob
from pvetop.engine.migrations import JobState, MigrationJob, real_lines
from pvetop.engine.report import job_status, progress_text
from pvetop.errors import PvetopError
from pvetop.pve import tasks
from pvetop.pve.tasks import Progress
from pvetop.text import visible
from pvetop.ui.dialog import Dialog
from pvetop.ui.footer import KeyFooter
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.dialog import fmt_cell

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

MIGRATION_TYPES = frozenset({"qmigrate", "vzmigrate"})
MAX_LOGS_PER_POLL = 5  # running migrations of others whose log is read for their progress


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One line of the pane, whoever started the task."""

    key: str
    upid: str | None
    started: float | None
    node: str
    type: str
    id: str
    user: str
    running: bool
    status: str
    duration: float | None
    failed: bool = False
    job: MigrationJob | None = None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def job_row(job: MigrationJob, now: float) -> TaskRow:
    upid = job.upid or job.ha_upid
    parsed = tasks.parse_upid(upid) if upid else None
    return TaskRow(
        key=upid or f"job:{job.id}",
        upid=upid,
        started=parsed.starttime if parsed else None,
        node=job.move.source,
        type=parsed.type if parsed else "migrate",
        id=str(job.vmid),
        user=parsed.user if parsed else "(pvetop)",
        running=not job.state.finished,
        status=f"{job.move.source} → {job.move.target}: {job_status(job)}",
        duration=job.duration(now),
        failed=job.state.finished and not job.succeeded,
        job=job,
    )


def lifecycle_row(job: LifecycleJob, now: float) -> TaskRow:
    """A start/shutdown/stop/reboot of ours: the guest's own task once known, else the HA request."""
    upid = job.upid or job.ha_upid
    parsed = tasks.parse_upid(upid) if upid else None
    return TaskRow(
        key=upid or f"power:{job.id}",
        upid=upid,
        started=parsed.starttime if parsed else None,
        node=job.guest.node,
        type=parsed.type if parsed else job.action,
        id=str(job.vmid),
        user=parsed.user if parsed else "(pvetop)",
        running=not job.state.finished,
        status=f"{job.action}: {job.status_text}",
        duration=job.duration(now),
        failed=job.state is JobState.FAILED,
    )


def cluster_row(entry: dict[str, Any], progress: Progress | None) -> TaskRow:
    running = "endtime" not in entry
    status = "running" if running else str(entry.get("status", ""))
    if running and progress is not None and progress_text(progress):
        status = progress_text(progress)
    start, end = entry.get("starttime"), entry.get("endtime")
    return TaskRow(
        key=entry["upid"],
        upid=entry["upid"],
        started=start,
        node=str(entry.get("node", "")),
        type=str(entry.get("type", "")),
        id=str(entry.get("id", "")),
        user=_task_owner(entry),
        running=running,
        status=status,
        duration=None if running or start is None or end is None else end - start,
        failed=not running and status != "OK" and not status.startswith("WARNINGS"),
    )


def _task_owner(entry: dict[str, Any]) -> str:
    """``root@pam!pvetop`` for a token's task: PVE answers ``user`` and ``tokenid`` apart."""
    user = str(entry.get("user", ""))
    return f"{user}!{entry['tokenid']}" if entry.get("tokenid") else user


class ClusterTasksArrived(Message):
    def __init__(self, entries: list[dict[str, Any]], progress: dict[str, Progress], error: str = "") -> None:
        super().__init__()
        self.entries = entries
        self.progress = progress
        self.error = error


class TasksScreen(ReadOnlyGuard, Screen):
    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    POLL = 1.0
    DEFAULT_CSS = """
    TasksScreen #tasks-caption { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    TasksScreen #tasks { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,q,t", "close", "Back", id="tasks.back"),
        Binding("enter", "open_log", "Log", id="tasks.log"),
        Binding("s", "stop", "Stop task", id="tasks.stop"),
    ]
    WRITE_ACTIONS = frozenset({"stop"})

    def __init__(self) -> None:
        super().__init__()
        self.cluster_entries: list[dict[str, Any]] = []
        self.cluster_progress: dict[str, Progress] = {}
        self.error = ""
        self.rows: dict[str, TaskRow] = {}

    def compose(self) -> ComposeResult:
        yield Static("Tasks", id="tasks-caption")
        yield DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#tasks", DataTable)
        for label, width in (
            ("Started", 8),
            ("Node", 12),
            ("Type", 10),
            ("ID", 6),
            ("User", 16),
            ("Duration", 8),
            ("Status / progress / result", 90),
        ):
            table.add_column(label, width=width)
        table.focus()
        self.app.migrations_ui.job_updated.subscribe(self, self.job_updated)
        self._show()
        self._poll()
        self.set_interval(self.POLL, self._poll)

    @property
    def jobs(self) -> list[MigrationJob]:
        return self.app.migrations_ui.migration_jobs

    @property
    def lifecycle_jobs(self) -> list[LifecycleJob]:
        return self.app.migrations_ui.lifecycle_jobs

    @work(thread=True, exclusive=True, group="cluster-tasks", exit_on_error=False)
    def _poll(self) -> None:
        client = self.app.client
        if client is None:  # a fixed in-memory snapshot has no tasks
            return
        ours = {job.upid for job in self.jobs} | {job.ha_upid for job in self.jobs}
        try:
            entries = [e for e in tasks.cluster_tasks(client) if isinstance(e, dict) and e.get("upid")]
            progress = {}
            others = [
                e["upid"]
                for e in entries
                if "endtime" not in e and e.get("type") in MIGRATION_TYPES and e["upid"] not in ours
            ]
            for upid in others[:MAX_LOGS_PER_POLL]:
                progress[upid] = tasks.parse_migration_progress(tasks.task_log(client, upid))
        except PvetopError as exc:
            self.post_message(ClusterTasksArrived(self.cluster_entries, self.cluster_progress, exc.message))
            return
        self.post_message(ClusterTasksArrived(entries, progress))

    def on_cluster_tasks_arrived(self, message: ClusterTasksArrived) -> None:
        self.cluster_entries = message.entries
        self.cluster_progress = message.progress
        self.error = message.error
        self._show()

    def job_updated(self, job: MigrationJob | LifecycleJob) -> None:
        if self.is_attached:
            self._show()

    def _show(self) -> None:
        now = self.app.clock()
        rows: dict[str, TaskRow] = {}
        for job in reversed(self.jobs):
            row = job_row(job, now)
            rows[row.key] = row
        for power in reversed(self.lifecycle_jobs):
            row = lifecycle_row(power, now)
            rows[row.key] = row
        ours: list[MigrationJob | LifecycleJob] = [*self.jobs, *self.lifecycle_jobs]
        followed = {key for job in ours for key in (job.upid, job.ha_upid) if key}
        for entry in self.cluster_entries:
            if entry["upid"] not in followed and entry["upid"] not in rows:
                rows[entry["upid"]] = cluster_row(entry, self.cluster_progress.get(entry["upid"]))
        ordered = sorted(rows.values(), key=lambda r: (not r.running, -(r.started or now)))
        self.rows = {row.key: row for row in ordered}
        running = sum(1 for row in ordered if row.running)
        caption = f"Tasks: {running} running, {len(ordered) - running} recent · enter: log · s: stop · esc: back"
        self.query_one("#tasks-caption", Static).update(
            fmt_cell(caption + (f" · cannot list tasks: {self.error}" if self.error else ""))
        )
        table = self.query_one("#tasks", DataTable)
        followed_key = self.cursor_key
        table.clear()
        for row in ordered:
            style = "bold" if row.running else ("red" if row.failed else "")
            started = time.strftime("%H:%M:%S", time.localtime(row.started)) if row.started else "-"
            table.add_row(
                started,
                fmt_cell(row.node),
                fmt_cell(row.type),
                fmt_cell(row.id),
                fmt_cell(row.user),
                _clock(row.duration),
                fmt_cell(row.status, style),
                key=row.key,
            )
        if followed_key in self.rows:
            table.move_cursor(row=table.get_row_index(followed_key))

    @property
    def cursor_key(self) -> str | None:
        table = self.query_one("#tasks", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @property
    def selected(self) -> TaskRow | None:
        key = self.cursor_key
        return self.rows.get(key) if key else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_log()

    def action_open_log(self) -> None:
        row = self.selected
        if row is not None:
            self.app.push_screen(TaskLogScreen(row))

    def action_stop(self) -> None:
        row = self.selected
        if row is None or not row.running:
            self.notify("select a running task to stop", severity="warning", timeout=3)
            return
        what = f"{row.type} {row.id} on {row.node}"
        consequence = (
            " The migration is aborted and the guest stays on its node."
            if row.type in MIGRATION_TYPES or row.job is not None
            else ""
        )
        self.app.push_screen(
            ConfirmScreen(f"Stop task {what}?{consequence}\n{row.upid or ''}", yes="Stop task"),
            lambda confirmed: self._stop(row) if confirmed else None,
        )

    def _stop(self, row: TaskRow) -> None:
        if row.job is not None:
            self.app.run_worker(self.app.migrations.stop(row.job), group="stop-task", exit_on_error=False)
        elif row.upid is not None:
            self._stop_upid(row.upid)

    @work(thread=True, group="stop-task", exit_on_error=False)
    def _stop_upid(self, upid: str) -> None:
        try:
            client = self.app.client
            if client is not None:
                tasks.stop_task(client, upid)
        except PvetopError as exc:
            self.app.call_from_thread(self.notify, f"cannot stop the task: {exc.message}", severity="error")

    def action_close(self) -> None:
        self.dismiss()


class TaskLogArrived(Message):
    def __init__(self, lines: list[str], running: bool, error: str = "") -> None:
        super().__init__()
        self.lines = lines
        self.running = running
        self.error = error


class TaskLogScreen(Dialog[None]):
    """A task's full log, following it while it runs."""

    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    POLL = 1.0
    BINDINGS = [Binding("escape,q", "cancel", "Back", id="tasklog.back")]

    def __init__(self, row: TaskRow) -> None:
        super().__init__()
        self.row = row
        job = row.job
        self.upid = (job.upid or job.ha_upid) if job is not None else row.upid
        self.line_count = 0
        self.running = True
        self.fetching = False

    def compose(self) -> ComposeResult:
        log = Log(id="task-log", highlight=False)
        log.border_title = escape(visible(f"{self.row.type} {self.row.id} on {self.row.node}")) + " — esc closes"
        yield log

    def on_mount(self) -> None:
        log = self.query_one(Log)
        job = self.row.job
        if self.upid is None:  # refused before any task existed
            log.write_line(visible(f"no task: {job.error if job is not None else 'not started'}"))
            return
        log.write_line(visible(self.upid))
        if job is not None and job.via_ha:
            log.write_line(visible(f"via HA manager (request {job.ha_upid})"))
        self._follow()
        self.set_interval(self.POLL, self._follow)

    def _follow(self) -> None:
        if self.running and not self.fetching:
            self.fetching = True
            self._fetch(self.upid, self.line_count)

    @work(thread=True, group="task-log", exit_on_error=False)
    def _fetch(self, upid: str, start: int) -> None:
        client = self.app.client
        if client is None:
            return
        try:
            status = tasks.task_status(client, upid)
            lines = tasks.task_log(client, upid, start=start, limit=5000)
        except PvetopError as exc:
            self.post_message(TaskLogArrived([], True, exc.message))
            return
        self.post_message(TaskLogArrived(lines, status.running))

    def on_task_log_arrived(self, message: TaskLogArrived) -> None:
        self.fetching = False
        log = self.query_one(Log)
        if message.error:
            log.write_line(visible(f"(cannot read the log: {message.error})"))
            return
        lines = real_lines(message.lines, seen=self.line_count)
        log.write_lines([visible(line) for line in lines])
        self.line_count += len(lines)
        self.running = message.running
