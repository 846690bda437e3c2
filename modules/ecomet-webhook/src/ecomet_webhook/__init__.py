"""An outgoing webhook for the e-Comet support desk: the desk's example module.

Every ticket event is put in the module's own queue by its hook (a table its migration
creates) and POSTed from there as signed JSON, with retries, by its task; staff see the recent
deliveries with ``/webhooks``. The entry point (pyproject.toml) names :func:`create`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import aiohttp

from bot.modules.api import Audience, EventKind, MenuCommand, Module, ModuleContext, TicketEvent
from ecomet_webhook import commands, queue, sending
from ecomet_webhook.settings import WebhookSettings

HERE = Path(__file__).resolve().parent
LEASE = timedelta(minutes=2)  # a claimed delivery is another worker's after this
BATCH = 20
KEEP = timedelta(days=30)  # how long finished deliveries stay listed


class Webhook:
    """The hook that queues and the task that sends, sharing a wake-up call."""

    def __init__(self) -> None:
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def queue_event(self, event: TicketEvent, context: ModuleContext) -> None:
        settings = _settings(context)
        if not settings.enabled or event.kind not in settings.events:
            return
        queued = await queue.enqueue(
            context.sessions,
            event_key=event.key,
            event=event.kind.value,
            ticket_number=event.ticket.number,
            payload=sending.body_of(event.as_json()),
            now=context.clock.now(),
        )
        if queued:
            self.wake()

    async def deliver(self, context: ModuleContext) -> None:
        """Send what is due, forever (the desk starts it, and again if it fails)."""
        settings = _settings(context)
        if not settings.enabled:
            context.log.info("OUTGOING_WEBHOOK_URL is not set: the webhook sends nothing")
            return
        self._wake = asyncio.Event()
        secret = settings.secret.get_secret_value()
        swept = None
        async with aiohttp.ClientSession() as http:
            while True:
                self._wake.clear()
                if swept is None or context.clock.now() - swept > timedelta(hours=1):
                    swept = context.clock.now()
                    await queue.forget_before(context.sessions, swept - KEEP)
                claimed = await queue.claim(
                    context.sessions,
                    now=context.clock.now(),
                    lease=LEASE,
                    limit=BATCH,
                    skip_locked=not context.single_writer,
                )
                for delivery in claimed:
                    outcome = await sending.post(
                        http,
                        settings.url,
                        secret,
                        event=delivery.event,
                        key=delivery.event_key,
                        body=delivery.payload,
                        timeout=settings.timeout,
                    )
                    now = context.clock.now()
                    retry_at = (
                        None
                        if outcome.sent
                        else sending.next_try(
                            now,
                            delivery.attempts + 1,
                            base=settings.retry_base,
                            most=settings.retry_max,
                            max_attempts=settings.max_attempts,
                            retry_after=outcome.retry_after,
                        )
                    )
                    if not outcome.sent:
                        context.log.warning(
                            "delivery %s (ticket #%s) failed: %s; %s",
                            delivery.event_key,
                            delivery.ticket_number,
                            outcome.error,
                            f"next try at {retry_at:%H:%M:%S}" if retry_at else "given up",
                        )
                    await queue.settle(
                        context.sessions,
                        delivery,
                        now=now,
                        sent=outcome.sent,
                        response_status=outcome.status,
                        error=outcome.error,
                        retry_at=retry_at,
                    )
                if len(claimed) < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), settings.poll_interval)


def _settings(context: ModuleContext) -> WebhookSettings:
    assert isinstance(context.settings, WebhookSettings)
    return context.settings


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "translated later"
    """A sentence of the catalog, translated where it is shown (the command menus)."""
    return message


def create() -> Module:
    webhook = Webhook()
    return Module(
        description="POSTs each ticket event as signed JSON to OUTGOING_WEBHOOK_URL; /webhooks",
        routers={Audience.STAFF: commands.create_router},
        commands={Audience.STAFF: [MenuCommand("webhooks", N_("Recent webhook deliveries"))]},
        settings=WebhookSettings,
        migrations=HERE / "migrations",
        locales=HERE / "locales",
        domain="ecomet_webhook",
        hooks=dict.fromkeys(EventKind, webhook.queue_event),
        tasks=[webhook.deliver],
    )
