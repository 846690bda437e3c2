"""``python -m bot sandbox`` as a process, and a headless Chromium page on it (Playwright).

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it). Without it these
tests are skipped with a reason, except where ``SANDBOX_BROWSER_REQUIRED=1`` (CI), where they
fail. A failed test leaves a screenshot, the page's HTML and the sandbox's log in
``test-artifacts/``."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# As the machine's own probe starts it: no sandbox as root, and no background connections,
# which a closed network refuses many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class Sandbox:
    def __init__(self, workdir: Path, *args: str) -> None:
        self.log_path = workdir / "sandbox.log"
        env = dict(os.environ)
        env.pop("DEFAULT_LOCALE", None)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--no-browser", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.url = self._wait_ready()  # as printed: with ?token= when it needs one
        self.base, _, query = self.url.partition("?")
        self.token = query.removeprefix("token=") if query else None

    def _wait_ready(self, timeout: float = 60) -> str:
        out = self.proc.stdout
        assert out is not None
        seen = bytearray()

        def ready() -> str | None:
            ended = self.proc.poll() is not None
            while select.select([out], [], [], 0)[0]:  # what it has printed so far
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    ended = True
                    break
                seen.extend(chunk)
            found = re.search(rb"Sandbox is ready: (http://\S+)", seen)
            if found:
                return found.group(1).decode()
            if ended:
                raise EOFError
            return None

        try:
            return eventually_sync(ready, "not ready in time", timeout)
        except (EOFError, AssertionError):
            self.stop()
            raise RuntimeError(
                f"the sandbox did not start:\n{seen.decode()}\n{self.log()}"
            ) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    running = Sandbox(tmp_path)
    yield running
    code = running.stop()
    assert code == 0, f"the sandbox exited with {code}:\n{running.log()}"


@pytest.fixture
def browser() -> Iterator[object]:
    # Per test, not per session: Playwright's sync API runs an event loop in this thread while
    # it is open, and the asyncio tests that come after need the thread without one.
    executable = chromium_path()
    if executable is None:
        if os.environ.get("SANDBOX_BROWSER_REQUIRED") == "1":
            pytest.fail("Chromium is not installed (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import expect, sync_playwright

    # A loaded CI machine answers slower than a laptop; a wrong page still fails, later.
    expect.set_options(timeout=20_000)

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 860})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    opened.set_default_timeout(20_000)
    opened.goto(sandbox.url)
    opened.wait_for_selector("body[data-ready=true]")  # the page has drawn what it was given
    yield opened
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = ARTIFACTS / re.sub(r"[^\w.-]", "_", request.node.nodeid)
        opened.screenshot(path=f"{stem}.png", full_page=True)
        Path(f"{stem}.html").write_text(opened.content())
        Path(f"{stem}.log").write_text(sandbox.log())
        print(f"screenshot, page and sandbox log: {stem}.*")
    context.close()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


def call(sandbox: Sandbox, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """What the page's app.js does: JSON, and the header every change needs."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sandbox.base.rstrip("/") + path,
        data=data,
        headers={"Content-Type": "application/json", "X-Sandbox": "1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
