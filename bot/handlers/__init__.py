"""Handlers by audience. Composition happens here, in this order."""

from aiogram import Router

from bot.handlers import customer, errors


def create_root_router() -> Router:
    root = Router(name="root")
    root.include_routers(customer.create_router(), errors.router)
    return root
