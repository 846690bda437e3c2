"""A person at the sandbox page: picks who they are, opens chats, types, clicks."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.waiting import eventually_sync

NUMBER = re.compile(r"#(\d+)")


class Ui:
    def __init__(self, page: Page) -> None:
        self.page = page

    def be(self, name: str) -> None:
        """Choose who you are in the "You are" list."""
        option = self.page.locator("#person option", has_text=name)
        self.page.select_option("#person", value=option.get_attribute("value"))
        expect(self.page.locator("#chat-list .chat").first).to_be_visible()

    def open_chat(self, title: str) -> None:
        """Open the chat whose entry shows ``title``. Just after ``be()`` the list may still be
        the previous person's and be drawn anew under the click: click until the open chat is
        the one asked for."""
        current = self.page.locator('#chat-list .chat[aria-current="true"]')

        def opened() -> bool:
            entry = self.page.locator("#chat-list .chat", has_text=title).first
            expect(entry).to_be_visible()
            entry.click()
            return title in (current.first.locator(".title").text_content(timeout=5000) or "")

        eventually_sync(opened, f"the chat {title!r} did not open", within=20, every=0.5)

    def type(self, text: str) -> None:
        box = self.page.locator("#text")
        box.fill(text)
        box.press("Enter")
        expect(box).to_have_value("")

    def message(self, *fragments: str, by_bot: bool = True) -> Locator:
        """The newest message in the open chat that contains every fragment (waits for it)."""
        found = self.page.locator("#messages .msg.bot" if by_bot else "#messages .msg")
        for fragment in fragments:
            found = found.filter(has_text=fragment)
        newest = found.last
        expect(newest).to_be_visible()
        return newest

    def card(self, number: int) -> Locator:
        """The ticket's card in the open staff chat: the message with the ticket's buttons."""
        found = (
            self.page.locator("#messages .msg.bot")
            .filter(has_text=f"#{number}")
            .filter(has=self.page.locator(".keyboard button", has_text="История"))
            .first
        )
        expect(found).to_be_visible()
        return found

    def press(self, label: str, within: Locator | None = None) -> None:
        """Press the newest inline button whose text contains ``label`` (case matters, so
        "Solved" is not "Not solved")."""
        scope = within if within is not None else self.page.locator("#messages")
        button = (
            scope.locator(".keyboard button").filter(has_text=re.compile(re.escape(label))).last
        )
        expect(button).to_be_enabled()
        button.click()

    def move_clock(self, label: str) -> None:
        before = self.page.locator("#clock-now").inner_text()
        self.page.get_by_role("button", name=label, exact=True).click()
        expect(self.page.locator("#clock-now")).not_to_have_text(before)

    def open_request(self, topic: str, *, screenshot: bytes | None = None) -> int:
        """A customer's whole dialog, by clicking and typing; returns the ticket's number."""
        self.page.locator("#commands-button").click()
        self.page.locator("#command-menu button", has_text="/new").click()
        kinds = self.message("What is your request about?")
        self.press("stopped working", kinds)
        self.message("what is it about?")
        self.type(topic)
        self.message("Describe it in detail")
        self.type("The login page shows an error after the update.")
        self.message("account number")
        self.type("12345678")
        self.message("Attach screenshots")
        if screenshot is None:
            self.press("Skip")
        else:
            self.page.set_input_files(
                "#file",
                files=[{"name": "screen.png", "mimeType": "image/png", "buffer": screenshot}],
            )
            self.page.locator("#send").click()
        summary = self.message("Please check your request")
        self.press("Send", summary)
        registered = self.message("is registered")
        found = NUMBER.search(registered.inner_text())
        assert found is not None
        return int(found.group(1))
