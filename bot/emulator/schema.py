"""The Bot API schema (bundled telegram-bot-api.json) and request-parameter validation.

Validation follows what the real Bot API does: unknown parameters are ignored, missing required
parameters and values that cannot be read as the declared type are refused with 400, complex
values arrive as JSON strings (multipart/urlencoded) or as native JSON (application/json).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "FieldSpec", "MethodSpec", "Schema", "UploadedFile", "load_schema"]


class ApiError(Exception):
    """A Telegram-shaped error: becomes ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(
        self,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        params: dict[str, int] = {}
        if self.retry_after is not None:
            params["retry_after"] = self.retry_after
        if self.migrate_to_chat_id is not None:
            params["migrate_to_chat_id"] = self.migrate_to_chat_id
        if params:
            body["parameters"] = params
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    types: tuple[str, ...]
    required: bool
    description: str = ""


@dataclass
class MethodSpec:
    name: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    returns: tuple[str, ...] = ()


# Telegram's own wording for the most common missing parameters.
_MISSING: dict[str, str] = {
    "chat_id": "chat_id is empty",
    "from_chat_id": "chat_id is empty",
    "text": "message text is empty",
    "message_id": "message identifier is not specified",
    "message_ids": "message identifiers are not specified",
    "photo": "there is no photo in the request",
    "document": "there is no document in the request",
    "sticker": "there is no sticker in the request",
    "voice": "there is no voice in the request",
    "audio": "there is no audio in the request",
    "video": "there is no video in the request",
    "animation": "there is no animation in the request",
    "media": "media is empty",  # overwritten below for sendMediaGroup
    "callback_query_id": "QUERY_ID_INVALID",
    "user_id": "user not found",
    "name": "topic name is empty",
    "file_id": "file_id is empty",
    "action": "action is empty",
    "url": "url is empty",
    "commands": "commands is empty",
}

# Telegram's wording when a JSON-serialized parameter does not parse.
_UNPARSABLE: dict[str, str] = {
    "reply_markup": "can't parse reply keyboard markup JSON object",
    "entities": "can't parse entities JSON object",
    "caption_entities": "can't parse entities JSON object",
    "reply_parameters": "can't parse reply parameters JSON object",
    "link_preview_options": "can't parse link preview options JSON object",
    "media": "can't parse media JSON object",
    "commands": "can't parse commands JSON object",
    "scope": "can't parse BotCommandScope JSON object",
    "allowed_updates": "can't parse allowed updates JSON object",
}

_PRIMITIVES = ("Integer", "Float", "Boolean", "String", "InputFile")


class _InvalidError(Exception):
    pass


class Schema:
    """Access to methods/types of the bundled Bot API description."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.version: str = str(raw.get("version", ""))
        self.types: dict[str, dict[str, Any]] = raw["types"]
        self.methods: dict[str, MethodSpec] = {}
        self._by_lower: dict[str, str] = {}
        for name, m in raw["methods"].items():
            spec = MethodSpec(name=name, returns=tuple(m.get("returns", ())))
            for f in m.get("fields", []):
                spec.fields[f["name"]] = FieldSpec(
                    f["name"], tuple(f["types"]), bool(f["required"]), f.get("description", "")
                )
            self.methods[name] = spec
            self._by_lower[name.lower()] = name

    def canonical(self, method: str) -> str | None:
        """Telegram method names are case-insensitive."""
        return self._by_lower.get(method.lower())

    # -- validation -------------------------------------------------------------------------

    def validate(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Returns the parameters coerced to Python values (ints, bools, dicts, lists, ...).

        Unknown parameters are dropped.  File parts (UploadedFile) are kept as is.  Raises
        ApiError(400) for missing required parameters or values of the wrong type.
        """
        spec = self.methods[method]
        out: dict[str, Any] = {}
        for name, fspec in spec.fields.items():
            present = name in params and not _is_empty(params[name])
            if not present:
                if fspec.required:
                    if method == "sendMediaGroup" and name == "media":
                        raise bad_request('parameter "media" is required')
                    raise bad_request(_MISSING.get(name, f'parameter "{name}" is required'))
                continue
            value = params[name]
            try:
                out[name] = self._coerce_any(value, fspec.types, top=True)
            except _InvalidError as exc:
                if name in _UNPARSABLE and isinstance(value, str | bytes):
                    raise bad_request(_UNPARSABLE[name]) from exc
                detail = str(exc)
                if detail:
                    raise bad_request(detail) from exc
                raise bad_request(
                    f'field "{name}" must be of type {" or ".join(fspec.types)}'
                ) from exc
        return out

    def _coerce_any(self, value: Any, types: tuple[str, ...], *, top: bool) -> Any:
        last: _InvalidError | None = None
        # Try structured types first when the value is a JSON string of an object/array.
        ordered = sorted(types, key=lambda t: t in ("String",))
        for t in ordered:
            try:
                return self._coerce(value, t, top=top)
            except _InvalidError as exc:
                last = exc
        raise last or _InvalidError("")

    def _coerce(self, value: Any, type_name: str, *, top: bool) -> Any:
        if type_name.startswith("Array of "):
            inner = type_name[len("Array of ") :]
            if top and isinstance(value, str | bytes):
                value = _json_load(value)
            if not isinstance(value, list):
                raise _InvalidError("")
            return [self._coerce_any(v, (inner,), top=False) for v in value]
        if type_name == "Integer":
            if isinstance(value, bool):
                raise _InvalidError("")
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
                return int(value)
            raise _InvalidError("")
        if type_name == "Float":
            if isinstance(value, bool):
                raise _InvalidError("")
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError as exc:
                    raise _InvalidError("") from exc
            raise _InvalidError("")
        if type_name == "Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
                return value.strip().lower() in ("true", "1")
            raise _InvalidError("")
        if type_name == "String":
            if isinstance(value, str):
                return value
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float) and top:
                return str(value)
            if isinstance(value, int | float):
                # In JSON objects Telegram is strict about strings.
                raise _InvalidError("")
            raise _InvalidError("")
        if type_name == "InputFile":
            if isinstance(value, UploadedFile):
                return value
            raise _InvalidError("")
        # object type
        if isinstance(value, UploadedFile):
            raise _InvalidError("")
        if top and isinstance(value, str | bytes):
            value = _json_load(value)
        if not isinstance(value, dict):
            raise _InvalidError("")
        return self._check_object(value, type_name)

    def _check_object(self, value: dict[str, Any], type_name: str) -> dict[str, Any]:
        tdef = self.types.get(type_name)
        if tdef is None:
            return value
        subtypes = tdef.get("subtypes")
        if subtypes:
            chosen = self._pick_subtype(value, subtypes)
            if chosen is None:
                raise _InvalidError(f"can't parse {type_name}: unsupported type")
            return self._check_object(value, chosen)
        for f in tdef.get("fields", []):
            name = f["name"]
            if name not in value:
                if f["required"]:
                    raise _InvalidError(
                        f'can\'t parse {type_name}: Field "{name}" must be of type '
                        f"{' or '.join(f['types'])}"
                    )
                continue
            try:
                # Nested values are JSON already; files may be referenced as strings.
                value[name] = self._coerce_any(value[name], tuple(t for t in f["types"]), top=False)
            except _InvalidError as exc:
                if str(exc):
                    raise
                raise _InvalidError(
                    f'can\'t parse {type_name}: Field "{name}" must be of type '
                    f"{' or '.join(f['types'])}"
                ) from exc
        return value

    def _pick_subtype(self, value: dict[str, Any], subtypes: list[str]) -> str | None:
        kind = value.get("type", value.get("status", value.get("source")))
        for st in subtypes:
            if kind is not None and self._discriminator(st) == kind:
                return st
        return None

    @functools.cache  # noqa: B019 - schema objects live for the whole process
    def _discriminator(self, type_name: str) -> str | None:
        tdef = self.types.get(type_name, {})
        for f in tdef.get("fields", []):
            if f["name"] in ("type", "status", "source"):
                desc = f.get("description", "")
                m = re.search(r"must be (?:\*)?([\w-]+)", desc) or re.search(
                    r"always [“\"]([\w-]+)[”\"]", desc
                )
                if m:
                    return m.group(1)
        return None


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _json_load(value: str | bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise _InvalidError("") from exc


@functools.cache
def load_schema() -> Schema:
    ref = importlib.resources.files(__package__ or "bot.emulator").joinpath(
        "data/telegram-bot-api.json"
    )
    with ref.open("r", encoding="utf-8") as fh:
        return Schema(json.load(fh))
