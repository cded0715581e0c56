"""Check Proxmox VE API answers against PVE's own published schema.

The schema subset, ``tests/pve_api_subset.json``, is the endpoints pvetop and the simulator use,
extracted unchanged from pve-docs ``api-viewer/apidata.js`` (the file's ``source`` key names the
pve-docs commit); one endpoint per line so a schema update reads as a diff.

``check_response(method, path, data)`` returns a list of human-readable violations (empty means
the answer conforms). It validates the way PVE's own ``PVE::JSONSchema`` does: a property that is
absent or ``null`` is fine only when the schema marks it ``optional``; booleans travel as 0/1
integers; ``number`` accepts integers; ``additionalProperties: 0`` forbids unknown keys.

Some endpoints publish a schema too loose to catch a wrong shape (``/access/permissions`` is just
"object"). ``CONSUMER_EXPECTATIONS`` adds, per endpoint, the fields real clients (ProxLB, pvetop)
read from them; ``check_response`` applies both.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("pve_api_subset.json")

Schema = dict[str, Any]

# Fields clients rely on where PVE's published return schema says little or nothing. Each entry is
# checked in addition to the official schema; the comment says who reads the fields.
CONSUMER_EXPECTATIONS: dict[tuple[str, str], Schema] = {
    # ProxLB's permission self-test: {path: {privilege: 0|1}}.
    ("GET", "/access/permissions"): {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": {"type": "boolean"},
        },
    },
    # pvetop reads per-node quorum votes from here (/cluster/status has no votes). Corosync values
    # may travel as digit strings.
    ("GET", "/cluster/config/nodes"): {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "node": {"type": "string"},
                "name": {"type": "string"},
                "nodeid": {"type": ["integer", "string"], "pattern": r"\d+"},
                "quorum_votes": {"type": ["integer", "string"], "pattern": r"\d+"},
            },
        },
    },
    # pvetop's task view and ProxLB's task lookup read these fields of every task entry.
    ("GET", "/cluster/tasks"): {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "upid": {"type": "string", "pattern": r"UPID:.+:"},
                "node": {"type": "string"},
                "type": {"type": "string"},
                "id": {"type": "string"},
                "user": {"type": "string"},
                "starttime": {"type": "integer"},
                "endtime": {"type": "integer", "optional": 1},
                "status": {"type": "string", "optional": 1},
            },
        },
    },
    # PVE parses these datacenter.cfg property strings into objects before answering
    # (PVE::DataCenterConfig::parse_datacenter_config); pvetop reads crs to detect PVE's own
    # HA rebalancing (ha-auto-rebalance), so its balancer does not fight the CRS.
    ("GET", "/cluster/options"): {
        "type": "object",
        "properties": {
            "crs": {
                "type": "object",
                "optional": 1,
                "properties": {
                    "ha": {"type": "string", "enum": ["basic", "static", "dynamic"], "optional": 1},
                    "ha-auto-rebalance": {"type": "boolean", "optional": 1},
                    "ha-rebalance-on-start": {"type": "boolean", "optional": 1},
                },
            },
            "migration": {
                "type": "object",
                "optional": 1,
                "properties": {"type": {"type": "string", "enum": ["secure", "insecure"], "optional": 1}},
            },
            "ha": {"type": "object", "optional": 1},
        },
    },
    # ProxLB computes node load from these /nodes fields of every online node.
    ("GET", "/nodes"): {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "disk": {"type": "integer", "optional": 1},
                "maxdisk": {"type": "integer", "optional": 1},
                "id": {"type": "string", "optional": 1},
                "type": {"type": "string", "enum": ["node"], "optional": 1},
            },
        },
    },
    # ProxLB keys pool members by name and reads the qemu/lxc guest index fields below.
    ("GET", "/pools/{poolid}"): {
        "type": "object",
        "properties": {
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "optional": 1}},
                },
            },
        },
    },
    ("GET", "/nodes/{node}/qemu"): {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"disk": {"type": "integer", "optional": 1}},
        },
    },
    # RRD rows: a numeric `time` plus numeric (or null, for gaps) metrics.
    **{
        ("GET", rrd_path): {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"time": {"type": "integer"}},
                "additionalProperties": {"type": "number", "optional": 1},
            },
        }
        for rrd_path in (
            "/nodes/{node}/rrddata",
            "/nodes/{node}/qemu/{vmid}/rrddata",
            "/nodes/{node}/lxc/{vmid}/rrddata",
        )
    },
    # ProxLB splits resources/nodes and reads affinity/disable of every HA rule.
    ("GET", "/cluster/ha/rules"): {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["node-affinity", "resource-affinity"]},
                "resources": {"type": "string"},
                "nodes": {"type": "string", "optional": 1},
                "affinity": {"type": "string", "enum": ["positive", "negative"], "optional": 1},
                "strict": {"type": "boolean", "optional": 1},
                "disable": {"type": "boolean", "optional": 1},
            },
        },
    },
}


class UnknownEndpoint(LookupError):
    """The method and path match no endpoint of the schema subset."""


@lru_cache(maxsize=1)
def _endpoints() -> tuple[tuple[str, str, re.Pattern[str], Schema], ...]:
    """(method, template, compiled path regex, returns schema), literal templates first."""
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    compiled = []
    for endpoint in document["endpoints"]:
        template = endpoint["path"]
        regex = re.compile(
            "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", template))
            + r"\Z"
        )
        compiled.append((endpoint["method"], template, regex, endpoint.get("returns", {})))
    # with several matching templates, the one with fewer placeholders is the specific one
    compiled.sort(key=lambda entry: entry[1].count("{"))
    return tuple(compiled)


def find_endpoint(method: str, path: str) -> tuple[str, Schema]:
    """The schema template and returns schema for a concrete request path."""
    method = method.upper()
    path = path.split("?", 1)[0].rstrip("/") or "/"
    if path.startswith("/api2/json"):
        path = path[len("/api2/json") :]
    for endpoint_method, template, regex, returns in _endpoints():
        if endpoint_method == method and regex.match(path):
            return template, returns
    raise UnknownEndpoint(f"{method} {path} is not in the PVE schema subset")


def check_response(method: str, path: str, data: Any) -> list[str]:
    """Violations of the official returns schema (and consumer expectations) by ``data``."""
    template, returns = find_endpoint(method, path)
    violations = check_value(returns, data, "data")
    extra = CONSUMER_EXPECTATIONS.get((method.upper(), template))
    if extra is not None:
        violations += check_value(extra, data, "data")
    return violations


def check_value(schema: Schema, value: Any, where: str) -> list[str]:
    """Violations of ``schema`` by ``value``; ``where`` names the value in messages."""
    violations: list[str] = []
    _check(schema, value, where, violations)
    return violations


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_matches(type_name: str, value: Any) -> bool:
    if type_name == "null":
        return value is None
    if type_name == "boolean":  # PVE sends 0/1, never JSON true/false
        return type(value) is int and value in (0, 1)
    if type_name == "integer":
        return type(value) is int
    if type_name == "number":
        return type(value) in (int, float)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    raise ValueError(f"schema uses unknown type {type_name!r}")


def _check(schema: Schema, value: Any, where: str, violations: list[str]) -> None:
    declared = schema.get("type")
    if declared is not None:
        allowed = declared if isinstance(declared, list) else [declared]
        if not any(_type_matches(name, value) for name in allowed):
            if value is None and schema.get("optional"):
                return
            violations.append(f"{where}: expected {'|'.join(allowed)}, got {_describe(value)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        violations.append(f"{where}: {_describe(value)} is not one of {schema['enum']}")
    if isinstance(value, str):
        _check_string(schema, value, where, violations)
    elif type(value) in (int, float):
        _check_range(schema, value, where, violations)
    elif isinstance(value, dict):
        _check_object(schema, value, where, violations)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{index}]", violations)


def _check_string(schema: Schema, value: str, where: str, violations: list[str]) -> None:
    pattern = schema.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        violations.append(f"{where}: {_describe(value)} does not match /{pattern}/")
    max_length = schema.get("maxLength")
    if max_length is not None and len(value) > max_length:
        violations.append(f"{where}: longer than {max_length} characters")


def _check_range(schema: Schema, value: float, where: str, violations: list[str]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        violations.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        violations.append(f"{where}: {value} is above the maximum {schema['maximum']}")


def _indexed_property(properties: Schema, key: str) -> Schema | None:
    """Schema of ``acmedomain0`` and the like, published as ``acmedomain[n]``."""
    match = re.fullmatch(r"(.*?)(\d+)", key)
    return properties.get(f"{match.group(1)}[n]") if match else None


def _check_object(schema: Schema, value: dict, where: str, violations: list[str]) -> None:
    properties: Schema = schema.get("properties", {})
    for name, property_schema in properties.items():
        if name.endswith("[n]"):
            continue
        if value.get(name) is None:
            if not property_schema.get("optional") and property_schema.get("type") != "null":
                violations.append(f"{where}: required property {name!r} is missing")
            continue
        _check(property_schema, value[name], f"{where}.{name}", violations)
    additional = schema.get("additionalProperties")
    for key in value.keys() - properties.keys():
        indexed = _indexed_property(properties, key)
        if indexed is not None:
            _check(indexed, value[key], f"{where}.{key}", violations)
        elif isinstance(additional, dict):
            _check(additional, value[key], f"{where}.{key}", violations)
        elif additional == 0:
            violations.append(f"{where}: property {key!r} is not allowed by the schema")
