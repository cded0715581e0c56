"""Raw PVE JSON -> model.py types, with units normalised once.

Runs on every refresh for up to ~4000 guests, so it walks each list once, uses plain local
look-ups and caches tag tuples (most guests share a handful of tag strings). Anything that is not
the shape the schema promises raises ``MalformedAnswer`` naming the endpoint and the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pvetop.model import ClusterSnapshot, CrsOptions, Guest, HaRule, Node, Storage

GUEST_TYPES = frozenset({"qemu", "lxc"})


class MalformedAnswer(ValueError):
    """The API answered 2xx with data that does not match the PVE schema."""


def parse_tags(text: str | None, _cache: dict[str, tuple[str, ...]] = {}) -> tuple[str, ...]:  # noqa: B006
    """``"a;b"`` -> ``("a", "b")``; PVE also accepts ``,`` and spaces as separators in configs."""
    if not text:
        return ()
    tags = _cache.get(text)
    if tags is None:
        tags = tuple(t for t in text.replace(",", ";").replace(" ", ";").split(";") if t)
        if len(_cache) < 10_000:
            _cache[text] = tags
    return tags


def _bool(value: Any) -> bool:
    """PVE booleans are 0/1 (sometimes "0"/"1" strings)."""
    return bool(value) and value not in ("0", "false")


def parse_resources(items: Any) -> tuple[dict[str, Node], list[Guest], list[Storage]]:
    """``GET /cluster/resources`` -> nodes by name, guests, storage (other types are ignored)."""
    if not isinstance(items, list):
        raise MalformedAnswer(f"GET /cluster/resources: expected a list, got {type(items).__name__}")
    nodes: dict[str, Node] = {}
    guests: list[Guest] = []
    storage: list[Storage] = []
    tags = parse_tags
    for item in items:
        try:
            kind = item["type"]
            if kind in GUEST_TYPES:
                get = item.get
                guests.append(
                    Guest(
                        vmid=int(item["vmid"]),
                        type=kind,
                        node=item["node"],
                        status=get("status") or "unknown",
                        name=get("name") or "",
                        template=_bool(get("template")),
                        cpu=float(get("cpu") or 0.0),
                        maxcpu=float(get("maxcpu") or 0.0),
                        mem=int(get("mem") or 0),
                        maxmem=int(get("maxmem") or 0),
                        disk=int(get("disk") or 0),
                        maxdisk=int(get("maxdisk") or 0),
                        netin=int(get("netin") or 0),
                        netout=int(get("netout") or 0),
                        diskread=int(get("diskread") or 0),
                        diskwrite=int(get("diskwrite") or 0),
                        uptime=int(get("uptime") or 0),
                        pool=get("pool") or None,
                        tags=tags(get("tags")),
                        lock=get("lock") or None,
                        hastate=get("hastate") or None,
                    )
                )
            elif kind == "node":
                get = item.get
                nodes[item["node"]] = Node(
                    name=item["node"],
                    status=get("status") or "unknown",
                    cpu=float(get("cpu") or 0.0),
                    maxcpu=int(get("maxcpu") or 0),
                    mem=int(get("mem") or 0),
                    maxmem=int(get("maxmem") or 0),
                    disk=int(get("disk") or 0),
                    maxdisk=int(get("maxdisk") or 0),
                    uptime=int(get("uptime") or 0),
                    level=get("level") or "",
                )
            elif kind == "storage":
                get = item.get
                content = get("content")
                storage.append(
                    Storage(
                        storage=item["storage"],
                        node=item["node"],
                        plugintype=get("plugintype") or "",
                        shared=_bool(get("shared")),
                        disk=int(get("disk") or 0),
                        maxdisk=int(get("maxdisk") or 0),
                        status=get("status") or "available",
                        content=tuple(content.split(",")) if content else (),
                    )
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedAnswer(f"GET /cluster/resources: bad entry {_describe(item)}: {_why(exc)}") from None
    return nodes, guests, storage


def parse_cluster_status(items: Any) -> tuple[str | None, bool | None, dict[str, Mapping[str, Any]]]:
    """``GET /cluster/status`` -> (cluster name, quorate, node entries by name).

    A standalone node has no ``cluster`` entry: name and quorum are then None (the caller uses
    the node's name and treats a lone node as quorate).
    """
    if not isinstance(items, list):
        raise MalformedAnswer(f"GET /cluster/status: expected a list, got {type(items).__name__}")
    name = quorate = None
    members: dict[str, Mapping[str, Any]] = {}
    for item in items:
        try:
            if item["type"] == "cluster":
                name = item["name"]
                quorate = _bool(item.get("quorate"))
            elif item["type"] == "node":
                members[item["name"]] = item
        except (KeyError, TypeError) as exc:
            raise MalformedAnswer(f"GET /cluster/status: bad entry {_describe(item)}: {_why(exc)}") from None
    return name, quorate, members


def merge_membership(
    nodes: dict[str, Node], members: Mapping[str, Mapping[str, Any]], votes: Mapping[str, int]
) -> tuple[Node, ...]:
    """Adds nodeid and ip from /cluster/status and corosync votes; members missing from resources still appear.

    Votes come from /cluster/status when it carries them, else from ``votes`` (the slowly
    refreshed /cluster/config/nodes), else 1.
    """
    merged = []
    for node_name in sorted(nodes.keys() | members.keys()):
        member = members.get(node_name)
        node = nodes.get(node_name)
        if node is None:  # known to corosync, absent from the resource list
            online = member is not None and _bool(member.get("online"))
            node = Node(name=node_name, status="online" if online else "offline")
        if member is not None:
            nodeid = member.get("nodeid")
            node = replace(
                node,
                nodeid=int(nodeid) if nodeid is not None else None,
                ip=member.get("ip") or None,
                votes=int(member.get("votes", votes.get(node_name, 1))),
            )
        elif node_name in votes:
            node = replace(node, votes=votes[node_name])
        merged.append(node)
    return tuple(merged)


def parse_crs(options: Any) -> CrsOptions:
    """The ``crs`` datacenter option, given as a parsed object or a ``k=v,k=v`` property string."""
    if not isinstance(options, Mapping):
        raise MalformedAnswer(f"GET /cluster/options: expected an object, got {type(options).__name__}")
    crs = options.get("crs")
    if not crs:
        return CrsOptions()
    if isinstance(crs, str):
        pairs = (part.partition("=") for part in crs.split(",") if part)
        crs = {key if sep else "ha": value if sep else key for key, sep, value in pairs}
    if not isinstance(crs, Mapping):
        raise MalformedAnswer(f"GET /cluster/options: bad crs value {crs!r}")
    return CrsOptions(ha=str(crs.get("ha", "basic")), ha_auto_rebalance=_bool(crs.get("ha-auto-rebalance", 0)))


def parse_ha_rules(items: Any) -> tuple[HaRule, ...]:
    """``GET /cluster/ha/rules`` -> HaRule tuple (``nodes "pve1:2,pve2"``, priority default 0)."""
    if not isinstance(items, list):
        raise MalformedAnswer(f"GET /cluster/ha/rules: expected a list, got {type(items).__name__}")
    rules = []
    for item in items:
        try:
            rules.append(
                HaRule(
                    rule=item["rule"],
                    type=item["type"],
                    resources=tuple(r for r in (item.get("resources") or "").split(",") if r),
                    nodes=tuple(_node_priority(n) for n in (item.get("nodes") or "").split(",") if n),
                    strict=_bool(item.get("strict")),
                    affinity=item.get("affinity") or None,
                    disabled=_bool(item.get("disable")),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedAnswer(f"GET /cluster/ha/rules: bad entry {_describe(item)}: {_why(exc)}") from None
    return tuple(rules)


def _node_priority(text: str) -> tuple[str, int]:
    name, _, priority = text.partition(":")
    return name, int(priority) if priority else 0


def parse_config_nodes(items: Any) -> dict[str, int]:
    """``GET /cluster/config/nodes`` -> corosync ``quorum_votes`` by node name."""
    if not isinstance(items, list):
        raise MalformedAnswer(f"GET /cluster/config/nodes: expected a list, got {type(items).__name__}")
    try:
        return {item.get("node") or item["name"]: int(item.get("quorum_votes", 1)) for item in items}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedAnswer(f"GET /cluster/config/nodes: {_why(exc)}") from None


def build_snapshot(
    resources: Any,
    status: Any,
    *,
    crs: CrsOptions,
    ha_rules: Iterable[HaRule],
    fetched_at: float,
    api_requests: int,
    votes: Mapping[str, int] | None = None,
) -> ClusterSnapshot:
    """One immutable snapshot from the two per-refresh answers plus the cached slow data."""
    nodes_by_name, guests, storage = parse_resources(resources)
    cluster_name, quorate, members = parse_cluster_status(status)
    nodes = merge_membership(nodes_by_name, members, votes or {})
    if cluster_name is None:  # a standalone node: no corosync, always "quorate"
        cluster_name = nodes[0].name if len(nodes) == 1 else ""
        quorate = True
    guests.sort(key=_vmid)
    return ClusterSnapshot(
        cluster_name=cluster_name,
        quorate=bool(quorate),
        nodes=nodes,
        guests=tuple(guests),
        storage=tuple(storage),
        ha_rules=tuple(ha_rules),
        crs=crs,
        fetched_at=fetched_at,
        api_requests=api_requests,
    )


def _vmid(guest: Guest) -> int:
    return guest.vmid


def _describe(item: Any) -> str:
    if isinstance(item, Mapping):
        return repr(item.get("id") or item.get("name") or item.get("rule") or dict(list(item.items())[:3]))
    return repr(item)[:80]


def _why(exc: Exception) -> str:
    return f"missing field {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
