"""Dates and durations by Babel in the reader's locale and the service's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time, format_timedelta


def when(moment: datetime, tz: ZoneInfo, locale: str) -> str:
    return format_datetime(moment.astimezone(tz), "d MMM y, HH:mm", tzinfo=tz, locale=locale)


def clock_time(moment: datetime, tz: ZoneInfo, locale: str) -> str:
    return format_time(moment.astimezone(tz), "HH:mm", tzinfo=tz, locale=locale)


def opening(moment: datetime, now: datetime, tz: ZoneInfo, locale: str) -> str:
    """``10:00`` today, otherwise the date too: ``26 Nov, 09:00``."""
    local, today = moment.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return clock_time(moment, tz, locale)
    return format_datetime(local, "d MMM, HH:mm", tzinfo=tz, locale=locale)


def day_time(moment: datetime, tz: ZoneInfo, locale: str) -> str:
    """``4 Dec, 11:00``: a deadline, unambiguous whichever day it is read."""
    return format_datetime(moment.astimezone(tz), "d MMM, HH:mm", tzinfo=tz, locale=locale)


def duration(value: timedelta, locale: str) -> str:
    return format_timedelta(value, threshold=1.0, locale=locale)
