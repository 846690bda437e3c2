"""Runs the real bot (``python -m bot``) as a process against the emulated Bot API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bot.emulator import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
STAFF_CHAT_ID = -1001000000001


class BotProcess:
    """One bot process; ``kill()`` is a kill -9, ``start()`` brings it back on the same DB."""

    def __init__(self, fake: FakeTelegram, workdir: Path, env: Mapping[str, str]) -> None:
        self.fake = fake
        self.workdir = workdir
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "bot.log"
        self.starts = 0
        # What the bot logs once it takes updates: it polls, or it listens for webhooks.
        self.ready = "webhook mode: listening" if self.env.get("WEBHOOK_URL") else "Run polling"

    async def start(self, wait_polling: bool = True) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_polling:
            await self.wait_polling()

    async def wait_polling(self, timeout: float = 30) -> None:
        """Wait until this start of the process has begun polling (it logs so)."""
        marker = f"===== start {self.starts} ====="
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bot exited with {self.proc.returncode}:\n{self.log()}")
            if self.ready in self.log().rpartition(marker)[2]:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"bot did not start polling in {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, nothing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            for _ in range(200):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.proc.kill()
        return self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def bot_env(fake: FakeTelegram, workdir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOT_", "STAFF_", "DATABASE_", "TELEGRAM_", "SUPPORT_"))
    }
    assert fake.url is not None
    env.update(
        {
            "BOT_TOKEN": fake.token,
            "STAFF_CHAT_ID": str(STAFF_CHAT_ID),
            "TELEGRAM_API_URL": fake.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'support.sqlite3'}",
            "TIMEZONE": "Europe/Moscow",
            "SUPPORT_HOURS": "00:00-24:00",
            "DEFAULT_LOCALE": "ru",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env
