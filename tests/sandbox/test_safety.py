"""The sandbox is safe to run: only on this machine unless told otherwise (and then behind a
token), no change without the page's header, and uploaded files never run on the page."""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.sandbox.conftest import Sandbox

ALICE = 1001
PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(64))  # a PNG by its first bytes


def request(
    sandbox: Sandbox,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    address = urlsplit(sandbox.base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        if response.getheader("Content-Type", "").startswith("text/event-stream"):
            return response.status, response.headers, b""  # a stream does not end
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for filename, mime, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def view(sandbox: Sandbox, person: int = ALICE, **headers: str) -> dict[str, Any]:
    status, _, body = request(sandbox, "GET", f"/api/view?person={person}", headers=headers)
    assert status == 200, body
    return dict(json.loads(body))


# ------------------------------------------------------------------ (a) only this machine


def test_a_host_other_machines_reach_is_refused_without_allow_remote(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "0.0.0.0" in lines[0]
    assert "--allow-remote" in lines[0]


@pytest.fixture
def remote(tmp_path: Path) -> Any:
    running = Sandbox(tmp_path, "--host", "0.0.0.0", "--allow-remote")
    yield running
    assert running.stop() == 0, running.log()


def test_with_allow_remote_every_request_needs_the_token(remote: Sandbox) -> None:
    token = remote.token
    assert token is not None
    assert len(token) >= 32
    assert remote.url == f"{remote.base}?token={token}"
    assert remote.base.startswith("http://127.0.0.1:")

    for path in (
        "/",
        "/api/world",
        "/api/view?person=1001",
        "/api/events",
        "/api/file/anything",
        "/static/app.js",
        "/?token=" + "x" * len(token),
    ):
        status, _, _ = request(remote, "GET", path)
        assert status == 403, path
    cookie = f"sandbox_token_{urlsplit(remote.base).port}"
    wrong = {"Cookie": f"{cookie}={'y' * len(token)}"}
    assert request(remote, "GET", "/api/world", headers=wrong)[0] == 403
    status, _, body = request(
        remote,
        "POST",
        "/api/send",
        json.dumps({"person": ALICE, "text": "/start"}).encode(),
        {"Content-Type": "application/json", "X-Sandbox": "1"},
    )
    assert status == 403
    assert "token" in json.loads(body)["error"]

    # The printed address: the token becomes a cookie scripts cannot read and other sites'
    # requests do not carry, and leaves the address bar.
    status, headers, _ = request(remote, "GET", f"/?token={token}")
    assert status == 303
    assert headers["Location"] == "/"
    set_cookie = headers["Set-Cookie"]
    assert set_cookie.startswith(f"{cookie}={token};")
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie

    good = {"Cookie": f"{cookie}={token}"}
    for path in ("/", "/api/world", "/static/app.js", "/api/events"):
        assert request(remote, "GET", path, headers=good)[0] == 200, path
    status, _, _ = request(
        remote,
        "POST",
        "/api/send",
        json.dumps({"person": ALICE, "text": "/start"}).encode(),
        {"Content-Type": "application/json", "X-Sandbox": "1", **good},
    )
    assert status == 200
    # A script may also give the token in the query instead of the cookie.
    assert request(remote, "GET", f"/api/world?token={token}")[0] == 200


def test_on_loopback_the_page_answers_only_to_this_machines_names(sandbox: Sandbox) -> None:
    port = urlsplit(sandbox.base).port
    assert sandbox.token is None
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert request(sandbox, "GET", "/api/world", headers={"Host": host})[0] == 200
    # A site that points its own name at 127.0.0.1 (DNS rebinding) gets nothing.
    status, _, _ = request(sandbox, "GET", "/api/world", headers={"Host": f"evil.example:{port}"})
    assert status == 403


# ------------------------------------------------------------------ (c) no change from elsewhere


def test_a_change_without_the_pages_header_is_refused(sandbox: Sandbox) -> None:
    json_body = json.dumps({"person": ALICE, "text": "from another site"}).encode()
    form_body, form_type = multipart({"person": str(ALICE), "text": "from another site"}, [])
    for body, kind in (
        (json_body, "application/json"),
        (json_body, "text/plain"),  # what fetch(..., {mode: "no-cors"}) can send
        (form_body, form_type),  # what a cross-site <form> can send
        (f"person={ALICE}&text=hi".encode(), "application/x-www-form-urlencoded"),
    ):
        status, _, answer = request(sandbox, "POST", "/api/send", body, {"Content-Type": kind})
        assert status == 403, kind
        assert "X-Sandbox" in json.loads(answer)["error"]
    for path, change in (
        ("/api/clock", {"step": "day"}),
        ("/api/edit", {"person": ALICE, "chat": ALICE, "message_id": 1, "text": "x"}),
        ("/api/press", {"person": ALICE, "chat": ALICE, "message_id": 1, "data": "x"}),
    ):
        status, _, _ = request(
            sandbox, "POST", path, json.dumps(change).encode(), {"Content-Type": "application/json"}
        )
        assert status == 403, path
    assert view(sandbox)["messages"] == []
    assert view(sandbox)["clock"]["shifted"] == ""

    status, _, _ = request(
        sandbox,
        "POST",
        "/api/send",
        json_body,
        {"Content-Type": "application/json", "X-Sandbox": "1"},
    )
    assert status == 200
    assert [m["text"] for m in view(sandbox)["messages"]] == ["from another site"]


# ------------------------------------------------------------------ (b) files never run


def test_uploaded_html_and_svg_are_downloads_and_images_stay_images(sandbox: Sandbox) -> None:
    html = b"<!doctype html><script>fetch('/api/clock', {method: 'POST'})</script>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    picture = PICTURE
    body, kind = multipart(
        {"person": str(ALICE), "text": "files"},
        [
            ("page.html", "text/html", html),
            ("drawing.svg", "image/svg+xml", svg),
            ("fake.png", "image/png", html),  # claims to be an image
            ("screen.png", "image/png", picture),
        ],
    )
    status, _, answer = request(
        sandbox, "POST", "/api/send", body, {"Content-Type": kind, "X-Sandbox": "1"}
    )
    assert status == 200, answer
    messages = view(sandbox)["messages"]
    documents = {m["document"]["name"]: m["document"] for m in messages if "document" in m}
    assert set(documents) == {"page.html", "drawing.svg", "fake.png"}
    # The page does not even try to show them as pictures.
    assert not any(document["image"] for document in documents.values())
    for name, document in documents.items():
        status, headers, content = request(sandbox, "GET", document["url"])
        assert status == 200
        assert content in (html, svg)
        assert headers["Content-Disposition"].startswith("attachment;"), name
        assert name in headers["Content-Disposition"]
        assert headers["Content-Type"] == "application/octet-stream", name
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
    # A real picture is sent as a photo and shown inline, as what its bytes are.
    photo = next(m["photo"] for m in messages if "photo" in m)
    status, headers, content = request(sandbox, "GET", photo)
    assert status == 200
    assert content == picture
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"].startswith("inline;")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_forbids_foreign_and_inline_script(sandbox: Sandbox) -> None:
    status, headers, _ = request(sandbox, "GET", "/")
    assert status == 200
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_the_app_sends_the_change_header() -> None:
    app = (Path(__file__).resolve().parents[2] / "bot/sandbox/static/app.js").read_text()
    assert '"X-Sandbox": "1"' in app
