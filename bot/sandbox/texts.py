"""Every sentence of the sandbox page, through gettext like the bot's own (the page asks for
them in its language and draws nothing it did not get from here)."""

from __future__ import annotations

from collections.abc import Callable


def page_texts(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "title": _("e-Comet Support sandbox"),
        "intro": _(
            "Play every role on one page: pick who you are, open a chat, type and press "
            "buttons. Move the bot's clock to watch reminders, auto-close and summaries."
        ),
        "you_are": _("You are"),
        "role_customer": _("customer"),
        "role_staff": _("staff"),
        "role_manager": _("manager"),
        "account": _("account"),
        "chats": _("Chats"),
        "private": _("private chat with the bot"),
        "general": _("General"),
        "topic": _("topic"),
        "topic_closed": _("closed topic"),
        "empty_chat": _("No messages yet. Send /start to begin."),
        "empty_topic": _("No messages in this topic yet."),
        "placeholder": _("Write a message…"),
        "send": _("Send"),
        "save": _("Save"),
        "attach": _("Attach files"),
        "commands": _("Commands"),
        "sticker": _("Send a sticker"),
        "voice": _("Send a voice note"),
        "reply": _("Reply"),
        "edit": _("Edit"),
        "cancel": _("Cancel"),
        "replying_to": _("Reply to"),
        "editing": _("Editing your message"),
        "attached": _("Attached"),
        "edited": _("edited"),
        "voice_note": _("Voice note"),
        "clock": _("Bot's clock"),
        "clock_hint": _("The clock only moves forward."),
        "plus_hour": _("+1 hour"),
        "plus_day": _("+1 day"),
        "plus_3days": _("+3 days"),
        "to_9": _("to 09:00"),
        "to_21": _("to 21:00"),
        "open": _("support is working"),
        "closed": _("support is off"),
        "shifted": _("moved"),
        "offline": _("Connection to the sandbox lost; reconnecting…"),
        "language": _("Page language"),
        "error": _("The sandbox refused this"),
        "unread": _("new messages"),
        "ok": _("OK"),
        # The mail pane of a customer who writes by e-mail.
        "by_mail": _("writes by e-mail"),
        "mailbox": _("Mailbox"),
        "inbox": _("Inbox"),
        "sent_mail": _("Sent mail"),
        "new_mail": _("New mail"),
        "mail_hint": _(
            "{name} writes by e-mail. What you send here goes through a mail server on this "
            "machine to {support}; the bot reads that mailbox over IMAP as it would a real one, "
            "and its answers arrive in this inbox."
        ),
        "mail_from": _("From"),
        "mail_to": _("To"),
        "mail_subject": _("Subject"),
        "mail_date": _("Date"),
        "mail_body": _("Write your mail…"),
        "mail_links": _("Links in this mail"),
        "mail_links_hint": _("The bot's own page opens in a new tab."),
        "mail_files": _("Attachments"),
        "mail_empty": _("No mail here yet."),
        "mail_pick": _("Choose a mail to read it, or write a new one."),
        "mail_sent": _("Sent to {address}."),
        "no_subject": _("(no subject)"),
        "quote_header": _("On {date}, {name} wrote:"),
    }
