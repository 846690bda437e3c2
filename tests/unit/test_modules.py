"""Modules (SPEC §12): discovery through entry points, the choice of ENABLED_MODULES and
DISABLED_MODULES, broken modules, a module's own migrations, and its hooks run from the
tickets' history exactly once, retried after a failure and then skipped with a report."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiogram.utils.i18n import I18n
from sqlalchemy import insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import load_settings
from bot.db.engine import Database, create_engine, migrate, module_version_table
from bot.db.models import Delivery, DeskSetting, Ticket, User
from bot.db.models import TicketEvent as HistoryEntry
from bot.db.repositories import EventRepo
from bot.db.uow import transaction
from bot.delivery.outbox import Outbox
from bot.domain.tickets import Kind, Priority, Status
from bot.modules.api import Audience, EventKind, Module, ModuleContext, TicketEvent
from bot.modules.cli import listing
from bot.modules.cli import main as cli_main
from bot.modules.hooks import Cursor, HookRunner, Subscriber, cursor_key
from bot.modules.loader import discover
from bot.modules.report import Reporter, Trouble
from tests.fixtures.modules import BROKEN, install

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
MANAGER = 3001


# -- a module package written for the tests ----------------------------------------------------

GOOD_MODULE = """
from pathlib import Path

from aiogram import Router
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.modules.api import Audience, EventKind, Module


class HelloSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HELLO_")

    greeting: str = "hello"
    times: int = 1


async def on_created(event, context):
    pass


module = Module(
    description="says hello",
    routers={Audience.STAFF: lambda context: Router(name="hello")},
    settings=HelloSettings,
    migrations=Path(__file__).parent / "migrations",
    hooks={EventKind.CREATED: on_created},
)
"""

MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "hello_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("hello_greetings", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("hello_greetings")
"""

BAD_MIGRATION = """
from alembic import op

revision = "broken_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("THIS IS NOT SQL")


def downgrade():
    pass
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path where the tests install distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.syspath_prepend(str(BROKEN))
    for variable in ("HELLO_GREETING", "HELLO_TIMES"):
        monkeypatch.delenv(variable, raising=False)
    yield folder
    for name in [m for m in sys.modules if m.startswith(("ecomet_broken", "hello_module"))]:
        del sys.modules[name]


def install_hello(site: Path) -> None:
    package = site / "hello_module"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(GOOD_MODULE)
    (package / "migrations" / "hello_0001.py").write_text(MIGRATION)
    install(site, "hello-module", "1.2.3", {"hello": "hello_module:module"})


def install_broken(site: Path) -> None:
    install(site, "ecomet-broken-import", "0.0.1", {"broken": "ecomet_broken_import:module"})
    install(site, "ecomet-broken-hook", "0.0.2", {"broken_hook": "ecomet_broken_hook:module"})


# -- discovery -----------------------------------------------------------------------------------


def test_an_installed_module_is_found_with_its_version_and_what_it_adds(site: Path) -> None:
    install_hello(site)
    modules = discover()
    [hello] = [item for item in modules.loaded if item.name == "hello"]
    assert hello.version == "1.2.3"
    assert hello.settings is not None and hello.settings.greeting == "hello"  # type: ignore[attr-defined]
    assert hello.module.adds() == [
        "router (staff)",
        "settings (HELLO_*)",
        "migrations",
        "hooks (created)",
    ]
    assert set(modules.migrations()) == {"hello"}


def test_a_module_reads_its_settings_with_its_prefix(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_hello(site)
    monkeypatch.setenv("HELLO_GREETING", "привет")
    [hello] = [item for item in discover().loaded if item.name == "hello"]
    assert hello.settings.greeting == "привет"  # type: ignore[union-attr]


def test_malformed_settings_leave_the_module_out(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_hello(site)
    monkeypatch.setenv("HELLO_TIMES", "many")
    modules = discover()
    assert [item.name for item in modules.loaded if item.name == "hello"] == []
    [failure] = [f for f in modules.failed if f.name == "hello"]
    assert failure.stage == "settings" and failure.error.startswith("TIMES:")


def test_enabled_and_disabled_choose(site: Path) -> None:
    install_hello(site)
    install_broken(site)
    only = discover(enabled=frozenset({"hello", "nonexistent"}))
    assert [item.name for item in only.loaded] == ["hello"]
    assert {name for name, _version in only.off} >= {"broken", "broken_hook"}
    assert only.failed == ()  # a module not enabled is not even imported
    assert only.unknown == ("nonexistent",)
    without = discover(disabled=frozenset({"hello", "broken"}))
    assert "hello" not in [item.name for item in without.loaded]
    assert "broken_hook" in [item.name for item in without.loaded]
    assert [f.name for f in without.failed] == []


def test_a_module_that_fails_to_import_is_kept_as_a_failure_and_the_rest_load(
    site: Path,
) -> None:
    install_hello(site)
    install_broken(site)
    modules = discover()
    [failure] = [f for f in modules.failed if f.name == "broken"]
    assert failure.stage == "import"
    assert failure.error == "RuntimeError: this module is broken on purpose"
    assert failure.version == "0.0.1"
    assert {"hello", "broken_hook"} <= {item.name for item in modules.loaded}


def test_an_entry_point_that_is_not_a_module_fails(site: Path) -> None:
    package = site / "hello_module"
    package.mkdir()
    (package / "__init__.py").write_text("module = 42\n")
    install(site, "hello-module", "1.0", {"hello": "hello_module:module"})
    [failure] = [f for f in discover().failed if f.name == "hello"]
    assert "is not a bot.modules.api.Module" in failure.error


def test_the_settings_name_the_modules_to_load() -> None:
    settings = load_settings(
        bot_token="1:a",
        staff_chat_id=-1,
        enabled_modules="webhook, hello",
        disabled_modules="",
        module_hook_retry_delays="0.5,2",
    )
    assert settings.enabled_modules == frozenset({"webhook", "hello"})
    assert settings.disabled_modules == frozenset()
    assert settings.module_hook_retry_delays == (0.5, 2.0)
    assert load_settings(bot_token="1:a", staff_chat_id=-1).enabled_modules is None
    assert (
        load_settings(bot_token="1:a", staff_chat_id=-1, enabled_modules="none").enabled_modules
        == frozenset()
    )


def test_the_listing_shows_every_module_and_the_failures(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_hello(site)
    install_broken(site)
    monkeypatch.setenv("DISABLED_MODULES", "broken_hook")
    monkeypatch.delenv("ENABLED_MODULES", raising=False)
    out = io.StringIO()
    assert cli_main(out) == 1  # a module failed to load
    text = out.getvalue()
    assert (
        "hello 1.2.3: enabled; adds router (staff), settings (HELLO_*), migrations, hooks (created)"
    ) in text
    assert "broken_hook 0.0.2: disabled" in text
    assert "broken 0.0.1: FAILED to load (import): RuntimeError: this module is broken" in text


def test_the_listing_says_when_nothing_is_installed() -> None:
    from bot.modules.loader import Modules

    assert listing(Modules()) == ["no modules installed (entry-point group ecomet_support.modules)"]


# -- migrations ----------------------------------------------------------------------------------


def _tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(url)
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names

    return asyncio.run(read())


def test_a_modules_migrations_run_after_the_desks_in_a_history_of_their_own(
    site: Path, backend_url: str
) -> None:
    install_hello(site)
    broken = site / "broken_migrations"
    broken.mkdir()
    (broken / "broken_0001.py").write_text(BAD_MIGRATION)
    failed = migrate(backend_url, {**discover().migrations(), "broken": broken})
    assert list(failed) == ["broken"]  # reported, not raised: the desk is migrated
    tables = _tables(backend_url)
    assert {"tickets", "hello_greetings", module_version_table("hello")} <= tables
    # The module uninstalled: the desk's migrations neither know nor mind its history.
    assert migrate(backend_url) == {}
    assert migrate(backend_url, discover().migrations()) == {}  # and again: nothing to do


# -- hooks ---------------------------------------------------------------------------------------


def bare_runtime(modules: Any, reporter: Any = None) -> Any:
    """A module runtime without a database (what routers, tasks and lookups need)."""
    from bot.modules.runtime import ModuleRuntime

    return ModuleRuntime(
        modules,
        sessions=None,  # type: ignore[arg-type]
        read_sessions=None,  # type: ignore[arg-type]
        single_writer=True,
        clock=ManualClock(),
        reporter=reporter,
        default_locale="ru",
    )


class ManualClock:
    def __init__(self) -> None:
        self.moment = NOW

    def now(self) -> datetime:
        return self.moment


@pytest_asyncio.fixture
async def database(backend_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(migrate, backend_url)
    db = Database(backend_url)
    yield db
    await db.dispose()


async def new_ticket(db: Database, number_hint: str = "a") -> int:
    async with transaction(db.writer) as uow:
        session = uow.session
        if await session.get(User, 1001) is None:
            session.add(User(id=1001, first_name="Alice", created_at=NOW, updated_at=NOW))
        ticket = Ticket(
            intake_key=f"key-{number_hint}",
            customer_id=1001,
            account_number="12345678",
            topic="No internet",
            kind=Kind.INCIDENT,
            description="Nothing loads",
            priority=Priority.P2,
            status=Status.NEW,
            locale="en",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(ticket)
        await session.flush()
        EventRepo(session).record(
            ticket.number, at=NOW, type="created", actor_id=1001, actor_role="customer"
        )
        return ticket.number


async def record(db: Database, number: int, type_: str, **values: Any) -> None:
    async with transaction(db.writer) as uow:
        EventRepo(uow.session).record(
            number, at=NOW, type=type_, actor_id=2001, actor_role="staff", **values
        )


@dataclass
class Heard:
    events: list[tuple[int, str, int]]  # (entry id, kind, ticket)


def listener(heard: Heard, *, fail: int = 0) -> Any:
    """A hook that records what it hears and raises the first ``fail`` times."""
    failures = {"left": fail}

    async def hook(event: TicketEvent, _context: ModuleContext) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("the receiver is down")
        heard.events.append((event.id, event.kind.value, event.ticket.number))

    return hook


def subscriber(db: Database, hooks: dict[EventKind, Any], name: str = "probe") -> Subscriber:
    context = ModuleContext(
        name=name,
        settings=None,
        texts=None,
        sessions=db.writer,
        read_sessions=db.reader,
        clock=ManualClock(),
        log=__import__("logging").getLogger("probe"),
        single_writer=db.single_writer,
    )
    return Subscriber(name, hooks, context)


class Reports:
    def __init__(self) -> None:
        self.troubles: list[Trouble] = []

    async def __call__(self, trouble: Trouble) -> None:
        self.troubles.append(trouble)


def runner(db: Database, subs: list[Subscriber], clock: ManualClock, **options: Any) -> HookRunner:
    return HookRunner(
        subs,
        sessions=db.writer,
        read_sessions=db.reader,
        clock=clock,
        report=options.pop("report", Reports()),
        **options,
    )


async def drain(hooks: HookRunner) -> None:
    """Rounds until nothing more is due now."""
    for _ in range(20):
        if not await hooks.round():
            return


async def test_a_new_module_hears_only_what_happens_after_it_came(database: Database) -> None:
    old = await new_ticket(database, "old")
    heard = Heard([])
    clock = ManualClock()
    hooks = runner(database, [subscriber(database, {EventKind.CREATED: listener(heard)})], clock)
    await hooks.start()
    await drain(hooks)
    assert heard.events == []
    new = await new_ticket(database, "new")
    await drain(hooks)
    assert [ticket for _id, _kind, ticket in heard.events] == [new]
    assert old != new


async def test_each_kind_is_heard_once_in_order(database: Database) -> None:
    heard = Heard([])
    clock = ManualClock()
    every = {kind: listener(heard) for kind in EventKind}
    hooks = runner(database, [subscriber(database, every)], clock)
    await hooks.start()
    number = await new_ticket(database)
    await record(database, number, "customer_message")  # nothing for modules
    await record(database, number, "status", old="new", new="in_progress")
    await record(database, number, "staff_message", details={"message_id": 5})
    await record(database, number, "staff_message", details={"message_id": 6})
    await record(database, number, "status", old="in_progress", new="resolved")
    await record(database, number, "status", old="resolved", new="closed")
    await record(database, number, "rating", new="5")
    await drain(hooks)
    await drain(hooks)
    assert [kind for _id, kind, _n in heard.events] == [
        "created",
        "status_changed",
        "first_answer",
        "status_changed",
        "resolved",
        "status_changed",
        "closed",
        "rated",
    ]


async def test_two_instances_run_a_hook_once_per_event(database: Database) -> None:
    heard = Heard([])
    clock = ManualClock()

    async def slow(event: TicketEvent, _context: ModuleContext) -> None:
        await asyncio.sleep(0.01)  # lets the other instance try meanwhile
        heard.events.append((event.id, event.kind.value, event.ticket.number))

    first = runner(database, [subscriber(database, {EventKind.CREATED: slow})], clock, batch=3)
    second = runner(database, [subscriber(database, {EventKind.CREATED: slow})], clock, batch=3)
    await first.start()
    await second.start()
    numbers = [await new_ticket(database, str(i)) for i in range(10)]
    for _ in range(10):
        await asyncio.gather(first.round(), second.round())
    await drain(first)
    await drain(second)
    assert sorted(ticket for _id, _kind, ticket in heard.events) == numbers


async def test_a_failing_hook_gets_its_event_again_after_a_delay(database: Database) -> None:
    heard = Heard([])
    clock = ManualClock()
    reports = Reports()
    hooks = runner(
        database,
        [subscriber(database, {EventKind.CREATED: listener(heard, fail=2)})],
        clock,
        retry_delays=[timedelta(seconds=10), timedelta(seconds=60), timedelta(seconds=60)],
        report=reports,
    )
    await hooks.start()
    number = await new_ticket(database)
    await drain(hooks)
    assert heard.events == []
    clock.moment += timedelta(seconds=5)
    await drain(hooks)
    assert heard.events == []  # not before its delay
    clock.moment += timedelta(seconds=6)
    await drain(hooks)  # the second failure
    assert heard.events == []
    clock.moment += timedelta(seconds=61)
    await drain(hooks)
    assert [ticket for _id, _kind, ticket in heard.events] == [number]
    assert reports.troubles == []
    clock.moment += timedelta(hours=1)
    await drain(hooks)
    assert len(heard.events) == 1  # once


async def test_a_hook_that_keeps_failing_is_skipped_with_a_report_and_others_go_on(
    database: Database,
) -> None:
    heard = Heard([])
    clock = ManualClock()
    reports = Reports()

    async def broken(_event: TicketEvent, _context: ModuleContext) -> None:
        raise RuntimeError("the hook is broken")

    hooks = runner(
        database,
        [
            subscriber(database, {EventKind.CREATED: broken}, "broken"),
            subscriber(database, {EventKind.CREATED: listener(heard)}, "fine"),
        ],
        clock,
        retry_delays=[timedelta(seconds=1), timedelta(seconds=1)],
        report=reports,
    )
    await hooks.start()
    first = await new_ticket(database, "1")
    second = await new_ticket(database, "2")
    for _ in range(8):
        await drain(hooks)
        clock.moment += timedelta(seconds=2)
    # The other module heard both at once; the broken one skipped each after three tries.
    assert [ticket for _id, _kind, ticket in heard.events] == [first, second]
    assert [(t.name, t.stage, t.ticket, t.attempts) for t in reports.troubles] == [
        ("broken", "hook", first, 3),
        ("broken", "hook", second, 3),
    ]
    assert reports.troubles[0].error == "RuntimeError: the hook is broken"
    async with database.reader() as session:
        row = await session.get(DeskSetting, cursor_key("broken"))
        assert row is not None
        cursor = Cursor.parse(row.value)
    assert cursor.attempts == 0 and cursor.owner == ""


async def test_a_gap_in_the_history_is_waited_for_then_passed(database: Database) -> None:
    heard = Heard([])
    clock = ManualClock()
    hooks = runner(
        database,
        [subscriber(database, {EventKind.RATED: listener(heard)})],
        clock,
        gap_grace=timedelta(seconds=10),
    )
    await hooks.start()
    number = await new_ticket(database)
    await drain(hooks)  # the cursor passes the "created" entry (nothing to this module)
    created = await _newest(database)
    # Entry created + 1 is still being committed, or was rolled back; the next one is visible.
    async with transaction(database.writer) as uow:
        await uow.session.execute(
            insert(HistoryEntry).values(
                id=created + 2,
                ticket_number=number,
                at=NOW,
                actor_id=None,
                actor_role="customer",
                type="rating",
                new="5",
            )
        )
    await drain(hooks)
    assert heard.events == []  # waits for the missing entry
    clock.moment += timedelta(seconds=11)
    await drain(hooks)
    assert heard.events == [(created + 2, "rated", number)]


async def _newest(db: Database) -> int:
    async with db.reader() as session:
        newest = await session.scalar(select(HistoryEntry.id).order_by(HistoryEntry.id.desc()))
    assert newest is not None
    return int(newest)


# -- reports -------------------------------------------------------------------------------------


async def _deliveries(session: AsyncSession) -> list[Delivery]:
    return list((await session.execute(select(Delivery).order_by(Delivery.id))).scalars())


async def test_a_failure_is_told_to_managers_once_in_their_language(database: Database) -> None:
    async with transaction(database.writer) as uow:
        uow.session.add(
            User(id=MANAGER, first_name="Maria", language_code="en", created_at=NOW, updated_at=NOW)
        )
    i18n = I18n(path=ROOT / "locales", default_locale="ru", domain="messages")
    reporter = Reporter(
        sessions=database.writer,
        outbox=Outbox(ManualClock()),
        i18n=i18n,
        managers=frozenset({MANAGER}),
        default_locale="ru",
    )
    trouble = Trouble("broken", "import", "RuntimeError: <boom>")
    assert await reporter.report(trouble)
    assert not await reporter.report(trouble)  # a restart with the same error: not again
    assert await reporter.report(Trouble("broken", "import", "RuntimeError: other"))
    await reporter.worked("broken")
    assert await reporter.report(trouble)  # it worked in between: news again
    async with database.reader() as session:
        sent = await _deliveries(session)
    assert [d.chat_id for d in sent] == [MANAGER] * 3
    text = sent[0].payload["text"]
    assert text.startswith("⚠️ The module <b>broken</b> could not be loaded and is off.")
    assert "RuntimeError: &lt;boom&gt;" in text


async def test_the_modules_routers_go_behind_their_audiences_filters() -> None:
    """A module's staff router is inside the desk's staff router (members only), a manager's
    in a filtered router of its own."""
    from aiogram import Router

    from bot.handlers import create_routers
    from bot.modules.loader import Loaded, Modules

    staff_router = Router(name="hello-staff")
    manager_router = Router(name="hello-managers")

    def broken_factory(_context: ModuleContext) -> Router:
        raise RuntimeError("no router today")

    modules = Modules(
        loaded=(
            Loaded(
                "hello",
                "1",
                Module(
                    routers={
                        Audience.STAFF: lambda _c: staff_router,
                        Audience.MANAGER: lambda _c: manager_router,
                    }
                ),
                None,
            ),
            Loaded("broken", "1", Module(routers={Audience.CUSTOMER: broken_factory}), None),
        )
    )
    runtime = bare_runtime(modules)
    made = runtime.routers()
    assert [a.loaded.name for a in runtime.active] == ["hello"]
    assert [(f.name, f.stage) for f in runtime.failures] == [("broken", "routers")]
    root = Router(name="dispatcher")
    root.include_routers(
        *create_routers(
            managers=made[Audience.MANAGER], staff_group=made[Audience.STAFF], customers=[]
        )
    )
    staff = next(r for r in root.sub_routers if r.name == "bot.handlers.staff")
    assert staff_router in staff.sub_routers
    assert staff_router.parent_router is staff
    assert manager_router.parent_router is not None
    assert manager_router.parent_router.parent_router is root


def test_the_readme_module_is_a_working_module(site: Path) -> None:
    """The "Writing a module" example in the README, as written there, loads and works."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Writing a module", 1)[1]
    code = section.split("`hello_desk/__init__.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
    points = section.split('[project.entry-points."ecomet_support.modules"]\n', 1)[1]
    line = points.split("\n")[0].split("#")[0]
    name, target = (part.strip().strip('"') for part in line.split("="))
    package = site / "hello_desk"
    package.mkdir()
    (package / "__init__.py").write_text(code, encoding="utf-8")
    install(site, "hello-desk", "0.1.0", {name: target})
    try:
        modules = discover(enabled=frozenset({"hello"}))
        assert modules.failed == ()
        [hello] = modules.loaded
        assert hello.module.adds() == ["router (staff)", "settings (HELLO_*)", "hooks (created)"]
        context = subscriber_context(hello.settings)
        router = hello.module.routers[Audience.STAFF](context)
        assert [h.callback.__name__ for h in router.message.handlers] == ["hello"]
        assert hello.settings is not None and hello.settings.greeting == "Hello"  # type: ignore[attr-defined]
    finally:
        sys.modules.pop("hello_desk", None)


def subscriber_context(settings: Any) -> ModuleContext:
    return ModuleContext(
        name="hello",
        settings=settings,
        texts=None,
        sessions=None,  # type: ignore[arg-type]
        read_sessions=None,  # type: ignore[arg-type]
        clock=ManualClock(),
        log=__import__("logging").getLogger("hello"),
        single_writer=True,
    )


async def test_an_instance_that_dies_holding_the_cursor_is_taken_over(
    database: Database,
) -> None:
    heard = Heard([])
    clock = ManualClock()
    dead = runner(database, [subscriber(database, {EventKind.CREATED: listener(heard)})], clock)
    alive = runner(database, [subscriber(database, {EventKind.CREATED: listener(heard)})], clock)
    await dead.start()
    number = await new_ticket(database)
    claim = await dead._claim(dead.subscribers[0])  # claimed, then killed before its hooks
    assert claim is not None
    await drain(alive)
    assert heard.events == []  # the lease still holds
    clock.moment += dead.lease + timedelta(seconds=1)
    await drain(alive)
    assert [ticket for _id, _kind, ticket in heard.events] == [number]


async def test_a_hook_that_hangs_is_a_failure(database: Database) -> None:
    clock = ManualClock()
    reports = Reports()

    async def hangs(_event: TicketEvent, _context: ModuleContext) -> None:
        await asyncio.Event().wait()

    hooks = runner(
        database,
        [subscriber(database, {EventKind.CREATED: hangs})],
        clock,
        retry_delays=[],
        hook_timeout=0.05,
        report=reports,
    )
    await hooks.start()
    number = await new_ticket(database)
    await drain(hooks)
    assert [(t.ticket, t.error) for t in reports.troubles] == [
        (number, "TimeoutError: the hook took too long")
    ]


async def test_a_failing_task_is_reported_and_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.modules import runtime as runtime_module
    from bot.modules.loader import Loaded, Modules

    monkeypatch.setattr(runtime_module, "TASK_PAUSE", 0.01)
    runs: list[str] = []

    async def flaky(_context: ModuleContext) -> None:
        runs.append("run")
        if len(runs) < 3:
            raise ConnectionError("the queue is away")

    class Told:
        def __init__(self) -> None:
            self.troubles: list[Trouble] = []

        async def report(self, trouble: Trouble) -> bool:
            self.troubles.append(trouble)
            return True

    told = Told()
    runtime = bare_runtime(
        Modules(loaded=(Loaded("flaky", "1", Module(tasks=[flaky]), None),)), reporter=told
    )
    [task] = runtime.tasks()
    await asyncio.wait_for(task, 5)
    assert runs == ["run"] * 3
    assert [(t.name, t.stage, t.error) for t in told.troubles] == [
        ("flaky", "task", "ConnectionError: the queue is away")
    ] * 2


def test_a_modules_texts_follow_the_readers_language() -> None:
    from bot.modules.api import ModuleTexts

    locales = ROOT / "modules" / "ecomet-webhook" / "src" / "ecomet_webhook" / "locales"
    texts = ModuleTexts(locales, "ecomet_webhook", default_locale="en")
    assert texts.locales == ("en", "ru")
    msgid = "⏳ on its way"
    assert texts.gettext(msgid, "ru") == "⏳ отправляется"
    assert texts.gettext(msgid, "de") == msgid  # no such catalog: the sentence as written
    assert texts.gettext(msgid) == msgid  # outside an update: the default locale
    i18n = I18n(path=ROOT / "locales", default_locale="ru", domain="messages")
    with i18n.context(), i18n.use_locale("ru"):
        assert texts.gettext(msgid) == "⏳ отправляется"  # the update's locale


async def test_a_modules_account_lookup_names_accounts_the_desk_does_not_have(
    tmp_path: Path,
) -> None:
    """SPEC §12: accounts come from the import or are looked up by a module. The desk's own
    accounts win; a lookup that fails or hangs is passed over, the next one asked."""
    from zoneinfo import ZoneInfo

    from bot.domain.hours import SupportHours
    from bot.domain.tariffs import parse_tariffs
    from bot.modules.api import AccountFound
    from bot.modules.loader import Loaded, Modules
    from bot.services import accounts as account_service

    asked: list[str] = []

    async def crm(number: str, context: ModuleContext) -> AccountFound | None:
        asked.append(f"{context.name}:{number}")
        return AccountFound("Acme Corp", "premium") if number == "55555555" else None

    async def broken(number: str, _context: ModuleContext) -> AccountFound | None:
        raise ConnectionError("the CRM is away")

    async def hangs(number: str, _context: ModuleContext) -> AccountFound | None:
        await asyncio.sleep(60)
        return None

    modules = Modules(
        loaded=(
            Loaded("broken", "1", Module(accounts=broken), None),
            Loaded("hangs", "1", Module(accounts=hangs), None),
            Loaded("crm", "1", Module(accounts=crm), None),
        )
    )
    runtime = bare_runtime(modules)
    assert Module(accounts=crm).adds() == ["account lookup"]
    lookups = runtime.account_lookups()
    assert len(lookups) == 3
    msk = ZoneInfo("Europe/Moscow")
    tariffs = parse_tariffs(
        'default = "standard"\n[tariffs.standard]\nname = "Standard"\n'
        '[tariffs.premium]\nname = "Premium"\nhours = "24/7"\n',
        tz=msk,
        hours=SupportHours.parse("09:00-21:00", msk),
        first_response={p: timedelta(hours=1) for p in Priority},
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'desk.sqlite3'}"
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    original = account_service.LOOKUP_TIMEOUT
    account_service.LOOKUP_TIMEOUT = 0.2  # the hanging one is given up quickly here
    try:
        async with database.reader() as session:
            found = await account_service.account_info(session, "55555555", tariffs, lookups)
            unknown = await account_service.account_info(session, "66666666", tariffs, lookups)
    finally:
        account_service.LOOKUP_TIMEOUT = original
        await database.dispose()
    assert found is not None and found.organisation == "Acme Corp"
    assert found.tariff is not None and found.tariff.code == "premium"
    assert unknown is None
    assert asked == ["crm:55555555", "crm:66666666"]
