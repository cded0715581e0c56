"""Parameter checks with PVE's wording, so bad calls get the same 400 answers as a real node."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pvetop.sim.errors import param_error

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
NODE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")


@dataclass(frozen=True)
class P:
    """One parameter: type (string, integer, number, boolean), required, enum, minimum."""

    type: str = "string"
    required: bool = False
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


def check(spec: Mapping[str, P], raw: dict[str, str]) -> dict:
    """Validates and converts ``raw`` (all strings) against ``spec``; 400 with every problem."""
    errors: dict[str, str] = {}
    values: dict = {}
    for name, value in raw.items():
        param = spec.get(name)
        if param is None:
            errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        text = str(value)
        if param.type == "boolean":
            if text.lower() in TRUE:
                values[name] = 1
            elif text.lower() in FALSE:
                values[name] = 0
            else:
                errors[name] = f"type check ('boolean') failed - got '{text}'"
            continue
        if param.type in ("integer", "number"):
            try:
                number = int(text) if param.type == "integer" else float(text)
            except ValueError:
                errors[name] = f"type check ('{param.type}') failed - got '{text}'"
                continue
            if param.minimum is not None and number < param.minimum:
                errors[name] = f"value must have a minimum value of {param.minimum:g}"
                continue
            if param.maximum is not None and number > param.maximum:
                errors[name] = f"value must have a maximum value of {param.maximum:g}"
                continue
            values[name] = number
            continue
        if param.enum is not None and text not in param.enum:
            errors[name] = f"value '{text}' does not have a value in the enumeration '{', '.join(param.enum)}'"
            continue
        values[name] = text
    for name, param in spec.items():
        if param.required and name not in raw and name not in errors:
            errors[name] = "property is missing and it is not optional"
    if errors:
        raise param_error(errors)
    return values


def normalize_tags(text: str) -> list[str]:
    """pve-tag-list: split on ; , or spaces, each tag checked, deduplicated, sorted."""
    tags = [t for t in re.split(r"[;,\s]+", text) if t]
    for tag in tags:
        if not TAG_RE.match(tag):
            raise param_error({"tags": f"invalid format - invalid tag '{tag}'\n"})
    return sorted(set(tags))


def check_wakeonlan(text: str) -> str:
    """The node config ``wakeonlan`` property: ``[mac=]MAC[,bind-interface=..][,broadcast-address=..]``."""
    mac = None
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = "mac", key
        key = key.strip()
        if key == "mac":
            mac = value.strip()
        elif key not in ("bind-interface", "broadcast-address"):
            raise param_error({"wakeonlan": f"invalid format - property '{key}' not defined\n"})
    if mac is None or not MAC_RE.match(mac):
        raise param_error({"wakeonlan": "invalid format - value does not look like a valid MAC address\n"})
    return text


def _scalar(text: str):
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    return text


def parse_property_string(text: str, default_key: str | None) -> dict:
    """``ha=static,ha-auto-rebalance=1`` -> ``{"ha": "static", "ha-auto-rebalance": 1}``."""
    result: dict = {}
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        if not sep and default_key:
            key, value = default_key, key
        if key.strip():
            result[key.strip()] = _scalar(value.strip())
    return result
