"""An emulated Telegram Bot API (aiohttp server) with an in-process driver API for tests.

Self-contained: imports only the standard library and aiohttp.
"""

from .html_parser import EntityParseError, parse_html, parse_markdown_v2
from .methods import RateLimits
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
    "load_schema",
    "parse_html",
    "parse_markdown_v2",
]
