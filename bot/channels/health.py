"""What a load balancer asks an instance (SPEC §11): ``/healthz`` — the process is alive — and
``/readyz`` — it can do its work: the database answers, Redis answers (when the desk uses
it), Telegram's Bot API answers, and the instance is not stopping. An instance that is not
ready gets 503, so the balancer sends its updates to the others meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]  # raises when what it checks does not answer

# A probe comes every second or two from each balancer: Telegram is asked at most this often,
# and a check that hangs counts as failed after this long.
TELEGRAM_EVERY = 10.0
CHECK_TIMEOUT = 3.0


@dataclass(slots=True)
class Readiness:
    checks: Mapping[str, Check]
    # Checks whose good answer holds for a while (name → seconds).
    remember: Mapping[str, float] = field(default_factory=dict)
    stopping: bool = False
    _good_until: dict[str, float] = field(default_factory=dict)

    async def report(self) -> tuple[bool, dict[str, str]]:
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._check(name) for name in names))
        report = dict(zip(names, outcomes, strict=True))
        if self.stopping:
            report["instance"] = "stopping"
        ready = not self.stopping and all(outcome == "ok" for outcome in outcomes)
        return ready, report

    async def _check(self, name: str) -> str:
        now = time.monotonic()
        if self._good_until.get(name, 0.0) > now:
            return "ok"
        try:
            await asyncio.wait_for(self.checks[name](), CHECK_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - any failure means "not ready", said plainly
            self._good_until.pop(name, None)
            log.warning("not ready: %s: %s", name, error or type(error).__name__)
            return f"failed: {type(error).__name__}"
        if name in self.remember:
            self._good_until[name] = now + self.remember[name]
        return "ok"


def add_health_routes(app: web.Application, readiness: Readiness) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        ready, report = await readiness.report()
        return web.json_response({"ready": ready, **report}, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
