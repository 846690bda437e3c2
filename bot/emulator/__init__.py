"""An emulated Telegram Bot API (aiohttp server) with an in-process driver API for tests.

Self-contained: imports only the standard library and aiohttp.

Two staff-side failures it reproduces as Telegram does, for end-to-end tests:

**A file too large.** ``fake.upload_limits`` (:class:`UploadLimits`; Telegram's defaults:
``files`` 50 MB per request, ``photo`` 10 MB) may be lowered by a test, e.g.
``fake.upload_limits.files = 4096``. A request whose uploaded files together exceed ``files``
is answered with HTTP 413 and ``{"ok": false, "error_code": 413, "description": "Request
Entity Too Large"}``; aiogram 3.31 raises ``aiogram.exceptions.TelegramEntityTooLarge``
(a subclass of ``TelegramNetworkError``; ``exc.message == "Request Entity Too Large"``). Nothing
is sent; the call log holds it with ``error_code == 413``. Files sent again by ``file_id`` are
not uploads and are never refused so. A photo over ``photo`` (but within ``files``) gets 400
``Bad Request: file of size N bytes is too big for a photo; the maximum size is M bytes``
(``TelegramBadRequest``).

**The bot removed from a group, and added back** (methods of :class:`FakeTelegram`; ``by``
must be the group's owner or an administrator):

- ``fake.kick_bot(chat_id, by=admin)``: banned ("kicked"). The bot gets ``my_chat_member``
  (old: "administrator", new: "kicked"); every call on the group then fails with 403
  ``Forbidden: bot was kicked from the supergroup chat`` (``TelegramForbiddenError``), and
  the bot receives nothing from the group.
- ``fake.unban_bot(chat_id, by=admin)``: off the ban list, not back ("kicked" → "left");
  calls fail with 403 ``Forbidden: bot is not a member of the supergroup chat``.
- ``fake.add_bot(chat_id, by=admin, admin=True, bot_rights=None)``: back as an administrator
  (or a member): ``my_chat_member`` ("kicked"/"left" → "administrator"), then the
  ``new_chat_members`` service message as a ``message`` update; calls succeed again.

Telegram reports the bot's own status only as ``my_chat_member`` (never ``chat_member``), and
only if the bot's ``allowed_updates`` include it (the default list does).
"""

from .html_parser import EntityParseError, parse_html, parse_markdown_v2
from .methods import RateLimits, UploadLimits
from .schema import ApiError, load_schema
from .server import FakeTelegram
from .world import Call, FakeChat, FakeUser, Topic

__all__ = [
    "ApiError",
    "Call",
    "EntityParseError",
    "FakeChat",
    "FakeTelegram",
    "FakeUser",
    "RateLimits",
    "Topic",
    "UploadLimits",
    "load_schema",
    "parse_html",
    "parse_markdown_v2",
]
