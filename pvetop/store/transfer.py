"""The export format: every rule and setting as JSON, checked field by field on the way back in.

``from_document`` reads the whole document into records before the store writes anything, and
names the exact place of the first problem (``clusters.homelab.pins[2].vmid``), so a malformed
file gives a clear error and changes nothing. The journal is history, not a rule: never exported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pvetop.errors import PvetopError
from pvetop.store.records import DEFAULT_BOOT_TIMEOUT, Lock, Maintenance, NodePower, Pin, Reservation, StoredRules
from pvetop.store.schema import StoreError
from pvetop.store.validate import check_boot_timeout, check_node, check_nodes, check_vmid, normalise_mac

FORMAT = "pvetop-rules"
FORMAT_VERSION = 1


def to_document(clusters: Iterable[tuple[StoredRules, Mapping[str, Any]]], *, exported_at: float) -> dict:
    out: dict[str, Any] = {}
    for rules, settings in clusters:
        out[rules.cluster] = {
            "pins": [
                {
                    "vmid": p.vmid,
                    "name": p.name,
                    "nodes": sorted(p.nodes),
                    "note": p.note,
                    "created_at": p.created_at,
                    "who": p.who,
                }
                for p in rules.pins
            ],
            "locks": [
                {"vmid": lk.vmid, "name": lk.name, "reason": lk.reason, "created_at": lk.created_at, "who": lk.who}
                for lk in rules.locks
            ],
            "reservations": [
                {"node": r.node, "reason": r.reason, "created_at": r.created_at, "who": r.who}
                for r in rules.reservations
            ],
            "maintenance": [{"node": m.node, "since": m.since, "reason": m.reason} for m in rules.maintenance],
            "node_power": [
                {
                    "node": n.node,
                    "wol_mac": n.wol_mac,
                    "allow_power_off": n.allow_power_off,
                    "boot_timeout": n.boot_timeout,
                }
                for n in rules.node_power
            ],
            "settings": dict(settings),
        }
    return {"format": FORMAT, "version": FORMAT_VERSION, "exported_at": exported_at, "clusters": out}


def load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", hint="nothing was imported"
        ) from None


class _Reader:
    """Typed access to one JSON object with errors that say where the bad value is."""

    def __init__(self, source: str, path: str, value: Any):
        self.source, self.path = source, path
        if not isinstance(value, dict):
            self.fail(f"expected an object, found {_kind(value)}")
        self.value = value

    def fail(self, message: str, key: str | None = None):
        where = f"{self.path}.{key}" if key else self.path
        raise StoreError(f"{self.source}: {where}: {message}", hint="nothing was imported")

    def get(self, key: str, check: Callable[[Any], Any], *, default: Any = ..., nullable: bool = False) -> Any:
        if key not in self.value:
            if default is ...:
                self.fail("missing", key)
            return default
        value = self.value[key]
        if value is None and nullable:
            return None
        try:
            return check(value)
        except (TypeError, ValueError, PvetopError) as exc:
            self.fail(str(exc), key)

    def text(self, key: str, default: Any = "") -> str:
        return self.get(key, _str, default=default)

    def number(self, key: str, default: Any = 0.0) -> float:
        return self.get(key, _float, default=default)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {_kind(value)}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"expected a number, found {_kind(value)}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, found {_kind(value)}")
    return value


def _list(reader: _Reader, key: str) -> list[_Reader]:
    items = reader.get(
        key, lambda v: v if isinstance(v, list) else _raise(f"expected a list, found {_kind(v)}"), default=[]
    )
    return [_Reader(reader.source, f"{reader.path}.{key}[{i}]", item) for i, item in enumerate(items)]


def _raise(message: str):
    raise TypeError(message)


def _unique(reader: _Reader, entries: list, key: Callable[[Any], Any], what: str) -> None:
    seen = set()
    for entry in entries:
        if key(entry) in seen:
            reader.fail(f"{what} {key(entry)} appears twice")
        seen.add(key(entry))


def from_document(document: Any, source: str) -> list[tuple[StoredRules, dict[str, Any]]]:
    top = _Reader(source, "(top)", document)
    if top.value.get("format") != FORMAT:
        top.fail(f'not a pvetop rules export (expected "format": "{FORMAT}")')
    version = top.get(
        "version", lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _raise("expected a whole number")
    )
    if version > FORMAT_VERSION:
        top.fail(f"export format version {version} is newer than this pvetop reads ({FORMAT_VERSION})", "version")
    clusters = top.get(
        "clusters", lambda v: v if isinstance(v, dict) else _raise(f"expected an object, found {_kind(v)}")
    )
    parsed = []
    for name, body in clusters.items():
        if not name.strip():
            top.fail("a cluster name is empty", "clusters")
        cluster = _Reader(source, f"clusters.{name}", body)
        pins = [
            Pin(
                cluster=name,
                vmid=r.get("vmid", check_vmid),
                name=r.text("name"),
                nodes=r.get("nodes", check_nodes),
                note=r.text("note"),
                created_at=r.number("created_at"),
                who=r.text("who"),
            )
            for r in _list(cluster, "pins")
        ]
        locks = [
            Lock(
                cluster=name,
                vmid=r.get("vmid", check_vmid),
                name=r.text("name"),
                reason=r.text("reason"),
                created_at=r.number("created_at"),
                who=r.text("who"),
            )
            for r in _list(cluster, "locks")
        ]
        reservations = [
            Reservation(
                cluster=name,
                node=r.get("node", check_node),
                reason=r.text("reason"),
                created_at=r.number("created_at"),
                who=r.text("who"),
            )
            for r in _list(cluster, "reservations")
        ]
        maintenance = [
            Maintenance(cluster=name, node=r.get("node", check_node), since=r.number("since"), reason=r.text("reason"))
            for r in _list(cluster, "maintenance")
        ]
        power = [
            NodePower(
                cluster=name,
                node=r.get("node", check_node),
                wol_mac=r.get("wol_mac", normalise_mac, default=None, nullable=True),
                allow_power_off=r.get("allow_power_off", _bool, default=False),
                boot_timeout=r.get("boot_timeout", check_boot_timeout, default=DEFAULT_BOOT_TIMEOUT),
            )
            for r in _list(cluster, "node_power")
        ]
        settings = cluster.get(
            "settings",
            lambda v: v if isinstance(v, dict) else _raise(f"expected an object, found {_kind(v)}"),
            default={},
        )
        _unique(cluster, pins, lambda p: p.vmid, "pin of guest")
        _unique(cluster, locks, lambda p: p.vmid, "lock of guest")
        _unique(cluster, reservations, lambda p: p.node, "reservation of node")
        _unique(cluster, maintenance, lambda p: p.node, "maintenance flag of node")
        _unique(cluster, power, lambda p: p.node, "power settings of node")
        parsed.append(
            (
                StoredRules(
                    cluster=name,
                    pins=tuple(pins),
                    locks=tuple(locks),
                    reservations=tuple(reservations),
                    maintenance=tuple(maintenance),
                    node_power=tuple(power),
                ),
                dict(settings),
            )
        )
    return parsed
