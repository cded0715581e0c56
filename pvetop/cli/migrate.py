"""`pvetop migrate VMID TARGET` and `pvetop evacuate NODE`: moves from the command line.

Both check first what the dashboard's dialogs show (Proxmox VE's migrate precondition and
pvetop's rules), run through the same engine as the dashboard (journaled, at most
``migrations.max_parallel`` at once), print progress
lines while waiting, and exit 0 when done, 4 when PVE refused or a migration failed (with PVE's
text), 2 for bad usage (including an evacuation nobody confirmed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TextIO

from pvetop.cli import common
from pvetop.errors import PvetopError, UsageError

REFUSED = 4


def register(subparsers) -> None:
    """Adds ``migrate`` and ``evacuate`` to the top-level parser."""
    migrate = subparsers.add_parser(
        "migrate",
        help="migrate one guest to another node",
        description="Check the move (PVE's precondition, pvetop's pins and locks), start it and, with "
        "--wait, follow it to the end. HA-managed guests move through the HA manager.",
        epilog="exit codes: 0 started/done, 2 bad usage, 3 cannot connect, 4 refused or failed (PVE's text)",
    )
    migrate.add_argument("vmid", metavar="VMID", help="the guest's id")
    migrate.add_argument("target", metavar="TARGET", help="the node to move it to")
    migrate.add_argument("--wait", action="store_true", help="follow the task to its end and print progress")
    migrate.add_argument(
        "--with-local-disks",
        action="store_true",
        help="copy local disks along (needed to live-migrate a VM with disks on local storage)",
    )
    kind = migrate.add_mutually_exclusive_group()
    kind.add_argument(
        "--online", dest="online", action="store_const", const=True, help="live migration (default for a running VM)"
    )
    kind.add_argument(
        "--offline",
        dest="online",
        action="store_const",
        const=False,
        help="offline migration (PVE refuses it for a running VM)",
    )
    migrate.add_argument(
        "--restart-timeout",
        metavar="SECONDS",
        type=int,
        help="containers: seconds to wait for the shutdown before the restart migration",
    )
    _add_run_options(migrate)
    migrate.set_defaults(handler=run_migrate)

    evacuate = subparsers.add_parser(
        "evacuate",
        help="move every guest off a node and mark it for maintenance",
        description="Plan where each guest of NODE goes (never to reserved, maintenance or offline nodes; "
        "pins and locks respected unless --move-pinned), show the plan, ask, then run it and mark "
        "NODE maintenance until --clear-maintenance.",
        epilog="exit codes: 0 node emptied, 1 cancelled, 2 bad usage or no confirmation, 3 cannot connect, "
        "4 a move failed or a guest had to stay",
    )
    evacuate.add_argument("node", metavar="NODE")
    evacuate.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    evacuate.add_argument(
        "--move-pinned",
        action="store_true",
        help="also move guests held only by a pin or lock (lifted for this evacuation only)",
    )
    evacuate.add_argument(
        "--parallel",
        metavar="N",
        type=int,
        help="moves at once for this evacuation (default: setting migrations.max_parallel, 2)",
    )
    evacuate.add_argument(
        "--clear-maintenance", action="store_true", help="end the node's maintenance (after the work is done) and exit"
    )
    _add_run_options(evacuate)
    evacuate.set_defaults(handler=run_evacuate)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bwlimit", metavar="MIB/S", type=float, help="cap the migration bandwidth (MiB/s)")
    parser.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    parser.add_argument(
        "--poll",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="how often to read the task status while waiting (default 1)",
    )
    common.add_connection_options(parser)


# ------------------------------------------------------------------------------------- shared


@contextlib.contextmanager
def _connect(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """The PVE client and the rules store (journal, pins, settings) for one command."""
    from pvetop.config import resolve_connection
    from pvetop.pve import PveClient

    if not 0.01 <= args.poll <= 60:
        raise UsageError(f"--poll {args.poll:g}: give between 0.01 and 60 seconds")
    store = common.open_rules_store(args, writes=True)
    try:
        with PveClient.connect(resolve_connection(args)) as client:
            if client.insecure_warning:
                print(f"pvetop: warning: {client.insecure_warning}", file=sys.stderr)
            yield client, store
    finally:
        store.close()


def _options(args: argparse.Namespace):
    from pvetop.engine.migrations import MoveOptions

    bwlimit = None
    if args.bwlimit is not None:
        if not args.bwlimit > 0:
            raise UsageError(f"--bwlimit {args.bwlimit:g}: give a positive number of MiB/s")
        bwlimit = max(1, round(args.bwlimit * 1024))
    return MoveOptions(bwlimit_kib=bwlimit, restart_timeout=getattr(args, "restart_timeout", None))


class _Progress:
    """Prints a job's line whenever what it says changes (to stderr when stdout carries JSON)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last: dict[int, str] = {}

    def __call__(self, job) -> None:
        from pvetop.engine.report import job_line, job_status

        text = job_status(job)
        if self._last.get(job.id) != text:
            self._last[job.id] = text
            print(job_line(job, time.time()), file=self.out, flush=True)


def _emit_json(document: dict) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------------------- migrate


def run_migrate(args: argparse.Namespace) -> int:
    from pvetop.policy.constraints import check_move, ha_local_disks_problem
    from pvetop.policy.placement import planned_move
    from pvetop.pve import actions
    from pvetop.store.validate import check_vmid

    vmid = check_vmid(args.vmid)
    common.refuse_writes(args, f"migrating {vmid} to {args.target}")
    options = _options(args)
    with _connect(args) as (client, store):
        snapshot = client.fetch_snapshot()
        guest = snapshot.guest_by_vmid.get(vmid)
        if guest is None:
            raise UsageError(f"no guest {vmid} in cluster {snapshot.cluster_name!r}")
        if args.target not in snapshot.node_by_name:
            raise UsageError(
                f"no node {args.target!r} in cluster {snapshot.cluster_name!r} "
                f"(nodes: {', '.join(sorted(snapshot.node_by_name))})"
            )
        precondition = actions.migrate_precondition(client, guest, args.target)
        verdict = check_move(
            snapshot, guest, args.target, store.ruleset(snapshot.cluster_name), mode="manual", precondition=precondition
        )
        if not verdict.allowed:
            raise PvetopError(f"cannot migrate {vmid} to {args.target}: {'; '.join(verdict.blocks)}", exit_code=REFUSED)
        problem = ha_local_disks_problem(guest, precondition)
        if problem is not None:
            raise PvetopError(problem, exit_code=REFUSED)
        live_vm = guest.type == "qemu" and (guest.running if args.online is None else args.online)
        if live_vm and precondition.local_disks and not args.with_local_disks:
            raise PvetopError(
                f"VM {vmid} has local disks ({', '.join(precondition.local_disks)}): a live migration must copy them",
                hint="add --with-local-disks (the copy takes longer), or move the disks to shared storage",
                exit_code=REFUSED,
            )
        out = sys.stderr if args.json else sys.stdout
        for warning in verdict.warnings:
            print(f"pvetop: warning: {warning}", file=sys.stderr)
        move = planned_move(guest, guest.node, args.target, "pvetop migrate", precondition, verdict.warnings)
        move = replace(move, online=live_vm, with_local_disks=args.with_local_disks)
        if guest.ha_managed:
            print(f"{vmid} is HA-managed: it moves through the HA manager", file=out)
        job = asyncio.run(_migrate(client, store, snapshot.cluster_name, move, options, args, out))
    if args.json:
        _emit_json(job.as_dict())
    elif job.upid or job.ha_upid:
        print(f"task: {job.upid or job.ha_upid}")
    if job.state.value == "failed":
        print(f"pvetop: error: migration of {vmid} to {args.target} failed: {job.error}", file=sys.stderr)
        return REFUSED
    return 0


async def _migrate(client, store, cluster: str, move, options, args: argparse.Namespace, out: TextIO):
    """Runs the move; without --wait, returns once PVE has accepted it (the task runs on)."""
    from pvetop.engine.migrations import JobState, MigrationExecutor

    progress = _Progress(out)
    accepted = asyncio.Event()

    def on_update(job) -> None:
        progress(job)
        if job.state is JobState.RUNNING or job.state.finished:
            accepted.set()

    executor = MigrationExecutor(client, store=store, cluster=cluster, poll=args.poll, on_update=on_update)
    job = executor.submit(move, options)
    if args.wait:
        await executor.wait([job])
    else:
        await accepted.wait()
        await executor.aclose()
    return job


# ------------------------------------------------------------------------------------- evacuate


def run_evacuate(args: argparse.Namespace) -> int:
    from pvetop.engine.evacuation import HA_MAINTENANCE_NOTE, prepare_evacuation
    from pvetop.engine.migrations import Limits
    from pvetop.engine.report import limits_text, plan_lines

    what = f"clearing the maintenance of {args.node}" if args.clear_maintenance else f"evacuating {args.node}"
    common.refuse_writes(args, what)
    options = _options(args)
    with _connect(args) as (client, store):
        snapshot = client.fetch_snapshot()
        cluster = snapshot.cluster_name
        if args.node not in snapshot.node_by_name:
            raise UsageError(
                f"no node {args.node!r} in cluster {cluster!r} (nodes: {', '.join(sorted(snapshot.node_by_name))})"
            )
        if args.clear_maintenance:
            cleared = store.clear_maintenance(cluster, args.node)
            print(f"{args.node}: maintenance cleared" if cleared else f"{args.node} was not in maintenance")
            return 0
        limits = (
            Limits.from_store(store, cluster)
            if args.parallel is None
            else replace(Limits.from_store(store, cluster), max_parallel=args.parallel)
        )
        out = sys.stderr if args.json else sys.stdout
        proposal = asyncio.run(prepare_evacuation(client, snapshot, args.node, store.ruleset(cluster), now=time.time()))
        held = [item.vmid for item in proposal.plan.needs_decision]
        if held and args.move_pinned:
            proposal = proposal.decide(held)
        elif held and not args.yes and sys.stdin.isatty():
            chosen = [
                item.vmid
                for item in proposal.plan.needs_decision
                if _ask(f"{item.vmid} {item.name}: {item.reason}. Move it anyway?")
            ]
            proposal = proposal.decide(chosen)
        print("\n".join([*plan_lines(proposal.plan), f"runs {limits_text(limits)}"]), file=out)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"evacuating {args.node} needs a confirmation and stdin is not a terminal",
                    hint="review the plan above and add --yes",
                )
            if not _ask(f"Evacuate {args.node} ({len(proposal.plan.moves)} moves) and mark it maintenance?"):
                print("cancelled; nothing changed", file=out)
                return 1
        print(f"note: {HA_MAINTENANCE_NOTE}", file=out)
        result = asyncio.run(_evacuate(client, store, cluster, proposal, options, limits, args, out))
    if args.json:
        _emit_json(
            {
                "node": result.node,
                "complete": result.complete,
                "maintenance": True,
                "moves": [job.as_dict() for job in result.jobs],
                "left_behind": [{"vmid": u.vmid, "name": u.name, "reason": u.reason} for u in result.left_behind],
                "locations": {str(vmid): node for vmid, node in result.locations.items()},
                "returned": list(result.returned),
                "replanned": list(result.replanned),
                "source_lost": result.source_lost,
            }
        )
    print(
        f"{result.node}: {result.summary()}; marked maintenance (clear with "
        f"`pvetop evacuate {result.node} --clear-maintenance`)",
        file=out,
    )
    if not result.complete:
        for job in result.failed:
            print(f"pvetop: error: {job.label}: {job.error}", file=sys.stderr)
        return REFUSED
    return 0


async def _evacuate(client, store, cluster: str, proposal, options, limits, args: argparse.Namespace, out: TextIO):
    from pvetop.engine.evacuation import run_evacuation
    from pvetop.engine.migrations import MigrationExecutor

    executor = MigrationExecutor(
        client, store=store, cluster=cluster, poll=args.poll, limits=limits, on_update=_Progress(out)
    )
    return await run_evacuation(executor, proposal, options=options)


def _ask(question: str) -> bool:
    """A yes/no question on the terminal (prompt on stderr, so stdout stays clean for --json)."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
