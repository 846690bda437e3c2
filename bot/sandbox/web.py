"""The sandbox page: an aiohttp app that shows the emulated Telegram as its people see it and
lets a visitor act as any of them, and move the bot's clock."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, web

from bot.clock import ShiftedClock
from bot.domain.hours import SupportHours
from bot.emulator import FakeTelegram
from bot.sandbox.render import image_type, message_view, snippet
from bot.sandbox.texts import page_texts
from bot.sandbox.world import MailPerson, Person

JsonDict = dict[str, Any]
STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD = 20 * 1024 * 1024
# The clock only moves forward: timers that already fired cannot be taken back.
CLOCK_STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "3days": timedelta(days=3)}

# A change (POST) must carry this header: a page of another site cannot send it (a form cannot
# set headers, and fetch() may not without this server's consent), the sandbox's app.js does.
CHANGE_HEADER = "X-Sandbox"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The page's own files only: no inline script or style, nothing from elsewhere, no framing.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# An uploaded file opened on its own runs nothing, whatever it is.
FILE_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


def next_local(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first moment after ``now`` when the wall clock in ``tz`` shows ``at``."""
    local = now.astimezone(tz)
    target = datetime.combine(local.date(), at, tzinfo=tz)
    if target <= local:
        target = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
    return target


def disposition(kind: str, name: str) -> str:
    """A Content-Disposition header value for ``name``, whatever characters it has."""
    plain = "".join(c if " " <= c <= "~" and c not in '"\\;' else "_" for c in name) or "file"
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def is_loopback_name(host: str) -> bool:
    """Whether ``host`` names this machine without asking DNS (localhost, 127.x, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class Refused(Exception):  # noqa: N818 - a refusal, not an error of the sandbox
    """Something the page asked for that the world cannot do; shown to the visitor."""


class SandboxPage:
    def __init__(
        self,
        fake: FakeTelegram,
        people: list[Person],
        *,
        clock: ShiftedClock,
        tz: ZoneInfo,
        hours: SupportHours,
        translate: Callable[[str, str], str],
        locales: tuple[str, ...],
        default_locale: str,
        token: str | None = None,
        hosts: tuple[str, ...] | None = None,
        mail_people: Sequence[MailPerson] = (),
    ) -> None:
        """``token``: every request must carry it (``?token=`` once, then the cookie the page
        gets); ``hosts``: the page answers only requests addressed to these names or to
        loopback ones (a page of another site that points its name at 127.0.0.1 gets 403)."""
        self.fake = fake
        self.token = token
        self.hosts = None if hosts is None else frozenset(h.strip("[]").lower() for h in hosts)
        self.people = {person.id: person for person in people}
        self.order = [person.id for person in people]
        # Those who write by e-mail are listed after the other customers; the mail pane
        # (bot/sandbox/mailpane.py) serves them, the chats do not.
        self.mail_people = {person.id: person for person in mail_people}
        customers = sum(person.role == "customer" for person in people)
        self.order[customers:customers] = list(self.mail_people)
        self.clock = clock
        self.tz = tz
        self.hours = hours
        self.translate = translate
        self.locales = locales
        self.default_locale = default_locale
        self.stopping = asyncio.Event()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[self._guard, _errors])
        app.on_response_prepare.append(_security_headers)
        app.router.add_get("/", self.index)
        app.router.add_static("/static/", STATIC, append_version=True)
        app.router.add_get("/api/world", self.world)
        app.router.add_get("/api/view", self.view)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/file/{file_id}", self.file)
        app.router.add_get("/api/answer/{query_id}", self.answer)
        app.router.add_post("/api/send", self.send)
        app.router.add_post("/api/edit", self.edit)
        app.router.add_post("/api/press", self.press)
        app.router.add_post("/api/clock", self.move_clock)
        return app

    # ------------------------------------------------------------------ guarding

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.hosts is not None:
            try:
                host = request.url.host or ""
            except ValueError:  # a Host header that is no host at all
                host = ""
            if not (is_loopback_name(host) or host.lower() in self.hosts):
                return _forbidden(request, f"this page answers only on this machine, not {host}")
        if self.token is not None:
            # Per port: two sandboxes on one machine do not overwrite each other's cookie.
            cookie = f"sandbox_token_{request.url.port}"
            given = request.query.get("token")
            if given is not None and _same(given, self.token):
                if request.method == "GET" and request.path == "/":
                    # The address printed at the start: the token goes into a cookie scripts
                    # cannot read and other sites' requests do not carry, and out of the
                    # address bar (and the history).
                    response = web.Response(status=303, headers={"Location": "/"})
                    response.set_cookie(
                        cookie, self.token, path="/", httponly=True, samesite="Strict"
                    )
                    return response
            elif not _same(request.cookies.get(cookie, ""), self.token):
                return _forbidden(
                    request, "open the address the sandbox printed at its start (with ?token=)"
                )
        if request.method not in SAFE_METHODS and request.headers.get(CHANGE_HEADER) != "1":
            return _forbidden(request, f"a change needs the header {CHANGE_HEADER}: 1")
        return await handler(request)

    # ------------------------------------------------------------------ reading

    async def index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def world(self, request: web.Request) -> web.Response:
        locale = request.query.get("lang") or self._preferred(request)
        if locale not in self.locales:
            locale = self.default_locale
        people = [self._listed(pid) for pid in self.order]
        return web.json_response(
            {
                "lang": locale,
                "locales": list(self.locales),
                "texts": page_texts(lambda text: self.translate(text, locale)),
                "bot": {"name": self.fake.bot_user["first_name"]},
                "people": people,
                "clock": self._clock(),
            }
        )

    def _listed(self, pid: int) -> JsonDict:
        if pid in self.mail_people:
            writer = self.mail_people[pid]
            return {
                "id": writer.id,
                "name": writer.name,
                "username": None,
                "role": writer.role,
                "language": writer.language,
                "mail": writer.address,
            }
        person = self.people[pid]
        return {
            "id": person.id,
            "name": person.name,
            "username": person.user.username,
            "role": person.role,
            "language": person.user.language_code,
            "account": person.account,
        }

    def _preferred(self, request: web.Request) -> str:
        for part in request.headers.get("Accept-Language", "").split(","):
            language = part.split(";")[0].strip().lower()[:2]
            if language in self.locales:
                return language
        return self.default_locale

    def _person(self, raw: Any) -> Person:
        try:
            return self.people[int(raw)]
        except (TypeError, ValueError, KeyError):
            if str(raw).isdigit() and int(raw) in self.mail_people:
                raise Refused("this person writes by e-mail: use the mail pane") from None
            raise Refused("unknown person") from None

    def _chats(self, person: Person) -> list[JsonDict]:
        chats: list[JsonDict] = [
            self._entry(person.id, None, self.fake.bot_user["first_name"], "private")
        ]
        for group in self.fake.groups.values():
            if person.id not in group.members:
                continue
            if not group.is_forum:
                chats.append(self._entry(group.id, None, group.title, "group"))
                continue
            chats.append(self._entry(group.id, None, group.title, "general"))
            topics = [
                self._entry(group.id, topic.thread_id, topic.name, "topic")
                | {"closed": topic.closed}
                for topic in group.topics.values()
                if not topic.deleted
            ]
            topics.sort(key=lambda entry: -int(entry["last_id"]))
            chats.extend(topics)
        return chats

    def _thread_messages(self, chat_id: int, thread: int | None) -> list[JsonDict]:
        messages = self.fake.messages(chat_id)
        group = self.fake.groups.get(chat_id)
        if group is None or not group.is_forum:
            return messages
        if thread is None:
            return [m for m in messages if "message_thread_id" not in m]
        return [m for m in messages if m.get("message_thread_id") == thread]

    def _entry(self, chat_id: int, thread: int | None, title: str, kind: str) -> JsonDict:
        messages = self._thread_messages(chat_id, thread)
        last = messages[-1] if messages else None
        preview = snippet(last) if last is not None else ""
        return {
            "chat": chat_id,
            "thread": thread,
            "title": title,
            "kind": kind,
            "last_id": last["message_id"] if last else 0,
            "preview": preview[:90],
        }

    @staticmethod
    def _file_url(file_id: str) -> str:
        return f"/api/file/{file_id}"

    def _shown_inline(self, file_id: str) -> bool:
        record = self.fake.files.get(file_id)
        return record is not None and image_type(record.content) is not None

    async def view(self, request: web.Request) -> web.Response:
        person = self._person(request.query.get("person"))
        chats = self._chats(person)
        chat_id = _int(request.query.get("chat"), person.id)
        thread = _int(request.query.get("thread"), None)
        if not any(c["chat"] == chat_id and c["thread"] == thread for c in chats):
            chat_id, thread = person.id, None
        messages = [
            message_view(
                m,
                viewer=person.id,
                tz=self.tz,
                file_url=self._file_url,
                shown_inline=self._shown_inline,
                reactions=self.fake.reactions.get((chat_id, m["message_id"])),
            )
            for m in self._thread_messages(chat_id, thread)
        ]
        return web.json_response(
            {
                "person": person.id,
                "chat": chat_id,
                "thread": thread,
                "chats": chats,
                "messages": messages,
                "commands": self.fake.commands_for(person.id, chat_id),
                "clock": self._clock(),
            }
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: "change" whenever anything in the world changed."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        # A closed tab ends the stream; a cancellation (shutdown) goes on up as it should.
        with contextlib.suppress(ConnectionResetError):
            while not self.stopping.is_set():
                changed = await self.fake.wait_changed(15)
                if changed:
                    # A burst (an album, a card with its topic) becomes one redraw.
                    await asyncio.sleep(0.05)
                await response.write(b"data: change\n\n" if changed else b": idle\n\n")
        return response

    async def file(self, request: web.Request) -> web.Response:
        """A file of a message: a raster image inline, as what its bytes are; anything else
        (HTML, SVG, PDF, ...) only as a download, so no file runs script on the page's
        origin."""
        record = self.fake.files.get(request.match_info["file_id"])
        if record is None:
            raise web.HTTPNotFound()
        headers = {
            "Cache-Control": "private, max-age=86400",
            "Content-Security-Policy": FILE_POLICY,
        }
        name = record.file_name or record.file_path or "file"
        shown = image_type(record.content)
        headers["Content-Disposition"] = disposition(
            "inline" if shown else "attachment", name.rsplit("/", 1)[-1]
        )
        return web.Response(
            body=record.content,
            content_type=shown or "application/octet-stream",
            headers=headers,
        )

    async def answer(self, request: web.Request) -> web.Response:
        """What the bot answered to a button press (a toast or an alert), once it has."""
        query_id = request.match_info["query_id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while query_id not in self.fake.answers and loop.time() < deadline:
            await self.fake.wait_changed(max(0.0, deadline - loop.time()))
        found = self.fake.answers.get(query_id) or {}
        return web.json_response(
            {"text": found.get("text") or "", "alert": bool(found.get("show_alert"))}
        )

    def clock_view(self) -> JsonDict:
        """The bot's clock as the page draws it (the mail pane's answers carry it too)."""
        return self._clock()

    def _clock(self) -> JsonDict:
        now = self.clock.now()
        local = now.astimezone(self.tz)
        offset = self.clock.offset
        return {
            "now": local.strftime("%a %d.%m.%Y %H:%M"),
            "iso": local.isoformat(timespec="seconds"),
            "zone": str(self.tz),
            "open": self.hours.is_open(now),
            "hours": f"{_hhmm(self.hours.start_minute)}–{_hhmm(self.hours.end_minute)}",
            "shifted": _describe(offset),
        }

    # ------------------------------------------------------------------ acting

    async def send(self, request: web.Request) -> web.Response:
        fields, files = await _form(request)
        person = self._person(fields.get("person"))
        chat_id = _int(fields.get("chat"), person.id)
        thread = _int(fields.get("thread"), None)
        reply_to = _int(fields.get("reply_to"), None)
        text = fields.get("text", "")
        place: JsonDict = {"chat_id": chat_id, "reply_to": reply_to, "thread_id": thread}
        sent: list[JsonDict] = []
        kind = fields.get("kind")
        try:
            if kind == "sticker":
                sent.append(self.fake.send_sticker(person.user, **place))
            elif kind == "voice":
                sent.append(self.fake.send_voice(person.user, **place))
            elif files:
                # Several files at once are an album, as a Telegram client sends them.
                album = str(13_000_000_000_000_000 + secrets.randbelow(10**15))
                group = album if len(files) > 1 else None
                for index, (name, mime, content) in enumerate(files):
                    caption = text if index == 0 and text else None
                    if image_type(content) is not None:
                        sent.append(
                            self.fake.send_photo(
                                person.user, caption, group, content=content, **place
                            )
                        )
                    else:
                        sent.append(
                            self.fake.send_document(
                                person.user,
                                name,
                                mime or "application/octet-stream",
                                caption,
                                group,
                                content=content,
                                **place,
                            )
                        )
            elif not text.strip():
                raise Refused("empty message")
            else:
                # As a Telegram client sends it: commands, links and mentions are found in the
                # text (send_command would add its own command entity on top of the found one).
                sent.append(self.fake.send_text(person.user, text, **place))
        except AssertionError as refused:
            raise Refused(str(refused)) from None
        return web.json_response({"sent": [m["message_id"] for m in sent]})

    async def edit(self, request: web.Request) -> web.Response:
        body = await _json(request)
        person = self._person(body.get("person"))
        text = str(body.get("text") or "")
        if not text.strip():
            raise Refused("empty message")
        try:
            message = self.fake.message(int(body["chat"]), int(body["message_id"]))
            self.fake.edit_text(person.user, message, text)
        except (KeyError, ValueError, AssertionError) as refused:
            raise Refused(str(refused)) from None
        return web.json_response({"ok": True})

    async def press(self, request: web.Request) -> web.Response:
        body = await _json(request)
        person = self._person(body.get("person"))
        try:
            query_id = self.fake.press_data(
                person.user, int(body["chat"]), int(body["message_id"]), str(body["data"])
            )
        except (KeyError, ValueError, AssertionError) as refused:
            raise Refused(str(refused)) from None
        return web.json_response({"query_id": query_id})

    async def move_clock(self, request: web.Request) -> web.Response:
        body = await _json(request)
        step = str(body.get("step") or "")
        now = self.clock.now()
        if step in CLOCK_STEPS:
            self.clock.offset += CLOCK_STEPS[step]
        elif step.startswith("to "):
            try:
                at = time.fromisoformat(step[3:])
            except ValueError:
                raise Refused(f"bad time {step[3:]!r}") from None
            self.clock.offset += next_local(now, at, self.tz) - now
        else:
            raise Refused(f"unknown clock step {step!r}")
        self.fake.notify_changed()
        return web.json_response(self._clock())


def _same(given: str, token: str) -> bool:
    return secrets.compare_digest(given.encode(), token.encode())


def _forbidden(request: web.Request, reason: str) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": reason}, status=403)
    return web.Response(status=403, text=f"403 Forbidden: {reason}\n")


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except Refused as refused:
        return web.json_response({"error": str(refused)}, status=400)
    return response


def _int(raw: Any, default: int | None) -> Any:
    if raw in (None, "", "null"):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Refused(f"not a number: {raw!r}") from None


async def _json(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except ValueError:
        raise Refused("expected a JSON body") from None
    if not isinstance(body, dict):
        raise Refused("expected a JSON object")
    return body


async def _form(request: web.Request) -> tuple[dict[str, str], list[tuple[str, str, bytes]]]:
    if request.content_type == "application/json":
        return {k: str(v) for k, v in (await _json(request)).items() if v is not None}, []
    fields: dict[str, str] = {}
    files: list[tuple[str, str, bytes]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.filename:
            content = bytes(await part.read())
            if content:
                files.append((part.filename, part.headers.get("Content-Type", ""), content))
        elif part.name:
            fields[part.name] = await part.text()
    if len(files) > 10:
        raise Refused("at most 10 files at once")
    return fields, files


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _describe(offset: timedelta) -> str:
    if offset < timedelta(minutes=1):
        return ""
    days, rest = divmod(int(offset.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    return "+" + " ".join(f"{value}{unit}" for value, unit in parts if value)
