"""Raw PVE JSON -> model.py types, every value checked, units normalised once.

This is the trust boundary: whatever an API (or something pretending to be one) answers, what
leaves here is well typed, finite and in range. Two levels of failure:

- a bad *answer* (not a list where PVE sends a list, not an object where it sends one) raises
  ``MalformedAnswer`` naming the endpoint: the caller marks its data stale with that reason;
- a bad *entry* (a missing or wrong-typed field, NaN, a huge or negative number, an integer where
  a node name belongs, a duplicate vmid) is skipped and described in ``warnings``, so one broken
  guest or HA rule never takes the whole view down.

Runs on every refresh for up to ~4000 guests, so it walks each list once, checks the common
shapes first (a plain int, a plain str) and caches tag tuples.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NoReturn, TypeVar

from pvetop.model import (
    GUEST_STATUSES,
    NODE_STATUSES,
    ClusterSnapshot,
    CrsOptions,
    Guest,
    GuestType,
    HaRule,
    Node,
    NodeBasics,
    Storage,
)

GUEST_TYPES: dict[str, GuestType] = {"qemu": "qemu", "lxc": "lxc"}  # the resource types that are guests
MAX_COUNT = 2**63 - 1  # bytes, seconds, counters: anything larger is not a real value
MAX_SHARE = 1000.0  # cpu shares are fractions (a guest may pass 1 a little); beyond this is garbage
MAX_TEXT = 4096  # longest string kept from the API (PVE's longest fields, descriptions, are 8 KiB raw)
MAX_WARNINGS = 20  # warnings kept per snapshot; the rest are counted
# PVE's formats (pve-common JSONSchema.pm): pve-node is a host name label, pve-vmid 100..999999999,
# pve-storage-id starts with a letter. Anything else would also be unsafe inside an API path.
NODE_NAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")
STORAGE_ID = re.compile(r"[a-zA-Z][a-zA-Z0-9\-_.]{0,99}")
VMID_RANGE = (100, 999_999_999)
_INT_TEXT = re.compile(r"[0-9]{1,19}")
_NUMBER_TEXT = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?")


class MalformedAnswer(ValueError):
    """The API answered 2xx with data that does not have the shape of the PVE schema."""

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__(f"{endpoint}: {detail}")
        self.endpoint = endpoint
        self.detail = detail


class BadValue(ValueError):
    """One field of one entry is unusable; the entry is skipped."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        super().__init__(f"field {key!r} is {_show(value)}, expected {expected}")


class Warnings:
    """The skipped entries of one parse, kept short: the first ``MAX_WARNINGS`` and a count."""

    def __init__(self, earlier: Iterable[str] = ()) -> None:
        self._kept: list[str] = []
        self._dropped = 0
        for text in earlier:
            self.add(text)

    def add(self, text: str) -> None:
        if len(self._kept) < MAX_WARNINGS:
            self._kept.append(text)
        else:
            self._dropped += 1

    def skipped(self, endpoint: str, item: Any, why: str) -> None:
        self.add(f"{endpoint}: skipped entry {_describe(item)}: {why}")

    def as_tuple(self) -> tuple[str, ...]:
        if not self._dropped:
            return tuple(self._kept)
        return (*self._kept, f"... and {self._dropped} more skipped entries")

    def __len__(self) -> int:
        return len(self._kept) + self._dropped


# ---------------------------------------------------------------------- field readers


def _fail(key: str, value: Any, expected: str) -> NoReturn:
    raise BadValue(key, value, expected)


def _text(item: Mapping[str, Any], key: str, default: str = "") -> str:
    """A string field (absent or null: ``default``)."""
    value = item.get(key)
    if value is None:
        return default
    if type(value) is not str or len(value) > MAX_TEXT:
        _fail(key, value, f"a string of at most {MAX_TEXT} characters")
    return value


Choice = TypeVar("Choice", bound=str)


def _choice(item: Mapping[str, Any], key: str, choices: tuple[Choice, ...]) -> Choice:
    """One of ``choices`` (absent or null: the last one, PVE's "unknown")."""
    value = item.get(key)
    if value is None:
        return choices[-1]
    for choice in choices:
        if value == choice:
            return choice
    _fail(key, value, f"one of {', '.join(choices)}")


def _optional_text(item: Mapping[str, Any], key: str) -> str | None:
    return _text(item, key) or None


def _node_name(item: Mapping[str, Any], key: str) -> str:
    """A required node name in PVE's pve-node format (never an integer, never a path)."""
    value = item.get(key)
    if type(value) is not str or not NODE_NAME.fullmatch(value):
        _fail(key, value, "a node name")
    return value


def _count(item: Mapping[str, Any], key: str) -> int:
    """A non-negative whole number (bytes, seconds, cores); absent or null: 0."""
    value = item.get(key)
    if value is None:
        return 0
    kind = type(value)
    if kind is int:
        if 0 <= value <= MAX_COUNT:
            return value  # type: ignore[no-any-return]
    elif kind is float:
        if math.isfinite(value) and 0 <= value <= MAX_COUNT:
            return int(value)
    elif kind is str and _INT_TEXT.fullmatch(value) and int(value) <= MAX_COUNT:
        return int(value)
    _fail(key, value, f"a whole number from 0 to {MAX_COUNT}")


def _share(item: Mapping[str, Any], key: str, limit: float = MAX_SHARE) -> float:
    """A finite non-negative number (a cpu fraction, fractional cores); absent or null: 0."""
    value = item.get(key)
    if value is None:
        return 0.0
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
    elif kind is str and _NUMBER_TEXT.fullmatch(value):
        number = float(value)
    else:
        _fail(key, value, "a number")
    if not (math.isfinite(number) and 0.0 <= number <= limit):
        _fail(key, value, f"a number from 0 to {limit:g}")
    return number


def _flag(item: Mapping[str, Any], key: str) -> bool:
    """PVE booleans are 0/1 (sometimes "0"/"1" strings, or JSON booleans); absent or null: False."""
    value = item.get(key)
    if value is None or value is False or value == 0 and type(value) is int or value == "0" or value == "":
        return False
    if value is True or value == 1 and type(value) is int or value == "1":
        return True
    _fail(key, value, "0 or 1")


def _vmid(item: Mapping[str, Any], key: str = "vmid") -> int:
    value = item.get(key)
    if type(value) is str and _INT_TEXT.fullmatch(value):
        value = int(value)
    if type(value) is not int or not VMID_RANGE[0] <= value <= VMID_RANGE[1]:
        _fail(key, value, f"a VM id from {VMID_RANGE[0]} to {VMID_RANGE[1]}")
    return value


def _optional_int(item: Mapping[str, Any], key: str) -> int | None:
    return _count(item, key) if item.get(key) is not None else None


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


def _entries(endpoint: str, items: Any) -> list[Any]:
    if type(items) is not list:
        raise MalformedAnswer(endpoint, f"expected a list, got {_kind(items)}")
    return items


def _each(endpoint: str, items: Any, warnings: Warnings, read: Callable[[Mapping[str, Any]], None]) -> None:
    """Calls ``read`` on every entry; an entry that is not an object or has a bad field is skipped."""
    for item in _entries(endpoint, items):
        if not isinstance(item, Mapping):
            warnings.skipped(endpoint, item, f"expected an object, got {_kind(item)}")
            continue
        try:
            read(item)
        except BadValue as exc:
            warnings.skipped(endpoint, item, str(exc))


# ---------------------------------------------------------------------- per-refresh data


def parse_resources(items: Any, warnings: Warnings) -> tuple[dict[str, Node], list[Guest], list[Storage]]:
    """``GET /cluster/resources`` -> nodes by name, guests, storage (other types are ignored)."""
    endpoint = "GET /cluster/resources"
    nodes: dict[str, Node] = {}
    guests: dict[int, Guest] = {}
    storage: list[Storage] = []

    def read(item: Mapping[str, Any]) -> None:
        kind = item.get("type")
        if type(kind) is not str:
            raise BadValue("type", kind, "a resource type")
        guest_type = GUEST_TYPES.get(kind)
        if guest_type is not None:
            guest = _guest(item, guest_type)
            if guest.vmid in guests:
                raise BadValue("vmid", guest.vmid, "a vmid not listed before (duplicate)")
            guests[guest.vmid] = guest
        elif kind == "node":
            node = _node(item)
            if node.name in nodes:
                raise BadValue("node", node.name, "a node not listed before (duplicate)")
            nodes[node.name] = node
        elif kind == "storage":
            storage.append(_storage(item))

    _each(endpoint, items, warnings, read)
    return nodes, list(guests.values()), storage


def _usage(item: Mapping[str, Any], *counts: str) -> dict[str, Any]:
    """The usage figures nodes and guests share in PVE's lists (a CPU share; memory, disk and
    uptime counts), and ``counts`` more."""
    keys = ("mem", "maxmem", "disk", "maxdisk", "uptime", *counts)
    return {"cpu": _share(item, "cpu"), **{key: _count(item, key) for key in keys}}


def _guest(item: Mapping[str, Any], kind: GuestType) -> Guest:
    return Guest(
        vmid=_vmid(item),
        type=kind,
        node=_node_name(item, "node"),
        status=_choice(item, "status", GUEST_STATUSES),
        name=_text(item, "name"),
        template=_flag(item, "template"),
        maxcpu=_share(item, "maxcpu", MAX_COUNT),
        **_usage(item, "netin", "netout", "diskread", "diskwrite"),
        pool=_optional_text(item, "pool"),
        tags=parse_tags(_text(item, "tags")),
        lock=_optional_text(item, "lock"),
        hastate=_optional_text(item, "hastate"),
        memhost=_count(item, "memhost"),
    )


def _node(item: Mapping[str, Any]) -> Node:
    return Node(
        name=_node_name(item, "node"),
        status=_choice(item, "status", NODE_STATUSES),
        maxcpu=_count(item, "maxcpu"),
        **_usage(item),
        level=_text(item, "level"),
    )


def _storage(item: Mapping[str, Any]) -> Storage:
    storage_id = item.get("storage")
    if type(storage_id) is not str or not STORAGE_ID.fullmatch(storage_id):
        _fail("storage", storage_id, "a storage id")
    content = _text(item, "content")
    return Storage(
        storage=storage_id,
        node=_node_name(item, "node"),
        plugintype=_text(item, "plugintype"),
        shared=_flag(item, "shared"),
        disk=_count(item, "disk"),
        maxdisk=_count(item, "maxdisk"),
        status=_text(item, "status", "available"),
        content=tuple(content.split(",")) if content else (),
    )


@dataclass(frozen=True, slots=True)
class Member:
    """A node entry of ``/cluster/status``: what corosync knows about it."""

    online: bool
    nodeid: int | None
    ip: str | None
    votes: int | None


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    name: str | None  # None: a standalone node (no cluster entry)
    quorate: bool
    members: dict[str, Member]


def parse_cluster_status(items: Any, warnings: Warnings) -> ClusterStatus:
    """``GET /cluster/status`` -> cluster name, quorum and members by node name.

    A standalone node has no ``cluster`` entry: the name is then None (the caller uses the node's
    name and treats a lone node as quorate). A cluster entry whose name or quorum cannot be read
    counts as a cluster without quorum: nothing should act on a cluster in doubt.
    """
    endpoint = "GET /cluster/status"
    name: str | None = None
    quorate = False
    members: dict[str, Member] = {}

    def read(item: Mapping[str, Any]) -> None:
        nonlocal name, quorate
        kind = item.get("type")
        if type(kind) is not str:
            raise BadValue("type", kind, "an entry type")
        if kind == "cluster":
            if name is not None:
                raise BadValue("type", kind, "a single cluster entry (duplicate)")
            name = ""  # an unreadable cluster entry still says "this is a cluster"
            name, quorate = _text(item, "name"), _flag(item, "quorate")
        elif kind == "node":
            member_name = _node_name(item, "name")
            if member_name in members:
                raise BadValue("name", member_name, "a node not listed before (duplicate)")
            members[member_name] = Member(
                online=_flag(item, "online"),
                nodeid=_optional_int(item, "nodeid"),
                ip=_optional_text(item, "ip"),
                votes=_optional_int(item, "votes"),
            )

    _each(endpoint, items, warnings, read)
    return ClusterStatus(name, quorate, members)


def merge_membership(
    nodes: dict[str, Node], members: Mapping[str, Member], votes: Mapping[str, int]
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
            node = Node(name=node_name, status="online" if member is not None and member.online else "offline")
        if member is not None:
            node = replace(
                node,
                nodeid=member.nodeid,
                ip=member.ip,
                votes=member.votes if member.votes is not None else votes.get(node_name, 1),
            )
        elif node_name in votes:
            node = replace(node, votes=votes[node_name])
        merged.append(node)
    return tuple(merged)


# ---------------------------------------------------------------------- slow-cadence data


def parse_crs(options: Any, warnings: Warnings) -> CrsOptions:
    """The ``crs`` datacenter option, given as a parsed object or a ``k=v,k=v`` property string."""
    endpoint = "GET /cluster/options"
    if not isinstance(options, Mapping):
        raise MalformedAnswer(endpoint, f"expected an object, got {_kind(options)}")
    crs = options.get("crs")
    if not crs:
        return CrsOptions()
    if isinstance(crs, str):
        crs = dict(_property(part) for part in crs.split(",") if part)
    if not isinstance(crs, Mapping):
        warnings.add(f"{endpoint}: ignored the crs option {_show(crs)} (expected an object or a property string)")
        return CrsOptions()
    try:
        return CrsOptions(ha=_text(crs, "ha", "basic"), ha_auto_rebalance=_flag(crs, "ha-auto-rebalance"))
    except BadValue as exc:
        warnings.add(f"{endpoint}: ignored the crs option: {exc}")
        return CrsOptions()


def parse_tag_colors(options: Any) -> tuple[tuple[str, str, str], ...]:
    """The datacenter ``tag-style`` option's ``color-map`` (``tag:BG[:FG];...``, hex colours) as
    (tag, background, foreground or ""); tags not in it get PVE's computed colour (``ui``)."""
    style = options.get("tag-style") if isinstance(options, Mapping) else None
    if isinstance(style, str):
        style = dict(part.partition("=")[::2] for part in style.split(",") if "=" in part)
    color_map = style.get("color-map") if isinstance(style, Mapping) else None
    if not isinstance(color_map, str):
        return ()
    colors = []
    for entry in color_map.split(";"):
        tag, _, rest = entry.partition(":")
        background, _, foreground = rest.partition(":")
        if tag and re.fullmatch(r"[0-9A-Fa-f]{6}", background) and re.fullmatch(r"([0-9A-Fa-f]{6})?", foreground):
            colors.append((tag, background.upper(), foreground.upper()))
    return tuple(colors)


def _property(part: str) -> tuple[str, str]:
    """``key=value`` of a property string; a bare value is the default key (``ha``)."""
    key, sep, value = part.partition("=")
    return (key, value) if sep else ("ha", part)


def parse_ha_rules(items: Any, warnings: Warnings) -> tuple[HaRule, ...]:
    """``GET /cluster/ha/rules`` -> HaRule tuple (``nodes "pve1:2,pve2"``, priority default 0)."""
    rules: list[HaRule] = []

    def read(item: Mapping[str, Any]) -> None:
        rule_id, kind = item.get("rule"), item.get("type")
        if type(rule_id) is not str or not rule_id or len(rule_id) > MAX_TEXT:
            _fail("rule", rule_id, "a rule id")
        if type(kind) is not str or not kind:
            _fail("type", kind, "a rule type")
        rules.append(
            HaRule(
                rule=rule_id,
                type=kind,
                resources=tuple(r for r in _text(item, "resources").split(",") if r),
                nodes=tuple(_node_priority(n) for n in _text(item, "nodes").split(",") if n),
                strict=_flag(item, "strict"),
                affinity=_optional_text(item, "affinity"),
                disabled=_flag(item, "disable"),
            )
        )

    _each("GET /cluster/ha/rules", items, warnings, read)
    return tuple(rules)


def _node_priority(text: str) -> tuple[str, int]:
    name, _, priority = text.partition(":")
    if not NODE_NAME.fullmatch(name) or (priority and not _INT_TEXT.fullmatch(priority)):
        _fail("nodes", text, "NODE or NODE:PRIORITY")
    return name, int(priority) if priority else 0


def parse_config_nodes(items: Any, warnings: Warnings) -> dict[str, int]:
    """``GET /cluster/config/nodes`` -> corosync ``quorum_votes`` by node name."""
    votes: dict[str, int] = {}

    def read(item: Mapping[str, Any]) -> None:
        name = _node_name(item, "node" if item.get("node") is not None else "name")
        votes[name] = _count(item, "quorum_votes") if item.get("quorum_votes") is not None else 1

    _each("GET /cluster/config/nodes", items, warnings, read)
    return votes


def parse_ha_node_states(answer: Any) -> dict[str, str]:
    """``GET /cluster/ha/status/manager_status`` -> the HA manager's state of each node
    (``node_status``: online, maintenance, fence, unknown, gone); empty without HA."""
    status = answer.get("manager_status") if isinstance(answer, Mapping) else None
    nodes = status.get("node_status") if isinstance(status, Mapping) else None
    if not isinstance(nodes, Mapping):
        return {}
    return {str(name): str(state) for name, state in nodes.items() if isinstance(state, str)}


# ---------------------------------------------------------------------- detail-pane data


def parse_rows(endpoint: str, items: Any) -> list[dict[str, Any]]:
    """A list of objects (rrddata): entries that are not objects are dropped, and so are values
    that are not finite (JSON's 1e400 reads as infinity) — a gap in a graph, not a crash."""
    return [
        {key: value for key, value in row.items() if not (type(value) is float and not math.isfinite(value))}
        for row in _entries(endpoint, items)
        if type(row) is dict
    ]


def parse_object(endpoint: str, value: Any) -> dict[str, Any]:
    """An object (a config, a node's status); its values stay raw, read by who shows them."""
    if type(value) is not dict:
        raise MalformedAnswer(endpoint, f"expected an object, got {_kind(value)}")
    return value


def _number(value: Any) -> float | None:
    """A finite number (PVE sends some as strings, e.g. loadavg), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or number < 0 else int(number)


def _pressure(values: Mapping[str, Any]) -> list[tuple[str, float]]:
    """PSI figures (``pressurecpusome`` -> ``cpusome``): PVE 9 gives them in rrddata."""
    found = []
    for key in sorted(values):
        number = _number(values[key]) if key.startswith("pressure") else None
        if number is not None:
            found.append((key.removeprefix("pressure").strip("-_") or "some", number))
    return found


def parse_node_basics(status: Any, pressure_row: Mapping[str, Any] | None = None) -> NodeBasics:
    """A node's status (``GET /nodes/{node}/status``), and its latest PSI figures from rrddata
    when asked for, as ``NodeBasics``; what is missing or unreadable stays unknown."""
    if type(status) is not dict:
        status = {}
    loadavg = status.get("loadavg")
    loads = tuple(n for n in (_number(v) for v in loadavg[:3]) if n is not None) if isinstance(loadavg, list) else ()
    swap = status.get("swap") if isinstance(status.get("swap"), dict) else {}
    ksm = status.get("ksm") if isinstance(status.get("ksm"), dict) else {}
    kernel = status.get("current-kernel") if isinstance(status.get("current-kernel"), dict) else {}
    pressure = dict(_pressure(status))
    pressure.update(_pressure(pressure_row or {}))
    return NodeBasics(
        loadavg=loads,
        io_delay=_number(status.get("wait")),
        swap_used=_whole(swap.get("used")),
        swap_total=_whole(swap.get("total")),
        ksm_shared=_whole(ksm.get("shared")),
        pressure=tuple(sorted(pressure.items())),
        pveversion=str(status.get("pveversion") or "")[:MAX_TEXT],
        kernel=str(kernel.get("release") or status.get("kversion") or "")[:MAX_TEXT],
        uptime=_whole(status.get("uptime")),
    )


# ---------------------------------------------------------------------- the snapshot


def build_snapshot(
    resources: Any,
    status: Any,
    *,
    crs: CrsOptions,
    ha_rules: Iterable[HaRule],
    fetched_at: float,
    api_requests: int,
    votes: Mapping[str, int] | None = None,
    ha_node_states: Mapping[str, str] | None = None,
    tag_colors: tuple[tuple[str, str, str], ...] = (),
    warnings: Iterable[str] = (),
) -> ClusterSnapshot:
    """One immutable snapshot from the two per-refresh answers plus the cached slow data.

    ``warnings`` are those of the slow data (they stay until it is read again); the entries
    skipped here are added to them.
    """
    found = Warnings(warnings)
    nodes_by_name, guests, storage = parse_resources(resources, found)
    cluster = parse_cluster_status(status, found)
    nodes = merge_membership(nodes_by_name, cluster.members, votes or {})
    if ha_node_states:
        nodes = tuple(
            replace(node, hastate=ha_node_states[node.name]) if node.name in ha_node_states else node for node in nodes
        )
    cluster_name, quorate = cluster.name, cluster.quorate
    if cluster_name is None:  # a standalone node: no corosync, always "quorate"
        cluster_name = nodes[0].name if len(nodes) == 1 else ""
        quorate = True
    guests.sort(key=_by_vmid)
    return ClusterSnapshot(
        cluster_name=cluster_name,
        quorate=quorate,
        nodes=nodes,
        guests=tuple(guests),
        storage=tuple(storage),
        ha_rules=tuple(ha_rules),
        crs=crs,
        fetched_at=fetched_at,
        api_requests=api_requests,
        warnings=found.as_tuple(),
        tag_colors=tag_colors,
    )


def _by_vmid(guest: Guest) -> int:
    return guest.vmid


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """A short, printable description of a bad value (never its full text: it may be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(item: Any) -> str:
    if isinstance(item, Mapping):
        for key in ("id", "name", "rule", "node", "vmid"):
            if isinstance(item.get(key), (str, int)) and not isinstance(item.get(key), bool):
                return _show(item[key])
        return _show(dict(list(item.items())[:3]))
    return _show(item)
