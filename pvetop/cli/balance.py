"""`pvetop plan`, `pvetop balance` and `pvetop settings`: the balancer from the command line.

``plan`` is a dry run: it reads the cluster, the rules and PVE's migrate preconditions and prints
what the balancer would do, and writes nothing (the store is opened read-only). ``balance`` runs
the plan through the same worker and migration engine as the dashboard (limits, HA manager,
progress, journal), re-planning after each batch, for cron or systemd. ``settings`` lists, reads
and changes every setting, validated by the registry and journaled by the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from pvetop.cli import common
from pvetop.cli.migrate import REFUSED, _ask, _emit_json, _Progress
from pvetop.errors import UsageError
from pvetop.policy.metrics import imbalance_change, imbalance_text


def register(subparsers) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="what the balancer would move now, and why (dry run, writes nothing)",
        description="Plan balancing moves on the cluster as it is now: each move with its reason and the "
        "imbalance after it, and the guests that would have helped but are held by a rule.",
    )
    plan.add_argument(
        "--json",
        action="store_true",
        help='{"imbalance_before", "imbalance_after", "moves": [{"vmid", "name", "from", "to", "gib", "reason", '
        '"imbalance_after"}], "held": [{"vmid", "name", "reason"}]}',
    )
    common.add_connection_options(plan)
    plan.set_defaults(handler=run_plan)

    balance = subparsers.add_parser(
        "balance",
        help="run the balancer's plan now (for cron or systemd)",
        description="Plan, migrate through the migration engine (its limits, the HA manager, progress), "
        "re-plan after each batch, until nothing is left to gain or --max-moves is reached.",
        epilog="exit codes: 0 balanced (or nothing to do), 1 cancelled, 2 bad usage or no confirmation, "
        "3 cannot connect, 4 a move failed",
    )
    balance.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    balance.add_argument("--max-moves", metavar="N", type=int, help="stop after N moves")
    balance.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    balance.add_argument("--poll", metavar="SECONDS", type=float, default=1.0, help="seconds between task reads")
    common.add_connection_options(balance)
    balance.set_defaults(handler=run_balance)

    settings = subparsers.add_parser(
        "settings",
        help="list, read or change settings (balancer.*, power.*, migrations.*)",
        description="Settings are kept per cluster in the rules store; every change is validated and journaled.",
    )
    actions = settings.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = _settings_leaf(actions, "list", run_settings_list, "every setting, its value and what it means")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    get = _settings_leaf(actions, "get", run_settings_get, "one setting's value")
    get.add_argument("key", metavar="KEY")
    set_ = _settings_leaf(actions, "set", run_settings_set, "change a setting (validated, journaled)")
    set_.add_argument("key", metavar="KEY")
    set_.add_argument("value", metavar="VALUE")
    set_.add_argument("--yes", "-y", action="store_true", help="accept the risk a value carries without asking")


def _settings_leaf(actions, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    parser.add_argument(
        "--cluster", metavar="NAME", help="the cluster's name in the store; with it, no connection is made"
    )
    common.add_connection_options(parser)
    parser.set_defaults(handler=handler)
    return parser


# ------------------------------------------------------------------------------------- shared


def _client(args: argparse.Namespace):
    from pvetop.config import resolve_connection
    from pvetop.pve import PveClient

    client = PveClient.connect(resolve_connection(args))
    if client.insecure_warning:
        print(f"pvetop: warning: {client.insecure_warning}", file=sys.stderr)
    return client


def _worker(client, store, cluster: str, *, poll: float, out: TextIO | None, read_only: bool):
    from pvetop.engine.balancer import BalancerWorker
    from pvetop.engine.migrations import Limits, MigrationExecutor

    executor = MigrationExecutor(
        client,
        store=None if read_only else store,
        cluster=cluster,
        limits=Limits.from_store(store, cluster),
        poll=poll,
        on_update=_Progress(out) if out is not None else None,
    )
    worker = BalancerWorker(client, store, cluster, executor, read_only=read_only)
    worker.on_update = lambda what: (
        print(f"pvetop: alert: {worker.alerts[-1]}", file=sys.stderr, flush=True) if what == "alert" else None
    )
    return worker


def plan_table(plan, *, mode: str | None = None) -> str:
    """The plan as text: the figures, the moves with reasons, the guests held and why."""
    lines = []
    if mode is not None:
        lines.append(f"mode: {mode} (setting balancer.mode)")
    lines.append(plan.summary)
    if plan.moves:
        lines.append(f"{'#':>3}  {'VMID':>6}  {'NAME':<18} {'FROM':<10} {'TO':<10} {'GIB':>6}  {'AFTER':>6}  REASON")
        for number, step in enumerate(plan.moves, 1):
            move = step.move
            lines.append(
                f"{number:>3}  {move.vmid:>6}  {move.name[:18]:<18} {move.source:<10} {move.target:<10} "
                f"{step.gib:>6.1f}  {imbalance_text(step.imbalance_after):>6}  {move.reason}"
            )
    if plan.held:
        lines.append("left alone although moving them would help:")
        lines += [f"  {item.vmid:>6}  {item.name[:18]:<18} {item.node:<10} {item.reason}" for item in plan.held]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- plan


def run_plan(args: argparse.Namespace) -> int:
    from pvetop.engine.balancer import load_config

    with common.open_rules_store(args, writes=False) as store, _client(args) as client:
        snapshot = client.fetch_snapshot()
        cluster = snapshot.cluster_name
        config = load_config(store, cluster)
        worker = _worker(client, store, cluster, poll=1.0, out=None, read_only=True)
        plan = asyncio.run(worker.plan_now(snapshot, config))
    if args.json:
        _emit_json(plan.as_json())
    else:
        print(plan_table(plan, mode=config.mode))
    return 0


# ------------------------------------------------------------------------------------- balance


def run_balance(args: argparse.Namespace) -> int:
    from pvetop.engine.balancer import load_config

    common.refuse_writes(args, "balancing the cluster")
    if args.max_moves is not None and args.max_moves < 1:
        raise UsageError(f"--max-moves {args.max_moves}: give at least 1")
    if not 0.01 <= args.poll <= 60:
        raise UsageError(f"--poll {args.poll:g}: give between 0.01 and 60 seconds")
    out = sys.stderr if args.json else sys.stdout
    with common.open_rules_store(args, writes=True) as store, _client(args) as client:
        snapshot = client.fetch_snapshot()
        cluster = snapshot.cluster_name
        worker = _worker(client, store, cluster, poll=args.poll, out=out, read_only=False)
        first = asyncio.run(worker.plan_now(snapshot, load_config(store, cluster)))
        print(plan_table(first), file=out)
        if not first.moves:
            jobs: list[Any] = []
        else:
            if not args.yes:
                if not sys.stdin.isatty():
                    raise UsageError(
                        "balancing needs a confirmation and stdin is not a terminal",
                        hint="review the plan above and add --yes",
                    )
                if not _ask(f"Run this plan ({len(first.moves)} moves, re-planned after each batch)?"):
                    print("cancelled; nothing changed", file=out)
                    return 1
            jobs = asyncio.run(worker.balance(client.fetch_snapshot, max_moves=args.max_moves))
        final = worker.plan or first
    failed = [job for job in jobs if not job.succeeded]
    if args.json:
        _emit_json(
            {
                "imbalance_before": round(first.before.imbalance, 4),
                "imbalance_after": round(final.before.imbalance, 4),
                "moves": [dict(job.as_dict(), reason=job.move.reason) for job in jobs],
                "summary": final.summary,
            }
        )
    print(
        f"{len(jobs) - len(failed)} of {len(jobs)} moves done; imbalance "
        f"{imbalance_change(first.before.imbalance, final.before.imbalance)}; {final.summary}",
        file=out,
    )
    for job in failed:
        print(f"pvetop: error: {job.label}: {job.error}", file=sys.stderr)
    return REFUSED if failed else 0


# ------------------------------------------------------------------------------------- settings


def _settings_target(args: argparse.Namespace, store) -> str:
    """The cluster the settings belong to: --cluster, or the one the connection reaches."""
    cluster = common.option(args, "cluster")
    if cluster:
        return cluster
    with _client(args) as client:
        return client.fetch_snapshot().cluster_name


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def run_settings_list(args: argparse.Namespace) -> int:
    from pvetop.policy.registry import settings_registry

    registry = settings_registry()
    with common.open_rules_store(args, writes=False) as store:
        cluster = _settings_target(args, store)
        stored = store.settings(cluster)
    values = registry.effective(stored)
    if args.json:
        _emit_json(
            {
                "cluster": cluster,
                "settings": [
                    {"key": spec.key, "value": values[spec.key], "default": spec.default, "set": spec.key in stored}
                    for spec in registry
                ],
            }
        )
        return 0
    width = max(len(spec.key) for spec in registry)
    print(f"cluster {cluster}  (* = set, otherwise the default)")
    for spec in registry:
        mark = "*" if spec.key in stored else " "
        print(f"{mark} {spec.key:<{width}}  {_shown(values[spec.key]):<10}  {spec.help}")
    return 0


def run_settings_get(args: argparse.Namespace) -> int:
    from pvetop.policy.registry import settings_registry

    registry = settings_registry()
    spec = registry.spec(args.key)
    with common.open_rules_store(args, writes=False) as store:
        cluster = _settings_target(args, store)
        stored = store.settings(cluster)
    print(_shown(registry.effective(stored)[spec.key]))
    return 0


def run_settings_set(args: argparse.Namespace) -> int:
    from pvetop.policy.registry import settings_registry

    registry = settings_registry()
    value = registry.parse(args.key, args.value)  # a bad key or value fails before anything connects
    common.refuse_writes(args, f"setting {args.key}")
    risk = registry.spec(args.key).risk(value)
    with common.open_rules_store(args, writes=True) as store:
        cluster = _settings_target(args, store)
        if risk and not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"setting {args.key} to {args.value}: {risk}", hint="add --yes to accept")
            if not _ask(f"{risk} Set {args.key} to {_shown(value)}?"):
                print("cancelled; nothing changed")
                return 1
        store.set_setting(cluster, args.key, value)
    print(f"{cluster}: {args.key} = {_shown(value)}")
    return 0
