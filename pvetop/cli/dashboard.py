"""The default command: the live dashboard (placeholder until the dashboard lands)."""

from __future__ import annotations

import argparse

from pvetop.errors import PvetopError


def add_dashboard_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", nargs="?", const="homelab", metavar="SCENARIO",
                        help="run against a built-in simulated cluster (homelab, smb, large, quorum3)")


def run(args: argparse.Namespace) -> int:
    raise PvetopError("the dashboard is not built yet")
