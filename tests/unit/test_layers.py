"""The layers are a contract a tool checks (pyproject's [tool.importlinter]), not a memory."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _imports(folder: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "bot" / folder).rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"\s*(from|import)\s+bot\.", line):
                found.append((str(path.relative_to(ROOT)), line.strip()))
    return found


@pytest.mark.parametrize("edge", ["views", "keyboards", "middlewares"])
def test_services_render_nothing(edge: str) -> None:
    """Services return data; handlers and the delivery layer render it."""
    assert [hit for hit in _imports("services") if f"bot.{edge}" in hit[1]] == []


def test_delivery_knows_no_ticket_user_or_desk_setting() -> None:
    """The sender knows deliveries, streams and limits; what they mean is the services'."""
    names = re.compile(r"\b(Ticket|TicketRepo|User|UserRepo|DeskSettings|DeskConfig|EventRepo)\b")
    assert [hit for hit in _imports("delivery") if names.search(hit[1])] == []
