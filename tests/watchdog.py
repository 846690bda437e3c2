"""A watchdog for the servers the tests start (mail, databases): it reads until pytest's end of
a pipe closes — which happens however pytest ends, killed included — then stops the servers'
process groups and removes their temp dir. A normal teardown stops the servers first and closes
the pipe, and the watchdog then finds nothing left to stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

_SCRIPT = """
import os, shutil, signal, sys, time
root, stop, groups = sys.argv[1], int(sys.argv[2]), [int(group) for group in sys.argv[3:]]
sys.stdin.buffer.read()
for group in groups:
    try:
        os.killpg(group, stop)
    except OSError:
        pass
deadline = time.monotonic() + 15
for group in groups:
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except OSError:
            break
        time.sleep(0.1)
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
shutil.rmtree(root, ignore_errors=True)
"""


def start_watchdog(
    root: Path, groups: Iterable[int], stop: signal.Signals = signal.SIGTERM
) -> subprocess.Popen[bytes]:
    """Watch the process groups ``groups`` (each server started with start_new_session):
    ``stop`` is what each is sent first (PostgreSQL's fast shutdown is SIGINT), SIGKILL after
    15 s for what is left."""
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(root), str(int(stop)), *map(str, groups)],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
