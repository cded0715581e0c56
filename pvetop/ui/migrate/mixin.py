"""The dashboard's migration keys: ``m`` migrate, ``space`` tag, ``e`` evacuate, ``t`` tasks.

Mixed into ``PvetopApp``. The app owns one ``MigrationExecutor`` (``app.migrations``), created on
first use with the app's client, store and the cluster's limits, so every screen (and later the
balancer) shares the same queue and limits. Job changes arrive as ``JobUpdated`` messages; a
finished job is announced, and the next refresh is pulled in so the table shows the new node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from textual.app import App
from textual.binding import Binding
from textual.message import Message

from pvetop.engine.migrations import JobState, Limits, MigrationExecutor, MigrationJob
from pvetop.engine.report import job_status
from pvetop.errors import UsageError
from pvetop.model import ClusterSnapshot, Guest
from pvetop.pve import PveClient
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.polling import Refresh
from pvetop.ui.source import SnapshotSource
from pvetop.ui.tables import GuestTable, NodeTable

MIGRATION_ACTIONS = frozenset({"migrate", "evacuate", "tag"})


class JobUpdated(Message):
    """A migration job changed (state, progress or log)."""

    def __init__(self, job: MigrationJob) -> None:
        super().__init__()
        self.job = job


# The host app lists these in its own BINDINGS: Textual merges bindings of DOMNode classes only.
MIGRATION_BINDINGS = [
    Binding("m", "migrate", "Migrate", id="guest.migrate", tooltip="Migrate the selected guest"),
    Binding("space", "tag", "Tag for bulk move", show=False, id="guest.tag", tooltip="Tag / untag the selected guest"),
    Binding("e", "evacuate", "Evacuate node", id="node.evacuate", tooltip="Evacuate a node"),
    Binding("t", "tasks", "Tasks", id="app.tasks", tooltip="Tasks"),
]


class MigrationsHost(Protocol):
    """What the mixin needs from the dashboard app it is mixed into, beyond Textual's ``App``."""

    read_only: bool
    source: SnapshotSource
    store: Any  # the rules store, when one is open
    acting: Any  # which instance acts on the cluster (ui/acting.py), or None
    tagged: set[int]
    guest_table: GuestTable
    node_table: NodeTable

    @property
    def latest(self) -> Refresh | None: ...

    def refresh_marks(self) -> None: ...

    def action_refresh_now(self) -> None: ...


if TYPE_CHECKING:

    class _HostApp(App[Any], MigrationsHost):
        """The mixin's view of ``self``: a Textual app that provides ``MigrationsHost``."""

else:
    _HostApp = object


class MigrationsMixin(_HostApp):
    """Actions and state for migrations; the host is the dashboard app (``latest``, ``source``, tables)."""

    migration_poll: float = 1.0  # seconds between two reads of a running task

    _migrations: MigrationExecutor | None = None  # created on first use, see ``migrations``
    _announced: set[int]  # ids of finished jobs already announced (set up in ``migrations``)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MIGRATION_ACTIONS and getattr(self, "read_only", False):
            return None  # greyed out in the footer, refused from keys, palette and run_action
        return super().check_action(action, parameters)

    # --- the shared executor -------------------------------------------------------------------

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
        if self._migrations is None:
            self._announced = set()
            cluster = self.latest.snapshot.cluster_name if self.latest is not None else ""
            try:
                limits = Limits.from_store(self.store, cluster) if self.store is not None and cluster else Limits()
            except UsageError as exc:  # a bad stored setting must not stop migrations: say so, use the defaults
                self.notify(f"migration limits: {exc.message}; using {Limits()}", severity="warning", timeout=10)
                limits = Limits()
            self._migrations = MigrationExecutor(
                self.source,
                store=self.store,
                cluster=cluster,
                limits=limits,
                poll=self.migration_poll,
                on_update=self._job_changed,
                intents=self.acting.intents_for(cluster) if self.acting is not None else None,
            )
        return self._migrations

    async def on_unmount(self) -> None:
        """Stop following tasks when the app ends (the migrations themselves go on in the cluster)."""
        if self._migrations is not None:
            await self._migrations.aclose()

    def _job_changed(self, job: MigrationJob) -> None:
        self.post_message(JobUpdated(job))

    def on_job_updated(self, message: JobUpdated) -> None:
        job = message.job
        for screen in self.screen_stack:
            follow = getattr(screen, "job_updated", None)
            if follow is not None:
                follow(job)
        if job.state.finished:
            if job.id in self._announced:  # a finished job may report again: announce it once
                return
            self._announced.add(job.id)
        if job.state is JobState.SUCCEEDED:
            self.notify(f"{job.label}: {job_status(job)}", title="Migration", timeout=4)
            self.action_refresh_now()
        elif job.state is JobState.FAILED:
            if not any(getattr(screen, "job", None) is job for screen in self.screen_stack):  # else its dialog says it
                self.notify(f"{job.label}: {job_status(job)}", title="Migration failed", severity="error", timeout=10)
            self.action_refresh_now()

    def _ready_to_migrate(self) -> bool:
        if self.can_migrate:
            return True
        reason = "no cluster data yet" if self.latest is None else "this data source cannot migrate"
        self.notify(reason, severity="warning", timeout=3)
        return False

    # --- actions -------------------------------------------------------------------------------

    def _guest_under_cursor(self) -> Guest | None:
        """The guest of an open guest detail pane, else the one under the guest table's cursor —
        none while the node table has the focus (the guest table's cursor is not what one looks at)."""
        if self.latest is None:
            return None
        vmid = getattr(self.screen, "vmid", None)
        if vmid is None:
            if self.focused is self.node_table:
                self.notify("the node table has the focus: tab to the guests first", severity="warning", timeout=3)
                return None
            key = self.guest_table.cursor_key
            vmid = None if key is None else int(key)
        return None if vmid is None else self.latest.snapshot.guest_by_vmid.get(vmid)

    def action_tag(self) -> None:
        guest = self._guest_under_cursor()
        if guest is None:
            return
        self.tagged.symmetric_difference_update({guest.vmid})  # app.tagged: shown as * in the Flg column
        self.refresh_marks()
        self.notify(
            f"{len(self.tagged)} guest(s) tagged (m migrates them)" if self.tagged else "no guest tagged", timeout=2
        )
        self.guest_table.action_cursor_down()

    def action_migrate(self) -> None:
        from pvetop.ui.migrate.bulk import BulkMigrateScreen
        from pvetop.ui.migrate.dialog import MigrateScreen

        if not self._ready_to_migrate() or self.latest is None:
            return
        snapshot = self.latest.snapshot
        tagged = [vmid for vmid in sorted(self.tagged) if vmid in snapshot.guest_by_vmid]
        if tagged:
            self.push_screen(BulkMigrateScreen(tagged))
            return
        guest = self._guest_under_cursor()
        if guest is None:
            self.notify("select a guest first", severity="warning", timeout=3)
            return
        self.push_screen(MigrateScreen(guest.vmid))

    def action_evacuate(self) -> None:
        from pvetop.ui.migrate.evacuate import EvacuateScreen

        if not self._ready_to_migrate():
            return
        node = getattr(self.screen, "node_name", None)  # an open node detail pane
        if node is None and self.focused is self.node_table:
            node = self.node_table.cursor_key
        elif node is None:
            guest = self._guest_under_cursor()
            node = guest.node if guest is not None else self.node_table.cursor_key
        if node is not None:
            self.push_screen(EvacuateScreen(node))

    async def action_quit(self) -> None:
        """Quitting stops following migrations and never starts the queued ones: ask first."""
        executor = self._migrations
        unfinished = [job for job in executor.jobs if not job.state.finished] if executor is not None else []
        if not unfinished:
            await super().action_quit()
            return
        queued = sum(1 for job in unfinished if job.state is JobState.QUEUED)
        fate = (
            "The demo cluster stops with pvetop, running ones included"
            if getattr(self, "embedded_cluster", False)
            else "Running ones go on in the cluster, but pvetop stops following them"
        )
        question = (
            f"{len(unfinished) - queued} migration(s) running, {queued} queued. {fate}, and queued ones never "
            "start. Quit anyway?"
        )
        self.push_screen(ConfirmScreen(question, yes="Quit"), lambda confirmed: self.exit() if confirmed else None)

    def action_tasks(self) -> None:
        from pvetop.ui.migrate.tasks import TasksScreen

        if not isinstance(self.screen, TasksScreen):
            self.push_screen(TasksScreen())
