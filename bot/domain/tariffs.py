"""Tariffs (SPEC §12): what a customer bought decides their support hours, SLA targets, a
priority boost and the kinds of request covered.

Tariffs come from ``TARIFFS_FILE`` (TOML, parsed here from its text: the caller reads the
file). Without one the desk has a single built-in tariff equal to its settings, so a desk that
sells no tariffs behaves as before. A ticket keeps the code of the tariff it was registered
under; :meth:`Tariffs.terms` says which tariff's hours and targets apply to it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.hours import SupportHours
from bot.domain.tickets import Kind, Priority, default_priority

BUILTIN_CODE = "default"
MAX_BOOST = 3  # levels: P4 → P1 at most
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_TARIFF_KEYS = frozenset({"name", "hours", "first_response", "resolution", "boost", "kinds"})


class TariffError(ValueError):
    """The tariffs file is malformed; the message names the place in one line."""


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration as SLA targets are written: ``PT30M``, ``PT2H``, ``P1D``,
    ``P1DT12H``, ``P1W``. Months and years have no fixed length: refused."""
    iso = text.strip().upper()
    match = _DURATION.match(iso)
    if match is None or iso in {"P", "PT"} or iso.endswith("T"):
        raise ValueError(f"expected an ISO 8601 duration such as PT30M or P1D, got {text!r}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    value = timedelta(**parts)
    if value <= timedelta(0):
        raise ValueError(f"expected a duration above zero, got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Tariff:
    code: str
    hours: SupportHours
    first_response: Mapping[Priority, timedelta]
    # Resolution targets (support hours, like the first response); empty: none promised.
    resolution: Mapping[Priority, timedelta] = field(default_factory=lambda: MappingProxyType({}))
    boost: int = 0  # priority levels up, never above P1
    kinds: frozenset[Kind] = frozenset(Kind)
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def name(self, locale: str) -> str:
        """The tariff's name for a reader: in their language, else English, else any."""
        for key in (locale, "en"):
            if key in self.names:
                return self.names[key]
        return next(iter(self.names.values()), self.code)

    def covers(self, kind: Kind) -> bool:
        return kind in self.kinds

    def boosted(self, priority: Priority) -> Priority:
        return Priority(max(int(Priority.P1), int(priority) - self.boost))


@dataclass(frozen=True, slots=True)
class Tariffs:
    """Every tariff of the desk by code, and the one of customers with no known account."""

    by_code: Mapping[str, Tariff]
    default_code: str
    from_file: bool = False  # False: the built-in tariff only (nothing to show staff)

    def __post_init__(self) -> None:
        if self.default_code not in self.by_code:
            raise TariffError(f"default: no tariff {self.default_code!r}")

    @property
    def default(self) -> Tariff:
        return self.by_code[self.default_code]

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def get(self, code: str | None) -> Tariff:
        """A ticket's tariff; one registered before tariffs existed (None), or under a tariff
        since removed from the file, is served on the default one."""
        return self.by_code.get(code or "", self.default)

    def terms(self, code: str | None, kind: Kind) -> Tariff:
        """The tariff whose hours and targets apply to a request: the customer's, when it
        covers the kind; a request outside it is served on the default tariff's terms."""
        tariff = self.get(code)
        return tariff if tariff.covers(kind) else self.default

    def priority(self, code: str | None, kind: Kind) -> Priority:
        """The priority a new request gets: its kind's default, boosted by the terms."""
        return self.terms(code, kind).boosted(default_priority(kind))


def builtin(hours: SupportHours, first_response: Mapping[Priority, timedelta]) -> Tariffs:
    """The one tariff of a desk without ``TARIFFS_FILE``: today's settings, no boost."""
    tariff = Tariff(
        code=BUILTIN_CODE, hours=hours, first_response=MappingProxyType(dict(first_response))
    )
    return Tariffs(MappingProxyType({BUILTIN_CODE: tariff}), BUILTIN_CODE)


def parse_tariffs(
    text: str,
    *,
    tz: ZoneInfo,
    hours: SupportHours,
    first_response: Mapping[Priority, timedelta],
) -> Tariffs:
    """The tariffs of a TOML text; ``hours`` and ``first_response`` (the desk's settings)
    stand for what a tariff leaves out. Raises :class:`TariffError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError(f"not valid TOML: {exc}") from None
    unknown = set(data) - {"default", "tariffs"}
    if unknown:
        raise TariffError(f"unknown key {sorted(unknown)[0]!r} (expected default and [tariffs.*])")
    tables = data.get("tariffs")
    if not isinstance(tables, dict) or not tables:
        raise TariffError("no tariffs: expected at least one [tariffs.CODE] table")
    by_code = {
        code: _tariff(code, table, tz=tz, hours=hours, first_response=first_response)
        for code, table in tables.items()
    }
    default = data.get("default")
    if default is None:
        if len(by_code) > 1:
            raise TariffError('default: which tariff is the default? e.g. default = "standard"')
        default = next(iter(by_code))
    if not isinstance(default, str) or default not in by_code:
        raise TariffError(f"default: no tariff {default!r} among {', '.join(sorted(by_code))}")
    return Tariffs(MappingProxyType(by_code), default, from_file=True)


def _tariff(
    code: str,
    table: Any,
    *,
    tz: ZoneInfo,
    hours: SupportHours,
    first_response: Mapping[Priority, timedelta],
) -> Tariff:
    where = f"tariffs.{code}"
    if not _CODE.match(code):
        raise TariffError(f"{where}: a code is lowercase letters, digits, - and _ (up to 64)")
    if not isinstance(table, dict):
        raise TariffError(f"{where}: expected a table [{where}]")
    unknown = set(table) - _TARIFF_KEYS
    if unknown:
        raise TariffError(
            f"{where}: unknown key {sorted(unknown)[0]!r} "
            f"(expected {', '.join(sorted(_TARIFF_KEYS))})"
        )
    return Tariff(
        code=code,
        names=MappingProxyType(_names(where, table.get("name"))),
        hours=_hours(where, table.get("hours"), tz, hours),
        first_response=MappingProxyType(
            _targets(f"{where}.first_response", table.get("first_response"), first_response)
        ),
        resolution=MappingProxyType(_targets(f"{where}.resolution", table.get("resolution"), {})),
        boost=_boost(where, table.get("boost", 0)),
        kinds=_kinds(where, table.get("kinds")),
    )


def _names(where: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str) and value.strip():
        return {"en": value.strip()}
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, str) and v.strip() for v in value.values())
    ):
        return {str(k): v.strip() for k, v in value.items()}
    raise TariffError(f'{where}.name: expected a text or a table like {{ ru = "…", en = "…" }}')


def _hours(where: str, value: Any, tz: ZoneInfo, default: SupportHours) -> SupportHours:
    if value is None:
        return default
    if not isinstance(value, str):
        raise TariffError(f'{where}.hours: expected a text like "09:00-21:00" or "24/7"')
    try:
        return SupportHours.parse(value, tz)
    except ValueError as exc:
        raise TariffError(f"{where}.hours: {exc}") from None


def _targets(
    where: str, value: Any, default: Mapping[Priority, timedelta]
) -> dict[Priority, timedelta]:
    if value is None:
        return dict(default)
    if not isinstance(value, dict):
        raise TariffError(f'{where}: expected a table like {{ P1 = "PT30M", P2 = "PT2H", … }}')
    targets: dict[Priority, timedelta] = {}
    for name, text in value.items():
        if name.upper() not in Priority.__members__:
            raise TariffError(f"{where}: unknown priority {name!r} (expected P1..P4)")
        if not isinstance(text, str):
            raise TariffError(f'{where}.{name}: expected a text like "PT30M"')
        try:
            targets[Priority[name.upper()]] = parse_duration(text)
        except ValueError as exc:
            raise TariffError(f"{where}.{name}: {exc}") from None
    missing = [p.name for p in Priority if p not in targets]
    if missing:
        raise TariffError(f"{where}: no target for {', '.join(missing)}")
    return targets


def _boost(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BOOST:
        raise TariffError(f"{where}.boost: expected 0..{MAX_BOOST} priority levels, got {value!r}")
    return value


def _kinds(where: str, value: Any) -> frozenset[Kind]:
    if value is None:
        return frozenset(Kind)
    names = ", ".join(k.value for k in Kind)
    if not isinstance(value, list) or not value:
        raise TariffError(f"{where}.kinds: expected a list of some of {names}")
    kinds = set()
    for item in value:
        if item not in {k.value for k in Kind}:
            raise TariffError(f"{where}.kinds: unknown kind {item!r} (expected {names})")
        kinds.add(Kind(item))
    return frozenset(kinds)
