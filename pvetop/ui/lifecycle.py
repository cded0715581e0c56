"""``x``: start, shut down, reboot or stop the selected guest, or every guest tagged with ``space``.

The app's ``MigrationsController`` runs the key and owns the ``LifecycleRunner`` (``app.lifecycle``);
PVE's tasks show in the tasks pane (``t``) as they run, a finished job is announced and pulls in
the next refresh. HA-managed guests go through the HA manager, as PVE does. A hard stop asks
first; the power dialog confirms with enter and cancels with escape.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from pvetop.engine.lifecycle import DEFAULT_SHUTDOWN_TIMEOUT
from pvetop.model import Guest
from pvetop.ui.dialog import Dialog

LIFECYCLE_BINDINGS = [
    Binding("x", "power", "Start/stop", id="guest.power", tooltip="Start / shut down / reboot / stop guests")
]
CHOICES = (
    ("start", "Start"),
    ("shutdown", "Shut down (graceful, within the timeout)"),
    ("reboot", "Reboot"),
    ("stop", "Stop hard (like pulling the plug; asks first)"),
)


class PowerScreen(Dialog[tuple[str, int] | None]):
    """Pick an action for the guests; returns (action, shutdown timeout) or None."""

    BINDINGS = [Binding("enter", "confirm", "Confirm", id="dialog.confirm", priority=True)]

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
            yield self.hint("enter: do it", "shutdown/reboot timeout in seconds above")

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
