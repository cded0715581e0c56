"""`pvetop power plan|off|wake|report|sleep-with-node`: the power policy from the command line.

``plan`` is a dry run of what the policy would do now, with every node's reasons. ``off`` and
``wake`` act on one node by hand through the same worker the dashboard runs (drain, shut down,
watch; magic packet or PVE's wakeonlan, watch the rejoin) and journal it; ``off`` refuses with
the policy's safety reasons unless ``--force`` is confirmed on a terminal. ``report`` sums
node-hours off and the energy saved; ``sleep-with-node`` marks a guest to be shut down with its
node and started again after the wake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from pvetop.cli import common
from pvetop.cli.migrate import REFUSED, _ask, _connect, _emit_json, _Progress
from pvetop.errors import PvetopError, UsageError


def register(subparsers) -> None:
    power = subparsers.add_parser(
        "power",
        help="the power policy: plan, switch a node off, wake it, energy report",
        description="Sleep idle nodes and wake them on demand without ever breaking quorum.",
        epilog="exit codes: 0 ok, 1 cancelled, 2 bad usage, 3 cannot connect, 4 refused or failed",
    )
    commands = power.add_subparsers(title="power commands", metavar="COMMAND", required=True)

    plan = commands.add_parser("plan", help="what the policy would do now, and why (dry run)")
    plan.add_argument(
        "--json",
        action="store_true",
        help='{"quorum": {"votes_total", "votes_needed", "failure_margin"}, "nodes": [{"node", "state", "action", '
        '"reasons"}]}',
    )
    _common(plan)
    plan.set_defaults(handler=run_plan)

    off = commands.add_parser("off", help="drain a node, shut it down and wait until it is offline")
    off.add_argument("node", metavar="NODE")
    off.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    off.add_argument(
        "--force", action="store_true", help="override the policy's refusals (asks on the terminal, twice)"
    )
    off.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    _common(off)
    off.set_defaults(handler=run_off)

    wake = commands.add_parser("wake", help="wake a node (magic packet or PVE's wakeonlan)")
    wake.add_argument("node", metavar="NODE")
    wake.add_argument("--wait", action="store_true", help="wait until it rejoins (its boot timeout)")
    wake.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    _common(wake)
    wake.set_defaults(handler=run_wake)

    report = commands.add_parser("report", help="node-hours off and estimated kWh saved")
    report.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    report.add_argument("--days", type=float, default=None, help="only the last N days (default: everything)")
    _common(report)
    report.set_defaults(handler=run_report)

    sleep = commands.add_parser(
        "sleep-with-node",
        help="mark a guest to shut down with its node and start again after the wake",
        description="A guest that cannot migrate (local disks, passthrough) keeps its node on, unless it is "
        "marked to sleep with it.",
    )
    sleep.add_argument("vmid", metavar="VMID")
    sleep.add_argument("--off", action="store_true", help="remove the mark")
    _common(sleep)
    sleep.set_defaults(handler=run_sleep_with_node)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--poll", metavar="SECONDS", type=float, default=2.0, help="seconds between two reads")
    common.add_connection_options(parser)


def _worker(client, store, cluster: str, args: argparse.Namespace, out: TextIO):
    from pvetop.engine.migrations import Limits, MigrationExecutor
    from pvetop.engine.power import PowerWorker

    executor = MigrationExecutor(
        client,
        store=store,
        cluster=cluster,
        limits=Limits.from_store(store, cluster),
        poll=args.poll,
        on_update=_Progress(out),
    )
    worker = PowerWorker(client, store, cluster, executor=executor, poll=args.poll)

    def on_update(what: str) -> None:
        track = worker.tracks.get(what)
        if track is not None:
            print(f"{what}: {track.state}{f' ({track.detail})' if track.detail else ''}", file=out, flush=True)
        elif what == "alert":
            print(f"pvetop: alert: {worker.alerts[-1]}", file=sys.stderr, flush=True)

    worker.on_update = on_update
    return worker


@contextlib.contextmanager
def _acting_on_node(args: argparse.Namespace, doing: str) -> Iterator[tuple[Any, TextIO]]:
    """The power worker and where its progress goes (stderr under ``--json``), for a write on
    ``args.node``: refused in read-only mode, and the node must be one of the cluster's."""
    out = sys.stderr if args.json else sys.stdout
    common.refuse_writes(args, doing)
    with _connect(args) as (client, store):
        snapshot = client.fetch_snapshot()
        if args.node not in snapshot.node_by_name:
            nodes = ", ".join(sorted(snapshot.node_by_name))
            raise UsageError(f"no node {args.node!r} in cluster {snapshot.cluster_name!r} (nodes: {nodes})")
        yield _worker(client, store, snapshot.cluster_name, args, out), out


def plan_lines(plan) -> list[str]:
    quorum = plan.quorum
    lines = [
        f"quorum: {quorum.votes_online} of {quorum.votes_total} votes online, {quorum.votes_needed} needed; "
        f"failure margin {plan.failure_margin} (required {plan.required_margin}); "
        f"max share {plan.share * 100:.0f} %"
    ]
    if plan.paused:
        lines.append(f"paused: {plan.paused}")
    for decision in plan.decisions:
        lines.append(f"{decision.node:<16} {decision.state:<14} {decision.action}")
        lines += [f"    {reason}" for reason in decision.reasons]
    return lines


def run_plan(args: argparse.Namespace) -> int:
    with _connect(args) as (client, store):
        snapshot = client.fetch_snapshot()
        worker = _worker(client, store, snapshot.cluster_name, args, sys.stderr)
        plan = asyncio.run(worker.evaluate(snapshot))
        mode = worker.settings().mode
    if args.json:
        _emit_json(plan.as_dict())
    else:
        print(f"mode: {mode} (setting power.mode)")
        print("\n".join(plan_lines(plan)))
    return 0


def run_off(args: argparse.Namespace) -> int:
    with _acting_on_node(args, f"powering off {args.node}") as (worker, out):
        check = asyncio.run(worker.check_power_off(args.node))
        if check.refusals:
            print(f"{args.node} should stay on:", file=out)
            print("\n".join(f"  - {reason}" for reason in check.refusals), file=out)
            if not args.force:
                raise PvetopError(
                    f"power-off of {args.node} refused",
                    hint="fix what is listed, or override with --force (asks twice on the terminal)",
                    exit_code=REFUSED,
                )
            if not sys.stdin.isatty():
                raise UsageError("--force needs a confirmation on a terminal, and stdin is not one")
            if not _ask(f"Override {len(check.refusals)} refusal(s) and power {args.node} off anyway?"):
                print("cancelled; nothing changed", file=out)
                return 1
        else:
            print(f"{args.node} may power off:", file=out)
            print("\n".join(f"  - {reason}" for reason in check.reasons), file=out)
        if not args.yes or args.force:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"powering {args.node} off needs a confirmation and stdin is not a terminal",
                    hint="review the checks above and add --yes",
                )
            moves = len(check.drain.moves) if check.drain else 0
            if not _ask(f"Drain {args.node} ({moves} moves), shut it down and wait until it is offline?"):
                print("cancelled; nothing changed", file=out)
                return 1
        outcome = asyncio.run(worker.power_off(args.node, actor="user", force=args.force))
    return _finish(outcome, args)


def _finish(outcome, args: argparse.Namespace) -> int:
    if args.json:
        _emit_json(
            {
                "node": outcome.node,
                "action": outcome.action,
                "ok": outcome.ok,
                "refused": outcome.refused,
                "detail": outcome.detail,
                "reasons": list(outcome.decision.reasons) if outcome.decision else [],
            }
        )
    if not outcome.ok:
        print(f"pvetop: error: {outcome.node}: {outcome.detail}", file=sys.stderr)
        return REFUSED
    if not args.json:
        print(f"{outcome.node}: {outcome.detail}")
    return 0


def run_wake(args: argparse.Namespace) -> int:
    with _acting_on_node(args, f"waking {args.node}") as (worker, _):
        outcome = asyncio.run(worker.wake(args.node, actor="user", wait=args.wait))
    return _finish(outcome, args)


def run_report(args: argparse.Namespace) -> int:
    from pvetop.engine.power import energy, load_settings

    with _connect(args) as (client, store):
        cluster = client.fetch_snapshot().cluster_name
        now = time.time()
        since = now - args.days * 86400 if args.days else 0.0
        report = energy(store, cluster, load_settings(store, cluster), now=now, since=since)
    document: dict[str, Any] = {"cluster": cluster, **report.as_dict()}
    if args.json:
        _emit_json(document)
        return 0
    print(
        f"{cluster}: {report.total_hours:.1f} node-hours off, "
        f"{report.total_kwh:.2f} kWh saved (idle watts: setting power.idle_watts)"
    )
    for row in document["nodes"]:
        print(f"  {row['node']:<16} {row['hours_off']:>8.1f} h  {row['kwh_saved']:>8.2f} kWh")
    return 0


def run_sleep_with_node(args: argparse.Namespace) -> int:
    from pvetop.engine.power import mark_sleep_with_node
    from pvetop.store.validate import check_vmid

    vmid = check_vmid(args.vmid)
    common.refuse_writes(args, f"marking {vmid} to sleep with its node")
    with _connect(args) as (client, store):
        snapshot = client.fetch_snapshot()
        guest = snapshot.guest_by_vmid.get(vmid)
        if guest is None:
            raise UsageError(f"no guest {vmid} in cluster {snapshot.cluster_name!r}")
        mark_sleep_with_node(store, snapshot.cluster_name, guest, not args.off)
    if args.off:
        print(f"{vmid} ({guest.name}) no longer sleeps with its node: it keeps {guest.node} on if it cannot move")
    else:
        print(f"{vmid} ({guest.name}) sleeps with its node: shut down before {guest.node} powers off, started after")
    return 0
