"""Several instances (issue 14): relay throughput and latency with 1, 2 and 3 instances of the
desk on PostgreSQL + Redis behind HAProxy, side by side with one instance on SQLite and the
bare aiogram echo bot, in the same run.

    python -m benchmarks.scaling [--customers 200] [--messages 5] [--instances 1,2,3]
                                 [--json PATH]

The same burst as :mod:`benchmarks.relay_throughput` (N customers each write M follow-ups to
their open ticket at once; every text must reach the staff group exactly once), with Telegram's
limits lifted in the emulator and in the desk, so that the figures are the desk's own cost.
The echo bot and the SQLite desk take updates by long polling; the instances in webhook mode,
the emulator posting up to 40 updates at once (Telegram's default ``max_connections``; one
chat's in order) to HAProxy (deploy/haproxy.cfg), which spreads them round robin. PostgreSQL,
Redis and HAProxy are Debian's, started here on free ports in temp dirs, as the tests start
them (tests/dbserver.py, tests/balancer.py); run it as root or as a user that may run them.

CPU is the bots' processes' (all instances added up; the database servers, HAProxy and the
emulator not counted); peak RSS is the highest of one instance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.relay_throughput import (
    DESK_SETTINGS,
    LIMITS_NOTE,
    STAFF_CHAT_ID,
    WARMUP_CUSTOMERS,
    BotProcess,
    Params,
    RunResult,
    add_customers,
    bot_env,
    machine,
    measure_burst,
    migrate,
    post_cards,
    run_bot,
    seed_tickets,
)
from bot.emulator import FakeTelegram
from tests.balancer import haproxy_binary, run_haproxy
from tests.dbserver import PostgresServer, RedisServer, run_postgres, run_redis

WEBHOOK_CONNECTIONS = 40  # Telegram's default max_connections
SECRET = "bench-secret"


async def run_instances(
    count: int, params: Params, pg: PostgresServer, redis: RedisServer, workdir: Path
) -> RunResult:
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy not found (apt-get install haproxy)")
    fake = FakeTelegram(enforce_limits=False)
    fake.allow_http_webhooks = True  # the balancer listens on 127.0.0.1 without TLS
    fake.webhook_connections = WEBHOOK_CONNECTIONS
    await fake.start("127.0.0.1")
    database = await asyncio.to_thread(pg.create_database, f"scaling_{count}")
    try:
        fake.add_group(STAFF_CHAT_ID, "e-Comet support staff")
        users = add_customers(fake, params.customers + WARMUP_CUSTOMERS)
        with run_haproxy(binary, count) as balancer:
            env = bot_env(
                fake,
                DATABASE_URL=pg.url(database),
                REDIS_URL=redis.url(redis.fresh_database()),
                WEBHOOK_URL=balancer.url,
                WEBHOOK_SECRET=SECRET,
                WEB_HOST="127.0.0.1",
                **DESK_SETTINGS,
            )
            await migrate(env, workdir / "migrate.log")
            cards = await post_cards(fake, len(users))
            await asyncio.to_thread(seed_tickets, env["DATABASE_URL"], users, cards)
            bots = [
                BotProcess(
                    f"instance {n + 1}",
                    [sys.executable, "-m", "bot"],
                    {**env, "WEB_PORT": str(port)},
                    workdir / f"instance{n + 1}.log",
                    ready="webhook mode: listening",
                )
                for n, port in enumerate(balancer.backends)
            ]
            await asyncio.gather(*(bot.start() for bot in bots))
            try:
                await _behind(balancer, count)
                name = f"{count} on PostgreSQL"
                print(f"  {name}: pids {', '.join(str(b.pid) for b in bots)}", flush=True)
                return await measure_burst(name, fake, bots, users, params)
            finally:
                for bot in bots:
                    await bot.stop()
    finally:
        await fake.stop()
        await asyncio.to_thread(pg.drop_database, database)


async def _behind(balancer: Any, count: int) -> None:
    """Until HAProxy's health checks send to every instance."""
    wanted = {f"bot{n}" for n in range(1, count + 1)}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while balancer.servers_up() != wanted:
        if loop.time() > deadline:
            raise TimeoutError(f"HAProxy does not send to every instance:\n{balancer.log()}")
        await asyncio.sleep(0.1)


def table(rows: Sequence[tuple[str, RunResult]]) -> str:
    echo = rows[0][1].throughput_per_s
    header = (
        "bot",
        "msg/s",
        "x echo",
        "p50 ms",
        "p99 ms",
        "CPU ms/msg",
        "peak RSS MiB",
        "lost",
        "dup",
    )
    lines = [header]
    for name, r in rows:
        lines.append(
            (
                name,
                f"{r.throughput_per_s:.1f}",
                f"{r.throughput_per_s / echo:.2f}" if echo else "-",
                f"{r.latency_ms['p50']:.0f}",
                f"{r.latency_ms['p99']:.0f}",
                f"{r.cpu_s * 1000 / max(r.sent, 1):.2f}",
                f"{r.peak_rss_mib:.0f}",
                str(r.lost),
                str(r.duplicated) + (" TIMED OUT" if r.timed_out else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            " | ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(line)
            )
        )
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"Python {info['python']}, aiogram {info['aiogram']}"
    )
    print(LIMITS_NOTE)
    params = Params(
        customers=args.customers, messages=args.messages, timeout=120, stall=30, profile=None
    )
    print(
        f"\nburst: {params.customers} customers x {params.messages} texts = "
        f"{params.customers * params.messages} messages",
        flush=True,
    )
    rows: list[tuple[str, RunResult]] = []
    for kind, name in (("echo", "echo bot (polling)"), ("desk", "desk, 1 on SQLite (polling)")):
        print(f"run: {name}", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"scaling-{kind}-") as tmp:
            rows.append((name, await run_bot(kind, params, Path(tmp))))
    with run_postgres() as pg, run_redis() as redis:
        for count in args.instances:
            name = f"desk, {count} on PostgreSQL+Redis (webhook)"
            print(f"run: {name}", flush=True)
            with tempfile.TemporaryDirectory(prefix=f"scaling-{count}-") as tmp:
                rows.append((name, await run_instances(count, params, pg, redis, Path(tmp))))
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "runs": [{"bot": n, **asdict(r)} for n, r in rows]}, indent=2
            )
        )
        print(f"figures written to {args.json}")
    faulty = [name for name, r in rows if r.faulty]
    if faulty:
        print(f"FAILED: {', '.join(faulty)} lost, duplicated or timed out", file=sys.stderr)
        for name, r in rows:
            if r.faulty:
                print(f"--- {name} ---\n" + "\n".join(r.log_tail[-30:]), file=sys.stderr)
        return 1
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument(
        "--instances",
        type=lambda value: [int(n) for n in value.split(",")],
        default=[1, 2, 3],
        help="instance counts to run on PostgreSQL (1 to 3: deploy/haproxy.cfg's servers)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if any(not 1 <= n <= 3 for n in args.instances):
        parser.error("--instances: 1 to 3")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
