"""Tariffs (SPEC §12): the TARIFFS_FILE format, its errors, the priority boost, which tariff's
terms a request is served on, and deadlines counted in each tariff's own hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import SettingsError, load_settings
from bot.domain.hours import SupportHours
from bot.domain.sla import SlaState, first_response
from bot.domain.tariffs import (
    BUILTIN_CODE,
    TariffError,
    Tariffs,
    builtin,
    parse_duration,
    parse_tariffs,
)
from bot.domain.tickets import Kind, Priority

MSK = ZoneInfo("Europe/Moscow")
HOURS = SupportHours.parse("09:00-21:00", MSK)
SLA = {
    Priority.P1: timedelta(minutes=30),
    Priority.P2: timedelta(hours=2),
    Priority.P3: timedelta(hours=8),
    Priority.P4: timedelta(days=1),
}
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "tariffs.example.toml"

TWO = """
default = "standard"

[tariffs.standard]
name = { ru = "Стандарт", en = "Standard" }
hours = "09:00-21:00"
kinds = ["incident", "problem", "service"]
first_response = { P1 = "PT1H", P2 = "PT4H", P3 = "P1D", P4 = "P3D" }

[tariffs.premium]
name = { ru = "Премиум", en = "Premium" }
hours = "24/7"
boost = 1
first_response = { P1 = "PT30M", P2 = "PT1H", P3 = "PT4H", P4 = "P1D" }
resolution = { P1 = "PT4H", P2 = "PT8H", P3 = "P2D", P4 = "P10D" }
"""


def parse(text: str) -> Tariffs:
    return parse_tariffs(text, tz=MSK, hours=HOURS, first_response=SLA)


def test_a_file_of_two_tariffs() -> None:
    tariffs = parse(TWO)
    assert tariffs.from_file
    assert tariffs.default.code == "standard"
    premium = tariffs.get("premium")
    assert premium.name("ru") == "Премиум" and premium.name("en") == "Premium"
    assert premium.name("de") == "Premium"  # no German name: English
    assert premium.hours.always and premium.hours.text == "24/7"
    assert premium.first_response[Priority.P2] == timedelta(hours=1)
    assert premium.resolution[Priority.P4] == timedelta(days=10)
    assert premium.kinds == frozenset(Kind)  # none named: every kind
    standard = tariffs.get("standard")
    assert standard.hours.text == "09:00–21:00" and standard.boost == 0
    assert not standard.covers(Kind.DEVELOPMENT)
    assert dict(standard.resolution) == {}  # none promised


def test_what_a_tariff_leaves_out_comes_from_the_settings() -> None:
    tariffs = parse('[tariffs.basic]\nname = "Basic"')
    basic = tariffs.default
    assert basic.code == "basic" and basic.name("ru") == "Basic"
    assert basic.hours == HOURS
    assert dict(basic.first_response) == SLA


def test_the_example_file_in_the_repository_is_valid() -> None:
    tariffs = parse(EXAMPLE.read_text(encoding="utf-8"))
    assert tariffs.get("premium").hours.always
    assert not tariffs.default.hours.always


def test_the_builtin_tariff_is_todays_behaviour() -> None:
    tariffs = builtin(HOURS, SLA)
    assert not tariffs.from_file
    assert tariffs.default.code == BUILTIN_CODE
    assert tariffs.default.hours == HOURS and dict(tariffs.default.first_response) == SLA
    for kind in Kind:
        assert (
            tariffs.priority(None, kind)
            == {
                Kind.PROBLEM: Priority.P1,
                Kind.INCIDENT: Priority.P2,
                Kind.SERVICE: Priority.P3,
                Kind.DEVELOPMENT: Priority.P4,
            }[kind]
        )


@pytest.mark.parametrize(
    ("boost", "kind", "expected"),
    [
        (0, Kind.INCIDENT, Priority.P2),
        (1, Kind.INCIDENT, Priority.P1),
        (3, Kind.INCIDENT, Priority.P1),  # never above P1
        (1, Kind.DEVELOPMENT, Priority.P3),
        (3, Kind.DEVELOPMENT, Priority.P1),
        (2, Kind.SERVICE, Priority.P1),
    ],
)
def test_the_boost_raises_the_kinds_priority_never_above_p1(
    boost: int, kind: Kind, expected: Priority
) -> None:
    tariffs = parse(f"[tariffs.t]\nboost = {boost}")
    assert tariffs.priority("t", kind) is expected


def test_a_kind_outside_the_tariff_is_served_on_the_default_terms() -> None:
    text = TWO.replace("boost = 1", 'boost = 1\nkinds = ["problem", "incident"]')
    tariffs = parse(text)
    assert tariffs.terms("premium", Kind.INCIDENT).code == "premium"
    assert tariffs.terms("premium", Kind.DEVELOPMENT).code == "standard"
    assert tariffs.priority("premium", Kind.INCIDENT) is Priority.P1  # boosted
    assert tariffs.priority("premium", Kind.SERVICE) is Priority.P3  # outside: no boost


def test_unknown_and_missing_codes_get_the_default() -> None:
    tariffs = parse(TWO)
    assert tariffs.get(None).code == "standard"  # a ticket from before tariffs
    assert tariffs.get("gold").code == "standard"  # a tariff since removed from the file
    assert "premium" in tariffs and "gold" not in tariffs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tariffs.x\n", "not valid TOML"),
        ("", "no tariffs"),
        ("default = 'x'", "no tariffs"),
        ("colour = 1\n[tariffs.x]", "unknown key 'colour'"),
        ("[tariffs.Big]", "tariffs.Big: a code is lowercase"),
        ("[tariffs.x]\nboots = 1", "tariffs.x: unknown key 'boots'"),
        ("[tariffs.x]\nboost = 4", "tariffs.x.boost: expected 0..3"),
        ("[tariffs.x]\nboost = -1", "tariffs.x.boost: expected 0..3"),
        ("[tariffs.x]\nboost = true", "tariffs.x.boost"),
        ("[tariffs.x]\nhours = '25:00-26:00'", "tariffs.x.hours: hours must be 00:00..24:00"),
        ("[tariffs.x]\nhours = 'always'", "tariffs.x.hours: expected HH:MM-HH:MM"),
        ("[tariffs.x]\nhours = 24", "tariffs.x.hours: expected a text"),
        ("[tariffs.x]\nkinds = ['incident', 'bug']", "tariffs.x.kinds: unknown kind 'bug'"),
        ("[tariffs.x]\nkinds = []", "tariffs.x.kinds: expected a list"),
        ("[tariffs.x]\nname = ''", "tariffs.x.name"),
        (
            "[tariffs.x]\nfirst_response = { P1 = 'PT1H' }",
            "tariffs.x.first_response: no target for P2, P3, P4",
        ),
        (
            "[tariffs.x]\nfirst_response = { P1 = 'PT1H', P2 = '2 hours', P3 = 'P1D', P4 = 'P1D' }",
            "tariffs.x.first_response.P2: expected an ISO 8601 duration",
        ),
        (
            "[tariffs.x]\nresolution = { P5 = 'PT1H' }",
            "tariffs.x.resolution: unknown priority 'P5'",
        ),
        ("[tariffs.x]\n[tariffs.y]", "default: which tariff is the default?"),
        ("default = 'z'\n[tariffs.x]\n[tariffs.y]", "default: no tariff 'z' among x, y"),
    ],
)
def test_a_malformed_file_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30M", timedelta(minutes=30)),
        ("PT2H", timedelta(hours=2)),
        ("P1D", timedelta(days=1)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P1W", timedelta(weeks=1)),
        ("PT90S", timedelta(seconds=90)),
        ("pt1h", timedelta(hours=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "p1dt", "1H", "P1M2", "PT0S", "P1Y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_settings_read_the_file_and_a_bad_one_stops_the_start(tmp_path: Path) -> None:
    good = tmp_path / "tariffs.toml"
    good.write_text(TWO, encoding="utf-8")
    settings = load_settings(bot_token="1:abc", staff_chat_id=-1, tariffs_file=str(good))
    assert settings.tariffs.get("premium").hours.tz == settings.timezone
    assert not load_settings(bot_token="1:abc", staff_chat_id=-1).tariffs.from_file

    bad = tmp_path / "bad.toml"
    bad.write_text("[tariffs.premium]\nboost = 9\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(bot_token="1:abc", staff_chat_id=-1, tariffs_file=str(bad))
    assert str(caught.value) == (
        "Configuration error: TARIFFS_FILE: tariffs.premium.boost: "
        "expected 0..3 priority levels, got 9"
    )
    with pytest.raises(SettingsError, match="TARIFFS_FILE: cannot read"):
        load_settings(bot_token="1:abc", staff_chat_id=-1, tariffs_file=str(tmp_path / "no"))


# -- deadlines in each tariff's hours -----------------------------------------------------------


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=MSK)


def test_a_request_at_23_00_is_due_in_24_7_hours_for_premium_and_after_09_00_for_standard() -> None:
    tariffs = parse(TWO)
    opened = at(3, 23)
    deadlines = {}
    for code in ("premium", "standard"):
        terms = tariffs.terms(code, Kind.INCIDENT)
        priority = tariffs.priority(code, Kind.INCIDENT)
        sla = first_response(
            terms.hours,
            terms.first_response[priority],
            created_at=opened,
            now=opened + timedelta(minutes=10),
            first_response_at=None,
            paused_seconds=0,
            waiting_since=None,
        )
        deadlines[code] = (priority, sla)
    premium_priority, premium = deadlines["premium"]
    assert premium_priority is Priority.P1  # boosted from P2
    assert premium.due == at(3, 23, 30)  # 30 minutes round the clock
    assert premium.elapsed == timedelta(minutes=10)
    standard_priority, standard = deadlines["standard"]
    assert standard_priority is Priority.P2
    assert standard.due == at(4, 13)  # the clock starts at 09:00: four hours to 13:00
    assert standard.elapsed == timedelta(0) and standard.state is SlaState.RUNNING


def test_a_deadline_carries_over_closed_hours_and_moves_with_pauses() -> None:
    hours = SupportHours.parse("09:00-21:00", MSK)
    assert hours.advance(at(3, 20), timedelta(hours=2)) == at(4, 10)
    assert hours.advance(at(3, 8), timedelta(hours=1)) == at(3, 10)
    assert hours.advance(at(3, 20), timedelta(hours=13)) == at(4, 21)  # the end of a day
    assert hours.advance(at(3, 20), timedelta(hours=14)) == at(5, 10)
    assert hours.advance(at(3, 20), timedelta(0)) == at(3, 20)
    always = SupportHours.parse("24/7", MSK)
    assert always.advance(at(3, 23), timedelta(hours=2)) == at(4, 1)
    assert always.working_time_between(at(3, 23), at(4, 1)) == timedelta(hours=2)
    # 30 minutes of pauses move the deadline by 30 minutes of support hours.
    sla = first_response(
        hours,
        timedelta(hours=2),
        created_at=at(3, 20),
        now=at(3, 20, 45),
        first_response_at=None,
        paused_seconds=30 * 60,
        waiting_since=None,
    )
    assert sla.due == at(4, 10, 30)
    paused = first_response(
        hours,
        timedelta(hours=2),
        created_at=at(3, 20),
        now=at(3, 20, 45),
        first_response_at=None,
        paused_seconds=0,
        waiting_since=at(3, 20, 30),
    )
    assert paused.state is SlaState.PAUSED and paused.due is None


BERLIN = ZoneInfo("Europe/Berlin")


@settings(max_examples=300, deadline=None)
@given(
    window=st.sampled_from(["09:00-21:00", "24/7", "08:30-17:15", "22:00-24:00", "00:00-03:00"]),
    tz=st.sampled_from([MSK, BERLIN]),
    # Around Berlin's spring and autumn DST changes of 2025, in whole seconds.
    start=st.sampled_from(
        [datetime(2025, 3, 27, tzinfo=UTC), datetime(2025, 10, 23, tzinfo=UTC)]
    ).flatmap(
        lambda anchor: st.integers(0, 6 * 24 * 3600).map(lambda s: anchor + timedelta(seconds=s))
    ),
    work=st.integers(1, 4 * 24 * 3600).map(lambda s: timedelta(seconds=s)),
)
def test_a_deadline_is_exactly_the_target_of_support_time_away(
    window: str, tz: ZoneInfo, start: datetime, work: timedelta
) -> None:
    hours = SupportHours.parse(window, tz)
    due = hours.advance(start, work)
    assert hours.working_time_between(start, due) == work
    # And not a moment later than needed: the deadline is inside the support hours.
    assert hours.is_open(due - timedelta(seconds=1))
