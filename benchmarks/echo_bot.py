"""The baseline of :mod:`benchmarks.relay_throughput`: a bare aiogram bot that copies every
private text message to the staff group, i.e. the same Bot API work per message as the desk's
relay (one ``copyMessage`` to ``STAFF_CHAT_ID``) with none of its bookkeeping.

``python -m benchmarks.echo_bot`` with ``BOT_TOKEN``, ``STAFF_CHAT_ID`` and
``TELEGRAM_API_URL`` in the environment, as for ``python -m bot``.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message


def create_dispatcher(staff_chat_id: int) -> Dispatcher:
    dispatcher = Dispatcher()

    @dispatcher.message(F.chat.type == "private", F.text)
    async def relay(message: Message) -> None:
        await message.copy_to(chat_id=staff_chat_id)

    return dispatcher


async def run() -> None:
    api_url = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/")
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    bot = Bot(token=os.environ["BOT_TOKEN"], session=session)
    dispatcher = create_dispatcher(int(os.environ["STAFF_CHAT_ID"]))
    await dispatcher.start_polling(bot)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run())


if __name__ == "__main__":
    main()
