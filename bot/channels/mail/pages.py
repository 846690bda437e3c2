"""The pages the links in mails open (SPEC §10), served by the bot's own web app at
``PUBLIC_URL``: ``/mail/{number}/{action}?r=…&s=…``.

A GET only shows the question: mail scanners open every link in a mail to look at it, and a
look must not close a ticket. The customer's press is the POST of the page's form, to the same
signed address; it does what the Telegram buttons do, in one unit of work.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

from aiogram.utils.i18n import I18n
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.mail.links import MailLinks
from bot.db.uow import transaction
from bot.services.lifecycle import Refusal
from bot.services.mail import MailDesk
from bot.services.notices_customer import MailPage
from bot.services.rendering import Renderer

log = logging.getLogger(__name__)

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b1f24}h1{font-size:1.4rem}textarea{width:100%;box-sizing:border-box;"
    "font:inherit;margin:.5rem 0}button{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;"
    "border:0;background:#2f6feb;color:#fff;cursor:pointer}"
)


# The page runs no script and loads nothing; its address is the signed link, so it is never
# sent on as a referrer, and no other site may frame it (a click on its button would act).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _page(body: str, locale: str, status: int = 200) -> web.Response:
    document = (
        f'<!doctype html><html lang="{html.escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>e-Comet Support</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status, headers=_HEADERS)


def add_mail_pages(
    app: web.Application,
    *,
    links: MailLinks,
    desk: MailDesk,
    session_factory: async_sessionmaker[AsyncSession],
    render: Renderer,
    i18n: I18n,
    default_locale: str,
    after_commit: Callable[[], None],
) -> None:
    async def page(request: web.Request) -> web.Response:
        number_text, action = request.match_info["number"], request.match_info["action"]
        link = (
            links.check(
                int(number_text), action, request.query.get("r", ""), request.query.get("s", "")
            )
            if number_text.isdigit() and len(number_text) < 19
            else None
        )
        if link is None:
            body = render(MailPage(0, action, "invalid"), default_locale).text
            return _page(body, default_locale, status=403)
        if request.method == "GET":
            async with session_factory() as session:
                notice, locale = await desk.link_page(session, link.number, action, link.round)
            return _page(render(notice, locale).text, locale)
        form = await request.post()
        reason = str(form.get("reason") or "")
        try:
            # The use cases word their refusals with gettext, as inside an update.
            with i18n.context(), i18n.use_locale(default_locale):
                async with transaction(session_factory) as uow:
                    notice, locale = await desk.follow_link(
                        uow.session, link.number, action, link.round, reason
                    )
        except Refusal:
            async with session_factory() as session:
                notice, locale = await desk.link_page(session, link.number, action, link.round)
        after_commit()
        return _page(render(notice, locale).text, locale)

    app.router.add_route("GET", "/mail/{number}/{action}", page)
    app.router.add_route("POST", "/mail/{number}/{action}", page)
