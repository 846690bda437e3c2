"""Reading a customer's message: its text, its files, its album part."""

from __future__ import annotations

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


def relay_item(message: Message) -> RelayItem:
    media = album_media(message) if message.media_group_id else None
    return RelayItem(message.message_id, media=media, attachment=attachment_of(message))


def relay_item_to_dict(item: RelayItem) -> dict[str, Any]:
    return {
        "message_id": item.message_id,
        "media": item.media,
        "attachment": item.attachment.as_dict() if item.attachment else None,
    }


def relay_item_from_dict(data: dict[str, Any]) -> RelayItem:
    attachment = data.get("attachment")
    return RelayItem(
        int(data["message_id"]),
        media=data.get("media"),
        attachment=AttachmentIn.from_dict(attachment) if attachment else None,
    )
