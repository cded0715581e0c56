"""The dashboard's moves and power actions: ``m`` migrate, ``space`` tag, ``e`` evacuate,
``x`` start/stop, ``t`` tasks — held by the app as ``app.migrations_ui``, as the rules store's
``RulesController`` is.

It owns one ``MigrationExecutor`` and one ``LifecycleRunner``, created on first use with the
app's client, store and the cluster's limits, so every screen (and the balancer) shares the same
queue and limits. Every change of a job is published on ``job_updated`` (a Textual ``Signal``)
to the dialogs and the tasks pane that subscribed; a finished job is announced once, and the
next refresh is pulled in so the table shows the new node or state.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.signal import Signal

from pvetop.engine.lifecycle import LifecycleJob, LifecycleRunner
from pvetop.engine.migrations import JobState, Limits, MigrationExecutor, MigrationJob
from pvetop.engine.report import job_status
from pvetop.errors import UsageError
from pvetop.model import Guest
from pvetop.ui.detail import GuestDetailScreen, NodeDetailScreen
from pvetop.ui.migrate.confirm import ConfirmScreen

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

Job = MigrationJob | LifecycleJob


class MigrationsController:
    """Actions and job state for migrations and guest power; the app delegates its keys here."""

    def __init__(self, app: PvetopApp) -> None:
        self.app = app
        self.poll = 1.0  # seconds between two reads of a running migration task
        self.lifecycle_poll = 1.0  # the same for a start/shutdown/stop/reboot task
        self.job_updated: Signal[Job] = Signal(app, "job-updated")
        self._executor: MigrationExecutor | None = None
        self._runner: LifecycleRunner | None = None
        self._announced: set[int] = set()  # ids of finished migrations already announced

    # --- the shared executor and runner --------------------------------------------------------

    @property
    def executor(self) -> MigrationExecutor:
        if self._executor is None:
            app = self.app
            cluster = self._cluster
            try:
                limits = Limits.from_store(app.store, cluster) if app.store is not None and cluster else Limits()
            except UsageError as exc:  # a bad stored setting must not stop migrations: say so, use the defaults
                app.notify(f"migration limits: {exc.message}; using {Limits()}", severity="warning", timeout=10)
                limits = Limits()
            self._executor = MigrationExecutor(
                app.source,
                store=app.store,
                cluster=cluster,
                limits=limits,
                poll=self.poll,
                on_update=self._changed,
                clock=app.clock,
                intents=app.acting.intents_for(cluster) if app.acting is not None else None,
            )
        return self._executor

    @property
    def runner(self) -> LifecycleRunner:
        if self._runner is None:
            self._runner = LifecycleRunner(
                self.app.source,
                store=self.app.store,
                cluster=self._cluster,
                poll=self.lifecycle_poll,
                on_update=self._changed,
                clock=self.app.clock,
            )
        return self._runner

    @property
    def _cluster(self) -> str:
        latest = self.app.latest
        return latest.snapshot.cluster_name if latest is not None else ""

    @property
    def migration_jobs(self) -> list[MigrationJob]:
        """Our migrations so far (none before the executor is first used)."""
        return list(self._executor.jobs) if self._executor is not None else []

    @property
    def lifecycle_jobs(self) -> list[LifecycleJob]:
        return list(self._runner.jobs) if self._runner is not None else []

    async def aclose(self) -> None:
        """Stop following tasks when the app ends (the tasks themselves go on in the cluster)."""
        if self._executor is not None:
            await self._executor.aclose()
        if self._runner is not None:
            await self._runner.aclose()

    # --- job updates ---------------------------------------------------------------------------

    def _changed(self, job: Job) -> None:
        """The engine calls this inside ``submit`` too: handled next, once the caller holds the job."""
        self.app.call_next(self._publish, job)

    def _publish(self, job: Job) -> None:
        if isinstance(job, MigrationJob):
            self._announce_migration(job)
        else:
            self._announce_power(job)
        self.job_updated.publish(job)

    def _announce_migration(self, job: MigrationJob) -> None:
        from pvetop.ui.migrate.dialog import MigrateScreen

        if job.state.finished:
            if job.id in self._announced:  # a finished job may report again: announce it once
                return
            self._announced.add(job.id)
        app = self.app
        if job.state is JobState.SUCCEEDED:
            app.notify(f"{job.label}: {job_status(job)}", title="Migration", timeout=4)
            app.action_refresh_now()
        elif job.state is JobState.FAILED:
            shown = any(isinstance(screen, MigrateScreen) and screen.job is job for screen in app.screen_stack)
            if not shown:  # else its dialog says it
                app.notify(f"{job.label}: {job_status(job)}", title="Migration failed", severity="error", timeout=10)
            app.action_refresh_now()

    def _announce_power(self, job: LifecycleJob) -> None:
        app = self.app
        if job.state is JobState.SUCCEEDED:
            app.notify(f"{job.label}: {job.status_text}", title="Guest", timeout=4)
            app.action_refresh_now()
        elif job.state is JobState.FAILED:
            app.notify(f"{job.label}: {job.status_text}", title="Guest", severity="error", timeout=10)
            app.action_refresh_now()

    # --- what the keys act on ------------------------------------------------------------------

    def ready(self) -> bool:
        """A live cluster connection and data to plan on, else a warning saying which is missing."""
        app = self.app
        if app.can_migrate:
            return True
        reason = "no cluster data yet" if app.latest is None else "this data source cannot migrate"
        app.notify(reason, severity="warning", timeout=3)
        return False

    def guest_under_cursor(self) -> Guest | None:
        """The guest of an open guest detail pane, else the one under the guest table's cursor —
        none while the node table has the focus (the guest table's cursor is not what one looks at)."""
        app = self.app
        if app.latest is None:
            return None
        screen = app.screen
        if isinstance(screen, GuestDetailScreen):
            vmid: int | None = screen.vmid
        elif app.focused is app.node_table:
            app.notify("the node table has the focus: tab to the guests first", severity="warning", timeout=3)
            return None
        else:
            key = app.guest_table.cursor_key
            vmid = None if key is None else int(key)
        return None if vmid is None else app.latest.snapshot.guest_by_vmid.get(vmid)

    def _tagged_guests(self) -> list[Guest]:
        snapshot = self.app.planning_snapshot
        return [snapshot.guest_by_vmid[vmid] for vmid in sorted(self.app.tagged) if vmid in snapshot.guest_by_vmid]

    # --- actions -------------------------------------------------------------------------------

    def tag(self) -> None:
        app = self.app
        guest = self.guest_under_cursor()
        if guest is None:
            return
        app.tagged.symmetric_difference_update({guest.vmid})  # shown as * in the Flg column
        app.refresh_marks()
        app.notify(
            f"{len(app.tagged)} guest(s) tagged (m migrates them)" if app.tagged else "no guest tagged", timeout=2
        )
        app.guest_table.action_cursor_down()

    def migrate(self) -> None:
        from pvetop.ui.migrate.bulk import BulkMigrateScreen
        from pvetop.ui.migrate.dialog import MigrateScreen

        if not self.ready():
            return
        tagged = self._tagged_guests()
        if tagged:
            self.app.push_screen(BulkMigrateScreen([guest.vmid for guest in tagged]))
            return
        guest = self.guest_under_cursor()
        if guest is None:
            self.app.notify("select a guest first", severity="warning", timeout=3)
            return
        self.app.push_screen(MigrateScreen(guest.vmid))

    def evacuate(self) -> None:
        from pvetop.ui.migrate.evacuate import EvacuateScreen

        if not self.ready():
            return
        app = self.app
        screen = app.screen
        node: str | None
        if isinstance(screen, NodeDetailScreen):
            node = screen.node_name
        elif app.focused is app.node_table:
            node = app.node_table.cursor_key
        else:
            guest = self.guest_under_cursor()
            node = guest.node if guest is not None else app.node_table.cursor_key
        if node is not None:
            app.push_screen(EvacuateScreen(node))

    def tasks(self) -> None:
        from pvetop.ui.migrate.tasks import TasksScreen

        if not isinstance(self.app.screen, TasksScreen):
            self.app.push_screen(TasksScreen())

    def power(self) -> None:
        from pvetop.ui.lifecycle import PowerScreen

        if not self.ready():
            return
        targets = self._tagged_guests()
        if not targets:
            guest = self.guest_under_cursor()
            targets = [guest] if guest is not None else []
        guests = [g for g in targets if not g.template]
        if not guests:
            self.app.notify("select a guest (templates cannot run)", severity="warning", timeout=3)
            return
        self.app.push_screen(PowerScreen(guests), partial(self._power_chosen, guests))

    def _power_chosen(self, guests: list[Guest], choice: tuple[str, int] | None) -> None:
        if choice is None:
            return
        action, timeout = choice
        if action == "stop":
            names = ", ".join(str(g.vmid) for g in guests)
            self.app.push_screen(
                ConfirmScreen(f"Stop {names} hard? Unsaved data in the guest is lost.", yes="Stop hard"),
                lambda confirmed: self._power_run(guests, action, timeout) if confirmed else None,
            )
            return
        self._power_run(guests, action, timeout)

    def _power_run(self, guests: list[Guest], action: str, timeout: int) -> None:
        for guest in guests:
            try:
                self.runner.submit(guest, action, timeout=timeout if action in ("shutdown", "reboot") else None)
            except UsageError as exc:
                self.app.notify(exc.message, severity="warning", timeout=5)
        self.app.notify(f"{action}: {len(guests)} guest(s); t shows the tasks", timeout=3)

    def quit_question(self) -> str | None:
        """Quitting stops following migrations and never starts the queued ones: the question to
        ask first, or None when nothing is under way."""
        unfinished = [job for job in self.migration_jobs if not job.state.finished]
        if not unfinished:
            return None
        queued = sum(1 for job in unfinished if job.state is JobState.QUEUED)
        fate = (
            "The demo cluster stops with pvetop, running ones included"
            if self.app.embedded_cluster
            else "Running ones go on in the cluster, but pvetop stops following them"
        )
        return (
            f"{len(unfinished) - queued} migration(s) running, {queued} queued. {fate}, and queued ones never "
            "start. Quit anyway?"
        )
