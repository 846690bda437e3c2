"""Human names of the domain's enums, in the current locale."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.domain.tickets import CloseReason, Kind, Priority, Status
from bot.services.lifecycle import Refusal


def kind_label(kind: Kind) -> str:
    return {
        Kind.PROBLEM: _("Problem"),
        Kind.INCIDENT: _("Incident"),
        Kind.SERVICE: _("Service request"),
        Kind.DEVELOPMENT: _("Development request"),
    }[kind]


def kind_button(kind: Kind) -> str:
    """The kinds in the customer's own words (SPEC §3)."""
    return {
        Kind.PROBLEM: _("🔥 The service stopped working for me"),
        Kind.INCIDENT: _("⚠️ Something works wrong"),
        Kind.SERVICE: _("❓ A question or information"),
        Kind.DEVELOPMENT: _("💡 A change or a new feature"),
    }[kind]


def priority_label(priority: Priority) -> str:
    return {
        Priority.P1: _("P1 critical"),
        Priority.P2: _("P2 high"),
        Priority.P3: _("P3 normal"),
        Priority.P4: _("P4 low"),
    }[priority]


def status_label(status: Status) -> str:
    return {
        Status.NEW: _("New"),
        Status.IN_PROGRESS: _("In progress"),
        Status.WAITING_CUSTOMER: _("Waiting for the customer"),
        Status.RESOLVED: _("Resolved, awaiting confirmation"),
        Status.CLOSED: _("Closed"),
    }[status]


def close_reason_label(reason: CloseReason) -> str:
    return {
        CloseReason.CONFIRMED: _("confirmed by the customer"),
        CloseReason.AUTO: _("closed automatically"),
        CloseReason.BY_CUSTOMER: _("closed by the customer"),
        CloseReason.BY_STAFF: _("closed by staff"),
    }[reason]


def refusal_text(refusal: Refusal) -> str:
    """What a refused person is told: the refusal's sentence with its values, a status by its
    name in the reader's language."""
    values = {
        key: status_label(value).lower() if isinstance(value, Status) else value
        for key, value in refusal.values.items()
    }
    return refusal.sentence.format(**values) if values else refusal.sentence


STATUS_ICON = {
    Status.NEW: "🆕",
    Status.IN_PROGRESS: "🛠",
    Status.WAITING_CUSTOMER: "⏳",
    Status.RESOLVED: "✅",
    Status.CLOSED: "🔒",
}
