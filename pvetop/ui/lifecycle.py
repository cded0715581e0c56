"""``x``: start, shut down, reboot or stop the selected guest, or every guest tagged with ``space``.

Mixed into ``PvetopApp`` like the migration keys. The app owns one ``LifecycleRunner``
(``app.lifecycle``); PVE's tasks show in the tasks pane (``t``) as they run, a finished job is
announced and pulls in the next refresh. HA-managed guests go through the HA manager, as PVE does.
A hard stop asks first; the power dialog confirms with enter and cancels with escape.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from pvetop.engine.lifecycle import DEFAULT_SHUTDOWN_TIMEOUT, LifecycleJob, LifecycleRunner
from pvetop.engine.migrations import JobState
from pvetop.errors import UsageError
from pvetop.model import Guest
from pvetop.ui.migrate.confirm import ConfirmScreen

if TYPE_CHECKING:
    # the host is the dashboard app, which mixes in the migration keys too (their guest-under-
    # cursor and ready checks are shared)
    from pvetop.ui.migrate.mixin import MigrationsMixin as _HostApp
else:
    _HostApp = object

LIFECYCLE_BINDINGS = [
    Binding("x", "power", "Start/stop", id="guest.power", tooltip="Start / shut down / reboot / stop guests")
]
CHOICES = (
    ("start", "Start"),
    ("shutdown", "Shut down (graceful, within the timeout)"),
    ("reboot", "Reboot"),
    ("stop", "Stop hard (like pulling the plug; asks first)"),
)


class LifecycleJobUpdated(Message):
    def __init__(self, job: LifecycleJob) -> None:
        super().__init__()
        self.job = job


class PowerScreen(ModalScreen[tuple[str, int] | None]):
    """Pick an action for the guests; returns (action, shutdown timeout) or None."""

    DEFAULT_CSS = """
    PowerScreen { align: center middle; }
    PowerScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary;
                             background: $surface; padding: 1 2; }
    PowerScreen #power-guests { height: auto; max-height: 8; margin-bottom: 1; }
    PowerScreen OptionList { height: auto; }
    PowerScreen Input { margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("enter", "confirm", "Confirm", id="dialog.confirm", priority=True),
    ]

    def __init__(self, guests: list[Guest]) -> None:
        super().__init__()
        self.guests = guests

    def compose(self) -> ComposeResult:
        names = ", ".join(f"{g.vmid} {g.name} ({g.status}{', HA' if g.ha_managed else ''})" for g in self.guests)
        ha = any(g.ha_managed for g in self.guests)
        with Vertical():
            yield Static(
                f"{len(self.guests)} guest(s): {names}"
                + ("\nHA-managed guests start and stop through the HA manager." if ha else ""),
                id="power-guests",
                markup=False,
            )
            everything_runs = all(g.running for g in self.guests)
            options = [Option(label, id=action) for action, label in CHOICES]
            option_list = OptionList(*options, id="power-actions")
            option_list.highlighted = 1 if everything_runs else 0
            yield option_list
            yield Input(str(DEFAULT_SHUTDOWN_TIMEOUT), id="power-timeout", type="integer")
            yield Static("enter: do it · escape: cancel · shutdown/reboot timeout in seconds above", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#power-timeout", Input).border_title = "timeout (s)"
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_confirm()

    def action_confirm(self) -> None:
        option_list = self.query_one(OptionList)
        if option_list.highlighted is None:
            return
        action = option_list.get_option_at_index(option_list.highlighted).id or "start"
        text = self.query_one("#power-timeout", Input).value.strip()
        if not text.isdigit():
            self.notify("the timeout is a whole number of seconds", severity="warning", timeout=3)
            return
        self.dismiss((action, int(text)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class LifecycleMixin(_HostApp):
    """Actions and state for guest lifecycle; the host is the dashboard app."""

    lifecycle_poll: float = 1.0
    _lifecycle: LifecycleRunner | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "power" and getattr(self, "read_only", False):
            return None  # greyed out in the footer, refused from keys, palette and run_action
        return super().check_action(action, parameters)

    @property
    def lifecycle(self) -> LifecycleRunner:
        if self._lifecycle is None:
            cluster = self.latest.snapshot.cluster_name if self.latest is not None else ""
            self._lifecycle = LifecycleRunner(
                self.source, store=self.store, cluster=cluster, poll=self.lifecycle_poll, on_update=self._power_changed
            )
        return self._lifecycle

    async def on_unmount(self) -> None:
        if self._lifecycle is not None:
            await self._lifecycle.aclose()

    def _power_changed(self, job: LifecycleJob) -> None:
        self.post_message(LifecycleJobUpdated(job))

    def on_lifecycle_job_updated(self, message: LifecycleJobUpdated) -> None:
        job = message.job
        for screen in self.screen_stack:
            follow = getattr(screen, "job_updated", None)
            if follow is not None:
                follow(job)
        if job.state is JobState.SUCCEEDED:
            self.notify(f"{job.label}: {job.status_text}", title="Guest", timeout=4)
            self.action_refresh_now()
        elif job.state is JobState.FAILED:
            self.notify(f"{job.label}: {job.status_text}", title="Guest", severity="error", timeout=10)
            self.action_refresh_now()

    def _power_targets(self) -> list[Guest]:
        snapshot = self.planning_snapshot
        tagged = [snapshot.guest_by_vmid[v] for v in sorted(self.tagged) if v in snapshot.guest_by_vmid]
        if tagged:
            return tagged
        guest = self._guest_under_cursor()
        return [guest] if guest is not None else []

    def action_power(self) -> None:
        if not self._ready_to_migrate():
            return
        guests = [g for g in self._power_targets() if not g.template]
        if not guests:
            self.notify("select a guest (templates cannot run)", severity="warning", timeout=3)
            return
        self.push_screen(PowerScreen(guests), partial(self._power_chosen, guests))

    def _power_chosen(self, guests: list[Guest], choice: tuple[str, int] | None) -> None:
        if choice is None:
            return
        action, timeout = choice
        if action == "stop":
            names = ", ".join(str(g.vmid) for g in guests)
            self.push_screen(
                ConfirmScreen(f"Stop {names} hard? Unsaved data in the guest is lost.", yes="Stop hard"),
                lambda confirmed: self._power_run(guests, action, timeout) if confirmed else None,
            )
            return
        self._power_run(guests, action, timeout)

    def _power_run(self, guests: list[Guest], action: str, timeout: int) -> None:
        for guest in guests:
            try:
                self.lifecycle.submit(guest, action, timeout=timeout if action in ("shutdown", "reboot") else None)
            except UsageError as exc:
                self.notify(exc.message, severity="warning", timeout=5)
        self.notify(f"{action}: {len(guests)} guest(s); t shows the tasks", timeout=3)
