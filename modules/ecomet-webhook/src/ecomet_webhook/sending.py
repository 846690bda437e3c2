"""Signing and sending: one POST per delivery, and when to try again."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp

SIGNATURE_HEADER = "X-Ecomet-Signature"
EVENT_HEADER = "X-Ecomet-Event"
DELIVERY_HEADER = "X-Ecomet-Delivery"


def body_of(payload: dict[str, Any]) -> str:
    """The JSON as it is sent (and signed): compact, keys sorted, UTF-8."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (and the tests): compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: bool
    status: int | None  # the receiver's HTTP status, if it answered
    error: str | None
    retry_after: float | None = None  # seconds the receiver asked us to wait


async def post(
    http: aiohttp.ClientSession,
    url: str,
    secret: str,
    *,
    event: str,
    key: str,
    body: str,
    timeout: float,
) -> Outcome:
    data = body.encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: signature(secret, data),
        EVENT_HEADER: event,
        DELIVERY_HEADER: key,
        "User-Agent": "ecomet-webhook/0.1",
    }
    try:
        async with http.post(
            url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            await response.read()
            if 200 <= response.status < 300:
                return Outcome(True, response.status, None)
            return Outcome(
                False,
                response.status,
                f"HTTP {response.status} {response.reason or ''}".strip(),
                _seconds(response.headers.get("Retry-After")),
            )
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}".strip().rstrip(":"))


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def next_try(
    now: datetime,
    attempts: int,
    *,
    base: float,
    most: float,
    max_attempts: int,
    retry_after: float | None = None,
) -> datetime | None:
    """After ``attempts`` failed tries: when to try again (the delay doubles from ``base`` up to
    ``most``, or what the receiver asked for if longer), or None: given up."""
    if attempts >= max_attempts:
        return None
    delay = min(base * 2 ** (attempts - 1), most)
    if retry_after is not None:
        delay = max(delay, min(retry_after, most))
    return now + timedelta(seconds=delay)
