"""Finding the installed modules: the entry points of ``ecomet_support.modules`` (SPEC §12).

A module that fails to import, whose entry point is not a :class:`~bot.modules.api.Module`, or
whose settings are malformed is not loaded: it is kept as a :class:`Failure` (reported to
managers by the running desk) and the desk starts without it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.config import split_names
from bot.modules.api import Module

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ecomet_support.modules"
# A module's name is part of keys in desk_settings and of a table name: kept plain and short.
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True, slots=True)
class Loaded:
    name: str
    version: str
    module: Module
    settings: BaseSettings | None


@dataclass(frozen=True, slots=True)
class Failure:
    """A module left out, and why. ``stage``: import, settings, migrate, routers."""

    name: str
    version: str
    stage: str
    error: str


@dataclass(frozen=True, slots=True)
class Modules:
    """The installed modules: loaded, left out by the settings, and failed."""

    loaded: tuple[Loaded, ...] = ()
    off: tuple[tuple[str, str], ...] = ()  # (name, version) not enabled
    failed: tuple[Failure, ...] = ()
    unknown: tuple[str, ...] = field(default=())  # named in ENABLED_MODULES, not installed

    def migrations(self) -> dict[str, Path]:
        return {
            item.name: item.module.migrations
            for item in self.loaded
            if item.module.migrations is not None
        }

    def without(self, failures: Iterable[Failure]) -> Modules:
        """These modules failed after loading (to migrate, say): left out like the others."""
        gone = list(failures)
        names = {failure.name for failure in gone}
        return Modules(
            loaded=tuple(item for item in self.loaded if item.name not in names),
            off=self.off,
            failed=self.failed + tuple(gone),
            unknown=self.unknown,
        )


def describe(error: BaseException) -> str:
    """One line: the exception's type and message (settings errors name the variable)."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = "_".join(str(part) for part in first["loc"]).upper()
        return f"{where}: {first['msg']}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def discover(
    enabled: frozenset[str] | None = None,
    disabled: frozenset[str] = frozenset(),
    found: Iterable[EntryPoint] | None = None,
) -> Modules:
    """Load the modules of the entry points (``found``: the installed ones by default) that
    ``enabled`` (None: all) and ``disabled`` choose."""
    points = sorted(
        entry_points(group=ENTRY_POINT_GROUP) if found is None else found, key=lambda p: p.name
    )
    loaded: list[Loaded] = []
    off: list[tuple[str, str]] = []
    failed: list[Failure] = []
    seen: set[str] = set()
    for point in points:
        version = _version(point)
        if point.name in seen:
            # Two distributions claim one name: the first (by sys.path) wins, as import would.
            log.warning("module %s is installed twice; the second is ignored", point.name)
            continue
        seen.add(point.name)
        if (enabled is not None and point.name not in enabled) or point.name in disabled:
            off.append((point.name, version))
            continue
        if not NAME.match(point.name):
            failed.append(
                Failure(point.name, version, "import", "a module's name is a-z, 0-9, _ or -")
            )
            continue
        try:
            module = _module_of(point)
        except Exception as error:  # a broken module must not stop the desk
            log.exception("module %s could not be loaded; the desk starts without it", point.name)
            failed.append(Failure(point.name, version, "import", describe(error)))
            continue
        try:
            settings = module.settings() if module.settings is not None else None
        except Exception as error:  # noqa: BLE001 - malformed settings: the module is left out
            log.error("module %s: its settings are malformed: %s", point.name, describe(error))
            failed.append(Failure(point.name, version, "settings", describe(error)))
            continue
        loaded.append(Loaded(point.name, version, module, settings))
    unknown = tuple(sorted((enabled or frozenset()) - seen))
    for name in unknown:
        log.warning("ENABLED_MODULES names %s, which is not installed", name)
    return Modules(tuple(loaded), tuple(off), tuple(failed), unknown)


class ModuleChoice(BaseSettings):
    """``ENABLED_MODULES`` / ``DISABLED_MODULES`` alone, read like the bot reads them: for what
    needs no other setting (the listing, the sandbox)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    enabled_modules: Annotated[frozenset[str] | None, NoDecode] = None
    disabled_modules: Annotated[frozenset[str] | None, NoDecode] = None

    @field_validator("enabled_modules", "disabled_modules", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return split_names(value) if isinstance(value, str) else value


def load(
    database_url: str, enabled: frozenset[str] | None, disabled: frozenset[str] | None
) -> Modules:
    """Discover the modules, migrate the database (the desk's schema, then each module's), and
    leave out a module whose migration fails (kept as a failure, reported by the desk)."""
    from bot.db.engine import migrate

    modules = discover(enabled, disabled or frozenset())
    unmigrated = migrate(database_url, modules.migrations())
    for name, problem in unmigrated.items():
        log.error("module %s: its migration failed; it is left out: %r", name, problem)
    return modules.without(
        Failure(item.name, item.version, "migrate", describe(unmigrated[item.name]))
        for item in modules.loaded
        if item.name in unmigrated
    )


def _module_of(point: EntryPoint) -> Module:
    target = point.load()
    module = target if isinstance(target, Module) else target() if callable(target) else None
    if not isinstance(module, Module):
        raise TypeError(f"{point.value} is not a bot.modules.api.Module nor a function making one")
    return module


def _version(point: EntryPoint) -> str:
    dist = point.dist
    return dist.version if dist is not None else "?"
