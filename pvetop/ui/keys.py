"""Every key is rebindable: each binding has an id, the user's ``[keys]`` table maps ids to keys.

Textual applies the map (``App.set_keymap``) to the footer and to the keys themselves; help and
the command palette read the keys in force through ``keys_of``. Ids are checked before the
dashboard starts, so a typo in the config file is an error naming the nearest id, not a key
that silently does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from difflib import get_close_matches

from textual.binding import Binding
from textual.dom import DOMNode

from pvetop.errors import UsageError


def _pvetop_classes(base: type = DOMNode) -> Iterator[type]:
    cls: type
    for cls in base.__subclasses__():
        if cls.__module__.startswith("pvetop."):
            yield cls
        yield from _pvetop_classes(cls)


def binding_ids(extra: list[Binding] | None = None) -> set[str]:
    """The id of every binding of every pvetop widget, screen and app class loaded so far."""
    ids = {binding.id for binding in extra or () if binding.id}
    for cls in _pvetop_classes():
        for item in cls.__dict__.get("BINDINGS", []):
            if isinstance(item, Binding) and item.id:
                ids.add(item.id)
    return ids


def check_keymap(keymap: Mapping[str, str], known: set[str]) -> None:
    """Refuses an unknown binding id (with the nearest known one) or an empty key."""
    for binding_id, keys in keymap.items():
        if binding_id not in known:
            close = get_close_matches(binding_id, sorted(known), n=1, cutoff=0.6)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"[keys]: no binding with the id {binding_id!r}",
                hint=f"{suggestion}binding ids: {', '.join(sorted(known))}",
            )
        if not isinstance(keys, str) or not keys.strip():
            raise UsageError(f'[keys]: {binding_id} needs a key such as "f2" or "ctrl+x" (several: "a,f2")')


def keys_of(binding: Binding, keymap: Mapping[str, str]) -> str:
    """The keys in force for ``binding``: the user's when the keymap names its id."""
    return keymap.get(binding.id, binding.key) if binding.id else binding.key
