"""`pvetop guest start|shutdown|stop|reboot VMID...`: a guest's lifecycle from the command line.

The same engine as the dashboard (journaled; HA-managed guests through the HA manager, as PVE
does). Without ``--wait`` it returns once PVE has accepted every request; with it, once every
guest is really up or down. A hard ``stop`` asks first (``--yes`` on a script).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from typing import TextIO

from pvetop.cli import common
from pvetop.cli.migrate import REFUSED, _ask, _connect, _emit_json
from pvetop.errors import UsageError

ACTIONS = ("start", "shutdown", "stop", "reboot")


def register(subparsers) -> None:
    guest = subparsers.add_parser(
        "guest",
        help="start, shut down, stop or reboot guests",
        description="Start, shut down (graceful, with a timeout), stop (hard; asks first) or reboot guests "
        "by VMID or by PVE tag. HA-managed guests are started and stopped through the HA manager, as PVE does.",
        epilog="exit codes: 0 accepted/done, 1 cancelled, 2 bad usage, 3 cannot connect, 4 refused or failed",
    )
    guest.add_argument("action", choices=ACTIONS, metavar="ACTION", help="start, shutdown, stop or reboot")
    guest.add_argument("vmids", nargs="*", metavar="VMID", help="the guests' ids")
    guest.add_argument("--tag", metavar="TAG", help="also every guest carrying this PVE tag")
    guest.add_argument("--wait", action="store_true", help="follow each task until the guest is up or down")
    guest.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=int,
        help="shutdown/reboot: seconds the guest gets (PVE's default 60 for HA guests, none otherwise)",
    )
    guest.add_argument(
        "--force-stop", action="store_true", help="shutdown: stop hard when the timeout runs out instead of failing"
    )
    guest.add_argument("--yes", "-y", action="store_true", help="stop without asking")
    guest.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    guest.add_argument(
        "--poll", metavar="SECONDS", type=float, default=1.0, help="how often to read the tasks while waiting"
    )
    common.add_connection_options(guest)
    guest.set_defaults(handler=run_guest)


def run_guest(args: argparse.Namespace) -> int:
    from pvetop.store.validate import check_vmid

    if not args.vmids and not args.tag:
        raise UsageError("name the guests: VMID ... or --tag TAG", hint=f"e.g. pvetop guest {args.action} 100 101")
    if args.force_stop and args.action != "shutdown":
        raise UsageError("--force-stop is for shutdown")
    if args.shutdown_timeout is not None and (args.action not in ("shutdown", "reboot") or args.shutdown_timeout < 0):
        raise UsageError("--shutdown-timeout is for shutdown and reboot, in whole seconds (0 or more)")
    vmids = [check_vmid(value) for value in args.vmids]
    common.refuse_writes(args, f"guest {args.action}")
    out = sys.stderr if args.json else sys.stdout
    with _connect(args) as (client, store):
        snapshot = client.fetch_snapshot()
        missing = [vmid for vmid in vmids if vmid not in snapshot.guest_by_vmid]
        if missing:
            raise UsageError(f"no guest {', '.join(map(str, missing))} in cluster {snapshot.cluster_name!r}")
        chosen = [snapshot.guest_by_vmid[vmid] for vmid in dict.fromkeys(vmids)]
        if args.tag:
            tagged = [g for g in snapshot.guests if args.tag in g.tags and g.vmid not in vmids]
            if not tagged and not vmids:
                raise UsageError(f"no guest carries the tag {args.tag!r}")
            chosen += sorted(tagged, key=lambda g: g.vmid)
        if args.action == "stop" and not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("a hard stop needs a confirmation and stdin is not a terminal", hint="add --yes")
            names = ", ".join(f"{g.vmid} ({g.name})" if g.name else str(g.vmid) for g in chosen)
            if not _ask(f"Stop {names} hard (like pulling the plug)?"):
                print("cancelled; nothing changed", file=out)
                return 1
        jobs = asyncio.run(_run(client, store, snapshot.cluster_name, chosen, args, out))
    if args.json:
        _emit_json({"action": args.action, "jobs": [job.as_dict() for job in jobs]})
    failed = [job for job in jobs if job.state.value == "failed"]
    for job in failed:
        print(f"pvetop: error: {job.label}: {job.error}", file=sys.stderr)
    return REFUSED if failed else 0


async def _run(client, store, cluster: str, guests, args: argparse.Namespace, out: TextIO):
    from pvetop.engine.lifecycle import LifecycleRunner
    from pvetop.engine.migrations import JobState

    said: dict[int, str] = {}
    accepted: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def on_update(job) -> None:
        text = job.status_text
        if said.get(job.id) != text:
            said[job.id] = text
            print(f"{job.label}: {text}", file=out, flush=True)
        if job.state is not JobState.STARTING:
            accepted[job.id].set()

    runner = LifecycleRunner(client, store=store, cluster=cluster, poll=args.poll, on_update=on_update)
    jobs = []
    for guest in guests:
        job = runner.submit(guest, args.action, timeout=args.shutdown_timeout, force_stop=args.force_stop)
        jobs.append(job)
    if args.wait:
        await runner.wait(jobs)
    else:
        await asyncio.gather(*(accepted[job.id].wait() for job in jobs))
        await runner.aclose()
    return jobs
