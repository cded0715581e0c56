"""A yes/no question on top of everything: enter (or ``y``) confirms, escape (or ``n``) declines.

The confirming button has the focus, so enter answers what the highlighted button says; tab
moves to the other one, and enter there declines.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from pvetop.text import visible
from pvetop.ui.dialog import Dialog


class ConfirmScreen(Dialog[bool]):
    BINDINGS = [
        Binding("enter,y", "answer(True)", "Confirm, apply, save (y: yes)", id="dialog.confirm"),
        Binding("escape,n", "answer(False)", "Cancel, close (n: no)", id="dialog.cancel"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(visible(self.question, multiline=True), id="confirm-text", markup=False)
            with Horizontal():
                yield Button(f"{self.yes_label} (enter)", variant="warning", id="yes")
                yield Button(f"{self.no_label} (esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_cancel(self) -> None:
        self.dismiss(False)
