"""Command line: argument parsing, sub-commands and exit codes; no business logic.

Each sub-command lives in its own module under ``pvetop/cli/`` exposing
``register(subparsers, common)``; the parser it adds sets ``handler`` (``args -> exit code``).
Running ``pvetop`` with no sub-command opens the dashboard.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from pvetop import __version__
from pvetop.cli import balance, common, daemon, dashboard, guest, journal, migrate, power, rules, sim, status
from pvetop.errors import PvetopError
from pvetop.text import visible

SUBCOMMAND_MODULES = (sim, status, rules, migrate, guest, power, balance, journal, daemon)

EPILOG = """\
connecting (every command): --host/--user/--password or --token-name/--token-value, the
PVETOP_* variable named beside each option, or a profile in the config file (--config, --profile).
Keep secrets in the environment or the config file: a command line is visible to every local user.
--read-only (or PVETOP_READ_ONLY=1, or read_only in the profile) refuses every write.

examples:
  pvetop --demo                       the dashboard against a built-in simulated cluster
  pvetop --demo smb                   ... an 8-node, 200-guest one
  PVETOP_TOKEN_VALUE=SECRET pvetop --host pve1:8006 --user pvetop@pve --token-name pvetop
  pvetop status --json                print the cluster snapshot and exit
  pvetop guest shutdown 101 --wait    shut a guest down (HA guests through the HA manager)
  pvetop sim --scenario homelab --info-file sim.json   run the simulator standalone
exit codes: 0 ok, 1 error, 2 bad usage or config, 3 cannot connect/authenticate, 4 API refused,
130 interrupted.
"""


class BadUsage(Exception):
    """The command line does not parse; ``parser`` is the (sub)command it was meant for."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse with pvetop's conventions: a mistyped command gets a "did you mean", a bad option
    is reported with the usage of the command it was given to, and ``--json`` gets JSON errors."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        if getattr(parsed, "command_parser", None) is None:  # the innermost command sets it first
            parsed.command_parser = self
        return parsed, extras

    def error(self, message: str):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            choices = re.findall(r"'([^']*)'", choice.group(2)) or choice.group(2).split(", ")
            close = difflib.get_close_matches(choice.group(1), choices, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean {close[0]!r}?"
        raise BadUsage(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pvetop",
        description="htop-style dashboard, migrator and balancer for Proxmox VE clusters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pvetop {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    common.add_connection_options(parser, suppress_defaults=False)
    dashboard.add_dashboard_options(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in SUBCOMMAND_MODULES:
        module.register(subparsers)
    parser.set_defaults(handler=dashboard.run)
    return parser


class VisibleText:
    """A text stream that shows control characters instead of passing them to the terminal.

    Every line a command prints may quote the cluster (guest names, tags, PVE's error texts) or
    the store (names and notes saved earlier); ESC or a C1 control in them would make the
    terminal set its title, write the clipboard or clear the screen. Line breaks and tabs pass.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(visible(text, multiline=True))
        return len(text)

    def __getattr__(self, name: str):  # flush, isatty, fileno, encoding... of the real stream
        return getattr(self._stream, name)


@contextlib.contextmanager
def _visible_output() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleText(sys.stdout), VisibleText(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        with _visible_output():  # Textual draws the dashboard on the real stream (pvetop.ui sanitizes it)
            try:
                args, extras = parser.parse_known_args(argv)
                if extras:
                    args.command_parser.error(f"unrecognized arguments: {' '.join(extras)}")
            except BadUsage as exc:
                exc.parser.print_usage(sys.stderr)
                return _fail(f"{exc.parser.prog}: error: {exc.message}", 2, as_json="--json" in argv)
            code = _run(args)
            sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`pvetop status --json | head -1`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
    return code


def _fail(message: str, code: int, *, as_json: bool, error: str | None = None, hint: str | None = None) -> int:
    """The error on stderr; with ``--json`` also one JSON object on stdout (``error``,
    ``exit_code``, ``hint`` when there is one), so a script reading stdout always gets JSON."""
    print(message, file=sys.stderr)
    if as_json:
        document = {"error": error or message.removeprefix("pvetop: error: "), "exit_code": code}
        if hint:
            document["hint"] = hint
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    return code


def _run(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    try:
        code = args.handler(args)
    except PvetopError as exc:
        return _fail(f"pvetop: error: {exc}", exc.exit_code, as_json=as_json, error=exc.message, hint=exc.hint)
    except KeyboardInterrupt:
        return _fail("pvetop: interrupted", 130, as_json=as_json)
    except BrokenPipeError:
        raise  # not a bug: main() ends quietly
    except Exception as exc:  # a bug, not bad input: say so briefly, full detail with --debug
        if args.debug or os.environ.get("PVETOP_DEBUG"):
            raise
        return _fail(
            f"pvetop: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", 1, as_json=as_json
        )
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
