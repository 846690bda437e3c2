"""Albums: Telegram delivers each part as its own update; the relay sends them together."""

from __future__ import annotations

from typing import Any


def merge_album(
    payload: dict[str, Any], known: list[int], ids: list[int], media: list[dict[str, Any]]
) -> list[int]:
    """Add album parts (source message ``ids`` and their ``media``) to an album delivery's
    ``payload`` whose parts so far came from ``known``, keeping the parts in their order.
    Returns the source ids of all parts, in that order."""
    known = list(known)
    items: list[dict[str, Any]] = list(payload.get("media") or [])
    for message_id, item in zip(ids, media, strict=True):
        if message_id in known:
            continue
        known.append(message_id)
        items.append(item)
    order = sorted(range(len(known)), key=known.__getitem__)
    payload["media"] = [items[i] for i in order]
    return [known[i] for i in order]
