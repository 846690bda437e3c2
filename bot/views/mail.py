"""What the e-mail channel says (SPEC §10): to customers who write by e-mail, and to staff
about their mail. The texts are Telegram's HTML like every notice: the mail transport
(``bot/delivery/mail.py``) sends them as the HTML part and derives the plain text part."""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import html
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.services.notices_customer import (
    MailFilesTooLarge,
    MailPage,
    MailReceived,
    MailTooManyOpen,
)
from bot.services.notices_staff import MailFollowup, MailUnreadable
from bot.services.rendering import Rendered
from bot.views.labels import status_label
from bot.views.render import RenderFn
from bot.views.tickets import registered_after_hours, registered_head

quote = html.quote


def mail_received(notice: MailReceived, locale: str) -> str:
    lines = [
        *registered_head(notice.registered),
        "",
        _(
            "What happens next: a support specialist will answer by e-mail. To add details, "
            "reply to this e-mail — it goes to the same request. For a new problem, write a "
            "new e-mail."
        ),
    ]
    if notice.account_missing:
        lines += [
            "",
            _("Please reply with your e-Comet account number, so that we find your account."),
        ]
    lines += registered_after_hours(notice.registered, locale)
    return "\n".join(lines)


def mail_too_many_open(notice: MailTooManyOpen, locale: str) -> str:
    numbers = ", ".join(f"#{number}" for number in notice.numbers)
    return ngettext(
        "You already have {count} open request ({numbers}); one customer may have at most "
        "{limit} at once. Reply to its e-mail to add to it, or write again once it is closed.",
        "You already have {count} open requests ({numbers}); one customer may have at most "
        "{limit} at once. Reply to one of their e-mails to add to it, or write again once one "
        "is closed.",
        len(notice.numbers),
    ).format(count=len(notice.numbers), numbers=numbers, limit=notice.limit)


def mail_files_too_large(notice: MailFilesTooLarge, locale: str) -> str:
    names = ", ".join(quote(name) for name in notice.names)
    return ngettext(
        "The file {names} of your request #{number} is larger than {limit} MB and did not "
        "reach support. Please send a link to it instead (a cloud drive, for example).",
        "The files {names} of your request #{number} are larger than {limit} MB and did not "
        "reach support. Please send links to them instead (a cloud drive, for example).",
        len(notice.names),
    ).format(names=names, number=notice.number, limit=notice.limit_mb)


def mail_followup(notice: MailFollowup, locale: str) -> str:
    sender = f"✉️ <b>{quote(notice.name)}</b> &lt;{quote(notice.address)}&gt;"
    if notice.too_large is not None:
        name, size = notice.too_large
        return _(
            "{sender}: the file {name} ({size} MB) is too large for Telegram; it stays in the "
            "support mailbox."
        ).format(sender=sender, name=quote(name), size=f"{size / 1024 / 1024:.1f}")
    lines = [sender]
    if notice.subject:
        lines.append(_("Subject: {subject}").format(subject=quote(notice.subject)))
    lines += ["", quote(notice.text) if notice.text else _("(no text)")]
    if notice.attachments:
        lines += [
            "",
            ngettext("📎 {count} file below", "📎 {count} files below", notice.attachments).format(
                count=notice.attachments
            ),
        ]
    return "\n".join(lines)


def mail_unreadable(notice: MailUnreadable, locale: str) -> str:
    return _(
        "✉️ A mail from {sender} could not be read ({error}). It stays in the support mailbox "
        "for a person to look at."
    ).format(sender=quote(notice.sender or "?"), error=quote(notice.error))


def mail_page(notice: MailPage, locale: str) -> str:
    """The body of the page a link in a mail opens (HTML; the page around it is the web
    app's). A question is a form posted back to the same signed address."""
    title = "<h1>" + _("Request #{number}").format(number=notice.number) + "</h1>"
    if notice.state == "invalid":
        return (
            title
            + "<p>"
            + _("This link is not valid. Please use the link from the e-mail.")
            + "</p>"
        )
    if notice.state == "stale":
        status = status_label(notice.status) if notice.status is not None else "—"
        return (
            title
            + "<p>"
            + _("This link has nothing more to do: the request is {status} now.").format(
                status=quote(status.lower())
            )
            + "</p>"
        )
    score = notice.action.removeprefix("rate-") if notice.action.startswith("rate-") else ""
    if notice.state == "done":
        if notice.action == "solved":
            text = _("Thank you! The request is closed.")
        elif notice.action == "not-solved":
            text = _("The request is back in work. We will answer you by e-mail.")
        else:
            text = _("Thank you for your rating!")
        return title + f"<p>{text}</p>"
    if notice.action == "solved":
        question = _("Is your problem solved? Confirm it, and the request is closed.")
        form = f'<button type="submit">{_("👍 Yes, it is solved")}</button>'
    elif notice.action == "not-solved":
        question = _(
            "Sorry it is not solved yet. Tell us what still goes wrong, and the request goes "
            "back to work:"
        )
        form = (
            '<textarea name="reason" rows="6" maxlength="4000" required></textarea>'
            f'<button type="submit">{_("Send")}</button>'
        )
        if notice.reason_missing:
            question += "</p><p><b>" + _("Please write what still goes wrong.") + "</b>"
    else:
        question = _("Rate the answer to your request: {stars}?").format(stars="⭐" * int(score))
        form = f'<button type="submit">{_("Rate")}</button>'
    return title + f'<p>{question}</p><form method="post">{form}</form>'


def notice_views() -> Mapping[type, RenderFn]:
    """The e-mail channel's notices, for ``ViewRenderer``."""
    return {
        MailReceived: lambda notice, locale: Rendered(mail_received(notice, locale)),
        MailTooManyOpen: lambda notice, locale: Rendered(mail_too_many_open(notice, locale)),
        MailFilesTooLarge: lambda notice, locale: Rendered(mail_files_too_large(notice, locale)),
        MailFollowup: lambda notice, locale: Rendered(mail_followup(notice, locale)),
        MailUnreadable: lambda notice, locale: Rendered(mail_unreadable(notice, locale)),
        MailPage: lambda notice, locale: Rendered(mail_page(notice, locale)),
    }
