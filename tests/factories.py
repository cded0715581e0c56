"""Hand-built ``ClusterSnapshot``s for fast unit tests: sensible defaults, override anything.

    snap = make_snapshot(
        [make_node("pve1"), make_node("pve2", mem=40 * GIB)],
        [make_guest(100, "pve1", mem=8 * GIB), make_guest(101, "pve2", type="lxc")],
    )

``make_snapshot(..., derive_usage=True)`` recomputes each node's cpu and mem from its running
guests (the node's own ``mem`` is kept as host overhead), so totals stay consistent when a test
only cares about guests.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pvetop.model import ClusterSnapshot, CrsOptions, Guest, HaRule, Node

GIB = 1024**3


def make_node(
    name: str = "pve1",
    *,
    status: str = "online",
    cpu: float = 0.0,
    maxcpu: int = 16,
    mem: int = 0,
    maxmem: int = 64 * GIB,
    **fields: Any,
) -> Node:
    """An online 16-core, 64 GiB node, idle unless told otherwise."""
    return Node(name=name, status=status, cpu=cpu, maxcpu=maxcpu, mem=mem, maxmem=maxmem, **fields)


def make_guest(
    vmid: int,
    node: str = "pve1",
    *,
    type: str = "qemu",
    status: str = "running",
    name: str | None = None,
    cpu: float = 0.0,
    maxcpu: float = 2,
    mem: int = 2 * GIB,
    maxmem: int = 4 * GIB,
    **fields: Any,
) -> Guest:
    """A running 2-core VM using 2 of its 4 GiB, named ``vm<vmid>`` (``ct<vmid>`` for lxc)."""
    if name is None:
        name = f"{'vm' if type == 'qemu' else 'ct'}{vmid}"
    if status != "running":
        cpu, mem = 0.0, 0
    return Guest(
        vmid=vmid,
        type=type,
        node=node,
        status=status,
        name=name,
        cpu=cpu,
        maxcpu=maxcpu,
        mem=mem,
        maxmem=maxmem,
        **fields,
    )


def make_ha_rule(rule: str, type: str, resources: tuple[str, ...], **fields: Any) -> HaRule:
    """``make_ha_rule("r1", "node-affinity", ("vm:100",), nodes=(("pve1", 1),), strict=True)``."""
    return HaRule(rule=rule, type=type, resources=resources, **fields)


def make_snapshot(
    nodes: list[Node] | tuple[Node, ...],
    guests: list[Guest] | tuple[Guest, ...] = (),
    *,
    cluster_name: str = "test",
    quorate: bool = True,
    ha_rules: tuple[HaRule, ...] = (),
    crs: CrsOptions | None = None,
    fetched_at: float = 0.0,
    derive_usage: bool = False,
) -> ClusterSnapshot:
    nodes = tuple(nodes)
    guests = tuple(guests)
    if derive_usage:
        nodes = tuple(_with_guest_usage(node, guests) for node in nodes)
    return ClusterSnapshot(
        cluster_name=cluster_name,
        quorate=quorate,
        nodes=nodes,
        guests=guests,
        ha_rules=tuple(ha_rules),
        crs=crs or CrsOptions(),
        fetched_at=fetched_at,
    )


def _with_guest_usage(node: Node, guests: tuple[Guest, ...]) -> Node:
    running = [g for g in guests if g.node == node.name and g.running]
    cores = node.cpu * node.maxcpu + sum(g.cpu_cores_used for g in running)
    return replace(node, cpu=cores / node.maxcpu if node.maxcpu else 0.0, mem=node.mem + sum(g.mem for g in running))
