"""A processor's state as a head plus one entry per entity, so a checkpoint writes only the
entities that changed (streams/checkpoints.py).

A processor opts in by naming the maps of its state root that hold entities
(``entity_maps = ("vehicles", "alarms.machines")``). Entries are keyed
``"<map>:<entity>"`` and hold the entity's JSON; the head is the processor's own
``dumps()`` with those maps emptied. ``join`` puts them back together as the JSON the
processor's factory reads, so restoring needs nothing of the processor in advance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec


def _parent(root: object, path: str) -> tuple[object, str]:
    *parents, name = path.split(".")
    obj = root
    for attr in parents:
        obj = getattr(obj, attr)
    return obj, name


def split(root: object, maps: Sequence[str], dumps: Any) -> tuple[bytes, dict[str, bytes]]:
    """(head, entries) of ``root``; ``dumps()`` encodes ``root`` (called with the maps
    emptied for the duration)."""
    entries: dict[str, bytes] = {}
    emptied: list[tuple[object, str, object]] = []
    encode = msgspec.json.encode
    try:
        for path in maps:
            parent, name = _parent(root, path)
            held = getattr(parent, name)
            entries.update({f"{path}:{key}": encode(value) for key, value in held.items()})
            emptied.append((parent, name, held))
            setattr(parent, name, {})
        head = dumps()
    finally:
        for parent, name, held in emptied:
            setattr(parent, name, held)
    return head, entries


def join(head: bytes, entries: Mapping[str, bytes]) -> bytes:
    """The whole state's JSON from a head and its entries."""
    if not entries:
        return head
    doc = msgspec.json.decode(head)
    for key, raw in entries.items():
        path, entity = key.split(":", 1)
        target = doc
        for part in path.split("."):
            target = target.setdefault(part, {})
        target[entity] = msgspec.Raw(raw)
    return msgspec.json.encode(doc)
