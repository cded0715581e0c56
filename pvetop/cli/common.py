"""Options shared by every command: how to reach the cluster and where the rules store lives.

Defined once here; sub-commands add them to their own parsers with ``suppress_defaults=True`` so
a value given before the sub-command name is not overwritten by the sub-parser's default.
Read them with ``option(args, "host")``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pvetop.config import FIELDS, option
from pvetop.errors import ReadOnlyRefused

__all__ = ["add_connection_options", "open_rules_store", "option", "read_only", "refuse_writes"]


def add_connection_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool = True) -> None:
    """``--config``, ``--profile`` and one option per connection field (``pvetop.config.FIELDS``)."""
    default = argparse.SUPPRESS if suppress_defaults else None
    group = parser.add_argument_group("connection (also PVETOP_* environment variables and config profiles)")
    group.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: pvetop/config.toml in the platform config dir)",
    )
    group.add_argument("--profile", metavar="NAME", default=default, help="cluster profile from the config file")
    for spec in FIELDS:
        if spec.flag is None:
            continue
        where = f"{spec.env}, {spec.key} in a profile" if spec.in_profile else f"{spec.env}, {spec.key} in the file"
        if spec.switch:
            switch_default = default if suppress_defaults else False
            group.add_argument(spec.flag, action="store_true", default=switch_default, help=f"{spec.help} [{where}]")
        else:
            group.add_argument(spec.flag, metavar=spec.metavar, default=default, help=f"{spec.help} [{where}]")


def read_only(args: argparse.Namespace) -> str | None:
    """What put pvetop in read-only mode (the flag before or after the command, the variable, the
    profile), or None; worked out once per run."""
    if not hasattr(args, "_read_only_source"):
        from pvetop.config import read_only_source

        args._read_only_source = read_only_source(args)
    return args._read_only_source


def refuse_writes(args: argparse.Namespace, what: str) -> None:
    """Stops a command that would change something, before it connects or plans, in read-only mode."""
    source = read_only(args)
    if source is not None:
        raise ReadOnlyRefused(f"read-only mode ({source}): {what} refused; nothing was changed")


def open_rules_store(args: argparse.Namespace, *, writes: bool, clock: Callable[[], float] = time.time):
    """The rules store for one command: read-only when the command only reads (it then never waits
    for another instance's write lock) or read-only mode is on; ``clock`` stamps what it writes."""
    from pvetop.config import resolve_db
    from pvetop.store import open_store

    why = read_only(args) or (None if writes else "this command only reads")
    return open_store(resolve_db(args), read_only=why, clock=clock)
