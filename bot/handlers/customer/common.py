"""Reading a customer's message: its text, its files, its album part."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiogram.types import Message

from bot.services.tickets import AttachmentIn, RelayItem


def image_of(message: Message) -> AttachmentIn | None:
    """A screenshot: a photo, or a file whose type is an image."""
    if message.photo:
        largest = message.photo[-1]
        return AttachmentIn("photo", largest.file_id, largest.file_unique_id)
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return AttachmentIn(
            "document",
            document.file_id,
            document.file_unique_id,
            document.file_name,
            document.mime_type,
        )
    return None


def attachment_of(message: Message) -> AttachmentIn | None:
    """Any file kept with a ticket: images, and other documents sent as follow-ups."""
    image = image_of(message)
    if image is not None:
        return image
    if message.document is not None:
        doc = message.document
        return AttachmentIn(
            "document", doc.file_id, doc.file_unique_id, doc.file_name, doc.mime_type
        )
    return None


def album_media(message: Message) -> dict[str, Any] | None:
    media: dict[str, Any]
    if message.photo:
        media = {"type": "photo", "media": message.photo[-1].file_id}
    elif message.video:
        media = {"type": "video", "media": message.video.file_id}
    elif message.document:
        media = {"type": "document", "media": message.document.file_id}
    elif message.audio:
        media = {"type": "audio", "media": message.audio.file_id}
    else:
        return None
    if message.caption:
        media["caption"] = message.caption
        if message.caption_entities:
            media["caption_entities"] = [
                entity.model_dump(mode="json", exclude_none=True)
                for entity in message.caption_entities
            ]
    return media


def relay_item(message: Message, *, coalesce: bool = False) -> RelayItem:
    media = album_media(message) if message.media_group_id else None
    text = message.text
    return RelayItem(
        message.message_id,
        media=media,
        attachment=attachment_of(message),
        media_group_id=message.media_group_id,
        text_html=message.html_text if text is not None else None,
        text_length=len(text.encode("utf-16-le")) // 2 if text is not None else 0,
        sent_at=message.date,
        coalesce=coalesce,
    )


def relay_item_to_dict(item: RelayItem) -> dict[str, Any]:
    return {
        "message_id": item.message_id,
        "media": item.media,
        "attachment": item.attachment.as_dict() if item.attachment else None,
        "media_group_id": item.media_group_id,
        "text_html": item.text_html,
        "text_length": item.text_length,
        "sent_at": item.sent_at.timestamp() if item.sent_at else None,
        "coalesce": item.coalesce,
    }


def relay_item_from_dict(data: dict[str, Any]) -> RelayItem:
    attachment = data.get("attachment")
    sent_at = data.get("sent_at")
    return RelayItem(
        int(data["message_id"]),
        media=data.get("media"),
        attachment=AttachmentIn.from_dict(attachment) if attachment else None,
        media_group_id=data.get("media_group_id"),
        text_html=data.get("text_html"),
        text_length=int(data.get("text_length") or 0),
        sent_at=datetime.fromtimestamp(sent_at, UTC) if sent_at is not None else None,
        coalesce=bool(data.get("coalesce")),
    )
