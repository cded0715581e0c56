"""Rules for scripts: ``pins``, ``locks``, ``reserve``/``unreserve``, ``export``/``import``, ``reconcile``.

Commands connect like every other command, to learn the cluster's name and to check that a vmid
or node exists before a rule names it. Reading or removing rules also works offline with
``--cluster NAME``. Every change lands in the journal as the user's (the store does that).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pvetop.cli import common
from pvetop.errors import PvetopError, UsageError

JSON_HELP = "machine-readable output"


# --------------------------------------------------------------------------- parser


def register(subparsers) -> None:
    """Adds ``pins``, ``locks``, ``reserve``, ``unreserve``, ``export``, ``import`` and ``reconcile``."""
    pins = subparsers.add_parser(
        "pins",
        help="list, add or remove guest pins (allowed node sets)",
        description="A pinned guest runs only on its allowed nodes: the balancer keeps it "
        "there and the power policy never strands it.",
    )
    pins_actions = pins.add_subparsers(title="actions (default: list)", metavar="ACTION")
    _list_by_default(pins, run_pins_list)
    _leaf(pins_actions, "list", run_pins_list, "list pins", offline=True, json_output=True)
    add = _leaf(pins_actions, "add", run_pins_add, "pin a guest to one or more nodes")
    add.add_argument("vmid", metavar="VMID")
    add.add_argument("nodes", metavar="NODE", nargs="+", help="the nodes it may run on")
    add.add_argument("--note", default="", help="why it is pinned")
    rm = _leaf(pins_actions, "rm", run_pins_rm, "remove a guest's pin", offline=True)
    rm.add_argument("vmid", metavar="VMID")
    suggest = _leaf(
        pins_actions,
        "suggest",
        run_pins_suggest,
        "pins suggested by ProxLB plb_pin_<node> tags and HA node-affinity rules",
        json_output=True,
    )
    accept = suggest.add_mutually_exclusive_group()
    accept.add_argument("--accept", metavar="VMID", nargs="+", help="pin these guests as suggested")
    accept.add_argument("--accept-all", action="store_true", help="pin every guest as suggested")

    locks = subparsers.add_parser("locks", help="list, add or remove guest locks (no automatic moves)")
    locks_actions = locks.add_subparsers(title="actions (default: list)", metavar="ACTION")
    _list_by_default(locks, run_locks_list)
    _leaf(locks_actions, "list", run_locks_list, "list locks", offline=True, json_output=True)
    lock_add = _leaf(locks_actions, "add", run_locks_add, "lock a guest against automatic moves")
    lock_add.add_argument("vmid", metavar="VMID")
    lock_add.add_argument("--reason", default="", help="why it is locked")
    lock_rm = _leaf(locks_actions, "rm", run_locks_rm, "unlock a guest", offline=True)
    lock_rm.add_argument("vmid", metavar="VMID")

    reserve = _leaf(subparsers, "reserve", run_reserve, "reserve a node: nothing moves to or from it automatically")
    reserve.add_argument("node", metavar="NODE")
    reserve.add_argument("--reason", default="", help="why it is reserved")
    unreserve = _leaf(subparsers, "unreserve", run_unreserve, "release a reserved node", offline=True)
    unreserve.add_argument("node", metavar="NODE")

    export = _leaf(
        subparsers, "export", run_export, "write every rule and setting as JSON (not the journal)", offline=True
    )
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    export.add_argument("--all-clusters", action="store_true", help="every cluster in the store (no connection)")
    import_ = subparsers.add_parser(
        "import",
        help="add the rules of an export file (a bad file changes nothing)",
        description="Adds every rule and setting of a `pvetop export` file, replacing "
        "entries with the same key. Needs no connection.",
    )
    import_.add_argument("file", metavar="FILE", help="the export file, or - for standard input")
    common.add_connection_options(import_)
    import_.set_defaults(handler=run_import)

    recon = _leaf(
        subparsers,
        "reconcile",
        run_reconcile,
        "find rules naming vanished guests, reused vmids or missing nodes, and fix them after confirmation",
        json_output=True,
    )
    recon.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    recon.add_argument("--dry-run", action="store_true", help="only show what would change")


def _list_by_default(parser: argparse.ArgumentParser, handler) -> None:
    """``pvetop pins`` (no action) lists, like ``pvetop pins list``."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    parser.add_argument("--cluster", metavar="NAME", help="the cluster's name in the store; with it, no connection")
    common.add_connection_options(parser)
    parser.set_defaults(handler=handler)


def _leaf(
    subparsers, name: str, handler, help_text: str, *, offline: bool = False, json_output: bool = False
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    if json_output:
        parser.add_argument("--json", action="store_true", help=JSON_HELP)
    parser.add_argument(
        "--cluster",
        metavar="NAME",
        help="the cluster's name in the store"
        + ("; with it, no connection is made" if offline else "; must match the cluster connected to"),
    )
    common.add_connection_options(parser)
    parser.set_defaults(handler=handler)
    return parser


# --------------------------------------------------------------------------- shared steps


def _open_store(args: argparse.Namespace, writing: str | None = None):
    """The store; ``writing`` (what the command changes) refuses it in read-only mode and
    opens the store writable, else it is opened read-only."""
    if writing is not None:
        common.refuse_writes(args, writing)
    return common.open_rules_store(args, writes=writing is not None)


@contextlib.contextmanager
def dashboard_store(args: argparse.Namespace, *, clock: Callable[[], float] = time.time) -> Iterator[Any]:
    """The dashboard's rules store, opened before connecting so a bad ``--db`` fails at once;
    ``clock`` stamps pins and the journal (the demo's simulated clock).

    With ``--demo`` and no ``--db``, a throwaway file: demo pins must never land in the real
    store under a cluster name ("homelab") a real cluster may also have.
    """
    from pvetop.store import open_store

    if getattr(args, "demo", None) and not common.option(args, "db"):
        with (
            tempfile.TemporaryDirectory(prefix="pvetop-demo-") as tmp,
            open_store(str(Path(tmp) / "demo.sqlite"), clock=clock) as store,
        ):
            yield store
        return
    with common.open_rules_store(args, writes=not common.read_only(args), clock=clock) as store:
        yield store


def _connect(args: argparse.Namespace):
    """One snapshot of the cluster and the API user (who the journal names)."""
    from pvetop.config import resolve_connection
    from pvetop.pve import PveClient

    settings = resolve_connection(args)
    with PveClient.connect(settings) as client:
        if client.insecure_warning:
            print(f"pvetop: warning: {client.insecure_warning}", file=sys.stderr)
        snapshot = client.fetch_snapshot()
    if not snapshot.cluster_name:
        raise UsageError("the cluster did not tell its name", hint="pass --cluster NAME")
    wanted = common.option(args, "cluster")
    if wanted and wanted != snapshot.cluster_name:
        raise UsageError(
            f"--cluster {wanted} but the API at {settings.host_labels[0]} belongs to cluster {snapshot.cluster_name}"
        )
    return snapshot, settings.user


def _target(args: argparse.Namespace, *, offline: bool):
    """(cluster name, snapshot or None, who): offline commands skip connecting when --cluster is given."""
    cluster = common.option(args, "cluster")
    if offline and cluster:
        return cluster, None, getpass.getuser()
    snapshot, who = _connect(args)
    return snapshot.cluster_name, snapshot, who


def _vmid(value: str) -> int:
    from pvetop.store.validate import check_vmid

    return check_vmid(value)


def _guest(snapshot, vmid: int):
    guest = snapshot.guest_by_vmid.get(vmid)
    if guest is None:
        raise UsageError(f"no guest {vmid} in cluster {snapshot.cluster_name!r}")
    return guest


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "-"


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [headers, *rows]
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- pins


def run_pins_list(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        cluster, snapshot, _ = _target(args, offline=True)
        pins = store.pins(cluster)
    located = snapshot.guest_by_vmid if snapshot else {}
    if args.json:
        _print_json(
            {
                "cluster": cluster,
                "pins": [
                    {
                        "vmid": p.vmid,
                        "name": p.name,
                        "nodes": sorted(p.nodes),
                        "note": p.note,
                        "who": p.who,
                        "created_at": p.created_at,
                        **({"node": located[p.vmid].node if p.vmid in located else None} if snapshot else {}),
                    }
                    for p in pins
                ],
            }
        )
        return 0
    if not pins:
        print(f"cluster {cluster}: no pins")
        return 0
    headers = ["VMID", "NAME", "NODES", *(["NOW ON"] if snapshot else []), "NOTE", "BY", "SINCE"]
    rows = []
    for p in pins:
        where = []
        if snapshot:
            guest = located.get(p.vmid)
            where = ["(gone)" if guest is None else guest.node + ("" if p.allows(guest.node) else " (outside)")]
        rows.append([str(p.vmid), p.name or "-", ",".join(sorted(p.nodes)), *where, p.note, p.who, _when(p.created_at)])
    sys.stdout.write(_table(headers, rows))
    return 0


def run_pins_add(args: argparse.Namespace) -> int:
    from pvetop.store.validate import check_nodes

    vmid, nodes = _vmid(args.vmid), check_nodes(args.nodes)
    with _open_store(args, f"pinning {vmid}") as store:
        cluster, snapshot, who = _target(args, offline=False)
        guest = _guest(snapshot, vmid)
        unknown = sorted(nodes - set(snapshot.node_by_name))
        if unknown:
            raise UsageError(
                f"cluster {cluster} has no node {', '.join(unknown)}",
                hint=f"nodes: {', '.join(sorted(snapshot.node_by_name))}",
            )
        pin = store.pin_guest(cluster, vmid, guest.name, nodes, note=args.note, who=who)
    print(f"pinned {vmid} ({guest.name or 'unnamed'}) to {', '.join(sorted(pin.nodes))}")
    if not pin.allows(guest.node):
        print(
            f"pvetop: note: {vmid} runs on {guest.node}, outside its pin; automatic moves will bring it back "
            "into its set",
            file=sys.stderr,
        )
    return 0


def _remove(args: argparse.Namespace, remove, missing: str, what: str, listed_by: str):
    """Removes one rule from the store (no connection needed); a rule that is not there is an error
    naming it and the cluster, so a typo in a script never passes silently."""
    with _open_store(args, what) as store:
        cluster, _, _ = _target(args, offline=True)
        removed = remove(store, cluster)
    if removed is None:
        raise UsageError(f"{missing} in cluster {cluster!r}", hint=f"`{listed_by}` lists them")
    return removed


def run_pins_rm(args: argparse.Namespace) -> int:
    vmid = _vmid(args.vmid)
    removed = _remove(
        args,
        lambda store, cluster: store.unpin(cluster, vmid),
        f"guest {vmid} has no pin",
        f"unpinning {vmid}",
        "pvetop pins",
    )
    print(f"unpinned {vmid} ({removed.name or 'unnamed'}), was pinned to {', '.join(sorted(removed.nodes))}")
    return 0


def run_pins_suggest(args: argparse.Namespace) -> int:
    from pvetop.policy.suggestions import suggest_pins

    with _open_store(args, "accepting pin suggestions" if args.accept or args.accept_all else None) as store:
        cluster, snapshot, who = _target(args, offline=False)
        suggestions = suggest_pins(snapshot, store.ruleset(cluster).pins)
        by_vmid: dict[int, list] = {}
        for suggestion in suggestions:
            by_vmid.setdefault(suggestion.vmid, []).append(suggestion)
        chosen = list(by_vmid) if args.accept_all else [_vmid(v) for v in args.accept or ()]
        accepted = []
        for vmid in chosen:
            offers = by_vmid.get(vmid)
            if not offers:
                raise UsageError(f"nothing is suggested for guest {vmid}")
            if len({s.nodes for s in offers}) > 1:
                message = (
                    f"guest {vmid} has conflicting suggestions ({', '.join(s.source for s in offers)}); "
                    f"choose with `pvetop pins add {vmid} NODE...`"
                )
                if args.accept_all:
                    print(f"pvetop: skipped: {message}", file=sys.stderr)
                    continue
                raise UsageError(message)
            offer = offers[0]
            store.pin_guest(cluster, vmid, offer.name, offer.nodes, note=offer.note, who=who)
            accepted.append(offer)
    if args.json:
        _print_json(
            {
                "cluster": cluster,
                "accepted": [s.vmid for s in accepted],
                "suggestions": [
                    {
                        "vmid": s.vmid,
                        "name": s.name,
                        "nodes": sorted(s.nodes),
                        "source": s.source,
                        "reason": s.reason,
                        "replaces": sorted(s.replaces) if s.replaces is not None else None,
                    }
                    for s in suggestions
                ],
            }
        )
        return 0
    if accepted:
        for s in accepted:
            print(f"pinned {s.vmid} ({s.name or 'unnamed'}) to {', '.join(sorted(s.nodes))} ({s.source})")
        return 0
    if not suggestions:
        print(f"cluster {cluster}: no pin suggestions")
        return 0
    rows = [
        [
            str(s.vmid),
            s.name or "-",
            ",".join(sorted(s.nodes)),
            ",".join(sorted(s.replaces)) if s.replaces is not None else "-",
            s.reason,
        ]
        for s in suggestions
    ]
    sys.stdout.write(_table(["VMID", "NAME", "SUGGESTED NODES", "CURRENT PIN", "FROM"], rows))
    print("accept with: pvetop pins suggest --accept VMID... (or --accept-all)")
    return 0


# --------------------------------------------------------------------------- locks


def run_locks_list(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        cluster, _, _ = _target(args, offline=True)
        locks = store.locks(cluster)
    if args.json:
        _print_json(
            {
                "cluster": cluster,
                "locks": [
                    {"vmid": lk.vmid, "name": lk.name, "reason": lk.reason, "who": lk.who, "created_at": lk.created_at}
                    for lk in locks
                ],
            }
        )
    elif not locks:
        print(f"cluster {cluster}: no locks")
    else:
        sys.stdout.write(
            _table(
                ["VMID", "NAME", "REASON", "BY", "SINCE"],
                [[str(lk.vmid), lk.name or "-", lk.reason, lk.who, _when(lk.created_at)] for lk in locks],
            )
        )
    return 0


def run_locks_add(args: argparse.Namespace) -> int:
    vmid = _vmid(args.vmid)
    with _open_store(args, f"locking {vmid}") as store:
        cluster, snapshot, who = _target(args, offline=False)
        guest = _guest(snapshot, vmid)
        store.lock_guest(cluster, vmid, guest.name, reason=args.reason, who=who)
    print(f"locked {vmid} ({guest.name or 'unnamed'}): no automatic action will move it")
    return 0


def run_locks_rm(args: argparse.Namespace) -> int:
    vmid = _vmid(args.vmid)
    removed = _remove(
        args,
        lambda store, cluster: store.unlock_guest(cluster, vmid),
        f"guest {vmid} has no lock",
        f"unlocking {vmid}",
        "pvetop locks",
    )
    print(f"unlocked {vmid} ({removed.name or 'unnamed'})")
    return 0


# --------------------------------------------------------------------------- nodes


def run_reserve(args: argparse.Namespace) -> int:
    from pvetop.store.validate import check_node

    node = check_node(args.node)
    with _open_store(args, f"reserving {node}") as store:
        cluster, snapshot, who = _target(args, offline=False)
        if node not in snapshot.node_by_name:
            raise UsageError(
                f"cluster {cluster} has no node {node}", hint=f"nodes: {', '.join(sorted(snapshot.node_by_name))}"
            )
        store.reserve_node(cluster, node, reason=args.reason, who=who)
    print(f"reserved {node}: nothing moves to or from it automatically")
    return 0


def run_unreserve(args: argparse.Namespace) -> int:
    from pvetop.store.validate import check_node

    node = check_node(args.node)
    _remove(
        args,
        lambda store, cluster: store.unreserve_node(cluster, node),
        f"node {node} is not reserved",
        f"releasing {node}",
        "pvetop export",
    )
    print(f"released {node}")
    return 0


# --------------------------------------------------------------------------- export / import


def run_export(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        if args.all_clusters:
            document = store.export()
        else:
            cluster, _, _ = _target(args, offline=True)
            document = store.export(cluster)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if not args.output or args.output == "-":
        sys.stdout.write(text)
        return 0
    _write_atomically(Path(args.output), text)
    print(f"exported {', '.join(document['clusters']) or 'no cluster'} to {args.output}", file=sys.stderr)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """A half-written export never replaces a good one."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def run_import(args: argparse.Namespace) -> int:
    from pvetop.store.transfer import load_json

    source = "standard input" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    document = load_json(text, source)
    with _open_store(args, f"importing {source}") as store:
        counts = store.import_rules(document, source=source)
    for cluster, kinds in counts.items():
        print(
            f"imported into cluster {cluster}: "
            + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in kinds.items())
        )
    if not counts:
        print(f"{source} holds no cluster: nothing imported")
    return 0


# --------------------------------------------------------------------------- reconcile


def run_reconcile(args: argparse.Namespace) -> int:
    from pvetop.policy.reconcile import reconcile

    with _open_store(args, None if args.dry_run else "reconcile (--dry-run only lists)") as store:
        cluster, snapshot, _ = _target(args, offline=False)
        try:
            changes = reconcile(snapshot, store.rules(cluster))
        except ValueError as exc:
            raise PvetopError(str(exc)) from None
        if not args.json:
            _print_changes(cluster, changes)
        apply = (
            bool(changes)
            and not args.dry_run
            and (args.yes or (not args.json and _confirm(f"Apply these {len(changes)} change(s)? [y/N] ")))
        )
        outcome = store.apply_reconcile(cluster, changes) if apply else [(c, False) for c in changes]
    if args.json:
        _print_json(
            {
                "cluster": cluster,
                "applied": apply,
                "changes": [{**_change_json(c), "applied": done} for c, done in outcome],
            }
        )
    elif apply:
        skipped = [c for c, done in outcome if not done]
        print(f"applied {len(outcome) - len(skipped)} change(s)")
        for change in skipped:
            print(f"  skipped [{change.kind} {change.target}]: it changed since it was listed; run reconcile again")
    elif changes and not args.dry_run:
        print("nothing changed (pass --yes to apply without asking)")
    return 0


def _print_changes(cluster: str, changes) -> None:
    if not changes:
        print(f"cluster {cluster}: every rule matches the cluster; nothing to reconcile")
        return
    print(f"cluster {cluster}: {len(changes)} rule(s) no longer match the cluster:")
    for number, change in enumerate(changes, 1):
        print(f"  {number}. [{change.kind} {change.target}] {change.detail}")


def _change_json(change) -> dict:
    return {
        "kind": change.kind,
        "target": change.target,
        "problem": change.problem,
        "action": change.action,
        "detail": change.detail,
        **({"nodes": sorted(change.new_nodes)} if change.action == "narrow" else {}),
    }


def _confirm(prompt: str) -> bool:
    """Asks on a terminal; without one (a script) the answer is no."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False
