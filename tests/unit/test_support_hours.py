"""Support hours (SPEC §1, §3): 09:00-21:00 every day in the service's zone, DST included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.hours import SupportHours

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
# 2025: Berlin goes to summer time on Sunday 30 March (02:00 -> 03:00)
# and back on Sunday 26 October (03:00 -> 02:00).
SPRING = (2025, 3, 30)
AUTUMN = (2025, 10, 26)


def at(tz: ZoneInfo, y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=tz)


def utc(local: datetime) -> datetime:
    """The same instant in UTC (other tzinfo object than the hours' zone)."""
    return local.astimezone(UTC)


@pytest.fixture(params=[MSK, BERLIN], ids=["moscow", "berlin"])
def tz(request: pytest.FixtureRequest) -> ZoneInfo:
    return request.param


@pytest.fixture
def hours(tz: ZoneInfo) -> SupportHours:
    return SupportHours.parse("09:00-21:00", tz)


# ---------------------------------------------------------------- parse


def test_parse_the_default_window() -> None:
    h = SupportHours.parse("09:00-21:00", MSK)
    assert (h.start_minute, h.end_minute, h.tz) == (9 * 60, 21 * 60, MSK)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("00:00-24:00", 0, 1440),
        ("9:30-18:45", 570, 1125),
        (" 08:00 - 20:00 ", 480, 1200),
        ("00:00-00:01", 0, 1),
        ("23:59-24:00", 1439, 1440),
    ],
)
def test_parse_valid_windows(text: str, start: int, end: int) -> None:
    h = SupportHours.parse(text, MSK)
    assert (h.start_minute, h.end_minute) == (start, end)


@pytest.mark.parametrize(
    "text",
    [
        "21:00-09:00",  # over midnight: not a window within one day
        "9-21",
        "25:00-26:00",
        "09:00-09:00",  # empty
        "09:00-24:30",
        "09:60-21:00",
        "09:00-21:60",
        "24:00-24:00",
        "",
        "late",
        "09:00–21:00",  # an en dash is not the separator
        "09:00-21:00-22:00",
    ],
)
def test_invalid_windows_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        SupportHours.parse(text, MSK)


def test_constructor_rejects_a_reversed_window() -> None:
    with pytest.raises(ValueError, match="window"):
        SupportHours(21 * 60, 9 * 60, MSK)


# ---------------------------------------------------------------- is_open


@pytest.mark.parametrize(
    ("hh", "mm", "ss", "expected"),
    [
        (0, 0, 0, False),
        (3, 0, 0, False),
        (8, 59, 0, False),
        (8, 59, 59, False),
        (9, 0, 0, True),
        (12, 0, 0, True),
        (20, 59, 0, True),
        (20, 59, 59, True),
        (21, 0, 0, False),
        (23, 59, 59, False),
    ],
)
def test_is_open_edges(
    hours: SupportHours, tz: ZoneInfo, hh: int, mm: int, ss: int, expected: bool
) -> None:
    local = at(tz, 2025, 6, 11, hh, mm, ss)
    assert hours.is_open(local) is expected
    assert hours.is_open(utc(local)) is expected  # the zone of the argument does not matter


def test_every_day_is_a_working_day(hours: SupportHours, tz: ZoneInfo) -> None:
    # 2025-06-14 is a Saturday, 2025-06-15 a Sunday, 2025-01-01 a holiday: no days off.
    for day in ((2025, 6, 14), (2025, 6, 15), (2025, 1, 1)):
        assert hours.is_open(at(tz, *day, 10))
        assert not hours.is_open(at(tz, *day, 22))


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_is_open_on_dst_days_in_berlin(day: tuple[int, int, int]) -> None:
    h = SupportHours.parse("09:00-21:00", BERLIN)
    assert not h.is_open(at(BERLIN, *day, 1, 30))
    assert not h.is_open(at(BERLIN, *day, 8, 59))
    assert h.is_open(at(BERLIN, *day, 9, 0))
    assert h.is_open(at(BERLIN, *day, 20, 59))
    assert not h.is_open(at(BERLIN, *day, 21, 0))
    # The same instants given in UTC.
    assert h.is_open(utc(at(BERLIN, *day, 9, 0)))
    assert not h.is_open(utc(at(BERLIN, *day, 8, 59)))
    assert not h.is_open(utc(at(BERLIN, *day, 21, 0)))


def test_berlin_opening_in_utc_follows_dst() -> None:
    h = SupportHours.parse("09:00-21:00", BERLIN)
    # Winter: 09:00 CET is 08:00 UTC. Summer: 09:00 CEST is 07:00 UTC.
    assert h.is_open(datetime(2025, 3, 29, 8, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2025, 3, 29, 7, 59, tzinfo=UTC))
    assert h.is_open(datetime(2025, 3, 30, 7, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2025, 3, 30, 6, 59, tzinfo=UTC))
    assert h.is_open(datetime(2025, 10, 26, 8, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2025, 10, 26, 7, 59, tzinfo=UTC))


def test_round_the_clock_window_is_always_open() -> None:
    h = SupportHours.parse("00:00-24:00", BERLIN)
    for moment in (
        at(BERLIN, 2025, 6, 11, 0, 0),
        at(BERLIN, 2025, 6, 11, 23, 59, 59),
        at(BERLIN, *SPRING, 3, 30),
        at(BERLIN, *AUTUMN, 2, 30),
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST, before the fall back
        datetime(2025, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET, after it
    ):
        assert h.is_open(moment)
        # Compared in UTC: aware times inside the autumn fold never compare equal across zones.
        assert utc(h.next_opening(moment)) == utc(moment)


# ---------------------------------------------------------------- next_opening


def test_a_message_at_20_59_is_answered_now(hours: SupportHours, tz: ZoneInfo) -> None:
    moment = at(tz, 2025, 6, 11, 20, 59)
    assert hours.next_opening(moment) == moment
    assert hours.next_opening(utc(moment)) == moment


def test_a_message_at_03_00_is_answered_at_09_00_the_same_day(
    hours: SupportHours, tz: ZoneInfo
) -> None:
    opening = hours.next_opening(at(tz, 2025, 6, 11, 3, 0))
    assert opening == at(tz, 2025, 6, 11, 9, 0)
    assert opening.astimezone(tz).hour == 9


@pytest.mark.parametrize(
    ("hh", "mm", "expected_day", "expected_hh"),
    [
        (8, 59, 11, 9),
        (9, 0, 11, None),  # open: now
        (21, 0, 12, 9),
        (21, 1, 12, 9),
        (23, 59, 12, 9),
        (0, 0, 11, 9),  # just after midnight: the same calendar day's opening
        (0, 30, 11, 9),
    ],
)
def test_next_opening(
    hours: SupportHours,
    tz: ZoneInfo,
    hh: int,
    mm: int,
    expected_day: int,
    expected_hh: int | None,
) -> None:
    moment = at(tz, 2025, 6, 11, hh, mm)
    expected = moment if expected_hh is None else at(tz, 2025, 6, expected_day, expected_hh)
    assert hours.next_opening(moment) == expected
    assert hours.next_opening(utc(moment)) == expected


def test_next_opening_across_a_month_and_a_year(hours: SupportHours, tz: ZoneInfo) -> None:
    assert hours.next_opening(at(tz, 2025, 12, 31, 22)) == at(tz, 2026, 1, 1, 9)
    assert hours.next_opening(at(tz, 2025, 2, 28, 21)) == at(tz, 2025, 3, 1, 9)


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_next_opening_over_a_dst_night_is_09_00_local(day: tuple[int, int, int]) -> None:
    h = SupportHours.parse("09:00-21:00", BERLIN)
    evening_before = at(BERLIN, *day, 0, 0) - timedelta(hours=2)  # 22:00 the day before
    opening = h.next_opening(evening_before)
    assert opening == at(BERLIN, *day, 9, 0)
    local = opening.astimezone(BERLIN)
    assert (local.hour, local.minute) == (9, 0)
    night = at(BERLIN, *day, 2, 30)
    assert h.next_opening(night) == at(BERLIN, *day, 9, 0)


def test_next_opening_is_never_in_the_past_and_always_open(
    hours: SupportHours, tz: ZoneInfo
) -> None:
    start = at(tz, 2025, 3, 28, 0, 0)
    for step in range(0, 5 * 24 * 4):  # every quarter of an hour over 5 days incl. DST
        moment = start + timedelta(minutes=15 * step)
        opening = hours.next_opening(moment)
        assert opening >= moment
        assert hours.is_open(opening)
        assert opening - moment < timedelta(hours=12, minutes=1)


# ---------------------------------------------------------------- working_time_between


def test_working_time_inside_one_day(hours: SupportHours, tz: ZoneInfo) -> None:
    assert hours.working_time_between(
        at(tz, 2025, 6, 11, 10), at(tz, 2025, 6, 11, 11)
    ) == timedelta(hours=1)
    assert hours.working_time_between(at(tz, 2025, 6, 11, 3), at(tz, 2025, 6, 11, 10)) == timedelta(
        hours=1
    )
    assert hours.working_time_between(
        at(tz, 2025, 6, 11, 20), at(tz, 2025, 6, 11, 23)
    ) == timedelta(hours=1)
    assert hours.working_time_between(at(tz, 2025, 6, 11, 21), at(tz, 2025, 6, 12, 9)) == timedelta(
        0
    )
    assert hours.working_time_between(
        at(tz, 2025, 6, 11, 20, 59), at(tz, 2025, 6, 12, 9, 1)
    ) == timedelta(minutes=2)


def test_working_time_is_zero_for_empty_or_reversed_ranges(
    hours: SupportHours, tz: ZoneInfo
) -> None:
    moment = at(tz, 2025, 6, 11, 12)
    assert hours.working_time_between(moment, moment) == timedelta(0)
    assert hours.working_time_between(moment, moment - timedelta(hours=1)) == timedelta(0)


@pytest.mark.parametrize("days", [1, 2, 3, 7, 30])
def test_working_time_is_12h_per_full_day(hours: SupportHours, tz: ZoneInfo, days: int) -> None:
    begin = at(tz, 2025, 3, 25, 0, 0)  # the span covers Berlin's spring DST change
    last = begin.date() + timedelta(days=days)
    finish = datetime(last.year, last.month, last.day, tzinfo=tz)  # local midnight
    assert hours.working_time_between(begin, finish) == timedelta(hours=12 * days)
    assert hours.working_time_between(utc(begin), utc(finish)) == timedelta(hours=12 * days)


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_working_time_of_a_berlin_dst_day_is_still_12h(day: tuple[int, int, int]) -> None:
    h = SupportHours.parse("09:00-21:00", BERLIN)
    begin = at(BERLIN, *day, 0, 0)
    finish = at(BERLIN, day[0], day[1], day[2] + 1, 0, 0)
    assert h.working_time_between(begin, finish) == timedelta(hours=12)
    assert h.working_time_between(utc(begin), utc(finish)) == timedelta(hours=12)


@pytest.mark.parametrize(
    ("day", "length"),
    [
        (SPRING, timedelta(hours=23)),
        (AUTUMN, timedelta(hours=25)),
        ((2025, 6, 11), timedelta(hours=24)),
    ],
    ids=["spring-23h", "autumn-25h", "summer-24h"],
)
def test_round_the_clock_working_time_is_the_real_elapsed_time(
    day: tuple[int, int, int], length: timedelta
) -> None:
    # With support open all day, working time is plain elapsed time: a spring DST day in
    # Berlin has 23 real hours, an autumn one 25.
    h = SupportHours.parse("00:00-24:00", BERLIN)
    begin = at(BERLIN, *day, 0, 0)
    finish = at(BERLIN, day[0], day[1], day[2] + 1, 0, 0)
    assert utc(finish) - utc(begin) == length
    assert h.working_time_between(utc(begin), utc(finish)) == length
    assert h.working_time_between(begin, finish) == length


# ---------------------------------------------------------------- additivity (hypothesis)

WINDOWS = ["09:00-21:00", "00:00-24:00", "08:30-17:15", "00:00-03:00", "22:00-24:00"]
ZONES = [MSK, BERLIN]
# Spans around Berlin's DST changes and an ordinary week; instants in whole seconds (UTC).
_ANCHORS = [
    datetime(2025, 3, 27, tzinfo=UTC),
    datetime(2025, 10, 23, tzinfo=UTC),
    datetime(2025, 6, 9, tzinfo=UTC),
]


@st.composite
def ordered_instants(draw: st.DrawFn) -> tuple[datetime, datetime, datetime]:
    anchor = draw(st.sampled_from(_ANCHORS))
    offsets = sorted(draw(st.lists(st.integers(0, 6 * 24 * 3600), min_size=3, max_size=3)))
    as_local = draw(st.booleans())
    moments = [anchor + timedelta(seconds=s) for s in offsets]
    return tuple(m.astimezone(BERLIN) if as_local else m for m in moments)  # type: ignore[return-value]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(WINDOWS), st.sampled_from(ZONES), ordered_instants())
def test_working_time_is_additive(
    window: str, tz: ZoneInfo, moments: tuple[datetime, datetime, datetime]
) -> None:
    h = SupportHours.parse(window, tz)
    a, b, c = moments
    ab = h.working_time_between(a, b)
    bc = h.working_time_between(b, c)
    ac = h.working_time_between(a, c)
    assert ab + bc == ac
    assert timedelta(0) <= ac <= c.astimezone(UTC) - a.astimezone(UTC)  # real elapsed time


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), ordered_instants())
def test_working_time_is_additive_for_the_default_window(
    tz: ZoneInfo, moments: tuple[datetime, datetime, datetime]
) -> None:
    h = SupportHours.parse("09:00-21:00", tz)
    a, b, c = moments
    assert h.working_time_between(a, b) + h.working_time_between(b, c) == h.working_time_between(
        a, c
    )
