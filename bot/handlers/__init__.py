"""Handlers by audience. Composition happens here, in this order."""

from collections.abc import Sequence

from aiogram import Router

from bot.handlers import customer, errors, manager, staff


def create_routers(
    *,
    anyone: Sequence[Router] = (),
    managers: Sequence[Router] = (),
    staff_group: Sequence[Router] = (),
    customers: Sequence[Router] = (),
) -> list[Router]:
    """The desk's routers, for the dispatcher itself (a root router of their own would be one
    more level every update passes); installed modules' ones (bot/modules) each where its
    audience's filters apply: ``managers``' already filtered, the others put behind the desk's
    own."""
    return [
        *anyone,
        *managers,
        manager.create_router(),
        staff.create_router(staff_group),
        customer.create_router(customers),
        errors.create_router(),
    ]
