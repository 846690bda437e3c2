"""The managers' summary, chart data and CSV export over a million tickets (SPEC §6, §9).

    python -m benchmarks.summary_million [--tickets 1000000] [--db PATH] [--keep]
                                         [--repeat 5] [--naive-rows 200000] [--no-what-if]

A fresh SQLite database (in a temporary directory, or at ``--db PATH``, which must not exist;
removed at the end unless ``--keep``) gets the migrated schema (``migrate(url)``) and then N
tickets spread over the 365 days ending on LAST_DAY, seeded with the raw ``sqlite3`` module
(executemany, batches of 50,000 rows, a transaction per 200,000 tickets) from
``random.Random(42)``. Times are written as SQLAlchemy's SQLite dialect writes ``UTCDateTime``
(naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``) and enums as their plain values; a closed ticket
is read back through the models after seeding to check that.

Measured, in this process, through the bot's own ``Database`` and ``Reports``, each in the
writer transaction the /summary and /export handlers use:

* ``Reports.summary(session, day)`` for the busiest day of the last week of the range;
* ``Reports.history(session, day)``, the 14-day chart data sent with every summary;
* the export of the last calendar month: ``Reports.export_rows`` written as CSV by
  ``bot.views.reports.export_csv``, as /export does (its rows and bytes too);
* each SQL statement of these, re-run through ``sqlite3`` on the file, with its
  ``EXPLAIN QUERY PLAN``;
* the baseline the spec warns against: tickets loaded as ORM objects and the day's figures
  computed in Python. It loads the newest ``--naive-rows`` tickets and extrapolates linearly
  to the whole table (labelled EXTRAPOLATED); ``--naive-rows 0`` loads every ticket;
* what if: the same reports with the candidate indexes of WHAT_IF_INDEXES created on this
  database only (dropped afterwards), and the chart data as three indexed counts a day.

Also reported: seed time, database size, peak RSS per phase. The target is a summary under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy
from sqlalchemy import event, func, select

from bot.db.engine import Database, migrate
from bot.db.models import Ticket
from bot.domain.hours import SupportHours
from bot.domain.tickets import OPEN_STATUSES, CloseReason, Kind, Priority, Status
from bot.services.reports import DayPoint, Reports, Summary, median, percentile
from bot.views.reports import export_csv as write_csv

TZ = ZoneInfo("Europe/Moscow")
HOURS = SupportHours.parse("09:00-21:00", TZ)
LAST_DAY = date(2026, 11, 30)
DAYS = 365
FIRST_DAY = LAST_DAY - timedelta(days=DAYS - 1)
# "Now" for the seeded desk: the end of the last day. Nothing happens after it.
NOW = datetime.combine(LAST_DAY + timedelta(days=1), clock_time(0), TZ).timestamp()
BATCH = 50_000
COMMIT_EVERY = 200_000  # tickets per transaction while seeding
TARGET_S = 1.0
NEWLINE = b"\n"
SLOW_STATEMENT_S = 0.05  # statements slower than this get their plan printed
STAFF_IDS = list(range(1001, 1021))
STAFF_NAMES = [
    ("Anna", "Ivanova"), ("Boris", "Petrov"), ("Vera", "Sidorova"), ("Gleb", "Orlov"),
    ("Daria", "Kuznetsova"), ("Egor", "Smirnov"), ("Zoya", None), ("Igor", "Volkov"),
    ("Kira", "Lebedeva"), ("Lev", "Sokolov"), ("Maria", "Popova"), ("Nikita", "Morozov"),
    ("Olga", "Novikova"), ("Pavel", "Fedorov"), ("Raisa", None), ("Sergey", "Egorov"),
    ("Tatiana", "Pavlova"), ("Ulyana", "Kozlova"), ("Fedor", "Stepanov"), ("Yana", "Nikolaeva"),
]  # fmt: skip
FIRST_CUSTOMER_ID = 5_000_001
EXPORT_HEADER = (
    "number", "created", "first response", "resolved", "closed", "kind", "priority", "status",
    "close reason", "assignee", "line", "first response, min", "resolution, min", "rating",
)  # fmt: skip
KIND_WEIGHTS = ((Kind.INCIDENT, 45), (Kind.SERVICE, 30), (Kind.DEVELOPMENT, 15), (Kind.PROBLEM, 10))
DEFAULT_PRIORITY = {Kind.PROBLEM: 1, Kind.INCIDENT: 2, Kind.SERVICE: 3, Kind.DEVELOPMENT: 4}
# Working time (support hours) to the first answer and to a resolution, medians in seconds.
FIRST_RESPONSE_MEDIAN = {1: 600.0, 2: 2400.0, 3: 7200.0, 4: 18000.0}
RESOLUTION_MEDIAN = {1: 3 * 3600.0, 2: 6 * 3600.0, 3: 8 * 3600.0, 4: 20 * 3600.0}
SLA_TARGET = {1: 1800.0, 2: 7200.0, 3: 8 * 3600.0, 4: 24 * 3600.0}  # the config's defaults
# Local hour of day -> weight of tickets created in it (most inside 09:00-21:00).
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 18, 15, 15, 17, 17, 16, 14, 12, 10, 8, 5, 3, 2]
WEEKDAY_FACTOR = [1.25, 1.2, 1.15, 1.1, 1.0, 0.45, 0.4]  # Monday first
RATING_WEIGHTS = [5, 4, 8, 23, 60]
TOPICS = [
    "Cannot log in", "Payment not received", "Invoice question", "App crashes on start",
    "Error 500 in the dashboard", "Change tariff", "Export to Excel is empty", "API timeout",
    "Wrong balance", "Password reset email missing", "Feature request: dark mode",
    "Report shows yesterday's data", "Connect a second account", "SMS code not arriving",
    "Integration with 1C", "Slow page load", "Refund", "Documents for accounting",
    "Не приходит код подтверждения", "Ошибка при оплате картой", "Как подключить тариф",
    "Не работает выгрузка", "Вопрос по счёту", "Прошу добавить отчёт",
]  # fmt: skip
LOREM = (
    "Здравствуйте! После обновления приложение перестало открываться на телефоне, при входе "
    "пишет ошибку и просит повторить позже. Пробовал переустановить, не помогло. Hello, since "
    "this morning the payment page shows an error after I press Pay, the money is held on my "
    "card but the order stays unpaid. Please check and tell me what to do; the account number "
    "is in the request. We also need the invoice for October and the closing documents for "
    "our accountant. Заранее спасибо, жду ответа как можно скорее, это срочно для нашей команды."
)
TICKET_COLUMNS = (
    "number", "intake_key", "customer_id", "account_number", "topic", "kind", "description",
    "priority", "status", "assignee_id", "line", "locale", "created_at", "updated_at",
    "first_response_at", "resolved_at", "closed_at", "close_reason", "reopened_count", "rating",
    "rating_comment", "staff_chat_id", "staff_thread_id", "card_message_id",
    "after_hours_notice_at", "reminded_at", "close_note", "sla_warned_at", "sla_breached_at",
    "waiting_since", "paused_seconds",
)  # fmt: skip
EVENT_COLUMNS = ("ticket_number", "at", "actor_id", "actor_role", "type", "old", "new", "details")
STAFF_CHAT_ID = -1001000000001
DISPUTE = '{"text": "Still not working, please look again"}'
_EPOCH = datetime(1970, 1, 1)  # naive UTC, as the dialect stores it
_OFFSET = TZ.utcoffset(datetime.combine(LAST_DAY, clock_time(12))).total_seconds()  # type: ignore[union-attr]


def stamp(ts: float | None) -> str | None:
    """An epoch second as SQLAlchemy's SQLite dialect stores a naive UTC datetime."""
    if ts is None:
        return None
    return (_EPOCH + timedelta(seconds=ts)).isoformat(" ", "microseconds")


def add_working(ts: float, work: float) -> float:
    """``ts`` plus ``work`` seconds of support hours (09:00-21:00 local).

    Seeding only: the zone's offset is taken as fixed (Moscow has no DST), which is what lets
    this run on plain numbers; the bot's own ``SupportHours`` is used for every measured figure.
    """
    local = ts + _OFFSET
    while True:
        day = local - local % 86400
        start, end = day + 9 * 3600, day + 21 * 3600
        if local < start:
            local = start
        elif local >= end:
            local = day + 86400 + 9 * 3600
            continue
        if local + work <= end:
            return local + work - _OFFSET
        work -= end - local
        local = day + 86400 + 9 * 3600


def in_hours(ts: float) -> bool:
    seconds = (ts + _OFFSET) % 86400
    return 9 * 3600 <= seconds < 21 * 3600


# ====================================================================== seeding


@dataclass
class SeedResult:
    tickets: int = 0
    events: int = 0
    users: int = 0
    seconds: float = 0.0
    size_mib: float = 0.0
    per_day: Counter[date] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rated: int = 0
    breached: int = 0
    disputed: int = 0


def day_counts(rng: random.Random, total: int) -> list[int]:
    """Tickets per day: busier on weekdays, growing over the year, with some noise."""
    weights = []
    for i in range(DAYS):
        day = FIRST_DAY + timedelta(days=i)
        growth = 0.7 + 0.6 * i / (DAYS - 1)
        weights.append(WEEKDAY_FACTOR[day.weekday()] * growth * rng.uniform(0.85, 1.15))
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in rng.sample(range(DAYS), total - sum(counts)):
        counts[i] += 1
    return counts


class Simulator:
    """One ticket's life as events, cut off at NOW; the ticket row follows from the events."""

    def __init__(self, rng: random.Random, customers: int) -> None:
        self.rng = rng
        self.customers = customers
        self.kinds = [k.value for k, _ in KIND_WEIGHTS]
        self.kind_cum = list(_cumulative([w for _, w in KIND_WEIGHTS]))
        # A few staff take much more than the others.
        self.staff_cum = list(_cumulative([3 if i < 4 else 1 for i in range(len(STAFF_IDS))]))
        self.rating_cum = list(_cumulative(RATING_WEIGHTS))
        self.descriptions = [LOREM[: 40 + i * 12] for i in range(40)]

    def lognormal(self, median_s: float, sigma: float) -> float:
        return median_s * math.exp(self.rng.gauss(0.0, sigma))

    def ticket(
        self, number: int, created: float, stats: SeedResult
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        rng = self.rng
        kind = self.kinds[_pick(self.kind_cum, rng.random())]
        priority = DEFAULT_PRIORITY[Kind(kind)]
        if rng.random() < 0.2:
            priority = min(4, max(1, priority + rng.choice((-1, 1))))
        customer = FIRST_CUSTOMER_ID + rng.randrange(self.customers)
        staff = STAFF_IDS[_pick(self.staff_cum, rng.random())]
        # (at, actor_id, role, type, old, new, details); "reminded" is not stored as an event.
        events: list[tuple[Any, ...]] = []

        def status(at: float, who: int | None, role: str, old: str, new: str, action: str) -> None:
            events.append((at, who, role, "status", old, new, f'{{"action": "{action}"}}'))

        def close(
            at: float, who: int | None, role: str, old: str, reason: str, action: str
        ) -> None:
            status(at, who, role, old, "closed", action)
            events.append((at, who, role, "close_reason", None, reason, None))

        first_response = sla_warned = sla_breached = reminded = None
        path = rng.random()
        if path < 0.03:  # spam or a duplicate, closed by staff before any answer
            close(
                add_working(created, rng.uniform(300, 7200)),
                staff,
                "staff",
                "new",
                "by_staff",
                "close_by_staff",
            )
        else:
            work = self.lognormal(FIRST_RESPONSE_MEDIAN[priority], 0.9)
            first_response = add_working(created, work)
            target = SLA_TARGET[priority]
            if work > 0.8 * target:
                sla_warned = add_working(created, 0.8 * target)
            if work > target:
                sla_breached = add_working(created, target)
            status(first_response, staff, "staff", "new", "in_progress", "take")
            at = first_response
            if rng.random() < 0.2:  # staff asks for details, the customer answers later
                at = add_working(at, self.lognormal(1800, 1.0))
                status(at, staff, "staff", "in_progress", "waiting_customer", "ask_info")
                at += self.lognormal(4 * 3600, 1.2)
                status(
                    at, customer, "customer", "waiting_customer", "in_progress", "customer_answered"
                )
            fate = rng.random()
            if fate < 0.04:
                close(
                    at + self.lognormal(2 * 3600, 1.0),
                    customer,
                    "customer",
                    "in_progress",
                    "by_customer",
                    "close_by_customer",
                )
            elif fate < 0.06:
                close(
                    add_working(at, self.lognormal(3600, 1.0)),
                    staff,
                    "staff",
                    "in_progress",
                    "by_staff",
                    "close_by_staff",
                )
            elif fate < 0.063:
                pass  # stuck: nobody ever resolves it (the old end of the backlog)
            else:
                at = add_working(at, self.lognormal(RESOLUTION_MEDIAN[priority], 1.1))
                status(at, staff, "staff", "in_progress", "resolved", "resolve")
                if rng.random() < 0.06:
                    at += self.lognormal(5 * 3600, 1.0)
                    status(at, customer, "customer", "resolved", "in_progress", "dispute")
                    events.append((at, customer, "customer", "dispute", None, None, DISPUTE))
                    at = add_working(at, self.lognormal(3 * 3600, 1.0))
                    status(at, staff, "staff", "in_progress", "resolved", "resolve")
                confirm_after = self.lognormal(2 * 3600, 1.5)
                if rng.random() < 0.62 and confirm_after < 3 * 86400:
                    at += confirm_after
                    close(at, customer, "customer", "resolved", "confirmed", "confirm")
                    rate = rng.random() < 0.55
                else:
                    reminded = at + 2 * 86400
                    at += 3 * 86400 + rng.uniform(0, 60)
                    close(at, None, "system", "resolved", "auto", "auto_close")
                    rate = rng.random() < 0.05
                if rate:
                    score = 1 + _pick(self.rating_cum, rng.random())
                    events.append(
                        (
                            at + self.lognormal(300, 1.0),
                            customer,
                            "customer",
                            "rating",
                            None,
                            str(score),
                            None,
                        )
                    )

        # Replay the events up to NOW to get the ticket's state.
        state = "new"
        resolved_at = closed_at = reason = rating = waiting_since = None
        updated = created
        paused = 0
        kept = []
        for ev in events:
            at = ev[0]
            if at > NOW:
                break
            kept.append((number, stamp(at), *ev[1:]))
            updated = at
            kind_of = ev[3]
            if kind_of == "status":
                old, state = ev[4], ev[5]
                if state == "resolved":
                    resolved_at = at
                elif old == "resolved" and state == "in_progress":
                    resolved_at = None
                if state == "waiting_customer":
                    waiting_since = at
                elif old == "waiting_customer":
                    paused += int(0.5 * (at - (waiting_since or at)))
                    waiting_since = None
                if state == "closed":
                    closed_at = at
            elif kind_of == "close_reason":
                reason = ev[5]
            elif kind_of == "rating":
                rating = int(ev[5])
        if first_response is not None and first_response > NOW:
            first_response = None
        if sla_breached is not None and sla_breached > NOW:
            sla_breached = None
        if sla_warned is not None and sla_warned > NOW:
            sla_warned = None
        reminded_at = None
        if reminded is not None and reminded <= NOW and (state == "resolved" or reason == "auto"):
            reminded_at = reminded
        reopened = int(any(e[4] == "dispute" for e in kept))
        assignee = staff if first_response is not None or reason == "by_staff" else None

        stats.statuses[state] += 1
        if reason:
            stats.reasons[reason] += 1
        if rating is not None:
            stats.rated += 1
        if sla_breached is not None:
            stats.breached += 1
        stats.disputed += reopened
        low = rating is not None and rating <= 2
        row = (
            number,
            f"bench-{number:09d}",
            customer,
            str(10_000_000 + customer * 7 % 90_000_000),
            TOPICS[number % len(TOPICS)],
            kind,
            self.descriptions[rng.randrange(len(self.descriptions))],
            priority,
            state,
            assignee,
            2 if rng.random() < 0.1 else 1,
            "ru" if rng.random() < 0.8 else "en",
            stamp(created),
            stamp(updated),
            stamp(first_response),
            stamp(resolved_at),
            stamp(closed_at),
            reason,
            reopened,
            rating,
            "Долго ждал ответа" if low and rng.random() < 0.5 else None,
            STAFF_CHAT_ID,
            None,
            100_000 + number,
            stamp(created + 1) if not in_hours(created) else None,
            stamp(reminded_at),
            None,
            stamp(sla_warned),
            stamp(sla_breached),
            stamp(waiting_since) if state == "waiting_customer" else None,
            paused,
        )
        return row, kept


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def _pick(cumulative: Sequence[float], u: float) -> int:
    for i, c in enumerate(cumulative):
        if u < c:
            return i
    return len(cumulative) - 1


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """An INSERT of the module's own constant table and column names."""
    names, marks = ", ".join(columns), ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608


def seed(path: Path, tickets: int) -> SeedResult:
    """Fill the migrated database at ``path`` (raw sqlite3, executemany in batches)."""
    rng = random.Random(42)
    result = SeedResult()
    started = time.perf_counter()
    customers = max(100, tickets // 10)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")  # 256 MiB while seeding
        connection.execute("BEGIN")
        joined = stamp(
            datetime.combine(FIRST_DAY - timedelta(days=30), clock_time(9), TZ).timestamp()
        )
        users: list[tuple[Any, ...]] = [
            (sid, first, last, None, "ru", None, None, None, joined, joined, joined)
            for sid, (first, last) in zip(STAFF_IDS, STAFF_NAMES, strict=True)
        ]
        users += [
            (
                FIRST_CUSTOMER_ID + i,
                f"Customer{i}",
                None,
                f"c{i}",
                "ru",
                None,
                None,
                None,
                None,
                joined,
                joined,
            )
            for i in range(customers)
        ]
        connection.executemany(
            "INSERT INTO users (id, first_name, last_name, username, language_code, locale, "
            "last_account_number, blocked_bot_at, staff_seen_at, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            users,
        )
        result.users = len(users)
        connection.execute("COMMIT")

        simulator = Simulator(rng, customers)
        insert_ticket = insert_sql("tickets", TICKET_COLUMNS)
        insert_event = insert_sql("ticket_events", EVENT_COLUMNS)
        weights = [w / sum(HOUR_WEIGHTS) for w in HOUR_WEIGHTS]
        hour_cum = _cumulative(weights)
        rows: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        number = 0
        in_transaction = 0
        connection.execute("BEGIN")

        def flush() -> None:
            connection.executemany(insert_ticket, rows)
            connection.executemany(insert_event, events)
            result.tickets += len(rows)
            result.events += len(events)
            rows.clear()
            events.clear()

        for i, count in enumerate(day_counts(rng, tickets)):
            day = FIRST_DAY + timedelta(days=i)
            midnight = datetime.combine(day, clock_time(0), TZ).timestamp()
            moments = sorted(
                midnight + (_pick(hour_cum, rng.random()) + rng.random()) * 3600
                for _ in range(count)
            )
            result.per_day[day] = count
            for created in moments:
                number += 1
                row, kept = simulator.ticket(number, created, result)
                rows.append(row)
                events.extend(kept)
                if len(rows) >= BATCH:
                    flush()
                    in_transaction += BATCH
                    if in_transaction >= COMMIT_EVERY:
                        connection.execute("COMMIT")
                        connection.execute("BEGIN")
                        in_transaction = 0
                    elapsed = time.perf_counter() - started
                    print(
                        f"  seeded {result.tickets:>9,} / {tickets:,} tickets, "
                        f"{result.events:>10,} events, {elapsed:6.1f}s "
                        f"({result.tickets / elapsed:,.0f} tickets/s)",
                        flush=True,
                    )
        flush()
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    result.seconds = time.perf_counter() - started
    result.size_mib = size_mib(path)
    return result


async def check_round_trip(db: Database, seeded: SeedResult) -> None:
    """The rows read back through the models like the bot's own rows."""
    async with db.reader() as session:
        ticket = (
            (
                await session.execute(
                    select(Ticket)
                    .where(Ticket.status == Status.CLOSED)
                    .order_by(Ticket.number.desc())
                    .limit(1)
                )
            )
            .scalars()
            .first()
        )
        total = (await session.execute(select(func.count()).select_from(Ticket))).scalar_one()
    assert total == seeded.tickets, (total, seeded.tickets)
    assert ticket is not None
    assert ticket.status is Status.CLOSED
    assert isinstance(ticket.kind, Kind)
    assert isinstance(ticket.priority, Priority)
    assert isinstance(ticket.close_reason, CloseReason)
    assert ticket.created_at.tzinfo is UTC
    assert ticket.closed_at is not None
    assert ticket.created_at <= ticket.closed_at <= datetime.fromtimestamp(NOW, UTC)


# ====================================================================== measuring


@dataclass
class Timing:
    name: str
    runs: list[float]
    note: str = ""

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


async def timed(
    name: str, call: Callable[[], Awaitable[Any]], repeat: int, budget_s: float
) -> tuple[Timing, Any]:
    """Run ``call`` ``repeat`` times (fewer once ``budget_s`` is spent, at least twice)."""
    runs: list[float] = []
    value: Any = None
    spent = 0.0
    for n in range(repeat):
        started = time.perf_counter()
        value = await call()
        runs.append(time.perf_counter() - started)
        spent += runs[-1]
        if n >= 1 and spent > budget_s:
            break
    return Timing(name, runs), value


class StatementLog:
    """The SELECTs the bot sends, with their DBAPI parameters, while recording."""

    def __init__(self, db: Database) -> None:
        self.recording = False
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        for engine in {db.engine, db.read_engine}:
            event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _after(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.recording and statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, tuple(parameters or ())))

    @contextlib.contextmanager
    def record(self) -> Any:
        self.statements = []
        self.recording = True
        try:
            yield self.statements
        finally:
            self.recording = False


@dataclass
class QueryProfile:
    label: str
    where: str
    seconds: float
    rows: int
    plan: list[str]


def where_clause(sql: str) -> str:
    text = " ".join(sql.split())
    at = text.upper().find(" WHERE ")
    where = text[at + 7 :] if at >= 0 else "(no WHERE)"
    for stop in (" GROUP BY ", " ORDER BY "):
        cut = where.upper().find(stop)
        if cut >= 0:
            where = where[:cut]
    return where.replace("tickets.", "").replace("ticket_events.", "e.")


def profile_statements(
    path: Path, statements: Sequence[tuple[str, tuple[Any, ...]]], labels: Sequence[str]
) -> list[QueryProfile]:
    """Re-run each statement through sqlite3 on the file (best of 3) with its query plan."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    profiles = []
    try:
        for label, (sql, params) in zip(labels, statements, strict=True):
            plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            best, count = math.inf, 0
            for _ in range(3):
                started = time.perf_counter()
                count = len(connection.execute(sql, params).fetchall())
                best = min(best, time.perf_counter() - started)
                if best > 5:
                    break
            profiles.append(QueryProfile(label, where_clause(sql), best, count, plan))
    finally:
        connection.close()
    return profiles


@dataclass
class Run:
    """One round of the bot's reports, timed, with the SQL each of them sent."""

    summary: Timing
    history: Timing
    export: Timing | None
    result: Summary
    points: list[DayPoint]
    csv: bytes
    statements: list[tuple[str, tuple[Any, ...]]]
    labels: list[str]


async def run_reports(
    url: str, day: date, month: tuple[date, date], repeat: int, *, export: bool
) -> Run:
    db = Database(url)
    reports = Reports(HOURS)
    log = StatementLog(db)

    # As the bot's handlers run them: in the unit of work's writer transaction.
    async def summary() -> Summary:
        async with db.writer() as session, session.begin():
            return await reports.summary(session, day)

    async def history() -> list[DayPoint]:
        async with db.writer() as session, session.begin():
            return await reports.history(session, day)

    async def export_csv() -> bytes:
        async with db.writer() as session, session.begin():
            rows = await reports.export_rows(session, *month)
        return write_csv(rows, header=EXPORT_HEADER, tz=TZ)

    try:
        with log.record() as summary_sql:
            first = await summary()
        with log.record() as history_sql:
            await history()
        print("  Reports.summary ...", flush=True)
        t_summary, result = await timed("Reports.summary(day)", summary, repeat, 60)
        assert result == first
        print("  Reports.history ...", flush=True)
        t_history, points = await timed("Reports.history(day), 14 days", history, repeat, 90)
        t_export, csv, export_sql = None, b"", []
        if export:
            print("  Reports.export_csv ...", flush=True)
            with log.record() as export_sql:
                await export_csv()
            t_export, csv = await timed(
                "Reports.export_csv(one month)", export_csv, max(1, (repeat + 1) // 2), 90
            )
    finally:
        await db.dispose()
    # Each day of the history is the same statement with other bounds: the last one stands
    # for the 14.
    statements = [*summary_sql, *history_sql[-1:], *export_sql[:1]]
    labels = [f"summary #{n}" for n in range(1, len(summary_sql) + 1)]
    labels += ["history, 1 of 14"] + ["export"] * len(export_sql[:1])
    return Run(t_summary, t_history, t_export, result, points, csv, statements, labels)


# ====================================================================== what if


# Indexes tried on the benchmark's database (never in the migrations): each one is what a
# statement of the summary needs to stop reading the whole table.
WHAT_IF_INDEXES = (
    ("tickets", ("first_response_at",)),
    ("tickets", ("sla_breached_at",)),
    ("tickets", ("resolved_at",)),
    ("tickets", ("closed_at", "created_at", "priority")),
)
# The 14-day chart as three counts per day that each read one day's worth of an index.
HISTORY_REWRITE = """
SELECT
  (SELECT count(*) FROM tickets WHERE created_at >= :start AND created_at < :end),
  (SELECT count(*) FROM tickets WHERE closed_at >= :start AND closed_at < :end),
  (SELECT count(*) FROM tickets
    WHERE created_at < :end AND (closed_at IS NULL OR closed_at >= :end))
"""


def what_if_name(table: str, columns: Sequence[str]) -> str:
    return f"whatif_{table}_{'_'.join(columns)}"


def create_what_if(path: Path) -> list[tuple[str, str, float]]:
    connection = sqlite3.connect(path, isolation_level=None)
    made = []
    try:
        for table, columns in WHAT_IF_INDEXES:
            name = what_if_name(table, columns)
            started = time.perf_counter()
            connection.execute(f"CREATE INDEX {name} ON {table} ({', '.join(columns)})")
            made.append((name, f"{table} ({', '.join(columns)})", time.perf_counter() - started))
    finally:
        connection.close()
    return made


def drop_what_if(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for table, columns in WHAT_IF_INDEXES:
            connection.execute(f"DROP INDEX IF EXISTS {what_if_name(table, columns)}")
    finally:
        connection.close()


def history_rewritten(path: Path, day: date) -> tuple[float, list[tuple[int, int, int]]]:
    """Opened, closed and backlog for the 14 days up to ``day``, three indexed counts a day."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    points = []
    try:
        started = time.perf_counter()
        for offset in range(13, -1, -1):
            first = day - timedelta(days=offset)
            bounds = {
                "start": stamp(datetime.combine(first, clock_time(0), TZ).timestamp()),
                "end": stamp(
                    datetime.combine(first + timedelta(days=1), clock_time(0), TZ).timestamp()
                ),
            }
            points.append(connection.execute(HISTORY_REWRITE, bounds).fetchone())
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return elapsed, points


# ====================================================================== the naive baseline


@dataclass
class NaiveResult:
    rows: int
    load_s: float
    compute_s: float
    rss_growth_mib: float
    figures: dict[str, Any]

    @property
    def total_s(self) -> float:
        return self.load_s + self.compute_s


async def naive_summary(db: Database, reports: Reports, day: date, limit: int) -> NaiveResult:
    """What the spec warns against: every ticket as an ORM object, the figures in Python."""
    start, end = reports.day_bounds(day)
    rss_before = rss_mib()
    async with db.reader() as session:
        query = select(Ticket).order_by(Ticket.number)
        if limit:
            top = (await session.execute(select(func.max(Ticket.number)))).scalar_one()
            query = query.where(Ticket.number > top - limit)
        started = time.perf_counter()
        tickets = (await session.execute(query)).scalars().all()
        loaded = time.perf_counter()
        opened: Counter[tuple[Kind, Priority]] = Counter()
        closed: Counter[CloseReason] = Counter()
        backlog: Counter[Priority] = Counter()
        per_assignee: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        first, resolution = [], []
        breaches = 0
        for t in tickets:
            if start <= t.created_at < end:
                opened[t.kind, t.priority] += 1
            if t.first_response_at and start <= t.first_response_at < end:
                first.append(reports.hours.working_time_between(t.created_at, t.first_response_at))
            resolved_today = t.resolved_at is not None and start <= t.resolved_at < end
            if resolved_today:
                resolution.append(reports.hours.working_time_between(t.created_at, t.resolved_at))  # type: ignore[arg-type]
            if t.closed_at and start <= t.closed_at < end and t.close_reason:
                closed[t.close_reason] += 1
            if t.sla_breached_at and start <= t.sla_breached_at < end:
                breaches += 1
            if t.created_at < end and (t.closed_at is None or t.closed_at >= end):
                backlog[t.priority] += 1
            if t.assignee_id is not None:
                line = per_assignee[t.assignee_id]
                line[0] += resolved_today
                line[1] += t.status in OPEN_STATUSES
        figures = {
            "opened": sum(opened.values()),
            "first_responded": len(first),
            "first_response_median": median(first),
            "first_response_p90": percentile(first, 0.9),
            "resolved": len(resolution),
            "closed": dict(closed),
            "sla_breaches": breaches,
            "backlog": sum(backlog.values()),
        }
        done = time.perf_counter()
        rss_after = peak_rss_mib()
        count = len(tickets)
        del tickets
    return NaiveResult(count, loaded - started, done - loaded, rss_after - rss_before, figures)


# ====================================================================== report


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    """VmHWM: the peak resident set since the process started or since ``reset_peak_rss``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start a new peak (Linux: ``echo 5 > /proc/self/clear_refs``), so phases are apart."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    import aiosqlite

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "aiosqlite": aiosqlite.__version__,
    }


def render(rows: Sequence[tuple[str, ...]]) -> str:
    """A plain-text table; figures align right, text left."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = [
        all(not row[i] or row[i][0].isdigit() or row[i] in ("ok", "SLOW") for row in rows[1:])
        for i in range(len(widths))
    ]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(widths[i]) if i and numeric[i] else c.ljust(widths[i])
            for i, c in enumerate(row)
        ]
        lines.append(" | ".join(cells).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def ms1(seconds: float) -> str:
    """Milliseconds with a decimal under 10 ms."""
    return f"{seconds * 1000:.1f}" if seconds < 0.01 else ms(seconds)


def size_mib(path: Path) -> float:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += (path.parent / (path.name + suffix)).stat().st_size
    return total / 2**20


# ====================================================================== main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summary_million", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets to seed")
    parser.add_argument("--db", type=Path, help="database file to create (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement")
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=200_000,
        help="tickets the naive baseline loads, extrapolated to the table; 0 = all of them",
    )
    parser.add_argument(
        "--no-what-if", action="store_true", help="skip the run with the candidate indexes"
    )
    args = parser.parse_args(argv)
    if args.tickets < 1000 or args.repeat < 1 or args.naive_rows < 0:
        parser.error("--tickets must be >= 1000, --repeat >= 1, --naive-rows >= 0")
    if args.db is not None and args.db.exists():
        parser.error(f"{args.db} exists; the benchmark wants a fresh database")
    return args


def verdict(seconds: float) -> str:
    return "ok" if seconds < TARGET_S else "SLOW"


async def measure(
    args: argparse.Namespace, path: Path, seeded: SeedResult, peaks: dict[str, float]
) -> int:
    url = f"sqlite+aiosqlite:///{path}"
    db = Database(url)
    try:
        await check_round_trip(db, seeded)
    finally:
        await db.dispose()
    last_week = [LAST_DAY - timedelta(days=i) for i in range(7)]
    day = max(last_week, key=lambda d: (seeded.per_day[d], d))
    month = (LAST_DAY.replace(day=1), LAST_DAY)
    print(
        f"\nsummary and chart of {day} ({day:%A}, the busiest day of the last week: "
        f"{seeded.per_day[day]:,} tickets opened); export of {month[0]} .. {month[1]}",
        flush=True,
    )

    print("measuring, schema as migrated:", flush=True)
    base = await run_reports(url, day, month, args.repeat, export=True)
    peaks["summary, history, export"] = peak_rss_mib()
    print("profiling each statement (sqlite3, EXPLAIN QUERY PLAN) ...", flush=True)
    profiles = profile_statements(path, base.statements, base.labels)
    rewrite_s, rewrite_points = history_rewritten(path, day)
    same_points = rewrite_points == [(p.opened, p.closed, p.backlog) for p in base.points]

    limit = 0 if args.naive_rows >= seeded.tickets else args.naive_rows
    print(
        "naive baseline: "
        + (f"the newest {limit:,} tickets" if limit else "every ticket")
        + " as ORM objects, the day's figures in Python ...",
        flush=True,
    )
    reset_peak_rss()
    db = Database(url)
    try:
        naive = await naive_summary(db, Reports(HOURS), day, limit)
    finally:
        await db.dispose()
    peaks["naive baseline"] = peak_rss_mib()

    what_if: Run | None = None
    made: list[tuple[str, str, float]] = []
    after: dict[str, QueryProfile] = {}
    rewrite_wi_s = math.nan
    if not args.no_what_if:
        print("what if: the candidate indexes on this database (dropped afterwards) ...")
        try:
            made = create_what_if(path)
            what_if = await run_reports(url, day, month, args.repeat, export=False)
            assert what_if.result == base.result
            assert what_if.points == base.points
            labelled = dict(zip(base.labels, base.statements, strict=True))
            keep = [label for label in what_if.labels if label in labelled]
            after = {
                p.label: p for p in profile_statements(path, [labelled[k] for k in keep], keep)
            }
            rewrite_wi_s, points_wi = history_rewritten(path, day)
            same_points = same_points and points_wi == rewrite_points
        finally:
            drop_what_if(path)

    # ---------------------------------------------------------------- the tables
    info = machine()
    print()
    print(
        render(
            [
                ("machine", ""),
                ("CPU", info["cpu"]),
                ("cores", str(info["cores"])),
                ("Python", info["python"]),
                ("SQLAlchemy", info["sqlalchemy"]),
                ("SQLite / aiosqlite", f"{info['sqlite']} / {info['aiosqlite']}"),
            ]
        )
    )
    print()
    scale = seeded.tickets / naive.rows
    both = (base.summary.best + base.history.best, base.summary.median + base.history.median)
    rows: list[tuple[str, ...]] = [("measurement", "runs", "min, ms", "median, ms", "< 1 s")]
    rows.append(
        (
            base.summary.name,
            str(len(base.summary.runs)),
            ms(base.summary.best),
            ms(base.summary.median),
            verdict(base.summary.median),
        )
    )
    for timing in (base.history, base.export):
        assert timing is not None
        rows.append((timing.name, str(len(timing.runs)), ms(timing.best), ms(timing.median), ""))
    rows.append(
        ("summary + history (one /summary)", "", ms(both[0]), ms(both[1]), verdict(both[1]))
    )
    rows.append(
        (
            f"naive: ORM rows + Python, measured on {naive.rows:,}",
            "1",
            ms(naive.total_s),
            ms(naive.total_s),
            "",
        )
    )
    if naive.rows != seeded.tickets:
        rows.append(
            (
                f"naive: EXTRAPOLATED x{scale:.1f} to {seeded.tickets:,} rows",
                "1",
                ms(naive.total_s * scale),
                ms(naive.total_s * scale),
                verdict(naive.total_s * scale),
            )
        )
    if what_if is not None:
        both_wi = what_if.summary.median + what_if.history.median
        rows.append(
            (
                "what if: Reports.summary + 4 indexes",
                str(len(what_if.summary.runs)),
                ms(what_if.summary.best),
                ms(what_if.summary.median),
                verdict(what_if.summary.median),
            )
        )
        rows.append(
            (
                "what if: Reports.history + 4 indexes",
                str(len(what_if.history.runs)),
                ms(what_if.history.best),
                ms(what_if.history.median),
                "",
            )
        )
        rows.append(("what if: summary + history", "", "", ms(both_wi), verdict(both_wi)))
    rows.append(
        ("what if: history as 3 counts/day (sqlite3)", "1", ms(rewrite_s), ms(rewrite_s), "")
    )
    if what_if is not None:
        rows.append(
            (
                "what if: ... and + 4 indexes (sqlite3)",
                "1",
                ms(rewrite_wi_s),
                ms(rewrite_wi_s),
                "",
            )
        )
    print(render(rows))
    print()
    figures: list[tuple[str, ...]] = [
        ("figure", "value"),
        (
            "tickets / events / users",
            f"{seeded.tickets:,} / {seeded.events:,} / {seeded.users:,}",
        ),
        ("seed time", f"{seeded.seconds:.1f} s ({seeded.tickets / seeded.seconds:,.0f} tickets/s)"),
        ("database size after seeding", f"{seeded.size_mib:,.1f} MiB"),
        (
            "export: rows / size",
            f"{base.csv.count(NEWLINE) - 1:,} / {len(base.csv) / 2**20:.1f} MiB",
        ),
        ("naive: load / compute", f"{ms(naive.load_s)} / {ms(naive.compute_s)} ms"),
        ("naive: memory", f"+{naive.rss_growth_mib:,.0f} MiB for {naive.rows:,} rows"),
        ("naive ÷ summary", f"{naive.total_s * scale / base.summary.median:,.0f}x"),
        *((f"peak RSS: {phase}", f"{mib:,.0f} MiB") for phase, mib in peaks.items()),
        ("peak RSS of the process", f"{max(peaks.values()):,.0f} MiB"),
    ]
    figures += [("what-if index built in", f"{s:.1f} s: {cols}") for _, cols, s in made]
    print(render(figures))
    print()
    statuses = ", ".join(f"{k} {v:,}" for k, v in seeded.statuses.most_common())
    reasons = ", ".join(f"{k} {v:,}" for k, v in seeded.reasons.most_common())
    print(f"seeded: {statuses}; closed {reasons}")
    print(
        f"seeded: rated {seeded.rated:,}, SLA breached {seeded.breached:,}, "
        f"disputed {seeded.disputed:,}"
    )
    r = base.result
    print(
        f"summary of {day}: opened {r.opened:,}, first responded {r.first_responded:,}, "
        f"resolved {r.resolved:,}, closed {sum(r.closed.values()):,}, reopened {r.reopened}, "
        f"SLA breaches {r.sla_breaches}, backlog {sum(r.backlog.values()):,}, ratings "
        f"{r.ratings} (avg {r.rating_average or 0:.2f}), {len(r.assignees)} assignees"
    )
    agree = (
        naive.figures["opened"] == r.opened
        and naive.figures["first_responded"] == r.first_responded
        and naive.figures["closed"] == r.closed
        and (bool(limit) or naive.figures["sla_breaches"] == r.sla_breaches)
    )
    print(
        "naive figures agree with Reports.summary (opened, first responded, closed"
        + ("" if limit else ", SLA breaches")
        + f"): {'yes' if agree else 'NO'}"
    )
    print(f"history as 3 counts/day gives the same 14 points: {'yes' if same_points else 'NO'}")

    print("\nstatements, re-run through sqlite3 on the file (best of 3):")
    rows = [("statement", "ms", "rows", "+4 idx, ms", "WHERE")]
    for p in profiles:
        later = after.get(p.label)
        rows.append(
            (
                p.label,
                ms1(p.seconds),
                f"{p.rows:,}",
                ms1(later.seconds) if later else "",
                p.where if len(p.where) <= 64 else p.where[:61] + "...",
            )
        )
    print(render(rows))
    slow = sorted((p for p in profiles if p.seconds >= SLOW_STATEMENT_S), key=lambda p: -p.seconds)
    if slow:
        print(f"\nstatements over {ms(SLOW_STATEMENT_S)} ms:")
    for p in slow:
        print(f"  {p.label} ({ms(p.seconds)} ms): WHERE {p.where}")
        for line in p.plan:
            print(f"      now:     {line}")
        later = after.get(p.label)
        if later is None:
            continue
        for line in later.plan:
            print(f"      +4 idx:  {line}")
        used = [name for name, _, _ in made if name in " ".join(later.plan)]
        if used and later.seconds * 5 < p.seconds:
            for name in used:
                cols = next(c for n, c, _ in made if n == name)
                print(
                    f"      -> {ms(p.seconds)} ms -> {ms1(later.seconds)} ms with INDEX ON {cols}"
                )
        else:
            print(
                f"      -> {ms(later.seconds)} ms with the candidate indexes: no index alone fixes"
                " this statement"
            )
    print(
        f"\nReports.summary median {ms(base.summary.median)} ms: "
        + ("under" if base.summary.median < TARGET_S else "OVER")
        + " the 1 s target."
    )

    # ---------------------------------------------------------------- timer sweeps
    print("\ntimer sweeps (the real Scheduler.sweep, as every SCHEDULER_INTERVAL) ...", flush=True)
    empty = path.with_name(path.name + ".empty")
    await asyncio.to_thread(migrate, f"sqlite+aiosqlite:///{empty}")
    try:
        idle = await run_sweeps(f"sqlite+aiosqlite:///{empty}", args.repeat * 4)
    finally:
        for leftover in empty.parent.glob(empty.name + "*"):
            leftover.unlink()
    full = await run_sweeps(url, args.repeat * 4)
    rows = [("timer sweep", "runs", "min, ms", "median, ms", "SELECTs", "< 1 s")]
    for label, sweep in (
        ("empty database (baseline)", idle),
        (f"{seeded.tickets:,} tickets", full),
    ):
        rows.append(
            (
                label,
                str(len(sweep.steady.runs)),
                ms1(sweep.steady.best),
                ms1(sweep.steady.median),
                str(len(sweep.statements)),
                verdict(sweep.steady.median),
            )
        )
    print(render(rows))
    print(
        "first sweep on the seeded desk did the work that was due: "
        f"{full.first_s * 1000:,.0f} ms, {full.closed:,} auto-closed, {full.reminded:,} "
        "reminded; the steady sweeps find nothing due"
    )
    for label, (statement, _) in zip(full.labels, full.statements, strict=True):
        print(f"  {label}: WHERE {where_clause(statement)}")
    sweep_profiles = profile_statements(path, full.statements, full.labels)
    for profile in sweep_profiles:
        print(
            f"  {profile.label}: {ms1(profile.seconds)} ms, {profile.rows:,} rows; "
            + "; ".join(profile.plan)
        )
    return 0


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@dataclass
class SweepRun:
    first_s: float
    closed: int
    reminded: int
    steady: Timing
    statements: list[tuple[str, tuple[Any, ...]]]
    labels: list[str]


async def run_sweeps(url: str, repeat: int) -> SweepRun:
    """The bot's own Scheduler, wired as ``bot.app.run`` wires it, at the end of the seeded
    year: one sweep does what is due, then the steady sweeps (nothing due) are timed."""
    from bot.app import (
        create_bot,
        create_desk_config,
        create_i18n,
        create_scheduler,
        create_services,
    )
    from bot.config import load_settings

    settings = load_settings(
        _env_file=None,
        bot_token="1:benchmark",
        staff_chat_id=-1001,
        manager_ids=frozenset({1}),
        timezone=str(TZ),
        database_url=url,
    )
    clock = FixedClock(datetime.combine(LAST_DAY, clock_time(23, 0), TZ))
    db = Database(url)
    log = StatementLog(db)
    bot = create_bot(settings)  # never called: the sweep talks to Telegram via the outbox
    services = create_services(
        settings, db, clock, create_i18n(settings), create_desk_config(settings), bot
    )
    scheduler = create_scheduler(settings, db, clock, services, after_commit=lambda: None)
    try:
        started = time.perf_counter()
        closed, reminded = await scheduler.sweep()
        first_s = time.perf_counter() - started
        with log.record() as statements:
            await scheduler.sweep()
        steady, _ = await timed("Scheduler.sweep", scheduler.sweep, repeat, 60)
    finally:
        await db.dispose()
        await bot.session.close()
    labels = [f"sweep #{n}" for n in range(1, len(statements) + 1)]
    return SweepRun(first_s, closed, reminded, steady, list(statements), labels)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"SQLAlchemy {info['sqlalchemy']}, SQLite {info['sqlite']}"
    )
    tmp = None
    if args.db is None:
        tmp = Path(tempfile.mkdtemp(prefix="summary-bench-"))
        path = tmp / "desk.sqlite3"
    else:
        path = args.db.resolve()
    try:
        url = f"sqlite+aiosqlite:///{path}"
        print(f"database: {path}; migrating ...", flush=True)
        migrate(url)
        print(
            f"seeding {args.tickets:,} tickets over {DAYS} days ending {LAST_DAY} ...", flush=True
        )
        seeded = seed(path, args.tickets)
        peaks = {"seeding (sqlite3, 256 MiB cache)": peak_rss_mib()}
        if not reset_peak_rss():
            print("note: VmHWM cannot be reset here; the peaks below are cumulative")
        print(
            f"seeded in {seeded.seconds:.1f}s: {seeded.tickets:,} tickets, {seeded.events:,} "
            f"events, {seeded.size_mib:,.1f} MiB",
            flush=True,
        )
        return asyncio.run(measure(args, path, seeded, peaks))
    finally:
        if args.keep:
            print(f"kept {path}")
        elif tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    (path.parent / (path.name + suffix)).unlink()


if __name__ == "__main__":
    sys.exit(main())
