"""The node table's optional basics columns: each node's own status, read apart from the refresh.

A refresh costs 2 requests whatever the cluster's size (``/cluster/resources`` and
``/cluster/status``), and neither says a node's load average, IO delay, swap, KSM sharing, PSI
or versions: those are in ``GET /nodes/{node}/status`` (PSI, since PVE 9, only in the node's
rrddata). So they are read only while one of those columns is shown, one request per online node
(two with the PSI column), every ``READ_EVERY`` seconds, in a worker of their own — never inside
a refresh, whose cost stays 2 requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.message import Message

from pvetop.errors import PvetopError
from pvetop.model import NodeBasics
from pvetop.pve.parse import parse_node_basics

READ_EVERY = 30.0  # real seconds between two reads (load averages are minute averages)


def fetch_node_basics(source: Any, nodes: Iterable[str], *, with_psi: bool) -> dict[str, NodeBasics]:
    """Each node's basics (blocking: call it off the UI thread); a node that does not answer is left out."""
    found = {}
    for node in nodes:
        try:
            status = source.node_status(node)
            rows = source.node_rrddata(node, "hour") if with_psi else []
        except PvetopError:
            continue  # its cells show "-" until a later read gets an answer
        latest = next((row for row in reversed(rows) if any(key.startswith("pressure") for key in row)), None)
        found[node] = parse_node_basics(status, latest)
    return found


class NodeBasicsArrived(Message):
    """A read of the nodes' basics finished (the nodes that answered)."""

    def __init__(self, basics: dict[str, NodeBasics]) -> None:
        super().__init__()
        self.basics = basics
