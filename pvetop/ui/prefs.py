"""A user's dashboard preferences per profile: theme, interval, sort, visible columns, tree view.

Kept in ``prefs.json`` beside the config file (the user's config directory), not in the rules
store: the store is per cluster and may be shared by several people and instances (PostgreSQL)
or opened read-only, while how one person likes the tables is theirs alone, on their machine. A
file that cannot be read or holds nonsense is ignored (defaults), never an error at start-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

TABLES = ("nodes", "guests")


def default_prefs_path() -> Path:
    return Path(platformdirs.user_config_dir("pvetop")) / "prefs.json"


@dataclass(frozen=True)
class Prefs:
    theme: str | None = None
    interval: float | None = None
    sort: dict[str, tuple[str, bool]] = field(default_factory=dict)  # table -> (column, reverse)
    hidden: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> hidden column keys
    tree: bool = False
    shown: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> optional columns shown

    @classmethod
    def from_json(cls, data: Any) -> Prefs:
        """Whatever of ``data`` has the right shape; the rest is dropped."""
        if not isinstance(data, dict):
            return cls()
        theme = data.get("theme") if isinstance(data.get("theme"), str) else None
        interval = data.get("interval")
        interval = float(interval) if isinstance(interval, int | float) and 0.2 <= interval <= 3600 else None
        sort = {
            table: (str(value[0]), bool(value[1]))
            for table, value in (data.get("sort") or {}).items()
            if table in TABLES and isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str)
        }
        hidden, shown = (
            {
                table: tuple(str(key) for key in keys)
                for table, keys in (data[name] if isinstance(data.get(name), dict) else {}).items()
                if table in TABLES and isinstance(keys, list | tuple)
            }
            for name in ("hidden", "shown")
        )
        return cls(theme, interval, sort, hidden, bool(data.get("tree", False)), shown)


def load_prefs(profile: str, path: Path | None = None) -> Prefs:
    try:
        data = json.loads((path or default_prefs_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Prefs()
    return Prefs.from_json(data.get(profile) if isinstance(data, dict) else None)


def save_prefs(profile: str, prefs: Prefs, path: Path | None = None) -> str | None:
    """Writes the profile's preferences (others' kept); returns why it could not, else None."""
    path = path or default_prefs_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[profile] = asdict(prefs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, path)  # a crash never leaves half a file
    except OSError as exc:
        return f"cannot save preferences to {path}: {exc.strerror or exc}"
    return None
