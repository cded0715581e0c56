"""Checks shared by the store's methods and the import reader: bad input becomes a UsageError."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pvetop.errors import UsageError

NODE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62})$")
MAC = re.compile(r"^[0-9a-f]{12}$")


def check_cluster(cluster: str) -> str:
    if not isinstance(cluster, str) or not cluster.strip():
        raise UsageError("cluster name is empty")
    return cluster.strip()


def check_vmid(vmid: Any) -> int:
    """PVE's vmid range is 100..999999999; strings of digits (CLI arguments) are accepted."""
    if isinstance(vmid, bool):
        raise UsageError(f"vmid {vmid!r} is not a number")
    try:
        number = int(str(vmid).strip())
    except ValueError:
        raise UsageError(f"vmid {vmid!r} is not a number") from None
    if not 100 <= number <= 999_999_999:
        raise UsageError(f"vmid {number} is out of range (100..999999999)")
    return number


def check_node(node: Any) -> str:
    if not isinstance(node, str) or not NODE_NAME.match(node.strip()):
        raise UsageError(f"{node!r} is not a valid node name")
    return node.strip()


def check_nodes(nodes: Iterable[str]) -> frozenset[str]:
    """An allowed-node set: at least one valid node name, duplicates merged."""
    if isinstance(nodes, str):
        nodes = [nodes]
    allowed = frozenset(check_node(n) for n in nodes)
    if not allowed:
        raise UsageError("a pin needs at least one node")
    return allowed


def normalise_mac(mac: str | None) -> str | None:
    """``AA-BB-...``, ``aa:bb:...`` or ``aabb...`` as ``aa:bb:cc:dd:ee:ff``; empty means none."""
    if mac is None or not str(mac).strip():
        return None
    digits = re.sub(r"[:\-.]", "", str(mac).strip().lower())
    if not MAC.match(digits):
        raise UsageError(f"{mac!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_boot_timeout(seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 10 <= seconds <= 86_400:
        raise UsageError(f"boot timeout {seconds!r} must be a whole number of seconds between 10 and 86400")
    return seconds
