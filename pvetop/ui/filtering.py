"""The `/` filter: which guests a query selects.

A query is space-separated terms, all of which must match (AND). A term is matched,
case-insensitively, against the guest's name, vmid, tags, node, status and type; ``field:text``
restricts it to one field (``name:``, ``vmid:``, ``tag:``, ``node:``, ``status:``, ``type:``,
``pool:``). Each term is a regular expression (``^web-\\d+$``); text that is not a valid
expression is matched literally, and ``problems`` says so (and names an unknown ``field:``), so
a query that selects nothing always says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pvetop.model import Guest

FIELDS: dict[str, Callable[[Guest], tuple[str, ...]]] = {
    "name": lambda g: (g.name,),
    "vmid": lambda g: (str(g.vmid),),
    "tag": lambda g: g.tags,
    "node": lambda g: (g.node,),
    "status": lambda g: (g.status,),
    "type": lambda g: (g.type, "vm" if g.type == "qemu" else "ct"),
    "pool": lambda g: (g.pool or "",),
}


def _all_fields(guest: Guest) -> tuple[str, ...]:
    return (guest.name, str(guest.vmid), guest.node, guest.status, guest.type, *guest.tags)


@dataclass(frozen=True)
class _Term:
    pattern: re.Pattern[str]
    values: Callable[[Guest], tuple[str, ...]]

    def matches(self, guest: Guest) -> bool:
        search = self.pattern.search
        return any(search(value) for value in self.values(guest))


def _compile(text: str, problems: list[str]) -> re.Pattern[str]:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        problems.append(f"“{text}” is no regular expression ({exc.msg}): matched as plain text")
        return re.compile(re.escape(text), re.IGNORECASE)


@dataclass(frozen=True)
class GuestFilter:
    """A parsed query; ``GuestFilter.parse("")`` selects every guest."""

    text: str
    terms: tuple[_Term, ...]
    problems: tuple[str, ...] = ()  # why a term may not match what the user meant

    @classmethod
    def parse(cls, text: str) -> GuestFilter:
        terms = []
        problems: list[str] = []
        for word in text.split():
            field_name, sep, rest = word.partition(":")
            if sep and rest and field_name.lower() in FIELDS:
                terms.append(_Term(_compile(rest, problems), FIELDS[field_name.lower()]))
            else:
                if sep and rest and field_name.isalpha():
                    problems.append(f"no field “{field_name}:” (fields: {', '.join(f + ':' for f in FIELDS)})")
                terms.append(_Term(_compile(word, problems), _all_fields))
        return cls(text.strip(), tuple(terms), tuple(problems))

    @property
    def active(self) -> bool:
        return bool(self.terms)

    def matches(self, guest: Guest) -> bool:
        return all(term.matches(guest) for term in self.terms)


NO_FILTER = GuestFilter.parse("")
