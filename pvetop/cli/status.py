"""`pvetop status [--json]`: connect, take one snapshot, print it, exit.

The quickest proof that the connection settings work (and a scripting hook): every connection,
auth or TLS problem ends as one ``pvetop: error:`` line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Any

from pvetop.cli import common
from pvetop.model import ClusterSnapshot


def register(subparsers) -> None:
    """Adds ``status`` to the top-level parser."""
    parser = subparsers.add_parser(
        "status",
        help="print the cluster's nodes and guests once and exit",
        description="Connect (GET /version, then the cluster options and HA rules), fetch one snapshot "
        "(2 API requests: cluster status and resources) and print it. The JSON's api_requests counts every "
        "request made, the connection's included.",
    )
    parser.add_argument(
        "--json", action="store_true", help='machine-readable output: {"cluster", "quorate", "nodes", "guests", ...}'
    )
    common.add_connection_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pvetop.config import resolve_connection  # imported late: config is not needed for --help
    from pvetop.pve import PveClient

    settings = resolve_connection(args)
    with PveClient.connect(settings) as client:
        if client.insecure_warning:
            print(f"pvetop: warning: {client.insecure_warning}", file=sys.stderr)
        snapshot = client.fetch_snapshot()
        requests_made = client.request_count
    for warning in snapshot.warnings:  # entries of the API's answers that were skipped as malformed
        print(f"pvetop: warning: {warning}", file=sys.stderr)
    if args.json:
        document = {**snapshot_to_json(snapshot), "api_requests": requests_made}
        json.dump(json_safe(document), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(snapshot))
    return 0


def snapshot_to_json(snapshot: ClusterSnapshot) -> dict:
    """Plain dict with model field names and normalised units (cpu fraction, bytes, seconds)."""

    def rows(items):
        return [dataclasses.asdict(item) for item in items]

    return {
        "cluster": snapshot.cluster_name,
        "quorate": snapshot.quorate,
        "nodes": rows(snapshot.nodes),
        "guests": rows(snapshot.guests),
        "storage": rows(snapshot.storage),
        "ha_rules": rows(snapshot.ha_rules),
        "crs": dataclasses.asdict(snapshot.crs),
        "fetched_at": snapshot.fetched_at,
        "api_requests": snapshot.api_requests,
        "warnings": list(snapshot.warnings),
    }


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float made null: NaN and Infinity are not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f}"


def render_table(snapshot: ClusterSnapshot) -> str:
    guests_by_node = snapshot.guests_by_node
    lines = [
        f"cluster {snapshot.cluster_name or '-'}: {'quorate' if snapshot.quorate else 'NOT QUORATE'}, "
        f"{len(snapshot.online_nodes)}/{len(snapshot.nodes)} nodes online, {len(snapshot.guests)} guests "
        f"({sum(g.running for g in snapshot.guests)} running)",
        f"{'NODE':<16} {'STATUS':<8} {'CPU%':>5} {'MEM GiB':>15} {'GUESTS':>6} {'RUN':>4}",
    ]
    for node in snapshot.nodes:
        guests = guests_by_node.get(node.name, ())
        mem = f"{_gib(node.mem)}/{_gib(node.maxmem)}" if node.maxmem else "-"
        cpu = f"{node.cpu * 100:.0f}" if node.online else "-"
        lines.append(
            f"{node.name:<16} {node.status:<8} {cpu:>5} {mem:>15} {len(guests):>6} {sum(g.running for g in guests):>4}"
        )
    lines += ["", f"{'VMID':>6} {'NAME':<20} {'TYPE':<4} {'NODE':<16} {'STATUS':<8} {'CPU%':>5} {'MEM GiB':>15}"]
    for guest in sorted(snapshot.guests, key=lambda g: g.vmid):
        mem = f"{_gib(guest.mem)}/{_gib(guest.maxmem)}" if guest.maxmem else "-"
        cpu = f"{guest.cpu * 100:.0f}" if guest.running else "-"
        kind = "vm" if guest.type == "qemu" else "ct"
        name = guest.name or "-"
        lines.append(f"{guest.vmid:>6} {name:<20.20} {kind:<4} {guest.node:<16} {guest.status:<8} {cpu:>5} {mem:>15}")
    return "\n".join(lines) + "\n"
