"""``/webhooks`` in the staff group: the recent deliveries and how they went."""

from __future__ import annotations

from aiogram import Router, html
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.modules.api import ModuleContext, ModuleTexts
from bot.services.messaging import Messenger
from ecomet_webhook.queue import Delivery, recent
from ecomet_webhook.settings import WebhookSettings


def create_router(context: ModuleContext) -> Router:
    settings = context.settings
    texts = context.texts
    assert isinstance(settings, WebhookSettings)
    assert texts is not None

    async def webhooks_command(
        message: Message, session: AsyncSession, messenger: Messenger, locale: str
    ) -> None:
        thread = message.message_thread_id if message.is_topic_message else None
        text = await listing(session, settings, texts, locale)
        await messenger.send(session, message.chat.id, text, thread_id=thread)

    router = Router(name="ecomet_webhook")
    router.message.register(webhooks_command, Command("webhooks"))
    return router


async def listing(
    session: AsyncSession, settings: WebhookSettings, texts: ModuleTexts, locale: str
) -> str:
    def _(message: str) -> str:
        return texts.gettext(message, locale)

    if not settings.enabled:
        return _("The outgoing webhook is off: OUTGOING_WEBHOOK_URL is not set.")
    rows = await recent(session)
    if not rows:
        return _("No webhook deliveries yet. They go to {url}.").format(
            url=html.quote(settings.url)
        )
    lines = [_("<b>Recent webhook deliveries</b> to {url}:").format(url=html.quote(settings.url))]
    lines += [line(row, texts, locale) for row in rows]
    return "\n".join(lines)


def line(row: Delivery, texts: ModuleTexts, locale: str) -> str:
    def _(message: str) -> str:
        return texts.gettext(message, locale)

    if row.status == "sent":
        state = _("✅ delivered ({status})").format(status=row.response_status)
    elif row.status == "failed":
        state = _("❌ given up after {attempts} tries: {error}").format(
            attempts=row.attempts, error=html.quote(row.error or "")
        )
    elif row.attempts:
        state = _("⏳ waiting, {attempts} tries so far: {error}").format(
            attempts=row.attempts, error=html.quote(row.error or "")
        )
    else:
        state = _("⏳ on its way")
    when = row.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"#{row.ticket_number} · {html.quote(row.event)} · {state} · {when}"
