"""`pvetop rules` sub-commands (placeholder until its issue lands)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Adds this module's sub-commands to the top-level parser."""
