"""``python -m bot modules``: the installed modules, whether they load, and what each adds."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.modules.loader import ModuleChoice, Modules, discover


def listing(modules: Modules) -> list[str]:
    lines: list[str] = []
    for item in modules.loaded:
        adds = ", ".join(item.module.adds()) or "nothing"
        lines.append(f"{item.name} {item.version}: enabled; adds {adds}")
        if item.module.description:
            lines.append(f"    {item.module.description}")
    for name, version in modules.off:
        lines.append(f"{name} {version}: disabled (ENABLED_MODULES / DISABLED_MODULES)")
    for failure in modules.failed:
        lines.append(
            f"{failure.name} {failure.version}: FAILED to load ({failure.stage}): {failure.error}"
        )
    for name in modules.unknown:
        lines.append(f"{name}: named in ENABLED_MODULES but not installed")
    return lines or ["no modules installed (entry-point group ecomet_support.modules)"]


def main(out: TextIO = sys.stdout) -> int:
    """Exit status 1 when a module fails to load (a script can check an install)."""
    choice = ModuleChoice()
    modules = discover(choice.enabled_modules, choice.disabled_modules or frozenset())
    for line in listing(modules):
        print(line, file=out)
    return 1 if modules.failed else 0
