"""Albums: Telegram delivers each part as its own update; the relay sends them together."""

from __future__ import annotations

from typing import Any


def merge_album(
    payload: dict[str, Any],
    context: dict[str, Any],
    ids: list[int],
    media: list[dict[str, Any]],
    key: str = "customer_message_ids",
) -> None:
    """Add album parts to an album delivery, keeping the parts in their order. ``key`` names
    the list of source message ids in the context."""
    known: list[int] = list(context.get(key) or [])
    items: list[dict[str, Any]] = list(payload.get("media") or [])
    for message_id, item in zip(ids, media, strict=True):
        if message_id in known:
            continue
        known.append(message_id)
        items.append(item)
    order = sorted(range(len(known)), key=known.__getitem__)
    context[key] = [known[i] for i in order]
    payload["media"] = [items[i] for i in order]
