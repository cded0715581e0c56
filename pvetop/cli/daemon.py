"""``pvetop daemon``: the balancer and the power policy with no screen, for systemd.

It logs one line per decision to stdout (journald keeps them; no secrets, no colours), acts only
while it holds the cluster's lease (several daemons and dashboards may share one rules store:
exactly one acts, the others advise), and stops cleanly on SIGTERM or Ctrl-C: it follows running
moves for a while, hands back the rest (the next acting instance follows them), releases the lease.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from datetime import datetime

from pvetop.cli import common
from pvetop.errors import UsageError
from pvetop.text import visible

DESCRIPTION = """\
Run the balancer and the power policy headless, in the modes the settings give
(balancer.mode, power.mode: see `pvetop settings list`). With a rules store shared by
several pvetop instances (--db postgresql://... or one SQLite file on one host), exactly one
instance acts on a cluster at a time; the others advise and take over within about 25 s when
the acting one dies. Every decision is one line on stdout and an entry in the journal."""

EPILOG = """\
exit codes: 0 stopped cleanly (SIGTERM, Ctrl-C), 2 bad usage or config, 3 cannot connect at start.

systemd: see the README's "Running the daemon" section for a unit file."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "daemon",
        help="run the balancer and power policy with no UI (for systemd)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--interval", metavar="SECONDS", type=_seconds, default=10.0, help="seconds between two rounds (10)"
    )
    parser.add_argument(
        "--lease",
        metavar="SECONDS",
        type=_seconds,
        default=20.0,
        help="how long the acting instance's lease lasts without renewal: another instance takes over "
        "that long after it dies (20)",
    )
    parser.add_argument(
        "--rounds", metavar="N", type=int, default=None, help="stop after N rounds (for tests and cron)"
    )
    common.add_connection_options(parser)
    parser.set_defaults(handler=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be between 1 and 3600 seconds")
    return value


def _printer():
    """One line per call, flushed; a timestamp unless journald (which stamps lines itself) reads us."""
    stamped = "JOURNAL_STREAM" not in os.environ

    def say(line: str) -> None:
        text = visible(line)
        if stamped:
            text = f"{datetime.now().astimezone().isoformat(timespec='seconds')} {text}"
        print(text, flush=True)

    return say


def run(args: argparse.Namespace) -> int:
    from pvetop.config import resolve_connection
    from pvetop.pve import PveClient

    read_only = common.read_only(args)
    with common.open_rules_store(args, writes=read_only is None) as store:
        with PveClient.connect(resolve_connection(args)) as client:
            if client.insecure_warning:
                print(f"pvetop: warning: {client.insecure_warning}", file=sys.stderr)
            cluster = client.fetch_snapshot().cluster_name
            if not cluster:
                raise UsageError("the cluster did not tell its name; pvetop keeps rules per cluster name")
            return asyncio.run(_serve(client, store, cluster, args, read_only is not None))


async def _serve(client, store, cluster: str, args: argparse.Namespace, read_only: bool) -> int:
    from pvetop.engine.daemon import Daemon

    say = _printer()
    daemon = Daemon(client, store, cluster, say, interval=args.interval, read_only=read_only, lease_ttl=args.lease)
    if read_only:
        say("daemon: read-only mode: nothing is changed, the plans are only logged")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.rounds is not None:

        async def count_rounds() -> None:
            while daemon.rounds < args.rounds:
                await asyncio.sleep(0.05)
            stop.set()

        counter = asyncio.create_task(count_rounds())
    try:
        return await daemon.run(stop)
    finally:
        if args.rounds is not None:
            counter.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
