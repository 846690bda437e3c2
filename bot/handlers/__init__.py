"""Handlers by audience. Composition happens here, in this order."""

from aiogram import Router

from bot.handlers import customer, errors, manager, staff


def create_root_router() -> Router:
    root = Router(name="root")
    root.include_routers(
        manager.create_router(),
        staff.create_router(),
        customer.create_router(),
        errors.create_router(),
    )
    return root
