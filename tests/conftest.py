from __future__ import annotations

from collections.abc import Generator

import pytest

# The real mail servers (Dovecot, Exim) for the e-mail channel: the `mail` fixtures; the real
# database servers (PostgreSQL, Redis): `pg_url`, `redis_url`, `backend_url` (both backends).
pytest_plugins = ["tests.mailserver", "tests.dbserver", "tests.balancer"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Lets fixtures see whether the test failed (to print the bot's log only then).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
