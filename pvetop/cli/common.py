"""Options shared by every command: how to reach the cluster and where the rules store lives.

Defined once here; sub-commands add them to their own parsers with ``suppress_defaults=True`` so
a value given before the sub-command name is not overwritten by the sub-parser's default.
Read them with ``option(args, "host")``.
"""

from __future__ import annotations

import argparse
from typing import Any

from pvetop.errors import ReadOnlyRefused


def add_connection_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool = True) -> None:
    default = argparse.SUPPRESS if suppress_defaults else None
    group = parser.add_argument_group("connection (also PVETOP_* environment variables)")
    group.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: pvetop/config.toml in the platform config dir)",
    )
    group.add_argument("--profile", metavar="NAME", default=default, help="cluster profile from the config file")
    group.add_argument(
        "--host",
        metavar="HOST[:PORT]",
        default=default,
        help="API host; several as a comma-separated list fail over in order [PVETOP_HOST]",
    )
    group.add_argument("--user", metavar="USER@REALM", default=default, help="user [PVETOP_USER]")
    group.add_argument(
        "--password",
        metavar="PASSWORD",
        default=default,
        help="password (prefer PVETOP_PASSWORD or password_command in the config)",
    )
    group.add_argument(
        "--token-name", metavar="NAME", default=default, help="API token id, e.g. pvetop [PVETOP_TOKEN_NAME]"
    )
    group.add_argument("--token-value", metavar="SECRET", default=default, help="API token secret [PVETOP_TOKEN_VALUE]")
    group.add_argument(
        "--verify-ssl",
        metavar="true|false|CA_FILE",
        default=default,
        help="verify TLS: true (default), false, or a CA file [PVETOP_VERIFY_SSL]",
    )
    group.add_argument(
        "--fingerprint",
        metavar="SHA256",
        default=default,
        help="pin the API certificate by its SHA-256 fingerprint (self-signed clusters)",
    )
    group.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=default, help="API request timeout (default 5)"
    )
    group.add_argument(
        "--db", metavar="PATH|URL", default=default, help="rules store: SQLite path or database URL [PVETOP_DB]"
    )
    group.add_argument(
        "--read-only",
        action="store_true",
        default=default if suppress_defaults else False,
        help="no writes at all, to the cluster or the rules store: look, don't touch "
        "[PVETOP_READ_ONLY, read_only in a profile]",
    )


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


def open_rules_store(args: argparse.Namespace, *, writes: bool):
    """The rules store for one command: read-only when the command only reads (it then never waits
    for another instance's write lock) or read-only mode is on."""
    from pvetop.config import resolve_db
    from pvetop.store import open_store

    why = read_only(args) or (None if writes else "this command only reads")
    return open_store(resolve_db(args), read_only=why)


def option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    value = getattr(args, name.replace("-", "_"), None)
    return default if value is None else value
