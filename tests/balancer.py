"""HAProxy from Debian's package in front of several bot instances, run from the deployment's
own configuration (deploy/haproxy.cfg) on free ports in a temp dir: the ``balancer`` fixture.

Installed by .ci/run; elsewhere the tests that need it are skipped with the reason (or fail
when BALANCER_REQUIRED=1 / DB_SERVERS_REQUIRED=1 says they must run)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.watchdog import start_watchdog

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "haproxy.cfg"
HOST = "127.0.0.1"


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Balancer:
    url: str  # where Telegram posts: the frontend
    backends: list[int]  # the instances' ports, in the order of deploy/haproxy.cfg's servers
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def servers_up(self) -> set[str]:
        """The instances HAProxy sends updates to now (its health checks say so in its log)."""
        state: dict[str, str] = {}
        for server, status in re.findall(r"Server desk/(\w+) is (UP|DOWN)", self.log()):
            state[server] = status
        return {server for server, status in state.items() if status == "UP"}


@pytest.fixture
def balancer() -> Iterator[Balancer]:
    binary = haproxy_binary()
    if binary is None:
        reason = "haproxy not found (install the Debian package: apt-get install haproxy)"
        if os.environ.get("DB_SERVERS_REQUIRED") == "1" or os.environ.get("BALANCER_REQUIRED"):
            pytest.fail(f"HAProxy required: {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="haproxy-"))
    frontend = free_port()
    backends = [free_port() for _ in range(3)]
    env = {
        **os.environ,
        "ECOMET_LISTEN": f"{HOST}:{frontend}",
        **{f"ECOMET_BOT{n}": f"{HOST}:{port}" for n, port in enumerate(backends, start=1)},
    }
    log_path = root / "haproxy.log"
    with log_path.open("ab") as output:
        # -db: in the foreground, no daemon; -W would fork a master: not needed here.
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(CONFIG)],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    watchdog = start_watchdog(root, [proc.pid], signal.SIGTERM)
    try:
        deadline = time.monotonic() + 15
        while not _listening(frontend):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield Balancer(f"http://{HOST}:{frontend}", backends, log_path)
    finally:
        watchdog.terminate()
        watchdog.wait(5)
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False
