"""Every notice the request, resolution and manager services send has a view: a notice
without one would fail only when it is first sent (``ViewRenderer`` raises LookupError)."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest
from aiogram.utils.i18n import I18n

from bot.domain.sla import Sla, SlaState
from bot.domain.tickets import Kind, Priority, Status
from bot.services import notices_customer, notices_desk, notices_problems
from bot.views import mail, problems, reports, resolution, tickets
from bot.views.render import ViewRenderer

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")


def _notices(module: ModuleType) -> list[type]:
    return [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and dataclasses.is_dataclass(cls)
        and cls.__module__ == module.__name__
    ]


@pytest.mark.parametrize(
    "module", [notices_customer, notices_desk, notices_problems], ids=lambda m: m.__name__
)
def test_every_notice_has_a_view(module: ModuleType) -> None:
    table = {
        **tickets.notice_views(),
        **resolution.notice_views(),
        **reports.notice_views(),
        **mail.notice_views(),
        **problems.notice_views(),
    }
    notices = _notices(module)
    assert notices
    assert [cls.__name__ for cls in notices if cls not in table] == []


NOW = datetime(2026, 11, 10, 22, 0, tzinfo=MSK)
SAMPLES: list[tuple[object, str]] = [
    (
        notices_customer.Registered(
            7,
            "Cannot <log> in",
            Kind.INCIDENT,
            Priority.P2,
            NOW + timedelta(hours=11),
            NOW,
            "09:00–21:00",
            MSK,
        ),
        "#7",
    ),
    (notices_customer.AfterHours(7, NOW + timedelta(hours=11), NOW, "09:00–21:00", MSK), "#7"),
    (notices_customer.ConfirmQuestion(7, timedelta(days=3)), "#7"),
    (notices_customer.StillResolved(7), "#7"),
    (notices_customer.Reminder(7, timedelta(days=2)), "#7"),
    (notices_customer.Reopened(7), "#7"),
    (notices_customer.ClosedConfirmed(7), "#7"),
    (notices_customer.ClosedAuto(7), "#7"),
    (notices_customer.ClosedByCustomer(7), "#7"),
    (notices_customer.AskRating(7), "#7"),
    (
        notices_customer.MailReceived(
            notices_customer.Registered(
                7, "Cannot <log> in", Kind.SERVICE, Priority.P3, None, NOW, "09:00–21:00", MSK
            ),
            account_missing=True,
        ),
        "Cannot &lt;log&gt; in",
    ),
    (notices_customer.MailTooManyOpen([3, 7], 2), "#3, #7"),
    (notices_customer.MailFilesTooLarge(7, ["<big>.zip"], 20), "&lt;big&gt;.zip"),
    (notices_customer.MailPage(7, "not-solved", "ask"), '<textarea name="reason"'),
    (notices_customer.MailPage(7, "solved", "stale", Status.CLOSED), "#7"),
    (
        notices_desk.CoalescedHeader("Al <i>", 3, NOW, NOW + timedelta(minutes=1), MSK),
        "Al &lt;i&gt;",
    ),
    (notices_desk.CoalescedEdit("Al", "<b>new</b> text"), "<b>new</b> text"),
    (notices_desk.DisputeReason(7, "still <broken>"), "still &lt;broken&gt;"),
    (notices_desk.CustomerClosed(7, "not needed"), "not needed"),
    (notices_desk.LowRating(7, 1, "slow & rude"), "slow &amp; rude"),
    (notices_desk.RatingComment(7, "thanks"), "thanks"),
    (
        notices_desk.SlaAlert(
            7,
            Sla(SlaState.BREACHED, elapsed=timedelta(hours=2), target=timedelta(hours=1)),
        ),
        "#7",
    ),
]
WITH_BUTTONS = (
    notices_customer.ConfirmQuestion,
    notices_customer.StillResolved,
    notices_customer.Reminder,
    notices_customer.AskRating,
)


def test_the_samples_cover_every_notice() -> None:
    sampled = {type(notice) for notice, _ in SAMPLES}
    expected = set(_notices(notices_customer)) | set(_notices(notices_desk))
    assert expected - sampled == {notices_desk.DailySummary}  # drawn in test_reports


@pytest.mark.parametrize("locale", ["en", "ru"])
@pytest.mark.parametrize(("notice", "shown"), SAMPLES, ids=lambda v: type(v).__name__)
def test_each_notice_renders_in_each_language(notice: object, shown: str, locale: str) -> None:
    i18n = I18n(path=ROOT / "locales", default_locale="en", domain="messages")
    render = ViewRenderer(
        i18n,
        tickets.notice_views(),
        resolution.notice_views(),
        reports.notice_views(),
        mail.notice_views(),
    )
    rendered = render(notice, locale)
    assert shown in rendered.text
    assert (rendered.reply_markup is not None) == isinstance(notice, WITH_BUTTONS)
