"""A burst of follow-ups with Telegram's limits enforced: do staff see every word in time?

    python -m benchmarks.burst [--customers 100] [--messages 5] [--forum on|off|both]
                               [--complete-timeout 600] [--no-complete] [--visible-timeout 300]
                               [--baseline-tree PATH] [--baseline-timeout 300] [--json PATH]

SPEC §8: "Staff see every customer's words within two minutes of a burst of 500 messages from
100 customers, with Telegram's limits in force and no 429 provoked." The emulated Bot API
(:class:`bot.emulator.FakeTelegram`, ``enforce_limits=True``) runs in this process on
127.0.0.1; the desk (``python -m bot``, a fresh migrated SQLite database, its default
``DELIVERY_*`` limits) runs as a process against it. Every customer has one open ticket,
already answered, with its card (and, in a forum, its topic); each sends M texts within a few
seconds, every text with a unique token. Measured:

* visibility: a token is visible once any bot message in the staff group holds it (a relay, a
  joined text, a digest in the General topic), timed from its update's enqueueing;
* completeness: each ticket's own conversation (its topic; in a plain group the messages that
  reply to its card) must end up holding each of its tokens exactly once;
* the 429s the emulator answered, and the Bot API calls and messages sent to the staff group.

With ``--baseline-tree PATH`` the same burst also runs against the desk of another checkout
(``cwd`` and ``PYTHONPATH`` set to PATH), side by side. The exit status is 1 when this tree
misses a target: every word visible within 120 s, 0 × 429, nothing lost, nothing duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.relay_throughput import (
    ROOT,
    STAFF_CHAT_ID,
    TOKEN_RE,
    BotProcess,
    RelayObserver,
    add_customers,
    bot_env,
    follow_up,
    machine,
    migrate,
    percentiles,
    post_cards,
    token,
)
from bot.emulator import FakeTelegram, FakeUser
from bot.emulator.world import StoredMessage

TARGET_S = 120.0  # SPEC §8: every customer's words visible to staff within two minutes
PHASE = "burst"
POLL_INTERVAL = 0.1
# After completeness, late duplicates are awaited until the group has been quiet this long...
SETTLE_QUIET_S = 3.0
SETTLE_MAX_S = 60.0  # ...but no longer than this
# A joined text's first line names its customer: "💬 <name> · 3 messages in a row, ...".
HEADER_RE = re.compile(r"^\W*(?P<name>.+?) · ")

# Seeds the tickets with the seeding code of benchmarks.relay_throughput (loaded from this
# tree by its path), but in a process that imports the checkout's own `bot` (its models match
# the schema its migrations made); prints which files it imported, to check the tree.
SEED_SCRIPT = """
import importlib.util, json, sys
args = json.load(sys.stdin)
spec = importlib.util.spec_from_file_location("_burst_relay_throughput", args["module"])
relay = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = relay
spec.loader.exec_module(relay)
import bot, bot.app, bot.db.models
from bot.emulator import FakeUser
users = [FakeUser(u["id"], u["first_name"], username=u["username"],
                  language_code=u["language_code"]) for u in args["users"]]
relay.seed_tickets(args["database_url"], users, args["cards"], args["threads"])
print(json.dumps({"bot": bot.__file__, "app": bot.app.__file__,
                  "models": bot.db.models.__file__}))
"""


# ====================================================================== results


@dataclass
class BurstResult:
    tree: str  # "this tree" or "baseline"
    path: str
    forum: bool
    customers: int
    sent: int
    burst_sent_in_s: float  # first → last update enqueued
    waited_s: float  # first update enqueued → end of the run
    visible: int  # tokens visible anywhere in the staff group by the end
    visible_within_target: int
    latency_s: dict[str, float]  # visible − enqueued, over the visible tokens
    last_visible_s: float | None  # the slowest token's latency, None if some never showed
    complete: bool  # every ticket's own conversation holds all its tokens
    complete_after_s: float | None  # first enqueue → the last token in its own conversation
    in_own_conversation: int
    queued_at_end: int  # tokens not yet shown that the desk still holds (outbox, updates)
    lost: int  # not in its own conversation and held nowhere
    duplicated: int  # extra copies of a token in its own conversation
    misplaced: int  # tokens found in another ticket's conversation
    rate_limited: int  # 429s the emulator answered for flood, bot start → end
    rate_limited_staff: int  # of which in the staff group
    staff_messages: int  # messages the bot stored in the staff group during the burst
    staff_calls: dict[str, int]  # successful calls on the staff group, by method
    staff_refused: dict[str, int]  # refused ones, "method error_code"
    all_calls: dict[str, int]  # every call of the bot during the burst, by method
    staff_deliveries: dict[str, int] | None  # the desk's outbox rows for the group, by status
    failed_updates: int | None
    imported: dict[str, str] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def misses(self, *, completeness: bool) -> list[str]:
        """The targets this run misses (empty: it meets them all)."""
        missed = []
        if self.last_visible_s is None or self.last_visible_s > TARGET_S:
            missed.append(f"{self.sent - self.visible_within_target} words not visible in 120 s")
        if self.rate_limited:
            missed.append(f"{self.rate_limited} x 429")
        if self.lost:
            missed.append(f"{self.lost} lost")
        if self.duplicated:
            missed.append(f"{self.duplicated} duplicated")
        if self.misplaced:
            missed.append(f"{self.misplaced} in another ticket's conversation")
        if completeness and not self.complete:
            missed.append("conversations not complete in time")
        return missed


# ====================================================================== observing the group


@dataclass
class Post:
    """One bot message in the staff group, as far as the benchmark cares."""

    owner: int | None  # the customer (index) whose ticket's conversation it is in
    where: str  # its topic or the message it replies to, for the report
    tokens: Counter[str]
    since: dict[str, float]  # when each token first showed in it
    text: str = ""  # as last read: an edit changes it


class StaffScanner(RelayObserver):
    """Every bot message in the staff group: which ticket's conversation it belongs to, which
    tokens it holds and since when. A message edited later (a digest brought up to date) is
    read again, and tokens it gains count from when they were seen."""

    def __init__(
        self,
        fake: FakeTelegram,
        *,
        forum: bool,
        topics: Sequence[int] | None,
        cards: Sequence[int],
        names: Sequence[str],
    ) -> None:
        super().__init__(fake)
        self.forum = forum
        self.by_topic = {topic: i for i, topic in enumerate(topics or ())}
        self.by_card = {card: i for i, card in enumerate(cards)}
        self.by_name = {name: i for i, name in enumerate(names)}
        self.posts: dict[int, Post] = {}
        self.visible_at: dict[str, float] = {}
        self.last_post = time.monotonic()

    def seen(self, message_id: int, stored: StoredMessage) -> None:
        super().seen(message_id, stored)
        data = stored.data
        where = f"topic {data.get('message_thread_id', 'General')}, reply to " + str(
            (data.get("reply_to_message") or {}).get("message_id")
        )
        post = Post(self._owner(data), where, Counter(), {})
        self.posts[message_id] = post
        self._read(post, stored, stored.sent_at)
        self.last_post = time.monotonic()

    def refresh(self) -> None:
        self.scan()
        now = time.monotonic()
        for message_id, post in self.posts.items():
            stored = self.state.messages.get(message_id)
            if stored is not None and self.fake.text_of(stored.data) != post.text:
                self._read(post, stored, now)

    def _read(self, post: Post, stored: StoredMessage, at: float) -> None:
        post.text = text = self.fake.text_of(stored.data)
        post.tokens = Counter(match.group(0) for match in TOKEN_RE.finditer(text))
        for found in post.tokens:
            post.since.setdefault(found, at)
            self.visible_at.setdefault(found, at)

    def _owner(self, data: dict[str, Any]) -> int | None:
        if self.forum:
            return self.by_topic.get(data.get("message_thread_id") or 0)
        reply = (data.get("reply_to_message") or {}).get("message_id")
        if reply in self.by_card:
            return self.by_card[reply]
        # Not a reply to a card: a joined text still names its customer in its first line.
        header = HEADER_RE.match(self.fake.text_of(data).partition("\n")[0])
        return self.by_name.get(header.group("name")) if header else None

    def live_posts(self) -> list[Post]:
        return [post for mid, post in self.posts.items() if mid in self.state.messages]

    def own_conversations(self) -> tuple[dict[str, int], dict[str, float], int]:
        """Each token's count in its own ticket's conversation, when it first got there, and
        how many tokens sit in another ticket's conversation."""
        counts: Counter[str] = Counter()
        first: dict[str, float] = {}
        misplaced = 0
        for post in self.live_posts():
            if post.owner is None:
                continue
            for found, n in post.tokens.items():
                if customer_of(found) != post.owner:
                    misplaced += n
                    continue
                counts[found] += n
                at = post.since[found]
                if found not in first or at < first[found]:
                    first[found] = at
        return dict(counts), first, misplaced


def customer_of(found: str) -> int:
    match = TOKEN_RE.fullmatch(found)
    assert match is not None
    return int(match.group(2))


# ====================================================================== the desk's side


async def create_topics(fake: FakeTelegram, count: int) -> list[int]:
    """A forum topic per seeded ticket, created through the emulated API as the bot does."""
    url = f"{fake.url}/bot{fake.token}/createForumTopic"
    topics: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for number in range(1, count + 1):
            name = f"#{number} · In progress · Cannot log in"
            async with http.post(url, json={"chat_id": STAFF_CHAT_ID, "name": name}) as response:
                body = await response.json()
            if not body.get("ok"):
                raise RuntimeError(f"createForumTopic failed: {body}")
            topics.append(int(body["result"]["message_thread_id"]))
    return topics


async def seed(
    tree: Path,
    env: dict[str, str],
    database_url: str,
    users: Sequence[FakeUser],
    cards: Sequence[int],
    topics: Sequence[int] | None,
) -> dict[str, str]:
    args = {
        "module": str(ROOT / "benchmarks" / "relay_throughput.py"),
        "database_url": database_url,
        "users": [
            {
                "id": u.id,
                "first_name": u.first_name,
                "username": u.username,
                "language_code": u.language_code,
            }
            for u in users
        ],
        "cards": list(cards),
        "threads": list(topics) if topics is not None else None,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SEED_SCRIPT,
        cwd=tree,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(args).encode()), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"seeding in {tree} failed:\n{err.decode(errors='replace')}")
    imported: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])
    for name, path in imported.items():
        if not _inside(path, tree):
            raise RuntimeError(f"seeding for {tree} imported {name} from {path}")
    return imported


def _inside(path: str, tree: Path) -> bool:
    return Path(path).resolve().is_relative_to(tree)


def desk_queue(
    db_path: Path, token_of: dict[tuple[int, int], str]
) -> tuple[dict[str, int], set[str], int | None] | None:
    """The desk's outbox for the staff group by status, the tokens its pending rows still hold
    (texts, or customer messages to copy), and its failed updates; None if unreadable."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        ) as db:
            statuses = {
                str(status): int(n)
                for status, n in db.execute(
                    "SELECT status, count(*) FROM deliveries WHERE chat_id = ? GROUP BY status",
                    (STAFF_CHAT_ID,),
                )
            }
            pending = db.execute(
                "SELECT payload, context FROM deliveries WHERE chat_id = ? AND status = 'pending'",
                (STAFF_CHAT_ID,),
            ).fetchall()
            failed: int | None
            try:
                failed = int(db.execute("SELECT count(*) FROM failed_updates").fetchone()[0])
            except sqlite3.Error:
                failed = None
    except sqlite3.Error:
        return None
    held: set[str] = set()
    for payload, context in pending:
        held.update(m.group(0) for m in TOKEN_RE.finditer(f"{payload} {context}"))
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            data = json.loads(payload)
            source = int(data.get("from_chat_id") or 0)
            ids = data.get("message_ids") or [data.get("message_id")]
            held.update(token_of[(source, int(i))] for i in ids if (source, i) in token_of)
    return statuses, held, failed


# ====================================================================== one run


@dataclass(frozen=True)
class Params:
    customers: int
    messages: int
    spread: float
    completeness: bool
    complete_timeout: float
    visible_timeout: float
    baseline_timeout: float
    seed: int


def schedule(params: Params) -> list[tuple[float, int, int]]:
    """(offset in s, customer, text number): each customer starts within ``spread`` seconds and
    types their texts a fraction of a second apart, interleaved with everybody else's."""
    rng = random.Random(params.seed)
    plan = []
    for customer in range(params.customers):
        at = rng.uniform(0, params.spread)
        for number in range(params.messages):
            plan.append((at, customer, number))
            at += rng.uniform(0.1, 0.6)
    plan.sort()
    return plan


async def run(
    tree_name: str, tree: Path, forum: bool, params: Params, workdir: Path
) -> BurstResult:
    fake = FakeTelegram(enforce_limits=True)
    await fake.start("127.0.0.1")
    try:
        return await _run(fake, tree_name, tree, forum, params, workdir)
    finally:
        await fake.stop()


async def _run(
    fake: FakeTelegram, tree_name: str, tree: Path, forum: bool, params: Params, workdir: Path
) -> BurstResult:
    fake.add_group(STAFF_CHAT_ID, "e-Comet support staff", is_forum=forum)
    users = add_customers(fake, params.customers)
    database = workdir / "desk.sqlite3"
    env = bot_env(
        fake,
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        TIMEZONE="Europe/Moscow",
        SUPPORT_HOURS="00:00-24:00",
        DEFAULT_LOCALE="en",
        PYTHONPATH=str(tree),
    )
    log_path = workdir / "desk.log"
    await migrate(env, log_path, cwd=tree)
    # The seeded topics and cards went out long before the burst: they use none of its budget.
    fake.enforce_limits = False
    topics = await create_topics(fake, len(users)) if forum else None
    cards = await post_cards(fake, len(users), topics)
    fake.enforce_limits = True
    imported = await seed(tree, env, env["DATABASE_URL"], users, cards, topics)

    flood_before = fake.rate_limited
    flood_staff_before = fake.rate_limited_in(STAFF_CHAT_ID)
    bot = BotProcess(tree_name, [sys.executable, "-m", "bot"], env, log_path, cwd=tree)
    await bot.start()
    try:
        cwd = os.readlink(f"/proc/{bot.pid}/cwd")
        if not _inside(cwd, tree):
            raise RuntimeError(f"{tree_name}: the desk runs in {cwd}, not {tree}")
        imported["process cwd"] = cwd
        where = "forum" if forum else "plain group"
        print(f"  {tree_name}, {where}: pid {bot.pid}, polling ({imported['bot']})", flush=True)
        scanner = StaffScanner(
            fake, forum=forum, topics=topics, cards=cards, names=[u.first_name for u in users]
        )
        budget = params.baseline_timeout if tree_name == "baseline" else None
        burst = await _burst(fake, scanner, users, params, budget)
    finally:
        code = await bot.stop()
    # The final reading, with the desk stopped: nothing changes under it.
    result = await _conclude(fake, scanner, burst, database)
    result.tree, result.path, result.forum = tree_name, str(tree), forum
    result.imported = imported
    result.rate_limited = fake.rate_limited - flood_before
    result.rate_limited_staff = fake.rate_limited_in(STAFF_CHAT_ID) - flood_staff_before
    if code not in (0, None, -signal.SIGTERM):
        result.notes.append(f"the desk exited with {code}")
    if result.misses(completeness=params.completeness) or result.notes:
        result.log_tail = bot.log(60).splitlines()
    return result


@dataclass
class Burst:
    """What a burst left to count: each token's enqueueing, and where the counting starts."""

    enqueued: dict[str, float]  # token → when its update was enqueued
    token_of: dict[tuple[int, int], str]  # (customer chat, message id) → token
    staff_before: int  # the bot's messages in the staff group before the burst
    calls_before: int
    ended: float


async def _burst(
    fake: FakeTelegram,
    scanner: StaffScanner,
    users: Sequence[FakeUser],
    params: Params,
    budget: float | None,
) -> Burst:
    """Send the burst and wait until every word is visible and, unless ``--no-complete``,
    in its own conversation; ``budget`` seconds at most (the baseline's), else the timeouts."""
    scanner.scan()
    staff_before = len(scanner.state.bot_ids)
    calls_before = len(fake.calls)
    enqueued: dict[str, float] = {}
    token_of: dict[tuple[int, int], str] = {}
    start = time.monotonic()
    for offset, customer, number in schedule(params):
        delay = start + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        user = users[customer]
        sent = fake.send_text(user, follow_up(PHASE, customer, number))
        found = token(PHASE, customer, number)
        enqueued[found] = time.monotonic()
        token_of[(user.id, int(sent["message_id"]))] = found
    first = min(enqueued.values())
    if budget is None:
        budget = params.complete_timeout if params.completeness else params.visible_timeout
    deadline = first + budget
    complete = False
    last_report = time.monotonic()
    while time.monotonic() < deadline:
        scanner.refresh()
        all_visible = enqueued.keys() <= scanner.visible_at.keys()
        if all_visible and params.completeness:
            counts, _, _ = scanner.own_conversations()
            complete = all(counts.get(t) for t in enqueued)
        if all_visible and (complete or not params.completeness):
            break
        if time.monotonic() - last_report >= 30:
            last_report = time.monotonic()
            counts, _, _ = scanner.own_conversations()
            print(
                f"    {last_report - first:4.0f} s: "
                f"{len(enqueued.keys() & scanner.visible_at.keys())} visible, "
                f"{sum(1 for t in enqueued if counts.get(t))} in their conversation, "
                f"{fake.rate_limited} x 429 so far",
                flush=True,
            )
        await asyncio.sleep(POLL_INTERVAL)
    if complete:
        await _settle(scanner)
    return Burst(enqueued, token_of, staff_before, calls_before, time.monotonic())


async def _settle(scanner: StaffScanner) -> None:
    """After the last word arrived: wait until the group has been quiet for a moment, so that
    anything sent twice is seen too."""
    until = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < until:
        scanner.refresh()
        if time.monotonic() - scanner.last_post > SETTLE_QUIET_S:
            return
        await asyncio.sleep(POLL_INTERVAL)


async def _conclude(
    fake: FakeTelegram, scanner: StaffScanner, burst: Burst, database: Path
) -> BurstResult:
    scanner.refresh()
    enqueued = burst.enqueued
    first = min(enqueued.values())
    staff_calls: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for call in fake.calls[burst.calls_before :]:
        if str(call.params.get("chat_id")) != str(STAFF_CHAT_ID):
            continue
        if call.ok:
            staff_calls[call.method] += 1
        else:
            refused[f"{call.method} {call.error_code}"] += 1
    latencies = {
        t: scanner.visible_at[t] - at for t, at in enqueued.items() if t in scanner.visible_at
    }
    counts, own_first, misplaced = scanner.own_conversations()
    in_own = sum(1 for t in enqueued if counts.get(t))
    complete = in_own == len(enqueued)
    result = BurstResult(
        tree="",
        path="",
        forum=False,
        customers=len({customer_of(t) for t in enqueued}),
        sent=len(enqueued),
        burst_sent_in_s=max(enqueued.values()) - first,
        waited_s=burst.ended - first,
        visible=len(latencies),
        visible_within_target=sum(1 for s in latencies.values() if s <= TARGET_S),
        latency_s=percentiles(list(latencies.values())),
        last_visible_s=max(latencies.values()) if len(latencies) == len(enqueued) else None,
        complete=complete,
        complete_after_s=max(own_first[t] for t in enqueued) - first if complete else None,
        in_own_conversation=in_own,
        queued_at_end=0,
        lost=0,
        duplicated=sum(max(0, counts.get(t, 0) - 1) for t in enqueued),
        misplaced=misplaced,
        rate_limited=0,
        rate_limited_staff=0,
        staff_messages=len(scanner.state.bot_ids) - burst.staff_before,
        staff_calls=dict(staff_calls.most_common()),
        staff_refused=dict(refused.most_common()),
        all_calls=dict(
            Counter(call.method for call in fake.calls[burst.calls_before :]).most_common()
        ),
        staff_deliveries=None,
        failed_updates=None,
    )
    missing = {t for t in enqueued if not counts.get(t)}
    # Not shown yet but still held by the desk: in its outbox, or an update not yet confirmed.
    held = {
        m.group(0)
        for update in fake.updates
        for m in TOKEN_RE.finditer(json.dumps(update, ensure_ascii=False))
    }
    queue = await asyncio.to_thread(desk_queue, database, burst.token_of)
    if queue is None:
        result.notes.append("the desk's outbox could not be read: missing words count as lost")
    else:
        result.staff_deliveries, in_outbox, result.failed_updates = queue
        held |= in_outbox
    result.queued_at_end = len(missing & held)
    result.lost = len(missing - held)
    if result.lost:
        sample = [
            f"{post.where}: {' '.join(sorted(post.tokens)[:3])}"
            for post in scanner.live_posts()
            if post.owner is None and post.tokens
        ][:3]
        result.notes.append(f"words in no ticket's conversation, e.g. {sample}")
    return result


# ====================================================================== report


def _s(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"


def column(result: BurstResult, methods: Sequence[str], refusals: Sequence[str]) -> dict[str, str]:
    waited = f"{result.waited_s:.0f}"
    rows = {
        "time to the last visible word, s": (
            _s(result.last_visible_s)
            if result.last_visible_s is not None
            else f"> {waited} ({result.visible}/{result.sent})"
        ),
        "visible word latency p50 / p90, s": (
            f"{_s(result.latency_s.get('p50'))} / {_s(result.latency_s.get('p90'))}"
        ),
        "words visible within 120 s": f"{result.visible_within_target}/{result.sent}",
        "words visible by the end": f"{result.visible}/{result.sent}",
        "own conversations complete after, s": (
            _s(result.complete_after_s)
            if result.complete
            else f"> {waited} ({result.in_own_conversation}/{result.sent})"
        ),
        "429 (flood): all / staff group": f"{result.rate_limited} / {result.rate_limited_staff}",
        "messages sent to the staff group": str(result.staff_messages),
        "Bot API calls on the staff group": str(sum(result.staff_calls.values())),
    }
    for method in methods:
        rows[f"  {method}"] = str(result.staff_calls.get(method, 0))
    for what in refusals:
        rows[f"  refused: {what}"] = str(result.staff_refused.get(what, 0))
    rows["lost / duplicated / misplaced"] = (
        f"{result.lost} / {result.duplicated} / {result.misplaced}"
    )
    rows["words still queued at the end"] = str(result.queued_at_end)
    outbox = sorted((result.staff_deliveries or {}).items())
    rows["desk outbox for the group"] = " ".join(f"{status} {n}" for status, n in outbox) or "-"
    rows["failed updates"] = "-" if result.failed_updates is None else str(result.failed_updates)
    rows["waited, s (first word → end)"] = waited
    return rows


def table(title: str, results: Sequence[BurstResult]) -> str:
    methods = sorted({m for r in results for m in r.staff_calls})
    refusals = sorted({m for r in results for m in r.staff_refused})
    columns = [column(r, methods, refusals) for r in results]
    rows = [("metric", *[r.tree for r in results])]
    rows += [(name, *[col.get(name, "") for col in columns]) for name in columns[0]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [title]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(widths[i]) for i, cell in enumerate(row) if i
        ]
        lines.append(" | ".join(cells))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# ====================================================================== main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.burst", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--customers", type=int, default=100, help="customers with open tickets")
    parser.add_argument("--messages", type=int, default=5, help="texts per customer")
    parser.add_argument(
        "--spread", type=float, default=3.0, help="seconds within which the customers start"
    )
    parser.add_argument("--forum", choices=("on", "off", "both"), default="both")
    parser.add_argument(
        "--complete-timeout",
        type=float,
        default=600.0,
        help="max seconds until every ticket's own conversation holds its words",
    )
    parser.add_argument(
        "--no-complete",
        dest="completeness",
        action="store_false",
        help="stop once every word is visible; don't wait for the conversations",
    )
    parser.add_argument(
        "--visible-timeout",
        type=float,
        default=300.0,
        help="with --no-complete: max seconds until every word is visible",
    )
    parser.add_argument(
        "--baseline-tree", type=Path, help="also run the desk of this checkout (not edited)"
    )
    parser.add_argument(
        "--baseline-timeout", type=float, default=300.0, help="max seconds of the baseline's run"
    )
    parser.add_argument("--seed", type=int, default=12, help="random seed of the schedule")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.messages < 1:
        parser.error("--customers and --messages must be positive")
    if args.baseline_tree is not None:
        args.baseline_tree = args.baseline_tree.resolve()
        if not (args.baseline_tree / "bot" / "__main__.py").is_file():
            parser.error(f"{args.baseline_tree} holds no bot/__main__.py")
        if args.baseline_tree == ROOT:
            parser.error("--baseline-tree is this tree")
    return args


async def amain(args: argparse.Namespace) -> int:
    params = Params(
        customers=args.customers,
        messages=args.messages,
        spread=args.spread,
        completeness=args.completeness,
        complete_timeout=args.complete_timeout,
        visible_timeout=args.visible_timeout,
        baseline_timeout=args.baseline_timeout,
        seed=args.seed,
    )
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, aiogram {info['aiogram']}, aiohttp {info['aiohttp']}, "
        f"SQLAlchemy {info['sqlalchemy']}"
    )
    print(
        f"burst: {params.customers} customers x {params.messages} texts = "
        f"{params.customers * params.messages} follow-ups within about "
        f"{params.spread + params.messages * 0.35:.0f} s; emulator on 127.0.0.1 with "
        "enforce_limits=True; the desk with its default DELIVERY_* limits",
        flush=True,
    )
    trees: list[tuple[str, Path]] = []
    if args.baseline_tree is not None:
        trees.append(("baseline", args.baseline_tree))
    trees.append(("this tree", ROOT))
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.forum]
    results: list[BurstResult] = []
    for forum in modes:
        for name, tree in trees:
            print(f"run: {name} ({tree}), {'forum' if forum else 'plain group'}", flush=True)
            with tempfile.TemporaryDirectory(prefix="burst-bench-") as tmp:
                result = await run(name, tree, forum, params, Path(tmp))
            results.append(result)
            # Only this tree is held to the targets; the baseline stops at its timeout.
            misses = result.misses(completeness=params.completeness) if name == "this tree" else []
            print(
                f"  {name}: {result.visible}/{result.sent} visible, last after "
                f"{_s(result.last_visible_s)} s, {result.rate_limited} x 429, "
                f"{result.lost} lost, {result.duplicated} duplicated"
                + (f"; misses: {', '.join(misses)}" if misses else "")
                + ("; meets the targets" if name == "this tree" and not misses else ""),
                flush=True,
            )
            for note in result.notes:
                print(f"  note: {note}")
            if result.log_tail and name == "this tree":
                print("  last lines of its log:\n    " + "\n    ".join(result.log_tail[-15:]))
    print()
    for forum in modes:
        title = (
            f"{'forum' if forum else 'plain group (forum off)'}: {params.customers} customers x "
            f"{params.messages} texts, target: every word visible within {TARGET_S:.0f} s, "
            "0 x 429, nothing lost or duplicated"
        )
        print(table(title, [r for r in results if r.forum == forum]))
        print()
    failing = [
        r for r in results if r.tree == "this tree" and r.misses(completeness=params.completeness)
    ]
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "parameters": asdict(params),
                    "target_s": TARGET_S,
                    "runs": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
        print(f"figures written to {args.json}")
    for r in failing:
        where = "forum" if r.forum else "plain group"
        print(
            f"FAILED ({where}): {', '.join(r.misses(completeness=params.completeness))}",
            file=sys.stderr,
        )
    return 1 if failing else 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
