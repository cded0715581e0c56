"""The key footer every screen shows."""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """Textual's ``Footer`` without the keys it leaves behind.

    The footer recomposes whenever the screen's bindings change (a focus move, a cursor move over
    a row with other actions) and binds each new key's ``compact`` to its own with ``data_bind``.
    Textual forgets a removed key's binding only when the footer's ``compact`` changes, which in
    pvetop it never does, so every recompose kept a row of dead keys (and what they point to)
    alive: a dashboard left open for a day grew by hundreds of megabytes. Re-announcing
    ``compact`` after each recompose lets Textual drop the bindings of the removed keys."""

    async def recompose(self) -> None:
        await super().recompose()
        self.mutate_reactive(Footer.compact)
