"""``--read-only``: write actions are greyed out and refused, wherever they are bound.

A class that binds an action which changes anything (a migration, a pin, a node power state)
lists that action in ``WRITE_ACTIONS`` and mixes in ``ReadOnlyGuard`` (the app and every pvetop
screen already do). ``check_action`` returning None shows the binding disabled in the footer
and stops the key, the command palette and ``run_action`` alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from textual.dom import DOMNode as _GuardedNode  # the app or a screen
else:
    _GuardedNode = object


class ReadOnlyGuard(_GuardedNode):
    WRITE_ACTIONS: ClassVar[frozenset[str]] = frozenset()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.WRITE_ACTIONS and getattr(self.app, "read_only", False):
            return None
        return super().check_action(action, parameters)
