"""The key footer every screen shows."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Footer

Keys = list[tuple[Binding, bool, str, str]]  # each shown binding, enabled, its tooltip and key display


class KeyFooter(Footer):
    """Textual's ``Footer`` without the keys it leaves behind, composed again only when the keys
    it shows changed.

    The footer recomposes whenever the screen's bindings change (a focus move, a cursor move over
    a row with other actions, a screen shown again) and binds each new key's ``compact`` to its
    own with ``data_bind``. Textual forgets a removed key's binding only when the footer's
    ``compact`` changes, which in pvetop it never does, so every recompose kept a row of dead keys
    (and what they point to) alive: a dashboard left open for a day grew by hundreds of megabytes.
    Re-announcing ``compact`` after each recompose lets Textual drop the bindings of the removed
    keys. A recompose styles each of its ~20 new keys twice (mounted compact, then bound to the
    footer's ``compact``): ~50 ms of the event loop on a busy machine, so it is skipped when the
    keys would be the same, and while its screen is hidden (the dashboard's footer recomposed
    twice for each screen opened over it, and an installed screen's once more as it closed)."""

    _shown: Keys | None = None  # what the last recompose showed

    def _keys(self) -> Keys:
        """What ``compose`` shows: the enabled state, tooltip and key display of each shown binding."""
        app = self.app
        return [
            (binding, enabled, tooltip, app.get_key_display(binding))
            for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items()
            if binding.show or key == app.COMMAND_PALETTE_BINDING
        ]

    @property
    def _hidden(self) -> bool:
        """Its screen is closed, or under an opaque one (Textual's ``is_current`` says True for
        the screen just under the top one, opaque or not)."""
        stack = self.app.screen_stack
        screen = self.screen
        if screen not in stack:
            return True
        return any(other.styles.background.a == 1 for other in stack[stack.index(screen) + 1 :])

    async def recompose(self) -> None:
        if self.is_attached and self._hidden:
            return  # its keys are read again when its screen is shown
        keys = self._keys() if self._bindings_ready and self.is_attached else None
        if keys is not None and keys == self._shown:
            return
        await super().recompose()
        self._shown = keys
        self.mutate_reactive(Footer.compact)
