"""The automation's settings: one declaration per key (default, type, bounds, help).

Settings are stored per cluster in the store as JSON values; this module only says which keys
exist, what they mean and how a text typed by a user becomes a valid value. The CLI
(`pvetop settings`), the UI and the workers all read the same table, so a key is validated the
same way wherever it is set. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pvetop.errors import UsageError


@dataclass(frozen=True)
class SettingSpec:
    """One setting: ``parse`` turns a user's text into a value or raises ``ValueError`` saying why."""

    key: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    choices: tuple[str, ...] = ()
    # The risk a user must confirm before ``value`` is set (e.g. a lower safety margin); None: none.
    confirm: Callable[[Any], str | None] | None = None

    def risk(self, value: Any) -> str | None:
        return self.confirm(value) if self.confirm is not None else None

    def validate(self, value: Any) -> Any:
        """A stored or typed value, checked again (the store may hold a value an older version wrote)."""
        return self.parse(str(value) if not isinstance(value, str) else value)


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def number(minimum: float, maximum: float, *, integer: bool = False) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except (TypeError, ValueError):
            raise ValueError(f"must be {'a whole number' if integer else 'a number'}") from None
        if value != value or not minimum <= value <= maximum:  # NaN fails too
            raise ValueError(f"must be between {minimum:g} and {maximum:g}")
        return value

    return parse


def fraction(minimum: float, maximum: float) -> Callable[[str], float]:
    """A fraction typed as one (``0.25``) or as the percentage pvetop shows it as (``25%``)."""
    plain = number(minimum, maximum)

    def parse(text: str) -> float:
        value = str(text).strip()
        if not value.endswith("%"):
            return float(plain(value))
        try:
            percent = float(value[:-1].strip())
        except ValueError:
            raise ValueError("must be a number or a percentage") from None
        if percent != percent or not minimum * 100 <= percent <= maximum * 100:  # NaN fails too
            raise ValueError(f"must be between {minimum * 100:g}% and {maximum * 100:g}%")
        return percent / 100

    return parse


def boolean(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


class SettingsRegistry:
    """All known settings; each domain (balancer, power…) registers its own specs."""

    def __init__(self, specs: Iterable[SettingSpec] = ()) -> None:
        self._specs: dict[str, SettingSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: SettingSpec) -> None:
        if spec.key in self._specs:
            raise ValueError(f"setting {spec.key!r} declared twice")
        self._specs[spec.key] = spec

    def __iter__(self) -> Iterator[SettingSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.key))

    def spec(self, key: str) -> SettingSpec:
        try:
            return self._specs[key]
        except KeyError:
            from difflib import get_close_matches

            close = get_close_matches(key, self._specs, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (see `pvetop settings list`)"
            raise UsageError(f"unknown setting {key!r}{hint}") from None

    def parse(self, key: str, text: str) -> Any:
        """A user's text for ``key`` as a valid value, or a UsageError naming the key and the rule."""
        spec = self.spec(key)
        try:
            return spec.parse(text)
        except ValueError as exc:
            raise UsageError(f"setting {key}: {text!r} {exc}") from None

    def effective(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Every known key with its stored value, or its default where none (or an invalid one) is stored."""
        values: dict[str, Any] = {}
        for spec in self:
            values[spec.key] = spec.default
            if spec.key in stored:
                try:
                    values[spec.key] = spec.validate(stored[spec.key])
                except ValueError:
                    pass  # an unreadable stored value falls back to the default rather than stopping automation
        return values
