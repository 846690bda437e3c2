"""Black-box clicking for tests: a customer who types, presses buttons and reads replies."""

from __future__ import annotations

from typing import Any

from bot.emulator import FakeTelegram, FakeUser
from tests.waiting import eventually

JsonDict = dict[str, Any]


class Customer:
    def __init__(self, fake: FakeTelegram, user: FakeUser) -> None:
        self.fake = fake
        self.user = user
        self.last: JsonDict | None = None

    @property
    def id(self) -> int:
        return self.user.id

    async def expect(self, *fragments: str, timeout: float = 10) -> JsonDict:
        """The bot's next message here; it must contain every fragment."""
        message = await self.fake.next_message(self.user.id, timeout=timeout)
        text = self.fake.text_of(message)
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in the bot's message:\n{text}"
        self.last = message
        return message

    def text(self, message: JsonDict | None = None) -> str:
        message = message or self.last
        assert message is not None
        return self.fake.text_of(self.fake.message(self.user.id, message["message_id"]))

    async def edited(self, message: JsonDict, fragment: str, timeout: float = 10) -> str:
        """Wait until the bot edits ``message`` to contain ``fragment``."""

        def shown() -> str | None:
            text = self.text(message)
            return text if fragment in text else None

        return await eventually(
            shown,
            lambda: f"{fragment!r} never appeared in the message:\n{self.text(message)}",
            timeout,
        )

    def press(self, label: str, message: JsonDict | None = None) -> str:
        message = message or self.last
        assert message is not None, "no message to press a button on"
        return self.fake.press(self.user, message, label)

    def say(self, text: str, **kwargs: Any) -> JsonDict:
        return self.fake.send_text(self.user, text, **kwargs)

    def command(self, command: str) -> JsonDict:
        return self.fake.send_command(self.user, command)

    async def open_request(
        self,
        *,
        kind: str = "stopped working",
        topic: str = "Cannot log in",
        description: str = "The login page shows an error after the update.",
        account: str = "12345678",
        screenshots: int = 0,
    ) -> int:
        """Walk the whole dialog in English and return the registered number."""
        self.command("/new")
        await self.expect("What is your request about?")
        self.press(kind)
        await self.expect("what is it about?")
        self.say(topic)
        await self.expect("Describe it in detail")
        self.say(description)
        await self.expect("account number")
        self.say(account)
        await self.expect("Attach screenshots")
        if screenshots == 1:
            self.fake.send_photo(self.user)
        elif screenshots > 1:
            self.fake.send_album(self.user, n=screenshots)
        else:
            self.press("Skip")
        summary = await self.expect("Please check your request")
        self.press("Send", summary)
        notice = await self.expect("is registered")
        return number_in(self.fake.text_of(notice))


def number_in(text: str) -> int:
    import re

    match = re.search(r"#(\d+)", text)
    assert match is not None, f"no ticket number in {text!r}"
    return int(match.group(1))


def relayed_lines(fake: FakeTelegram, message: JsonDict) -> list[str]:
    """The customer's words in a relayed message: one copy is one message; a joined one
    (several queued texts of one ticket sent as one, SPEC §8) is a header line saying who wrote
    and when, then a line per message."""
    text = fake.text_of(message)
    if text.startswith("💬 ") and "\n" in text:
        return text.split("\n")[1:]
    return [text]


async def next_relayed(
    fake: FakeTelegram, chat_id: int, count: int, timeout: float = 10
) -> list[str]:
    """The next ``count`` customer messages relayed to ``chat_id``, however they were joined."""
    lines: list[str] = []
    while len(lines) < count:
        lines += relayed_lines(fake, await fake.next_message(chat_id, timeout=timeout))
    return lines
