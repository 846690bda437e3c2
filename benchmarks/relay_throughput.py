"""Relay throughput and latency of the running desk, side by side with a bare aiogram echo bot.

    python -m benchmarks.relay_throughput [--preset many|few|both] [--customers N] [--messages M]
                                          [--repeat 1] [--json PATH] [--profile PATH]
                                          [--count] [--py-spy PATH]

Both bots run as processes against the emulated Bot API (:class:`bot.emulator.FakeTelegram`,
in this process, on 127.0.0.1, without Telegram's rate limits). Each gets the same burst:
N customers each write M texts at once; every text carries a unique token and must come out in
the staff group exactly once, as the copy the bot makes of it. Measured:

* throughput: relayed messages / (first update enqueued → last copy stored by the emulator);
* latency of each message: copy stored − update enqueued (p50/p90/p99/max);
* peak RSS of the bot process (VmHWM) and its CPU time during the burst;
* lost and duplicated tokens: any of them makes the exit status non-zero.

Presets: ``many`` (the default) is 200 customers x 5 texts, ``few`` 3 customers x 334 texts
(beyond their pace: most of it reaches staff coalesced), ``both`` runs one after the other.
``--count`` runs the desk under :mod:`benchmarks.desk_probe` and prints its database work per
relayed message (statements, transactions, thread round trips, the main thread's CPU) instead of
timing it;
``--py-spy PATH`` records the desk with py-spy during the burst.

The echo bot (:mod:`benchmarks.echo_bot`) answers each private text with one ``copyMessage``
to the staff group, the Bot API work the desk does per follow-up. The desk (``python -m bot``)
gets a fresh SQLite database in which every customer has one open ticket, so each text is a
follow-up relayed to staff (SPEC §4).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiogram
import aiohttp

from bot.emulator import FakeTelegram, FakeUser
from bot.emulator.world import StoredMessage

ROOT = Path(__file__).resolve().parents[1]
STAFF_CHAT_ID = -1001000000001
FIRST_CUSTOMER_ID = 2_000_001
WARMUP_CUSTOMERS = 5
# The desk's own sending limits, raised far above Telegram's (see LIMITS_NOTE).
UNLIMITED = "1000000"
LIMITS_NOTE = (
    "Note: the emulator does not enforce Telegram's limits here, and the desk runs with its own\n"
    f"sending limits raised to {UNLIMITED}/s|min. With Telegram's real limits the staff group\n"
    "takes 20 messages a minute, which caps relays at 20/min whatever the bot does; this run\n"
    "measures the bot's own overhead per relayed message."
)
# The desk as every benchmark runs it: always within support hours, its own limits lifted.
DESK_SETTINGS = {
    "TIMEZONE": "Europe/Moscow",
    "SUPPORT_HOURS": "00:00-24:00",
    "DEFAULT_LOCALE": "en",
    "DELIVERY_GROUP_PER_MINUTE": UNLIMITED,
    "DELIVERY_PRIVATE_PER_SECOND": UNLIMITED,
    "DELIVERY_GLOBAL_PER_SECOND": UNLIMITED,
}
TOKEN_RE = re.compile(r"bench:([a-z]+):(\d+):(\d+)")
POLL_INTERVAL = 0.01
# Customers x texts per customer, about 1,000 messages each.
PRESETS = {"many": (200, 5), "few": (3, 334)}


# ====================================================================== results


@dataclass
class RunResult:
    bot: str
    sent: int
    delivered: int  # distinct tokens that arrived
    lost: int
    duplicated: int  # extra copies beyond the first
    elapsed_s: float  # first enqueue → last copy stored
    throughput_per_s: float
    latency_ms: dict[str, float]  # p50, p90, p99, max, mean
    peak_rss_mib: float
    start_peak_rss_mib: float  # VmHWM when the burst began: start-up and warm-up
    cpu_s: float  # the bot process's user+system time during the burst
    main_thread_cpu_s: float  # of which its main thread's (the event loop)
    api_calls: dict[str, int]  # the bot's Bot API calls during the burst, by method
    timed_out: bool = False
    # With --count: the desk's database work during the burst, by part of the desk.
    db_work: dict[str, dict[str, int]] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)

    @property
    def faulty(self) -> bool:
        return self.lost > 0 or self.duplicated > 0 or self.timed_out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "max": nan, "mean": nan}
    if len(values) == 1:
        (only,) = values
        return {"p50": only, "p90": only, "p99": only, "max": only, "mean": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": cuts[49],
        "p90": cuts[89],
        "p99": cuts[98],
        "max": max(values),
        "mean": statistics.fmean(values),
    }


# ====================================================================== the bot process


def _proc_status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the resident set's high-water mark of the process."""
    value = _proc_status(pid).get("VmHWM", "0 kB").split()[0]
    return int(value) / 1024


def cpu_seconds(pid: int, *, main_thread_only: bool = False) -> float:
    """User + system CPU time of the process (all its threads, ended ones included) so far, or
    of its main thread (the event loop) only."""
    path = f"/proc/{pid}/task/{pid}/stat" if main_thread_only else f"/proc/{pid}/stat"
    try:
        with open(path) as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # Fields after the command name start at field 3 (state): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


def _read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class BotProcess:
    """One bot run as ``python -m ...`` with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        *,
        cwd: Path = ROOT,  # another checkout runs that checkout's code (benchmarks.burst)
        ready: str = "Run polling",  # what its log says once it takes updates
    ) -> None:
        self.ready = ready
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 60) -> None:
        log = _open_log(self.log_path)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()
        # Both aiogram's start_polling and the desk's poller log "Run polling" once they poll.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.ready not in _read_log(self.log_path):
            if self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if loop.time() > deadline:
                raise TimeoutError(f"{self.name} did not start in {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def log(self, last: int = 40) -> str:
        return "\n".join(_read_log(self.log_path).splitlines()[-last:])


def bot_env(fake: FakeTelegram, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOT_", "STAFF_", "DATABASE_", "TELEGRAM_", "SUPPORT_", "DELIVERY_"))
    }
    assert fake.url is not None
    env.update(
        {
            "BOT_TOKEN": fake.token,
            "STAFF_CHAT_ID": str(STAFF_CHAT_ID),
            "TELEGRAM_API_URL": fake.url,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(settings)
    return env


# ====================================================================== observing the relays


class RelayObserver:
    """Reads the bot's messages in the staff group as the emulator stores them and notes when
    each token arrived (``StoredMessage.sent_at``, the emulator's monotonic clock)."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.state = fake.chats[STAFF_CHAT_ID]
        self.scanned = 0
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)
        self.last_arrival = time.monotonic()

    def scan(self) -> None:
        ids = self.state.bot_ids
        while self.scanned < len(ids):
            message_id = ids[self.scanned]
            self.scanned += 1
            stored = self.state.messages.get(message_id) or self.state.deleted.get(message_id)
            if stored is None:
                continue
            self.seen(message_id, stored)

    def seen(self, message_id: int, stored: StoredMessage) -> None:
        """One new message of the bot's (a subclass may note more about it)."""
        # A follow-up may also arrive merged with others into one message: count each.
        for match in TOKEN_RE.finditer(self.fake.text_of(stored.data)):
            self.arrivals[match.group(0)].append(stored.sent_at)
            self.last_arrival = time.monotonic()

    def missing(self, tokens: Sequence[str]) -> int:
        return sum(1 for token in tokens if token not in self.arrivals)

    async def wait_all(
        self,
        tokens: Sequence[str],
        *,
        timeout: float,
        stall: float,
    ) -> bool:
        """Wait until every token arrived; False after ``timeout`` or ``stall`` seconds without
        any arrival."""
        deadline = time.monotonic() + timeout
        self.last_arrival = time.monotonic()
        while True:
            self.scan()
            if not self.missing(tokens):
                return True
            now = time.monotonic()
            if now > deadline or now - self.last_arrival > stall:
                return False
            await asyncio.sleep(POLL_INTERVAL)


def add_customers(fake: FakeTelegram, count: int) -> list[FakeUser]:
    """The burst's customers, each with a private chat with the bot."""
    return [
        fake.add_user(
            FIRST_CUSTOMER_ID + i,
            f"Customer {i}",
            username=f"customer_{i}",
            language_code="en",
            started=True,
        )
        for i in range(count)
    ]


def token(phase: str, customer: int, number: int) -> str:
    return f"bench:{phase}:{customer}:{number}"


def follow_up(phase: str, customer: int, number: int) -> str:
    return f"Any news on my request? Still no access, ref {token(phase, customer, number)}"


# ====================================================================== the desk's database


async def migrate(env: dict[str, str], log_path: Path, *, cwd: Path = ROOT) -> None:
    log = _open_log(log_path)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "migrate", cwd=cwd, env=env, stdout=log, stderr=log
        )
    finally:
        log.close()
    try:
        code = await asyncio.wait_for(proc.wait(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"python -m bot migrate exited with {code}:\n{_read_log(log_path)}")


async def post_cards(
    fake: FakeTelegram, count: int, threads: Sequence[int] | None = None
) -> list[int]:
    """The staff cards of the seeded tickets, sent through the emulated API as the bot would
    (into each ticket's forum topic, ``threads``, if given)."""
    url = f"{fake.url}/bot{fake.token}/sendMessage"
    ids: list[int] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for number in range(1, count + 1):
            text = f"#{number} · P2 · In progress\nCannot log in (seeded for the benchmark)"
            card: dict[str, Any] = {"chat_id": STAFF_CHAT_ID, "text": text}
            if threads is not None:
                card["message_thread_id"] = threads[number - 1]
            async with http.post(url, json=card) as response:
                body = await response.json()
            if not body.get("ok"):
                raise RuntimeError(f"sendMessage of a card failed: {body}")
            ids.append(int(body["result"]["message_id"]))
    return ids


def seed_tickets(
    database_url: str,
    customers: Sequence[FakeUser],
    cards: Sequence[int],
    threads: Sequence[int] | None = None,
) -> None:
    """One open ticket (in progress, answered, with its card, in its forum topic ``threads`` if
    given) per customer, on SQLite or PostgreSQL (from a thread or a process of its own)."""
    asyncio.run(_seed_tickets(database_url, customers, cards, threads))


async def _seed_tickets(
    database_url: str,
    customers: Sequence[FakeUser],
    cards: Sequence[int],
    threads: Sequence[int] | None,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from bot.db.models import Ticket, User
    from bot.domain.tickets import Kind, Priority, Status

    now = datetime.now(UTC)
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            for index, (customer, card) in enumerate(zip(customers, cards, strict=True)):
                session.add(
                    User(
                        id=customer.id,
                        first_name=customer.first_name,
                        username=customer.username,
                        language_code=customer.language_code,
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.add(
                    Ticket(
                        number=index + 1,
                        intake_key=f"benchmark-{customer.id}",
                        customer_id=customer.id,
                        account_number=f"{10_000_000 + index}",
                        topic="Cannot log in",
                        kind=Kind.INCIDENT,
                        description="The login page shows an error after the update.",
                        priority=Priority.P2,
                        status=Status.IN_PROGRESS,
                        assignee_id=1,
                        line=1,
                        locale="en",
                        created_at=now,
                        updated_at=now,
                        first_response_at=now,
                        reopened_count=0,
                        staff_chat_id=STAFF_CHAT_ID,
                        staff_thread_id=threads[index] if threads is not None else None,
                        card_message_id=card,
                    )
                )
                if index % 100 == 99:
                    await session.flush()  # users before their tickets, in reasonable chunks
    finally:
        await engine.dispose()


# ====================================================================== one run


@dataclass(frozen=True)
class Params:
    customers: int
    messages: int
    timeout: float
    stall: float
    profile: Path | None
    count: bool = False
    py_spy: Path | None = None


async def run_bot(kind: str, params: Params, workdir: Path) -> RunResult:
    fake = FakeTelegram(enforce_limits=False)
    await fake.start("127.0.0.1")
    try:
        fake.add_group(STAFF_CHAT_ID, "e-Comet support staff")
        users = add_customers(fake, params.customers + WARMUP_CUSTOMERS)
        log_path = workdir / f"{kind}.log"
        if kind == "echo":
            env = bot_env(fake)
            argv = [sys.executable, "-m", "benchmarks.echo_bot"]
        else:
            database_url = f"sqlite+aiosqlite:///{workdir / 'desk.sqlite3'}"
            env = bot_env(
                fake,
                DATABASE_URL=database_url,
                **DESK_SETTINGS,
            )
            await migrate(env, log_path)
            cards = await post_cards(fake, len(users))
            await asyncio.to_thread(seed_tickets, database_url, users, cards)
            argv = [sys.executable, "-m", "bot"]
            if params.count:
                argv = [sys.executable, "-m", "benchmarks.desk_probe"]
                env["BENCH_PROBE_OUT"] = str(workdir / "probe.json")
            elif params.profile is not None:
                argv[1:1] = ["-m", "cProfile", "-o", str(params.profile)]
        bot = BotProcess(kind, argv, env, log_path)
        await bot.start()
        print(f"  {kind}: pid {bot.pid}, polling", flush=True)
        try:
            return await measure_burst(kind, fake, [bot], users, params)
        finally:
            code = await bot.stop()
            if code not in (0, None, -signal.SIGTERM):
                print(f"  {kind} exited with {code}:\n{bot.log()}", file=sys.stderr)
    finally:
        await fake.stop()


async def measure_burst(
    kind: str,
    fake: FakeTelegram,
    bots: Sequence[BotProcess],
    users: Sequence[FakeUser],
    params: Params,
) -> RunResult:
    """The burst through ``bots`` (one process, or several instances of the desk: their CPU
    added up, the highest peak RSS of one)."""
    bot = bots[0]
    observer = RelayObserver(fake)
    customers, warmup = users[: params.customers], users[params.customers :]

    # Warm-up: a few messages through the whole path before anything is measured.
    warm = [token("warm", i, 0) for i in range(len(warmup))]
    for i, user in enumerate(warmup):
        fake.send_text(user, follow_up("warm", i, 0))
    if not await observer.wait_all(warm, timeout=30, stall=30):
        logs = "\n".join(b.log() for b in bots)
        raise RuntimeError(f"{kind}: the warm-up messages were not relayed:\n{logs}")
    await asyncio.sleep(0.5)
    observer.scan()

    probe = Path(bot.env["BENCH_PROBE_OUT"]) if "BENCH_PROBE_OUT" in bot.env else None
    db_before = await _probe(bot, probe) if probe is not None else {}
    spy = await _start_py_spy(bot.pid, params.py_spy) if params.py_spy and kind == "desk" else None
    calls_before = len(fake.calls)
    start_rss = max(peak_rss_mib(b.pid) for b in bots)
    cpu_before = sum(cpu_seconds(b.pid) for b in bots)
    main_before = sum(cpu_seconds(b.pid, main_thread_only=True) for b in bots)
    enqueued: dict[str, float] = {}
    for number in range(params.messages):
        for i, user in enumerate(customers):
            fake.send_text(user, follow_up("burst", i, number))
            enqueued[token("burst", i, number)] = time.monotonic()
    first = min(enqueued.values())
    tokens = list(enqueued)
    completed = await observer.wait_all(tokens, timeout=params.timeout, stall=params.stall)
    # Anything sent twice comes soon after the rest.
    await asyncio.sleep(1.0)
    observer.scan()
    cpu = sum(cpu_seconds(b.pid) for b in bots) - cpu_before
    main_cpu = sum(cpu_seconds(b.pid, main_thread_only=True) for b in bots) - main_before
    rss = max(peak_rss_mib(b.pid) for b in bots)
    if spy is not None:
        await _stop_py_spy(spy)
    db_work = _difference(await _probe(bot, probe), db_before) if probe is not None else {}

    arrivals = {t: observer.arrivals[t] for t in tokens if t in observer.arrivals}
    latencies = [(min(times) - enqueued[t]) * 1000 for t, times in arrivals.items()]
    last = max((min(times) for times in arrivals.values()), default=first)
    elapsed = max(last - first, 1e-9)
    methods = Counter(call.method for call in fake.calls[calls_before:])
    result = RunResult(
        bot=kind,
        sent=len(tokens),
        delivered=len(arrivals),
        lost=len(tokens) - len(arrivals),
        duplicated=sum(len(times) - 1 for times in arrivals.values()),
        elapsed_s=elapsed,
        throughput_per_s=len(arrivals) / elapsed,
        latency_ms=percentiles(latencies),
        peak_rss_mib=rss,
        start_peak_rss_mib=start_rss,
        cpu_s=cpu,
        main_thread_cpu_s=main_cpu,
        api_calls=dict(methods.most_common()),
        timed_out=not completed,
        db_work=db_work,
    )
    if result.faulty:
        result.log_tail = [line for b in bots for line in b.log().splitlines()]
    return result


# ====================================================================== probes


async def _probe(bot: BotProcess, path: Path) -> dict[str, dict[str, int]]:
    """The desk_probe's counters now (it writes them on SIGUSR1)."""
    before = _mtime(path)
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGUSR1)
    for _ in range(500):
        if _mtime(path) != before:
            return dict(json.loads(_read_log(path)))
        await asyncio.sleep(0.01)
    raise TimeoutError("the desk probe wrote no counters")


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _difference(
    after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    work: dict[str, dict[str, int]] = {}
    for part, counts in after.items():
        earlier = before.get(part, {})
        diff = {key: n - earlier.get(key, 0) for key, n in counts.items()}
        work[part] = {key: n for key, n in diff.items() if n}
    return {part: counts for part, counts in work.items() if counts}


async def _start_py_spy(pid: int, path: Path) -> asyncio.subprocess.Process:
    spy = await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(pid), "--rate", "250", "--gil", "--format", "raw",
        "-o", str(path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(0.5)  # attached before the burst starts
    return spy


async def _stop_py_spy(spy: asyncio.subprocess.Process) -> None:
    if spy.returncode is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    _, err = await spy.communicate()
    if spy.returncode not in (0, -signal.SIGINT):
        print(f"  py-spy exited with {spy.returncode}: {err.decode(errors='replace')}")


def db_work_table(result: RunResult) -> str:
    """Per relayed message, by part of the desk: the --count figures."""
    sent = max(result.sent, 1)
    parts = sorted(result.db_work, key=lambda part: (part != "intake", part))
    lines = [f"database work per relayed message ({result.sent} messages):"]
    for part in parts:
        counts = result.db_work[part]
        updates = counts.get("updates")
        head = f"  {part}" + (
            f" ({updates} updates in {counts.get('batches', 0)} batches)" if updates else ""
        )
        lines.append(head)
        for key in (
            "statements",
            "commits",
            "rollbacks",
            "savepoints",
            "thread round trips",
            "asyncio.to_thread calls",
            "heads claimed",
        ):
            if key in counts:
                lines.append(f"    {key:<22} {counts[key] / sent:8.2f}")
        if "main thread CPU, µs" in counts:
            cpu_ms = counts["main thread CPU, µs"] / 1000 / sent
            lines.append(f"    {'main thread CPU, ms':<22} {cpu_ms:8.3f}")
        if "gc CPU, µs" in counts:
            gc_ms = counts["gc CPU, µs"] / 1000 / sent
            lines.append(f"    {'  of which in gc, ms':<22} {gc_ms:8.3f}")
            for key in sorted(k for k in counts if k.startswith("gc: ")):
                lines.append(f"      {key[4:]:<36} {counts[key] / sent:6.3f}")
        kinds = sorted(
            ((k[5:], n) for k, n in counts.items() if k.startswith("sql: ")), key=lambda kv: -kv[1]
        )
        for kind, n in kinds:
            lines.append(f"      {kind:<36} {n / sent:6.2f}")
        compiled = sorted(
            ((k[10:], n) for k, n in counts.items() if k.startswith("compiled: ")),
            key=lambda kv: -kv[1],
        )
        for kind, n in compiled:
            lines.append(f"      compiled {kind:<27} {n / sent:6.2f}")
    return "\n".join(lines)


# ====================================================================== report


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    import sqlalchemy

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "aiogram": aiogram.__version__,
        "aiohttp": aiohttp.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
    }


def _ratio(desk: float, echo: float) -> str:
    return f"{desk / echo:.2f}x" if echo else "-"


def table(echo: RunResult, desk: RunResult) -> str:
    rows: list[tuple[str, str, str, str]] = [("metric", "echo bot", "desk", "desk/echo")]

    def add(name: str, a: float, b: float, fmt: str) -> None:
        rows.append((name, format(a, fmt), format(b, fmt), _ratio(b, a)))

    add("throughput, msg/s", echo.throughput_per_s, desk.throughput_per_s, ".1f")
    add("burst drained in, s", echo.elapsed_s, desk.elapsed_s, ".2f")
    for key in ("p50", "p90", "p99", "max"):
        add(f"latency {key}, ms", echo.latency_ms[key], desk.latency_ms[key], ".0f")
    add("bot CPU during burst, s", echo.cpu_s, desk.cpu_s, ".2f")
    add("  of which main thread, s", echo.main_thread_cpu_s, desk.main_thread_cpu_s, ".2f")
    add(
        "bot CPU per message, ms",
        echo.cpu_s * 1000 / max(echo.sent, 1),
        desk.cpu_s * 1000 / max(desk.sent, 1),
        ".2f",
    )
    add("peak RSS (VmHWM), MiB", echo.peak_rss_mib, desk.peak_rss_mib, ".1f")
    add("  of which before the burst", echo.start_peak_rss_mib, desk.start_peak_rss_mib, ".1f")

    def calls(result: RunResult) -> str:
        relay = result.api_calls.get("copyMessage", 0)
        other = sum(result.api_calls.values()) - relay - result.api_calls.get("getUpdates", 0)
        return f"{relay} copy+{other}"

    rows.append(("Bot API calls (+other)", calls(echo), calls(desk), ""))
    rows.append(
        (
            "getUpdates calls",
            str(echo.api_calls.get("getUpdates", 0)),
            str(desk.api_calls.get("getUpdates", 0)),
            "",
        )
    )
    rows.append(
        ("delivered / sent", f"{echo.delivered}/{echo.sent}", f"{desk.delivered}/{desk.sent}", "")
    )
    rows.append(("lost", str(echo.lost), str(desk.lost), ""))
    rows.append(("duplicated", str(echo.duplicated), str(desk.duplicated), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(widths[i]) for i, cell in enumerate(row) if i
        ]
        lines.append(" | ".join(cells))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def median_run(runs: Sequence[RunResult]) -> RunResult:
    ordered = sorted(runs, key=lambda r: r.throughput_per_s)
    return ordered[(len(ordered) - 1) // 2]


# ====================================================================== main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.relay_throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--preset",
        choices=[*PRESETS, "both"],
        help="many: 200 customers x 5 texts (the default); few: 3 x 334; both: one, then the other",
    )
    parser.add_argument("--customers", type=int, help="customers writing at once")
    parser.add_argument("--messages", type=int, help="texts per customer")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each bot (median shown)")
    parser.add_argument("--timeout", type=float, default=90.0, help="max seconds per burst")
    parser.add_argument(
        "--stall", type=float, default=20.0, help="give up after this many seconds without a relay"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile", type=Path, help="run the desk under cProfile and write its stats here"
    )
    parser.add_argument(
        "--count",
        action="store_true",
        help="count the desk's statements, transactions and thread round trips (slows it)",
    )
    parser.add_argument("--py-spy", type=Path, help="record the desk's burst with py-spy here")
    args = parser.parse_args(argv)
    if args.preset is not None and (args.customers or args.messages):
        parser.error("--preset and --customers/--messages exclude each other")
    if args.preset is None:
        preset = PRESETS["many"]
        args.bursts = [(args.customers or preset[0], args.messages or preset[1])]
    elif args.preset == "both":
        args.bursts = [PRESETS["few"], PRESETS["many"]]
    else:
        args.bursts = [PRESETS[args.preset]]
    if any(n < 1 for burst in args.bursts for n in burst) or args.repeat < 1:
        parser.error("--customers, --messages and --repeat must be positive")
    return args


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, aiogram {info['aiogram']}, aiohttp {info['aiohttp']}, "
        f"SQLAlchemy {info['sqlalchemy']}"
    )
    print(LIMITS_NOTE, flush=True)
    if args.count:
        print("--count: the desk runs with counting hooks; its timings here are not its own.")
    reports: list[dict[str, Any]] = []
    faulty: list[RunResult] = []
    for customers, messages in args.bursts:
        params = Params(
            customers=customers,
            messages=messages,
            timeout=args.timeout,
            stall=args.stall,
            profile=args.profile.resolve() if args.profile else None,
            count=args.count,
            py_spy=args.py_spy.resolve() if args.py_spy else None,
        )
        report = await _one_burst(params, args.repeat)
        reports.append(report)
        faulty += [r for rs in (report["echo"], report["desk"]) for r in rs if r.faulty]
    if args.json:
        bursts = [
            {
                "parameters": {
                    "customers": report["params"].customers,
                    "messages": report["params"].messages,
                    "repeat": args.repeat,
                    "desk_delivery_limits": UNLIMITED,
                },
                "throughput_ratio": report["ratio"],
                "echo": [asdict(r) for r in report["echo"]],
                "desk": [asdict(r) for r in report["desk"]],
            }
            for report in reports
        ]
        args.json.write_text(json.dumps({"machine": info, "bursts": bursts}, indent=2))
        print(f"figures written to {args.json}")
    if args.profile is not None:
        print(f"cProfile stats of the last desk run: {args.profile}")
    if args.py_spy is not None:
        print(f"py-spy samples of the last desk run: {args.py_spy}")
    if faulty:
        print(f"FAILED: {len(faulty)} run(s) lost, duplicated or timed out", file=sys.stderr)
        return 1
    return 0


async def _one_burst(params: Params, repeat: int) -> dict[str, Any]:
    print(
        f"\nburst: {params.customers} customers x {params.messages} texts = "
        f"{params.customers * params.messages} messages, repeat {repeat}; "
        "emulator in this process on 127.0.0.1, enforce_limits=False",
        flush=True,
    )
    runs: dict[str, list[RunResult]] = {"echo": [], "desk": []}
    for attempt in range(repeat):
        for kind in ("echo", "desk"):
            print(f"run {attempt + 1}/{repeat}: {kind}", flush=True)
            with tempfile.TemporaryDirectory(prefix=f"relay-bench-{kind}-") as tmp:
                result = await run_bot(kind, params, Path(tmp))
            runs[kind].append(result)
            print(
                f"  {kind}: {result.delivered}/{result.sent} in {result.elapsed_s:.2f}s "
                f"= {result.throughput_per_s:.1f} msg/s, p50 {result.latency_ms['p50']:.0f} ms, "
                f"lost {result.lost}, duplicated {result.duplicated}"
                + (", TIMED OUT" if result.timed_out else ""),
                flush=True,
            )
            if result.faulty:
                print("  last lines of its log:\n    " + "\n    ".join(result.log_tail[-20:]))
    echo, desk = median_run(runs["echo"]), median_run(runs["desk"])
    ratio = desk.throughput_per_s / echo.throughput_per_s if echo.throughput_per_s else 0.0
    print()
    print(f"{params.customers} customers x {params.messages} texts, median of {repeat}:")
    print(table(echo, desk))
    print()
    verdict = "meets" if ratio >= 0.7 else "BELOW"
    print(f"desk/echo throughput: {ratio:.2f} ({verdict} the target of >= 0.70)")
    if desk.db_work:
        print()
        print(db_work_table(desk))
    return {"params": params, "echo": runs["echo"], "desk": runs["desk"], "ratio": ratio}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
