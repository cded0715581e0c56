"""Dialogs of the rule panels: the allowed-node multi-select, the node power form, and the
review dialog that lists proposed changes (reconcile, pin suggestions) for the user to confirm.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from pvetop.errors import UsageError
from pvetop.store.validate import normalise_mac
from pvetop.text import visible
from pvetop.ui.dialog import Dialog
from pvetop.ui.guard import ReadOnlyGuard


def _fit(selection: SelectionList) -> SelectionList:
    """Tall enough for every option (up to 15 lines; it scrolls past that), plus its border."""
    selection.styles.height = selection.styles.max_height = min(selection.option_count, 15) + 2
    return selection


class NodeSetDialog(Dialog[frozenset[str] | None]):
    """Choose the nodes a guest may run on; nothing chosen means unpin. Escape cancels."""

    BINDINGS = [Binding("enter", "save", "Save", priority=True, id="dialog.confirm")]

    def __init__(self, title: str, nodes: list[tuple[str, str]], selected: frozenset[str]):
        """``nodes``: (name, label) pairs, e.g. ("pve2", "pve2  online, 41% load")."""
        super().__init__()
        self.title_text = title
        self.nodes = nodes
        self.selected = selected

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(visible(self.title_text)), classes="dialog-title")
            yield SelectionList[str](
                *(Selection(Text(visible(label)), name, name in self.selected) for name, label in self.nodes),
                id="nodes",
            )
            yield self.hint("enter: save", "space: toggle a node", "none selected = unpin")

    def on_mount(self) -> None:
        _fit(self.query_one(SelectionList)).focus()

    def action_save(self) -> None:
        self.dismiss(frozenset(self.query_one(SelectionList).selected))


@dataclass(frozen=True, slots=True)
class PowerForm:
    wol_mac: str | None
    allow_power_off: bool
    boot_timeout: int


class PowerSettingsDialog(Dialog[PowerForm | None]):
    """The node's wake-on-LAN MAC, whether the power policy may switch it off, its boot timeout."""

    BINDINGS = [Binding("enter,ctrl+s", "save", "Save", priority=True, id="dialog.confirm")]

    def __init__(self, node: str, form: PowerForm, mac_source: str):
        super().__init__()
        self.node = node
        self.form = form
        self.mac_source = mac_source

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(visible(f"Power settings of {self.node}")), classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("wake-on-LAN MAC")
                yield Input(self.form.wol_mac or "", placeholder="aa:bb:cc:dd:ee:ff", id="mac")
            yield Static(Text(visible(self.mac_source, multiline=True)), classes="dialog-hint")
            yield Checkbox("the power policy may switch this node off", self.form.allow_power_off, id="allow")
            with Horizontal(classes="field"):
                yield Label("boot timeout (s)")
                yield Input(str(self.form.boot_timeout), type="integer", id="timeout")
            yield Static("", id="error", classes="dialog-error")
            with Horizontal():
                yield Button("Save (enter)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#mac", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def action_save(self) -> None:
        try:
            mac = normalise_mac(self.query_one("#mac", Input).value)
            timeout_text = self.query_one("#timeout", Input).value.strip()
            if not timeout_text.isdigit():
                raise UsageError(f"boot timeout {timeout_text!r} is not a whole number of seconds")
        except UsageError as exc:
            self.query_one("#error", Static).update(Text(visible(str(exc), multiline=True)))
            return
        self.dismiss(PowerForm(mac, self.query_one("#allow", Checkbox).value, int(timeout_text)))


class ReviewDialog(ReadOnlyGuard, Dialog[None]):
    """Proposed changes, each with a checkbox; nothing happens until the user applies them.

    Installed once on the app and pushed by name: each time it is shown it asks ``load`` for
    fresh proposals, so it always reviews the cluster as it is now.
    """

    BINDINGS = [Binding("enter,a", "apply", "Apply selected", priority=True, id="dialog.confirm")]
    WRITE_ACTIONS = frozenset({"apply"})
    HEADING = ""
    EXPLAIN = ""
    PRESELECT = False

    def __init__(self, name: str | None = None):
        super().__init__(name=name)
        self.items: list[tuple[str, object]] = []
        self.message = "loading…"

    def load(self) -> tuple[list[tuple[str, object]], str]:
        """(label, proposal) pairs, and the text shown when there are none."""
        raise NotImplementedError

    def apply(self, chosen: list) -> None:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.HEADING, classes="dialog-title")
            if self.items:
                yield Static(self.EXPLAIN)
                yield SelectionList(
                    *(
                        Selection(Text(visible(label)), index, self.PRESELECT)
                        for index, (label, _) in enumerate(self.items)
                    ),
                    id="items",
                )
                yield self.hint("enter: apply the selected", "space: toggle")
            else:
                yield Static(Text(visible(self.message, multiline=True)), id="empty")
                yield self.hint()

    async def on_screen_resume(self) -> None:
        self.items, self.message = self.load()
        await self.recompose()
        if self.items:
            _fit(self.query_one(SelectionList)).focus()

    def action_apply(self) -> None:
        if self.items:
            chosen = sorted(self.query_one(SelectionList).selected)
            self.apply([self.items[index][1] for index in chosen])
        self.dismiss()
