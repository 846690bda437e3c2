"""The customer's private chat: commands, the request dialog, follow-ups — in that order."""

from aiogram import F, Router

from bot.handlers.customer import commands, dialog, followup


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.include_routers(commands.router, dialog.router, followup.router)
    return router
