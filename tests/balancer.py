"""HAProxy from Debian's package in front of several bot instances, run from the deployment's
own configuration (deploy/haproxy.cfg) on free ports in a temp dir: the ``balancer`` fixture.

Installed by .ci/run; elsewhere the tests that need it are skipped with the reason (or fail
when BALANCER_REQUIRED=1 / DB_SERVERS_REQUIRED=1 says they must run)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    binary: str = "haproxy"
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    watchdogs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def add_server(self, port: int) -> str:
        """Add an instance as an operator does (README "Several instances"): a ``server``
        line more in the configuration and a graceful reload (``-sf``: the new HAProxy takes
        the frontend, the old one finishes the requests it has and exits). Returns the
        server's name."""
        name = f"bot{len(self.backends) + 1}"
        root = self.log_path.parent
        config = root / "haproxy.cfg"
        lines = CONFIG.read_text() if not config.exists() else config.read_text()
        config.write_text(
            f'{lines.rstrip()}\n    server {name} "${{ECOMET_{name.upper()}}}" check\n'
        )
        self.env[f"ECOMET_{name.upper()}"] = f"{HOST}:{port}"
        old = self.processes[-1]
        with self.log_path.open("ab") as output:
            self.processes.append(
                subprocess.Popen(
                    [self.binary, "-db", "-f", str(config), "-sf", str(old.pid)],
                    cwd=root,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,
                )
            )
        self.watchdogs.append(start_watchdog(root, [self.processes[-1].pid], signal.SIGTERM))
        self.backends.append(port)
        return name

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
    with run_haproxy(binary, 3) as running:
        yield running


@contextlib.contextmanager
def run_haproxy(binary: str, instances: int) -> Iterator[Balancer]:
    """HAProxy from deploy/haproxy.cfg for ``instances`` (1 to 3: the file's server lines;
    the others are left out), on free ports (also used by benchmarks/scaling.py)."""
    root = Path(tempfile.mkdtemp(prefix="haproxy-"))
    frontend = free_port()
    backends = [free_port() for _ in range(instances)]
    config = CONFIG
    if instances < 3:
        config = root / "haproxy.cfg"
        config.write_text(
            "".join(
                line
                for line in CONFIG.read_text().splitlines(keepends=True)
                if not re.match(rf"\s*server bot[{instances + 1}-9] ", line)
            )
        )
    env = {
        **os.environ,
        "ECOMET_LISTEN": f"{HOST}:{frontend}",
        **{f"ECOMET_BOT{n}": f"{HOST}:{port}" for n, port in enumerate(backends, start=1)},
    }
    log_path = root / "haproxy.log"
    with log_path.open("ab") as output:
        # -db: in the foreground, no daemon; -W would fork a master: not needed here.
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    watchdog = start_watchdog(root, [proc.pid], signal.SIGTERM)
    balancer = Balancer(
        f"http://{HOST}:{frontend}", backends, log_path, binary, env, [proc], [watchdog]
    )
    try:
        deadline = time.monotonic() + 15
        while not _listening(frontend):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield balancer
    finally:
        for dog in balancer.watchdogs:
            dog.terminate()
            dog.wait(5)
            if dog.stdin is not None:
                dog.stdin.close()
        for each in balancer.processes:  # the first one, and those of reloads
            each.terminate()
            try:
                each.wait(10)
            except subprocess.TimeoutExpired:
                each.kill()
                each.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False
