"""Support hours: the same working window every day, in the service's time zone (SPEC §1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DAY_MINUTES = 24 * 60
ALWAYS = "24/7"


@dataclass(frozen=True, slots=True)
class SupportHours:
    """A daily window ``[start, end)`` in minutes after local midnight; ``end`` may be 1440."""

    start_minute: int
    end_minute: int
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if not 0 <= self.start_minute < self.end_minute <= DAY_MINUTES:
            raise ValueError("support hours must be a window like 09:00-21:00 within one day")

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> SupportHours:
        """``09:00-21:00``, or ``24/7`` (round the clock: the window is the whole day)."""
        if text.strip() == ALWAYS:
            return cls(0, DAY_MINUTES, tz)
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError("expected HH:MM-HH:MM, for example 09:00-21:00, or 24/7")
        sh, sm, eh, em = (int(part) for part in match.groups())
        if sm >= 60 or em >= 60 or sh > 23 or eh > 24 or (eh == 24 and em):
            raise ValueError("hours must be 00:00..24:00")
        return cls(sh * 60 + sm, eh * 60 + em, tz)

    @property
    def always(self) -> bool:
        return self.start_minute == 0 and self.end_minute == DAY_MINUTES

    @property
    def text(self) -> str:
        """As people read it: ``09:00–21:00`` or ``24/7``."""
        if self.always:
            return ALWAYS
        start, end = divmod(self.start_minute, 60), divmod(self.end_minute, 60)
        return f"{start[0]:02d}:{start[1]:02d}–{end[0]:02d}:{end[1]:02d}"

    def _window(self, day: date) -> tuple[datetime, datetime]:
        midnight = datetime.combine(day, time(0), self.tz)
        # Wall-clock arithmetic in the zone, then normalised, so DST days keep 09:00-21:00.
        start = (midnight + timedelta(minutes=self.start_minute)).astimezone(self.tz)
        if self.end_minute == DAY_MINUTES:
            end = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        else:
            end = (midnight + timedelta(minutes=self.end_minute)).astimezone(self.tz)
        # In UTC: Python compares and subtracts datetimes that share a tzinfo by wall clock,
        # which is wrong across a DST change.
        return start.astimezone(UTC), end.astimezone(UTC)

    def is_open(self, at: datetime) -> bool:
        start, end = self._window(at.astimezone(self.tz).date())
        return start <= at.astimezone(UTC) < end

    def next_opening(self, at: datetime) -> datetime:
        """When the team answers a message written at ``at``: now if open, else the next start."""
        day = at.astimezone(self.tz).date()
        instant = at.astimezone(UTC)
        start, end = self._window(day)
        if instant < start:
            return start
        if instant < end:
            return instant
        return self._window(day + timedelta(days=1))[0]

    def working_time_between(self, begin: datetime, finish: datetime) -> timedelta:
        """Time inside support hours between two instants (zero if ``finish <= begin``)."""
        if finish <= begin:
            return timedelta(0)
        begin, finish = begin.astimezone(UTC), finish.astimezone(UTC)
        total = timedelta(0)
        day = begin.astimezone(self.tz).date()
        last = finish.astimezone(self.tz).date()
        while day <= last:
            start, end = self._window(day)
            lo, hi = max(start, begin), min(end, finish)
            if hi > lo:
                total += hi - lo
            day += timedelta(days=1)
        return total

    def advance(self, start: datetime, work: timedelta) -> datetime:
        """The instant when ``work`` of support-hours time has passed since ``start``: the
        inverse of :meth:`working_time_between` (an SLA target becomes a deadline)."""
        instant = start.astimezone(UTC)
        if work <= timedelta(0):
            return instant
        day = instant.astimezone(self.tz).date()
        while True:  # every day has a window of at least a minute: this ends
            window_start, window_end = self._window(day)
            lo = max(window_start, instant)
            if window_end > lo:
                if work <= window_end - lo:
                    return lo + work
                work -= window_end - lo
            day += timedelta(days=1)
