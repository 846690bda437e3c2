from __future__ import annotations

from collections.abc import Generator

import pytest

# The real mail servers (Dovecot, Exim) for the e-mail channel: the `mail` fixtures; the real
# database servers (PostgreSQL, Redis): `pg_url`, `redis_url`, `backend_url` (both backends).
pytest_plugins = ["tests.mailserver", "tests.dbserver", "tests.balancer"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e-backends",
        default="sqlite",
        help="the databases the end-to-end suite runs the desk on, comma-separated: sqlite "
        "(the default, embedded) and postgresql (a server started by the tests). CI runs "
        "both: --e2e-backends=sqlite,postgresql",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Lets fixtures see whether the test failed (to print the bot's log only then).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
