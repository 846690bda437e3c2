"""The staff group: card buttons, the conversation with customers, staff commands.

Only updates from the staff group reach these routers, and a button, a message or an edit acts
only when its author is a member of the group (callback data can be forged; who pressed and
where cannot). Membership changes (``chat_member``) take effect at once; the bot's own
(``my_chat_member``) tell managers when the desk has lost its group.
"""

from collections.abc import Sequence

from aiogram import Router

from bot.handlers.routing import DeskRouter
from bot.handlers.staff import access, buttons, commands, conversation, members, problems
from bot.handlers.staff.gate import AnswerPresses, InStaffChat, members_only


def create_router(modules: Sequence[Router] = ()) -> Router:
    router = DeskRouter(name=__name__)
    router.message.filter(InStaffChat())
    router.edited_message.filter(InStaffChat())
    router.callback_query.filter(InStaffChat())
    router.chat_member.filter(InStaffChat())
    router.my_chat_member.filter(InStaffChat())
    # Answers first: a press refused by ``members_only`` is answered too.
    router.callback_query.middleware(AnswerPresses())
    router.message.middleware(members_only)
    router.edited_message.middleware(members_only)
    router.callback_query.middleware(members_only)
    router.include_routers(
        access.create_router(),
        members.create_router(),
        # Commands before the conversation (a command is not a message to a customer), and
        # their buttons before the card's, whose router ends with the catch-all for the rest.
        # Problems' commands before the others' catch-all for commands nobody handles.
        problems.create_router(),
        *modules,  # installed modules' staff commands, before that catch-all too
        commands.create_router(),
        buttons.create_router(),
        conversation.create_router(),
    )
    return router
