"""Factories that wire the desk together; ``run`` is the whole life of one bot process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramMigrateToChat
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeChatMember,
    ChatMember,
    Update,
)
from aiogram.utils.i18n import I18n
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.health import TELEGRAM_EVERY, Check, Readiness, add_health_routes
from bot.channels.mail.links import MailLinks
from bot.channels.mail.pages import add_mail_pages
from bot.channels.mail.watcher import MailWatcher
from bot.clock import Clock, SystemClock
from bot.commands import customer_commands, manager_commands, private_commands, staff_commands
from bot.config import Settings
from bot.db.dialog_storage import DatabaseStorage
from bot.db.engine import Database
from bot.db.repositories import DeliveryRepo, DeskSettings, UpdateLog
from bot.db.uow import transaction
from bot.delivery.client import DeskSession, RetryMiddleware, StaleCallbackAnswers
from bot.delivery.limiter import Limits, RateLimiter
from bot.delivery.mail import MailTransport
from bot.delivery.outbox import COALESCE_GRACE, Outbox
from bot.delivery.outcomes import Outcomes
from bot.delivery.sender import LEASE, Sender
from bot.failures import FailureKeeper, PoisonGuard, Replayer
from bot.handlers import create_routers
from bot.handlers.routing import DeskDispatcher
from bot.middlewares.database import UnitOfWorkMiddleware
from bot.middlewares.user import LocaleMiddleware, UserMiddleware
from bot.modules.api import Audience
from bot.modules.loader import Modules
from bot.modules.report import Reporter
from bot.modules.runtime import ModuleRuntime
from bot.polling import Poller
from bot.services.assignment import Assignment
from bot.services.cards import Cards
from bot.services.coalescing import Coalescer
from bot.services.desk_config import DeskConfig
from bot.services.desk_outcomes import DeskOutcomes
from bot.services.isolation import KeyedEventIsolation
from bot.services.macros import MacroService
from bot.services.mail import MailDesk, mail_envelope
from bot.services.managers import ManagerService
from bot.services.membership import Membership
from bot.services.messaging import Messenger
from bot.services.pace import CustomerPace
from bot.services.problems import ProblemService
from bot.services.rendering import Renderer
from bot.services.resolution import ResolutionService
from bot.services.scheduler import Scheduler
from bot.services.staff.actions import StaffActions
from bot.services.staff.lookup import StaffLookup
from bot.services.staff.relay import StaffRelay
from bot.services.tickets import TicketService
from bot.views import mail as mail_views
from bot.views import problems as problem_views
from bot.views import reports as report_views
from bot.views import resolution as resolution_views
from bot.views import staff as staff_views
from bot.views import tickets as ticket_views
from bot.views.desk import desk_views
from bot.views.render import ViewRenderer

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


def create_bot(settings: Settings) -> Bot:
    session = DeskSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryMiddleware())
    session.middleware(StaleCallbackAnswers())
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_i18n(settings: Settings) -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=settings.default_locale, domain="messages")


def create_desk_config(settings: Settings) -> DeskConfig:
    hours = settings.hours
    return DeskConfig(
        staff_chat_id=settings.staff_chat_id,
        hours=hours,
        hours_text=settings.support_hours.replace("-", "–"),
        default_locale=settings.default_locale,
        sla_targets=dict(settings.sla_first_response),
        tariffs=settings.tariffs,
        # Waiting for more of a customer's words costs nothing while the group's own pace
        # would hold the relay back anyway; a group allowed more (a self-hosted server, a
        # benchmark) is not kept waiting longer than its pace.
        coalesce_grace=min(
            COALESCE_GRACE, timedelta(seconds=60 / settings.delivery_group_per_minute)
        ),
    )


def create_events_isolation(settings: Settings) -> BaseEventIsolation:
    """One update at a time per chat and user: across every instance with Redis (two
    instances behind a balancer may get two updates of one chat at once), else in this
    process. The dialog step itself stays in the database, with the update's own transaction
    (bot/middlewares/database.py): Redis cannot commit with it, the database can."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisEventIsolation  # `scale` extra

        class SharedEventIsolation(RedisEventIsolation):
            async def close(self) -> None:
                # aiogram's leaves its connections open at exit.
                await self.redis.aclose(close_connection_pool=True)

        return SharedEventIsolation.from_url(settings.redis_url)
    return KeyedEventIsolation()


def create_dispatcher(
    settings: Settings,
    *,
    database: Database,
    clock: Clock,
    sender: Sender,
    i18n: I18n,
    services: Services,
    events_isolation: BaseEventIsolation | None = None,
    module_routers: Mapping[Audience, Sequence[Router]] | None = None,
) -> Dispatcher:
    """The dispatcher, with every long-lived object handlers may name as a parameter (aiogram
    injects them by name); per-update ones (``session``, ``uow``, ``user``, ``locale``) come from
    the outer middlewares."""
    dispatcher = DeskDispatcher(
        storage=DatabaseStorage(database.writer, clock, database.reader),
        # One update at a time per chat: the parts of an album arrive in order.
        events_isolation=events_isolation or KeyedEventIsolation(),
        # aiogram's FSM middleware would read the dialog step before the update's transaction,
        # on a connection of its own; the unit of work below takes its place (same context,
        # the lock of ``events_isolation``) and reads the step in the transaction.
        disable_fsm=True,
        **services.for_handlers(),
        sender=sender,
        account_pattern=settings.account_number_pattern,
        # The error handler keeps what failed every attempt (bot/failures.py).
        failures=FailureKeeper(
            session_factory=database.writer,
            clock=clock,
            messenger=services.messenger,
            i18n=i18n,
            desk=services.desk,
            after_commit=sender.wake,
        ),
    )
    dispatcher.update.outer_middleware(UnitOfWorkMiddleware(database.writer, clock, sender))
    dispatcher.update.outer_middleware(UserMiddleware(clock))
    LocaleMiddleware(i18n).setup(dispatcher)
    extra = module_routers or {}
    dispatcher.include_routers(
        *create_routers(
            anyone=extra.get(Audience.ANYONE, ()),
            managers=extra.get(Audience.MANAGER, ()),
            staff_group=extra.get(Audience.STAFF, ()),
            customers=extra.get(Audience.CUSTOMER, ()),
        )
    )
    return dispatcher


MenuScope = BotCommandScopeAllPrivateChats | BotCommandScopeChat | BotCommandScopeChatMember


async def set_commands(
    bot: Bot,
    i18n: I18n,
    default_locale: str,
    staff_chat_id: int,
    managers: frozenset[int],
    modules: Callable[[Audience], list[BotCommand]] | None = None,
) -> None:
    """The command menus in each language, and in ``DEFAULT_LOCALE`` for everyone else:
    customers' in private chats, staff's in the staff group, and managers' own commands in
    their private chats and, for them alone, in the staff group; each with the installed
    modules' commands for that audience (``modules``) after the desk's."""
    extra = modules or (lambda _audience: [])
    menus: list[tuple[MenuScope, Callable[[], list[BotCommand]]]] = [
        (
            BotCommandScopeAllPrivateChats(),
            lambda: customer_commands() + extra(Audience.CUSTOMER),
        ),
        (
            BotCommandScopeChat(chat_id=staff_chat_id),
            lambda: staff_commands() + extra(Audience.STAFF),
        ),
    ]
    for manager in sorted(managers):
        menus.append(
            (
                BotCommandScopeChat(chat_id=manager),
                lambda: (
                    private_commands(manager=True)
                    + extra(Audience.CUSTOMER)
                    + extra(Audience.MANAGER)
                ),
            )
        )
        menus.append(
            (
                BotCommandScopeChatMember(chat_id=staff_chat_id, user_id=manager),
                lambda: (
                    staff_commands()
                    + extra(Audience.STAFF)
                    + manager_commands()
                    + extra(Audience.MANAGER)
                ),
            )
        )
    with i18n.context():
        for scope, commands in menus:
            for locale in (*i18n.available_locales, None):
                with i18n.use_locale(locale or default_locale):
                    try:
                        await bot.set_my_commands(commands(), scope=scope, language_code=locale)
                    except TelegramAPIError as error:
                        # A manager who is not in the staff group, say: the menu is a comfort.
                        log.warning("command menu for %s not set: %s", scope.type, error)


async def check_staff_group(bot: Bot, database: Database, desk: DeskConfig, bot_id: int) -> None:
    """Follow a group that moved, learn whether it is a forum, and say plainly what rights the
    bot lacks there (SPEC §5)."""
    async with database.writer() as session:
        moved = await DeskSettings(session).get("staff_chat_id")
    if moved:
        desk.staff_chat_id = int(moved)
    try:
        chat = await bot.get_chat(desk.staff_chat_id)
        member = await bot.get_chat_member(desk.staff_chat_id, bot_id)
    except TelegramMigrateToChat as moved_to:
        log.warning("the staff group moved to %s; following it", moved_to.migrate_to_chat_id)
        desk.staff_chat_id = moved_to.migrate_to_chat_id
        async with transaction(database.writer) as uow:
            session = uow.session
            await DeskSettings(session).put("staff_chat_id", str(desk.staff_chat_id))
        return await check_staff_group(bot, database, desk, bot_id)
    except TelegramAPIError as error:
        log.error(
            "STAFF_CHAT_ID %s: the bot cannot see this group (%s). Add the bot to the staff "
            "group as an administrator.",
            desk.staff_chat_id,
            error,
        )
        return None
    desk.staff_is_forum = bool(chat.is_forum)
    missing = staff_rights_missing(member, forum=desk.staff_is_forum)
    if missing:
        log.error(
            "In the staff group %r the bot lacks: %s. Make it an administrator with these rights.",
            chat.title,
            ", ".join(missing),
        )
    else:
        log.info(
            "staff group %r (%s) is ready%s",
            chat.title,
            desk.staff_chat_id,
            " with a topic per ticket" if desk.staff_is_forum else "",
        )
    return None


def staff_rights_missing(member: ChatMember, *, forum: bool) -> list[str]:
    status = getattr(member, "status", "")
    if status == "creator":
        return []
    if status != "administrator":
        # Only an administrator sees every message of the group (privacy mode).
        return ["administrator status"]
    needed = {"can_manage_topics": "manage topics"} if forum else {}
    return [label for right, label in needed.items() if not getattr(member, right, False)]


async def housekeeping(session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> None:
    """Forget handled update ids after two days (Telegram keeps updates for 24 hours) and sent
    deliveries after a week (the message map keeps what the relay needs)."""
    while True:
        try:
            async with transaction(session_factory) as uow:
                session = uow.session
                await UpdateLog(session).forget_before(clock.now() - timedelta(days=2))
                await DeliveryRepo(session).forget_sent_before(clock.now() - timedelta(days=7))
        except Exception:
            log.exception("housekeeping failed; will try again in an hour")
        await asyncio.sleep(3600)


@dataclass(frozen=True, slots=True)
class Services:
    """The desk's use cases, wired to one outbox: what handlers, timers and the sender's
    outcome handlers are given."""

    desk: DeskConfig
    clock: Clock
    outbox: Outbox
    render: Renderer
    cards: Cards
    tickets: TicketService
    staff_actions: StaffActions
    staff_relay: StaffRelay
    staff_lookup: StaffLookup
    macros: MacroService
    resolution: ResolutionService
    managers: ManagerService
    messenger: Messenger
    membership: Membership
    pace: CustomerPace
    desk_outcomes: DeskOutcomes
    coalescer: Coalescer
    problems: ProblemService
    mail_desk: MailDesk | None  # the e-mail channel, when MAIL_IMAP_URL is set

    def for_handlers(self) -> dict[str, Any]:
        """What handlers may take as parameters, by name."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def create_services(
    settings: Settings,
    database: Database,
    clock: Clock,
    i18n: I18n,
    desk: DeskConfig,
    bot: Bot,
) -> Services:
    """Every use case, built once (``bot``: for the membership checks of the staff group; no
    other service calls Telegram but through the outbox)."""
    outbox = Outbox(clock)
    # Services describe what they send; the views render it (bot/services/rendering.py).
    render = ViewRenderer(
        i18n,
        desk_views(),
        ticket_views.notice_views(),
        resolution_views.notice_views(),
        report_views.notice_views(),
        staff_views.notice_views(),
        mail_views.notice_views(),
        problem_views.notice_views(),
    )
    cards = Cards(outbox=outbox, config=desk, clock=clock, render=render)
    # Who works on a ticket: one path for Take, Assign, a first answer and a Resolve.
    assignment = Assignment(clock=clock, outbox=outbox, config=desk, cards=cards, render=render)
    staff_lookup = StaffLookup(clock=clock, config=desk, cards=cards)
    resolution = ResolutionService(
        clock=clock,
        outbox=outbox,
        config=desk,
        cards=cards,
        render=render,
        assignment=assignment,
        reminder_after=settings.confirm_reminder_after,
        auto_close_after=settings.auto_close_after,
    )
    staff_actions = StaffActions(
        clock=clock,
        outbox=outbox,
        config=desk,
        cards=cards,
        lookup=staff_lookup,
        render=render,
        assignment=assignment,
        after_close=resolution.ask_rating,  # a close by staff asks for a rating too
    )
    staff_relay = StaffRelay(
        clock=clock,
        outbox=outbox,
        config=desk,
        cards=cards,
        lookup=staff_lookup,
        actions=staff_actions,
        render=render,
    )
    tickets = TicketService(
        clock=clock,
        outbox=outbox,
        config=desk,
        cards=cards,
        render=render,
        max_open_tickets=settings.max_open_tickets,
    )
    messenger = Messenger(outbox)
    problems = ProblemService(
        clock=clock, outbox=outbox, config=desk, cards=cards, render=render, resolution=resolution
    )
    resolution.after_dispute = problems.disputed  # a disputed incident leaves its problem
    mail_desk = None
    if settings.mail_enabled:
        mail_desk = MailDesk(
            clock=clock,
            outbox=outbox,
            config=desk,
            cards=cards,
            tickets=tickets,
            resolution=resolution,
            render=render,
            messenger=messenger,
            own_address=parseaddr(settings.mail_from)[1],
            account_pattern=settings.account_number_pattern,
        )
    return Services(
        desk=desk,
        clock=clock,
        outbox=outbox,
        render=render,
        cards=cards,
        tickets=tickets,
        staff_actions=staff_actions,
        staff_relay=staff_relay,
        staff_lookup=staff_lookup,
        macros=MacroService(clock=clock, outbox=outbox, lookup=staff_lookup),
        resolution=resolution,
        managers=ManagerService(
            clock=clock,
            outbox=outbox,
            i18n=i18n,
            config=desk,
            managers=settings.manager_ids,
            summary_time=settings.summary_time,
            render=render,
            chart=report_views.SummaryCharts(i18n),
            read_sessions=database.reader,
        ),
        messenger=messenger,
        membership=Membership(bot, desk, clock),
        pace=CustomerPace(settings.customer_messages_per_minute),
        # What the sender's outcomes mean for the desk (registered with the sender in run()).
        desk_outcomes=DeskOutcomes(
            config=desk,
            clock=clock,
            outbox=outbox,
            render=render,
            managers=settings.manager_ids,
            undelivered=staff_relay.undelivered,
            repost_card=cards.repost,
        ),
        # What a crowded staff group is sent instead of one message per customer message.
        coalescer=Coalescer(config=desk, clock=clock, outbox=outbox, render=render),
        problems=problems,
        mail_desk=mail_desk,
    )


def create_mail_links(settings: Settings) -> MailLinks | None:
    """The signed Solved / Not solved links of mails, when there is a public address."""
    if not settings.mail_enabled or not settings.public_url:
        return None
    return MailLinks(secret=settings.bot_token.get_secret_value(), public_url=settings.public_url)


def create_mail_transport(
    settings: Settings, bot: Bot, database: Database, clock: Clock, links: MailLinks | None
) -> MailTransport | None:
    """How answers reach customers who write by e-mail (SPEC §10), when that channel is on."""
    if not settings.mail_enabled:
        return None
    return MailTransport(
        bot=bot,
        smtp=settings.smtp,
        sender=settings.mail_from,
        addressing=mail_envelope,
        session_factory=database.writer,
        clock=clock,
        button_link=links.for_button if links is not None else None,
    )


def create_web_app(
    settings: Settings,
    database: Database,
    i18n: I18n,
    services: Services,
    links: MailLinks | None,
    after_commit: Callable[[], None],
    readiness: Readiness,
) -> web.Application:
    """The bot's web app: ``/healthz`` and ``/readyz``, and the pages of the links in mails."""
    app = web.Application()
    add_health_routes(app, readiness)
    if links is not None and services.mail_desk is not None:
        add_mail_pages(
            app,
            links=links,
            desk=services.mail_desk,
            session_factory=database.writer,
            render=services.render,
            i18n=i18n,
            default_locale=settings.default_locale,
            after_commit=after_commit,
        )
    return app


def create_readiness(settings: Settings, database: Database, bot: Bot) -> Readiness:
    """What ``/readyz`` checks: the database, Redis when the desk uses it, Telegram."""

    async def database_answers() -> None:
        async with database.reader() as session:
            await session.execute(sql_text("SELECT 1"))

    async def telegram_answers() -> None:
        await bot.get_me()

    checks: dict[str, Check] = {"database": database_answers, "telegram": telegram_answers}
    if settings.redis_url:
        from redis.asyncio import Redis  # the `scale` extra: only with REDIS_URL

        redis = Redis.from_url(settings.redis_url)

        async def redis_answers() -> None:
            await redis.ping()  # type: ignore[misc]  # redis-py types ping for both clients

        checks["redis"] = redis_answers
    return Readiness(checks, remember={"telegram": TELEGRAM_EVERY})


def create_scheduler(
    settings: Settings,
    database: Database,
    clock: Clock,
    services: Services,
    *,
    after_commit: Callable[[], None],
) -> Scheduler:
    return Scheduler(
        session_factory=database.writer,
        read_session_factory=database.reader,
        clock=clock,
        resolution=services.resolution,
        interval=settings.scheduler_interval,
        managers=services.managers,
        after_commit=after_commit,
    )


def create_module_runtime(
    settings: Settings,
    modules: Modules,
    database: Database,
    clock: Clock,
    i18n: I18n,
    services: Services,
    *,
    after_commit: Callable[[], None],
) -> ModuleRuntime:
    """The installed modules (loaded and migrated by ``__main__``) in this desk."""
    reporter = Reporter(
        sessions=database.writer,
        outbox=services.outbox,
        i18n=i18n,
        managers=settings.manager_ids,
        default_locale=settings.default_locale,
        after_commit=after_commit,
    )
    return ModuleRuntime(
        modules,
        sessions=database.writer,
        read_sessions=database.reader,
        single_writer=database.single_writer,
        clock=clock,
        reporter=reporter,
        default_locale=settings.default_locale,
    )


async def run(
    settings: Settings, *, clock: Clock | None = None, modules: Modules | None = None
) -> None:
    clock = clock or SystemClock()
    database = Database(settings.database_url)
    bot = create_bot(settings)
    i18n = create_i18n(settings)
    desk = create_desk_config(settings)
    limiter = RateLimiter(
        Limits(
            global_per_second=settings.delivery_global_per_second,
            private_per_second=settings.delivery_private_per_second,
            group_per_minute=settings.delivery_group_per_minute,
        )
    )
    services = create_services(settings, database, clock, i18n, desk, bot)
    links = create_mail_links(settings)
    sender = Sender(
        bot=bot,
        session_factory=database.writer,
        read_session_factory=database.reader,
        clock=clock,
        limiter=limiter,
        outcomes=services.coalescer.register(services.desk_outcomes.register(Outcomes())),
        mail=create_mail_transport(settings, bot, database, clock, links),
        # SQLite is one instance's; on PostgreSQL others may send too (SPEC §11).
        share_chats=not database.single_writer,
    )
    scheduler = create_scheduler(settings, database, clock, services, after_commit=sender.wake)
    isolation = create_events_isolation(settings)
    extensions = create_module_runtime(
        settings, modules or Modules(), database, clock, i18n, services, after_commit=sender.wake
    )
    module_routers = extensions.routers()  # before the hooks: a module without routers is out
    services.tickets.account_lookups = extensions.account_lookups()
    extensions.hook_runner(
        retry_delays=[timedelta(seconds=delay) for delay in settings.module_hook_retry_delays]
    )
    dispatcher = create_dispatcher(
        settings,
        database=database,
        clock=clock,
        sender=sender,
        i18n=i18n,
        services=services,
        events_isolation=isolation,
        module_routers=module_routers,
    )
    background: list[asyncio.Task[None]] = []
    try:
        me = await bot.get_me()
        log.info("started as @%s (%s)", me.username, me.id)
        await check_staff_group(bot, database, desk, me.id)
        await set_commands(
            bot,
            i18n,
            settings.default_locale,
            desk.staff_chat_id,
            settings.manager_ids,
            modules=extensions.menu,
        )
        background.append(asyncio.create_task(sender.run(), name="sender"))
        background.append(asyncio.create_task(housekeeping(database.writer, clock)))
        background.append(asyncio.create_task(scheduler.run(), name="scheduler"))
        await extensions.start()
        for work in extensions.tasks():
            background.append(asyncio.create_task(work))
        batch_sessions = (
            database.writer if database.single_writer and not settings.webhook_url else None
        )
        replayer = Replayer(
            bot=bot,
            dispatcher=dispatcher,
            sessions=database.writer,
            read_sessions=database.reader,
            # As the poller feeds updates: SQLite's batches take the database before a chat.
            batch_sessions=batch_sessions,
            after_commit=sender.wake,
        )
        background.append(asyncio.create_task(replayer.run(), name="replayer"))
        if services.mail_desk is not None:
            watcher = MailWatcher(
                server=settings.imap,
                desk=services.mail_desk,
                session_factory=database.writer,
                poll_interval=settings.mail_poll_interval,
                i18n=i18n,
                after_commit=sender.wake,
            )
            background.append(asyncio.create_task(watcher.run(), name="mailbox"))
        guard = PoisonGuard(dispatcher["failures"])
        readiness = create_readiness(settings, database, bot)
        app = create_web_app(
            settings, database, i18n, services, links, after_commit=sender.wake, readiness=readiness
        )
        # What start-up built (modules, routers, catalogs, compiled schemas: most of the heap)
        # lives as long as the process: out of the collector's sight, a full collection in a
        # burst walks only what the burst made (a 200 ms pause became a few ms).
        gc.collect()
        gc.freeze()
        if settings.webhook_url:
            await _serve_webhook(
                settings,
                bot,
                dispatcher,
                guard,
                app,
                readiness,
                before=replies_wait_for_their_posts(
                    sender,
                    desk,
                    me.id,
                    clock=clock,
                    shared=None if database.single_writer else database.reader,
                ),
            )
        else:
            if links is not None:
                # Polling, but the links in mails need the web app: it serves them alone.
                runner = web.AppRunner(app)
                await runner.setup()
                await web.TCPSite(runner, settings.web_host, settings.web_port).start()
                log.info(
                    "mail pages at %s (listening on %s:%s)",
                    settings.public_url,
                    settings.web_host,
                    settings.web_port,
                )
                background.append(asyncio.create_task(_cleanup_on_cancel(runner)))
            await bot.delete_webhook(drop_pending_updates=False)
            poller = Poller(
                bot,
                dispatcher,
                batch_sessions=batch_sessions,
                after_commit=sender.wake,
                guard=guard,
                before_batch=replies_wait_for_their_posts(
                    sender,
                    desk,
                    me.id,
                    clock=clock,
                    shared=None if database.single_writer else database.reader,
                ),
            )
            poller.install_signal_handlers()
            await poller.run(dispatcher.resolve_used_update_types())
    finally:
        await sender.stop()
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await bot.session.close()
        await isolation.close()
        await database.dispose()
        log.info("stopped")


class KeepingRequestHandler(SimpleRequestHandler):
    """Answers Telegram 200 for an update that was handled or kept as failed, and 500 (send it
    again) for one that could not be kept, until its ``PoisonGuard`` writes it down: Telegram
    delivers a webhook's updates in order, so one stuck update would hold up all the others."""

    def __init__(
        self,
        *,
        guard: PoisonGuard,
        before: Callable[[Sequence[Update]], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.guard = guard
        self.before = before  # as the poller's ``before_batch``

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        update = Update.model_validate(
            await request.json(loads=bot.session.json_loads), context={"bot": bot}
        )
        result: TelegramMethod[Any] | None
        if self.before is not None:
            await self.before([update])
        try:
            result = await self.dispatcher.feed_webhook_update(bot, update, **self.data)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the update is not kept
            if not await self.guard.failed(bot, update, exc):
                return web.Response(status=500, text="not kept; send it again")
            result = None
        else:
            self.guard.succeeded(update.update_id)
        return web.Response(body=self._build_response_writer(bot=bot, result=result))

    async def close(self) -> None:
        """aiogram closes the bot's session when the web app shuts down. Here the session
        outlives the app: the sender may still have calls on their way, and one cut off would
        look failed after Telegram took it, and be sent again. ``run`` closes the session once
        the sender has stopped."""


async def _cleanup_on_cancel(runner: web.AppRunner) -> None:
    """Keeps a web app up until the process stops (the task is cancelled then)."""
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _serve_webhook(
    settings: Settings,
    bot: Bot,
    dispatcher: Dispatcher,
    guard: PoisonGuard,
    app: web.Application,
    readiness: Readiness,
    before: Callable[[Sequence[Update]], Awaitable[None]],
) -> None:
    from aiogram.webhook.aiohttp_server import setup_application

    path = "/webhook"
    KeepingRequestHandler(
        guard=guard,
        before=before,
        dispatcher=dispatcher,
        bot=bot,
        secret_token=settings.webhook_secret.get_secret_value(),
        # Answer Telegram only once the update is handled and committed: if the process dies
        # first, Telegram sends the update again (and the update log makes it count once).
        handle_in_background=False,
    ).register(app, path=path)
    setup_application(app, dispatcher, bot=bot)
    await bot.set_webhook(
        settings.webhook_url.rstrip("/") + path,
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=dispatcher.resolve_used_update_types(),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port)
    await site.start()
    log.info("webhook mode: listening on %s:%s", settings.web_host, settings.web_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        # Not ready from now on: a balancer sends new updates to the other instances. Those in
        # hand are finished (the listening socket closes first, then aiohttp waits for the
        # requests it has) and answered only once committed. The webhook stays registered:
        # Telegram keeps the updates until an instance is back.
        readiness.stopping = True
        log.info("stopping: finishing the updates in hand")
        await runner.cleanup()


# How long a batch with a staff reply waits for the bot's posts that are on their way.
REPLY_WAIT = 3.0
# Telegram dates a message in whole seconds: the send that made a message replied to was leased
# before that second ended.
_DATE_SLACK = timedelta(seconds=1)


def replies_wait_for_their_posts(
    sender: Sender,
    desk: DeskConfig,
    bot_id: int,
    *,
    clock: Clock,
    shared: async_sessionmaker[AsyncSession] | None = None,
) -> Callable[[Sequence[Update]], Awaitable[None]]:
    """Telegram shows a message of the bot to staff a moment before the bot hears back about
    it (and records which ticket it belongs to). A staff reply to it in that moment would be
    taken for staff talking among themselves, and an answer would stay inside: a batch with a
    reply to the bot in the staff group first lets what is on its way there be recorded —
    by this process's sender, and with ``shared`` (several instances on one database) by any
    instance's, as the database shows."""

    def replied_at(update: Update) -> datetime | None:
        message = update.message
        if message is None or message.chat.id != desk.staff_chat_id:
            return None
        replied = message.reply_to_message
        if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
            return None
        if replied.forum_topic_created is not None:
            return None  # a message in a topic the bot opened: Telegram's reply to its root
        return replied.date

    async def before_batch(updates: Sequence[Update]) -> None:
        moments = [moment for update in updates if (moment := replied_at(update)) is not None]
        if not moments:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLY_WAIT
        await sender.recorded(desk.staff_chat_id, timeout=REPLY_WAIT)
        if shared is None:
            return
        # Leased before the latest message replied to was posted: the lease ends a LEASE later.
        by = max(moments) + _DATE_SLACK + LEASE
        while loop.time() < deadline:
            async with shared() as session:
                if not await DeliveryRepo(session).in_flight(
                    desk.staff_chat_id, now=clock.now(), leased_until_by=by
                ):
                    return
            await asyncio.sleep(0.05)

    return before_batch
