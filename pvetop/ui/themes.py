"""Theme names, checked before anything starts so a typo fails fast with the valid choices."""

from __future__ import annotations

from textual.theme import BUILTIN_THEMES

from pvetop.errors import UsageError


def check_theme(name: str) -> None:
    if name not in BUILTIN_THEMES:
        raise UsageError(f"--theme {name}: unknown theme", hint=f"one of {', '.join(sorted(BUILTIN_THEMES))}")
