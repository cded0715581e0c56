"""``pvetop journal``: what was done to the cluster, by whom (user, balancer, power) and from where.

Every change pvetop makes, to the cluster or to its rules, is journaled in the rules store with
the instance (host, pid) that made it, so with a shared store this is the team's one history.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from typing import Any

from pvetop.cli import rules
from pvetop.text import visible

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SINCE_HELP = (
    "only entries at or after T: 30m, 2h, 7d (ago), 2026-12-06, '2026-12-06 14:30' (local time) or epoch seconds"
)


def register(subparsers) -> None:
    parser = rules._leaf(
        subparsers,
        "journal",
        run_journal,
        "show the journal: every change pvetop made, oldest first, with its time, instance, actor and result",
        offline=True,
        json_output=True,
    )
    parser.add_argument("--since", metavar="T", type=parse_since, default=None, help=SINCE_HELP)
    parser.add_argument("--limit", metavar="N", type=_positive, default=200, help="the newest N entries (200)")


def parse_since(text: str, *, now: float | None = None) -> float:
    """``--since``'s value as epoch seconds; argparse shows the ValueError's text on a bad one."""
    value = text.strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        return (time.time() if now is None else now) - float(relative[1]) * _UNIT_SECONDS[relative[2]]
    try:
        return float(value)
    except ValueError:
        pass
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, form).timestamp()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"{text!r} is not a time: give 30m, 2h, 7d, 2026-12-06 or '2026-12-06 14:30'")


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _subject(target: str) -> dict[str, Any]:
    """``guest/101`` -> vmid 101, ``node/pve1`` -> node pve1 (the journal's target names)."""
    kind, _, name = target.partition("/")
    if kind == "guest" and name.isdigit():
        return {"vmid": int(name), "node": None}
    if kind == "node":
        return {"vmid": None, "node": name}
    return {"vmid": None, "node": None}


def entry_json(entry) -> dict[str, Any]:
    return {
        "time": datetime.fromtimestamp(entry.at).astimezone().isoformat(timespec="seconds"),
        "epoch": entry.at,
        "cluster": entry.cluster,
        "instance": {"host": entry.host, "pid": entry.pid},
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        **_subject(entry.target),
        "upid": entry.upid,
        "result": entry.result,
        "params": dict(entry.params),
    }


def run_journal(args: argparse.Namespace) -> int:
    with rules._open_store(args) as store:
        cluster, _, _ = rules._target(args, offline=True)
        entries = store.recent_journal(cluster, limit=args.limit, since=args.since or 0.0)
    entries.reverse()  # oldest first, as a log reads
    if args.json:
        rules._print_json({"cluster": cluster, "entries": [entry_json(e) for e in entries]})
        return 0
    if not entries:
        since = f" since {rules._when(args.since)}" if args.since else ""
        print(f"no journal entries for cluster {visible(cluster)}{since}")
        return 0
    rows = [
        [
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at)),
            visible(f"{e.host} ({e.pid})" if e.host else "-"),
            e.actor,
            visible(e.action),
            visible(e.target),
            visible(e.result),
            visible(e.upid or ""),
        ]
        for e in entries
    ]
    sys.stdout.write(rules._table(["TIME", "INSTANCE", "ACTOR", "ACTION", "TARGET", "RESULT", "UPID"], rows))
    return 0
