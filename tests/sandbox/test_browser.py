"""The story of SPEC §1 played through the sandbox page in a real (headless) Chromium."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.sandbox.conftest import Sandbox
from tests.sandbox.ui import Ui


def png(width: int = 64, height: int = 40, rgb: tuple[int, int, int] = (51, 144, 236)) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def image_loaded(page: Page, selector: str) -> bool:
    return bool(page.locator(selector).last.evaluate("img => img.complete && img.naturalWidth > 0"))


def test_open_take_answer_confirm_and_summarise(page: Page) -> None:
    ui = Ui(page)
    # Deterministic support hours: the bot's clock goes to the next 09:00 first.
    ui.move_clock("to 09:00")
    expect(page.locator("#clock-now")).to_contain_text("09:0")
    expect(page.locator("#clock-state")).to_contain_text("support is working")

    # A customer opens a request through the dialog, with a screenshot.
    ui.be("Alice")
    number = ui.open_request("Cannot log in", screenshot=png())
    page_text = ui.message("is registered").inner_text()
    assert f"#{number}" in page_text
    assert image_loaded(page, "#messages .msg.mine img.photo")

    # Staff find the ticket's topic, take it and answer there.
    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    card = ui.card(number)
    # The card's HTML formatting is drawn, not shown as tags.
    expect(card.locator(".text strong").first).to_be_visible()
    expect(card.locator(".text blockquote")).to_contain_text("The login page shows an error")
    expect(card.locator(".text code").first).to_be_visible()
    expect(card).not_to_contain_text("<b>")
    expect(page.locator("#messages img.photo").first).to_be_visible()  # the screenshot
    ui.press("Взять", card)
    expect(card).to_contain_text("Светлана")

    # The customer adds a detail and corrects it; staff see the correction in place and
    # answer it with a reply, which reaches the customer as a reply to her own message.
    ui.be("Alice")
    ui.type("Also: the app version is 2.0")
    # Relayed first: an edit of a message still queued goes out as the copy's own text.
    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    ui.message("the app version is 2.0")
    ui.be("Alice")
    followup = ui.message("the app version is 2.0", by_bot=False)
    followup.hover()
    followup.get_by_role("button", name="Edit").click()
    page.locator("#text").fill("Also: the app version is 2.0.3")
    page.locator("#text").press("Enter")
    expect(followup.locator(".text")).to_have_text("Also: the app version is 2.0.3")
    expect(followup.locator(".edited")).to_be_visible()
    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    relayed = ui.message("the app version is 2.0.3")
    expect(relayed.locator(".edited")).to_be_visible()
    relayed.hover()
    relayed.get_by_role("button", name="Reply").click()
    expect(page.locator("#context-bar")).to_be_visible()
    ui.type("Thanks, 2.0.3 has a known login bug.")
    ui.type("! Logs: a broken session token after the update")
    note = ui.message("Logs: a broken session token", by_bot=False)
    expect(note.locator(".reactions")).to_have_text("✍")
    ui.be("Alice")
    answer = ui.message("known login bug")
    expect(answer.locator(".quote")).to_contain_text("the app version is 2.0.3")
    expect(page.locator("#messages")).not_to_contain_text("broken session token")

    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    ui.type("Please update the app to version 2.1 and log in again.")
    ui.press("Решено", card)
    prompt = ui.message("Ответьте на это сообщение")
    ui.press("последнее сообщение", prompt)
    expect(card).to_contain_text("ждёт подтверждения")

    # The customer sees the answer with its formatting and confirms it.
    ui.be("Alice")
    ui.message("Please update the app to version 2.1")
    question = ui.message("Is the problem solved?", f"#{number}")
    ui.press("Solved", question)
    ui.message(f"Request #{number} is closed")
    rating = ui.message("How would you rate")
    ui.press("⭐⭐⭐⭐⭐", rating)
    ui.message("Anything to add?")
    ui.type("Quick and clear, thanks!")
    ui.message("Thank you for your rating!")

    # The card in the staff topic followed the ticket to its end.
    ui.be("Светлана")
    ui.open_chat(f"#{number}")
    expect(ui.card(number)).to_contain_text("Закрыт")

    # The manager asks for today's summary and gets the figures with the chart.
    ui.be("Марина")
    ui.type("/summary")
    summary = ui.message("Сводка поддержки", "Создано: 1")
    expect(summary).to_contain_text("подтверждено клиентом: 1")
    expect(page.locator("#messages .msg.bot img.photo").last).to_be_visible()
    assert image_loaded(page, "#messages .msg.bot img.photo")


def test_a_resolved_request_reminds_then_closes_itself_as_the_clock_moves(page: Page) -> None:
    ui = Ui(page)
    ui.move_clock("to 09:00")
    ui.be("Борис")
    ui.be("Alice")
    number = ui.open_request("Invoice is wrong")

    ui.be("Paul")
    ui.open_chat(f"#{number}")
    card = ui.card(number)
    ui.type("We corrected the invoice; please check it.")
    ui.press("Решено", card)
    # The desk answers the one who pressed in their own language (Paul's is English).
    ui.press("Use my last message", ui.message("Reply to this message"))
    expect(card).to_contain_text("ждёт подтверждения")

    ui.be("Alice")
    ui.message("Is the problem solved?", f"#{number}")
    ui.move_clock("+1 day")
    ui.move_clock("+1 day")
    reminder = ui.message("Is the problem of request", f"#{number}")
    expect(reminder.locator(".keyboard button")).to_have_count(2)
    ui.move_clock("+1 day")
    ui.message("closed automatically", f"#{number}")
    ui.message("How would you rate")
    expect(page.locator("#clock-shift")).to_contain_text("3d")

    ui.be("Paul")
    ui.open_chat(f"#{number}")
    expect(ui.card(number)).to_contain_text("Закрыт")

    # At 21:00 by the bot's clock the manager gets the day's summary without asking.
    ui.be("Марина")
    ui.move_clock("to 21:00")
    day = page.locator("#clock-now").get_attribute("title") or ""
    year, month, date = day[:10].split("-")
    title = f"Сводка поддержки за {int(date)} {RU_MONTHS[int(month) - 1]} {year}"
    ui.message(title)
    expect(page.locator("#clock-state")).to_contain_text("support is off")


def test_a_page_served_to_other_machines_works_with_its_token_only(
    browser: Browser, tmp_path: Path
) -> None:
    remote = Sandbox(tmp_path, "--allow-remote")
    try:
        assert remote.token is not None
        context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 860})
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        # The printed address, with who you are after it: the token becomes a cookie and
        # leaves the address bar; who you are stays.
        page.goto(remote.url + "#person=1002")
        page.wait_for_selector("body[data-ready=true]")
        assert "token" not in page.url
        assert page.url.endswith("#person=1002&chat=1002")
        expect(page.locator("#person")).to_have_value("1002")
        # Changes (with the page's header), the live stream and pictures all pass.
        ui = Ui(page)
        ui.be("Alice")
        ui.type("/start")
        ui.message("Hello, Alice")
        page.set_input_files(
            "#file", files=[{"name": "screen.png", "mimeType": "image/png", "buffer": png()}]
        )
        page.locator("#send").click()
        expect(page.locator("#messages .msg.mine img.photo")).to_be_visible()
        assert image_loaded(page, "#messages .msg.mine img.photo")
        assert not problems, problems
        context.close()

        # Without the token: nothing, not even the page.
        stranger = browser.new_context()
        response = stranger.new_page().goto(remote.base)
        assert response is not None
        assert response.status == 403
        stranger.close()
    finally:
        assert remote.stop() == 0, remote.log()


RU_MONTHS = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
]
