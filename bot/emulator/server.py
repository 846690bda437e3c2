"""The HTTP side of the emulated Bot API (aiohttp) and :class:`FakeTelegram`, the test driver."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import BodyPartReader, ClientError, ClientSession, ClientTimeout, web

from .methods import BotApi, RateLimits, UploadLimits, _allowed
from .schema import ApiError, UploadedFile, bad_request, load_schema
from .world import Call, JsonDict, World

__all__ = ["FakeTelegram"]

T = TypeVar("T")

_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_NOT_FOUND = ApiError(404, "Not Found")
_UNAUTHORIZED = ApiError(401, "Unauthorized")
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
WEBHOOK_TIMEOUT = 10.0
WEBHOOK_RETRY_FIRST, WEBHOOK_RETRY_MAX = 0.2, 5.0
_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"  # noqa: E501
_UPLOAD_CHUNK = 64 * 1024


class _TooLargeError(ApiError):
    """Uploads over the limit: Telegram's 413, with what the request said before its files."""

    def __init__(self, params: JsonDict) -> None:
        super().__init__(413, "Request Entity Too Large")
        self.params = params


class FakeTelegram(World):
    """An emulated Telegram Bot API server plus the in-process driver API for tests.

    >>> fake = FakeTelegram()
    >>> url = await fake.start()          # "http://127.0.0.1:PORT"
    >>> alice = fake.add_user(1001, "Alice", username="alice")
    >>> fake.send_command(alice, "/start")
    >>> msg = await fake.next_message(alice.id)

    Telegram's failures on demand: :meth:`fail_next`, :meth:`drop_connection_next`,
    :meth:`answer_late`, uploads over :attr:`upload_limits` (413), the bot removed from a group
    and back (:meth:`kick_bot`, :meth:`unban_bot`, :meth:`add_bot`); :mod:`bot.emulator` says
    what aiogram raises for each.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",  # noqa: S107 - a fake token
        enforce_limits: bool = False,
        *,
        bot_username: str = "ecomet_support_bot",
        bot_name: str = "Ecomet Support",
        privacy_mode: bool = True,
        rate_limits: RateLimits | None = None,
        upload_limits: UploadLimits | None = None,
        first_update_id: int = 700_000_001,
    ) -> None:
        super().__init__(
            token,
            bot_username=bot_username,
            bot_name=bot_name,
            privacy_mode=privacy_mode,
            first_update_id=first_update_id,
        )
        self.schema = load_schema()
        self.api = BotApi(
            self,
            self.schema,
            enforce_limits=enforce_limits,
            rate_limits=rate_limits,
            upload_limits=upload_limits,
        )
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._poller: asyncio.Future[None] | None = None
        self._closing = False
        self.internal_errors: list[BaseException] = []
        self.webhook_errors: list[str] = []
        # Telegram posts up to the webhook's ``max_connections`` updates at once (one chat's
        # in order). Tests keep one at a time unless they ask (the scaling benchmark does):
        # their assertions about order and timing are simpler with one.
        self.webhook_connections = 1
        self._pushing: set[int] = set()

    @property
    def enforce_limits(self) -> bool:
        return self.api.enforce_limits

    @enforce_limits.setter
    def enforce_limits(self, value: bool) -> None:
        self.api.enforce_limits = value

    @property
    def rate_limited(self) -> int:
        """How many requests the flood limits answered with 429 (with :attr:`enforce_limits`;
        the 429s of :meth:`fail_next` are not counted)."""
        return self.api.limiter.refused_total

    def rate_limited_in(self, chat_id: int) -> int:
        """How many requests to ``chat_id`` the flood limits answered with 429."""
        return self.api.limiter.refused[chat_id]

    @property
    def upload_limits(self) -> UploadLimits:
        """Telegram's upload limits (see :class:`UploadLimits`); a test may lower them at any
        time, e.g. ``fake.upload_limits.files = 4096``."""
        return self.api.upload_limits

    @upload_limits.setter
    def upload_limits(self, value: UploadLimits) -> None:
        self.api.upload_limits = value

    # ================================================================== lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        real_port = server.sockets[0].getsockname()[1]
        self._closing = False
        self.url = f"http://{host}:{real_port}"
        self._pusher = asyncio.create_task(self._push_webhooks())
        return self.url

    async def stop(self) -> None:
        self._closing = True
        self._pulse()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ================================================================== HTTP

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if not _TOKEN_RE.match(token):
            return _json_error(_NOT_FOUND)
        if token != self.token:
            return _json_error(_UNAUTHORIZED)
        rec = self.files_by_path.get(request.match_info["path"])
        if rec is None:
            return _json_error(_NOT_FOUND)
        # Like Telegram's file server: bytes to download, never a page the browser would run
        # (an uploaded HTML or SVG file must not execute on this origin).
        return web.Response(
            body=rec.content,
            content_type="application/octet-stream",
            headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
        )

    async def _read(self, request: web.Request) -> tuple[JsonDict, dict[str, UploadedFile]]:
        params: JsonDict = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.method != "POST" or not request.can_read_body:
            return params, files
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = json.loads(await request.text())
            except ValueError as exc:
                raise bad_request("can't parse JSON encoded request") from exc
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON encoded request")
            params.update(body)
        elif ctype.startswith("multipart/"):
            reader = await request.multipart()
            uploaded = 0
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):  # nested multipart: ignore
                    continue
                name = part.name or ""
                if part.filename is not None:
                    chunks: list[bytes] = []
                    while chunk := await part.read_chunk(_UPLOAD_CHUNK):
                        uploaded += len(chunk)
                        if uploaded > self.upload_limits.files:
                            # Refused unread, as Telegram does; the rest of the body is read
                            # and dropped so that the client gets the answer, not a reset.
                            await request.release()
                            raise _TooLargeError(params)
                        chunks.append(chunk)
                    files[name] = UploadedFile(
                        part.filename,
                        b"".join(chunks),
                        part.headers.get("Content-Type", "application/octet-stream"),
                    )
                else:
                    params[name] = await part.text()
        else:
            post = await request.post()
            for k, v in post.items():
                if isinstance(v, web.FileField):
                    files[k] = UploadedFile(v.filename, v.file.read(), v.content_type)
                else:
                    params[k] = v
        return params, files

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        if not _TOKEN_RE.match(token):
            return _json_error(_NOT_FOUND)
        if token != self.token:
            return _json_error(_UNAUTHORIZED)
        method = self.schema.canonical(raw_method)
        if method is None:
            self._log(raw_method, {}, None, _NOT_FOUND)
            return _json_error(_NOT_FOUND)
        try:
            raw, files = await self._read(request)
        except ApiError as exc:
            self._log(method, exc.params if isinstance(exc, _TooLargeError) else {}, None, exc)
            return _json_error(exc)
        fault = self._take_fault(method, raw)
        late = 0.0
        if fault is not None and fault.late:
            late, fault = fault.late, None
        if fault is not None:
            if fault.drop:
                self._log(method, raw, None, ApiError(0, "connection dropped"))
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise asyncio.CancelledError
            code = fault.error_code
            retry = fault.retry_after
            if code == 429 and retry is None:
                retry = 1
            desc = fault.description
            if desc is None:
                desc = (
                    f"Too Many Requests: retry after {retry}"
                    if code == 429
                    else _DEFAULT_DESCRIPTIONS.get(code, "Error")
                )
            err = ApiError(code, desc, retry_after=retry if code == 429 else None)
            self._log(method, raw, None, err)
            return _json_error(err)
        params: JsonDict = raw
        try:
            params = self._prepare(method, raw, files)
            if method == "getUpdates":
                result: Any = await self._get_updates(params)
            else:
                result = self.api.call(method, params, files)
        except ApiError as exc:
            self._log(method, params, None, exc)
            return _json_error(exc)
        except Exception as exc:  # noqa: BLE001 - an emulator bug: loud but Telegram-shaped
            err = ApiError(500, f"Internal Server Error: FakeTelegram bug: {exc!r}")
            self.internal_errors.append(exc)
            self._log(method, params, None, err)
            return _json_error(err)
        self._log(method, params, result, None)
        if late:
            await asyncio.sleep(late)  # done, and the world sees it; the bot hears of it later
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    def _prepare(self, method: str, raw: JsonDict, files: dict[str, UploadedFile]) -> JsonDict:
        spec = self.schema.methods[method]
        params = dict(raw)
        for name, up in files.items():
            if name in spec.fields and name not in params:
                params[name] = up
        for name, value in list(params.items()):
            if (
                isinstance(value, str)
                and value.startswith("attach://")
                and name in spec.fields
                and "InputFile" in " ".join(spec.fields[name].types)
            ):
                key = value[len("attach://") :]
                if key not in files:
                    raise bad_request("wrong file identifier/HTTP URL specified")
                params[name] = files[key]
        out = self.schema.validate(method, params)
        # Deprecated-but-still-accepted parameters (aiogram may send them).
        for legacy in ("reply_to_message_id", "allow_sending_without_reply"):
            if legacy not in spec.fields and raw.get(legacy) not in (None, ""):
                value = raw[legacy]
                if legacy == "reply_to_message_id":
                    try:
                        out["_reply_to_message_id"] = int(value)
                    except (TypeError, ValueError) as exc:
                        raise bad_request(
                            'field "reply_to_message_id" must be of type Integer'
                        ) from exc
                else:
                    out["_allow_sending_without_reply"] = str(value).lower() in ("true", "1")
        return out

    def _log(self, method: str, params: JsonDict, result: Any, err: ApiError | None) -> None:
        shown = {
            k: (f"<file {v.filename} {len(v.content)} bytes>" if isinstance(v, UploadedFile) else v)
            for k, v in params.items()
        }
        self.calls.append(
            Call(
                method=method,
                params=shown,
                ok=err is None,
                error=err.description if err else None,
                time=time.time(),
                error_code=err.error_code if err else None,
                result=copy.deepcopy(result),
            )
        )
        self._pulse()

    # ================================================================== getUpdates

    async def _get_updates(self, p: JsonDict) -> list[JsonDict]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        loop = asyncio.get_running_loop()
        if self._poller is not None and not self._poller.done():
            self._poller.set_result(None)  # terminate the pending request
        me: asyncio.Future[None] = loop.create_future()
        self._poller = me
        try:
            if p.get("allowed_updates") is not None:
                self.allowed_updates = _allowed(p["allowed_updates"])
            offset = p.get("offset")
            if offset:
                if offset > 0:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                else:
                    self.updates = self.updates[offset:]
            limit = min(max(int(p.get("limit") or 100), 1), 100)
            timeout = max(int(p.get("timeout") or 0), 0)
            deadline = loop.time() + timeout
            while True:
                if me.done():
                    raise ApiError(409, _CONFLICT)
                if self.updates or self._closing:
                    return copy.deepcopy(self.updates[:limit])
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                ev = self._changed
                waiter: asyncio.Future[Any] = asyncio.ensure_future(ev.wait())
                try:
                    pending: set[asyncio.Future[Any]] = {waiter, me}
                    await asyncio.wait(
                        pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
        finally:
            if self._poller is me:
                self._poller = None

    # ================================================================== webhooks

    async def _push_webhooks(self) -> None:
        """With a webhook set, Telegram POSTs each update to it until it answers 2xx (then the
        update is confirmed); an error or a timeout is retried with a growing pause and shown
        in getWebhookInfo. Up to ``webhook_connections`` (at most the hook's
        ``max_connections``) at once, one chat's updates one after another, in order."""
        async with ClientSession() as client:
            pushers: list[asyncio.Task[None]] = []
            try:
                while not self._closing:
                    pushers = [p for p in pushers if not p.done()]
                    hook = self.webhook
                    wanted = 1
                    if hook is not None:
                        wanted = max(1, min(self.webhook_connections, int(hook["max_connections"])))
                    while len(pushers) < wanted:
                        pushers.append(asyncio.create_task(self._push_one_at_a_time(client)))
                    await self.wait_changed(1.0)
            finally:
                for pusher in pushers:
                    pusher.cancel()
                await asyncio.gather(*pushers, return_exceptions=True)

    def _next_to_push(self) -> JsonDict | None:
        """The first update no connection is posting whose chat has nothing before it still
        unconfirmed."""
        blocked: set[object] = set()
        for update in self.updates:
            chat = _chat_of(update)
            if chat in blocked:
                continue
            blocked.add(chat)
            if update["update_id"] not in self._pushing:
                return update
        return None

    async def _push_one_at_a_time(self, client: ClientSession) -> None:
        pause = WEBHOOK_RETRY_FIRST
        while not self._closing:
            hook = self.webhook
            update = self._next_to_push() if hook is not None else None
            if hook is None or update is None:
                await self.wait_changed(1.0)
                continue
            update_id = update["update_id"]
            headers = {"Content-Type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = str(hook["secret_token"])
            error: str | None = None
            self._pushing.add(update_id)
            try:
                async with client.post(
                    hook["url"],
                    data=_dumps(update),
                    headers=headers,
                    timeout=ClientTimeout(total=WEBHOOK_TIMEOUT),
                ) as response:
                    if not 200 <= response.status < 300:
                        error = "Wrong response from the webhook: " + (
                            f"{response.status} {response.reason}"
                        )
            except (ClientError, TimeoutError, OSError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
            finally:
                self._pushing.discard(update_id)
            if error is None:
                self.updates = [u for u in self.updates if u["update_id"] != update_id]
                pause = WEBHOOK_RETRY_FIRST
                self._pulse()
                continue
            hook["last_error_date"] = int(time.time())
            hook["last_error_message"] = error
            self.webhook_errors.append(error)
            self._pulse()
            await asyncio.sleep(pause)
            pause = min(pause * 2, WEBHOOK_RETRY_MAX)

    # ================================================================== driver: waiting

    async def _wait_until(
        self,
        probe: Callable[[], T | None],
        timeout: float,
        describe: Callable[[], str],
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ev = self._changed
            found = probe()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(describe())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), remaining)

    async def next_message(
        self,
        chat_id: int,
        timeout: float = 10,
        thread_id: int | None = None,
    ) -> JsonDict:
        """The next message sent by the bot to ``chat_id`` (optionally in topic ``thread_id``)
        not returned before (FIFO per chat). Returns its current state (edits applied; deleted
        messages are returned as they were). Raises TimeoutError with a chat summary."""
        st = self._chat_state(chat_id)

        def probe() -> JsonDict | None:
            for mid in st.bot_ids:
                if mid in st.consumed:
                    continue
                stored = st.messages.get(mid) or st.deleted.get(mid)
                if stored is None:
                    continue
                if thread_id is not None and stored.data.get("message_thread_id") != thread_id:
                    continue
                st.consumed.add(mid)
                return copy.deepcopy(stored.data)
            return None

        def describe() -> str:
            where = f" thread {thread_id}" if thread_id is not None else ""
            return (
                f"the bot sent no new message to chat {chat_id}{where} within {timeout}s\n"
                + self.summary(chat_id)
                + "\n"
                + self._recent_errors()
            )

        return await self._wait_until(probe, timeout, describe)

    def _recent_errors(self, n: int = 5) -> str:
        errs = [c for c in self.calls if not c.ok][-n:]
        if not errs:
            return "no failed bot calls"
        return "recent failed bot calls:\n" + "\n".join(
            f"  {c.method} {c.params} -> {c.error}" for c in errs
        )

    async def expect_silence(
        self, chat_id: int, within: float = 1.0, thread_id: int | None = None
    ) -> None:
        """Asserts the bot sends nothing new to ``chat_id`` during ``within`` seconds."""
        st = self._chat_state(chat_id)
        start = len(st.bot_ids)
        await asyncio.sleep(within)
        new = []
        for mid in st.bot_ids[start:]:
            stored = st.messages.get(mid) or st.deleted.get(mid)
            if stored is None:
                continue
            if thread_id is not None and stored.data.get("message_thread_id") != thread_id:
                continue
            new.append(stored.data)
        if new:
            raise AssertionError(
                f"expected silence in chat {chat_id}, but the bot sent: "
                + "; ".join(repr(self.text_of(m)) for m in new)
            )

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10,
        *,
        since: int = 0,
    ) -> Call:
        """The first logged call (index >= ``since``) of ``method`` (case-insensitive) for which
        ``predicate(call)`` is true; waits for it up to ``timeout`` seconds."""
        low = method.lower()

        def probe() -> Call | None:
            for c in self.calls[since:]:
                if c.method.lower() == low and (predicate is None or predicate(c)):
                    return c
            return None

        def describe() -> str:
            seen = [f"{c.method}({'ok' if c.ok else c.error})" for c in self.calls[-15:]]
            return f"no matching {method} call within {timeout}s; last calls: {seen}"

        return await self._wait_until(probe, timeout, describe)

    async def wait_for_answer(self, callback_id: str, timeout: float = 10) -> JsonDict:
        """What the bot answered to callback query ``callback_id`` (text, show_alert, url)."""
        return await self._wait_until(
            lambda: self.answers.get(callback_id),
            timeout,
            lambda: f"callback query {callback_id} was not answered within {timeout}s",
        )

    async def wait_updates_consumed(self, timeout: float = 10) -> None:
        """Waits until the bot has confirmed (via getUpdates offset) every queued update."""
        await self._wait_until(
            lambda: True if not self.updates else None,
            timeout,
            lambda: f"{len(self.updates)} updates still unconfirmed after {timeout}s",
        )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _json_error(err: ApiError) -> web.Response:
    return web.json_response(err.to_json(), status=err.error_code or 500, dumps=_dumps)


def _chat_of(update: JsonDict) -> object:
    """The chat an update is about (its sender's for a press), for one chat's order."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict):
            return chat.get("id")
        sender = value.get("from")
        if isinstance(sender, dict):
            return sender.get("id")
    return None
