"""Real mail servers for the e-mail channel's tests: Debian's Dovecot and Exim, no mocks.

The ``mail_servers`` fixture starts, once per test session, a Dovecot (IMAP with IDLE, and LMTP)
and an Exim (SMTP) on 127.0.0.1, each from a private configuration in a temp dir, on free ports,
as children of pytest. Exim accepts any recipient from loopback and hands every message by LMTP
to Dovecot, which files it under ``<tmp>/mail/<domain>/<local part>`` (maildir) whether or not
the mailbox has a password yet. Logins are checked against passwd-files that ``add_mailbox``
writes (IMAP, and optional SMTP AUTH PLAIN with the same credentials).

``mail`` gives each test a domain of its own (``<test>-<n>.test``) with ``support@<domain>``
and customers at ``customers.<domain>``, so tests never see each other's mail. When a test that
used it fails, the servers' log lines written during the test are printed.

Packages (Debian 12): ``dovecot-imapd dovecot-lmtpd exim4-daemon-light``; ``.ci/run`` installs
them. Missing, they skip the tests with the reason, or fail them where ``MAIL_SERVERS_REQUIRED=1``
(CI). ``MAIL_SERVERS_DOVECOT`` and ``MAIL_SERVERS_EXIM`` name other binaries (a path that does not
exist hides them). Root is needed: both servers switch to their own system users.

Why Exim and not OpenSMTPD: OpenSMTPD's control socket (``/var/run/smtpd.sock``) and spool
(``/var/spool/smtpd``) are compiled in, so a second pytest session or the system's own smtpd would
collide with ours; Exim takes every path from its configuration.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.policy
import functools
import imaplib
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import IO
from urllib.parse import quote

import pytest

from tests.waiting import eventually, eventually_sync
from tests.watchdog import start_watchdog

HOST = "127.0.0.1"
DEFAULT_PASSWORD = "secret"
PACKAGES = "dovecot-imapd dovecot-lmtpd exim4-daemon-light"
# The user that owns the mail on disk: any unprivileged one works, Dovecot refuses root.
MAIL_USER = "mail"
# Only Exim's own complaint about -C: it re-executes itself without root for every delivery,
# which is all it needs here, as it delivers over LMTP.
_EXIM_NOISE = "exim user lost privilege for using -C option"
# The session-wide probe account that `capabilities` logs in with.
_PROBE = "probe@mail-servers.test"


@dataclass
class _Accounts:
    """The mailboxes' passwords, in the files the servers read (shared by every test)."""

    # One passwd-file per user for Dovecot: it looks at a file at most once a second, so a user
    # added to a shared file just after a lookup would stay unknown for that second; a new
    # file is read at once.
    dovecot_dir: Path
    exim_file: Path
    passwords: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, address: str, password: str) -> bool:
        """Set the password; return whether it replaced another one."""
        user = _user(address)
        if any(ch in password for ch in "\r\n\0") or not password:
            raise ValueError(f"unusable password for {address!r}")
        with self.lock:
            before = self.passwords.get(user)
            if before == password:
                return False
            self.passwords[user] = password
            # Base64, so that any character (a ':' too) survives both files' formats.
            exim = "".join(f'"{u}": {_b64(p)}\n' for u, p in self.passwords.items())
            _write(self.dovecot_dir / user, f"{user}:{{PLAIN.b64}}{_b64(password)}::::::\n")
            _write(self.exim_file, exim)
            return before is not None

    def password(self, address: str) -> str:
        with self.lock:
            known = self.passwords.get(_user(address))
        if known is None:
            # Reading a mailbox nobody set up: give it the default password, as mail to it lands
            # anyway and a test wants to see it.
            self.add(address, DEFAULT_PASSWORD)
            return DEFAULT_PASSWORD
        return known


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write(path: Path, text: str) -> None:
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    fresh.chmod(0o644)  # Dovecot's auth worker and Exim read them as their own users
    fresh.replace(path)  # whole or not at all, for a reader at any moment


def _user(address: str) -> str:
    user = address.strip().lower()
    # Dovecot takes only these characters in a login name (auth_username_chars).
    if not re.fullmatch(r"[a-z0-9._-]+@[a-z0-9.-]+", user):
        raise ValueError(f"not a mailbox address the test servers take: {address!r}")
    return user


class MailServers:
    """The running servers, as tests talk to them: plain IMAP and SMTP on loopback."""

    host: str
    imap_port: int
    smtp_port: int

    def __init__(
        self,
        *,
        imap_port: int,
        smtp_port: int,
        root: Path,
        accounts: _Accounts,
        logs: list[Path],
        processes: _Processes,
    ) -> None:
        self.host = HOST
        self.imap_port = imap_port
        self.smtp_port = smtp_port
        self.root = root  # the temp dir: configs, logs (log/, exim/log/), mail/<domain>/<user>
        self.log_paths = logs
        self._accounts = accounts
        self._processes = processes

    def exited(self) -> dict[str, int]:
        """The servers that have ended, with their exit codes (none while all is well)."""
        return self._processes.exited()

    # --- accounts and URLs -------------------------------------------------------------------

    def add_mailbox(self, address: str, password: str = DEFAULT_PASSWORD) -> None:
        """Let ``address`` log in (IMAP, SMTP AUTH) with ``password``; mail to it lands anyway."""
        if self._accounts.add(address, password):
            # A changed password: Dovecot may hold the old file for up to a second.
            eventually_sync(
                lambda: self._logs_in(address, password),
                f"Dovecot did not take the new password of {address}",
                within=5,
            )

    def _logs_in(self, address: str, password: str) -> bool:
        conn = imaplib.IMAP4(self.host, self.imap_port, timeout=15)
        try:
            _login(conn, address, password)
        except imaplib.IMAP4.error:
            return False
        finally:
            _logout(conn)
        return True

    def imap_url(
        self, address: str, password: str = DEFAULT_PASSWORD, folder: str = "INBOX"
    ) -> str:
        user = quote(address, safe="")
        return (
            f"imap://{user}:{quote(password, safe='')}@{self.host}:{self.imap_port}/{quote(folder)}"
        )

    @property
    def smtp_url(self) -> str:
        return f"smtp://{self.host}:{self.smtp_port}"

    # --- sending -----------------------------------------------------------------------------

    def send(self, message: EmailMessage | bytes, *, sender: str, to: list[str]) -> None:
        """Hand ``message`` to Exim (SMTP, no auth), which delivers it into Dovecot."""
        with smtplib.SMTP(self.host, self.smtp_port, timeout=15) as smtp:
            if isinstance(message, bytes):
                smtp.sendmail(sender, to, message)
            else:
                smtp.send_message(message, from_addr=sender, to_addrs=to)

    # --- reading -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def imap(self, address: str) -> Iterator[imaplib.IMAP4]:
        """A logged-in IMAP connection to ``address``'s mailbox (nothing selected)."""
        conn = self._connect(address)
        try:
            yield conn
        finally:
            _logout(conn)

    def _connect(self, address: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.imap_port, timeout=15)
        try:
            _login(conn, address, self._accounts.password(address))
        except BaseException:
            _logout(conn)
            raise
        return conn

    def inbox(self, address: str, folder: str = "INBOX") -> list[EmailMessage]:
        """Every message in the folder, in order. Read-only: no \\Seen is set by looking.

        Line ends are Python's (``\\n``): IMAP carries CRLF, which the parser would keep in
        8-bit text parts, so a body would not compare equal to the text that was sent."""
        with self.imap(address) as conn:
            return _messages(conn, f"{address}/{folder}", folder)

    async def wait_for_mail(
        self, address: str, count: int, within: float = 15.0, *, folder: str = "INBOX"
    ) -> list[EmailMessage]:
        """Wait until the folder holds at least ``count`` messages; return them all."""
        seen: list[EmailMessage] = []
        # One connection looked at again and again (IMAP blocks: off the loop, so that a bot
        # running in this loop goes on meanwhile), not a login per look that floods the log.
        conn = await asyncio.to_thread(self._connect, address)

        async def arrived() -> bool:
            nonlocal seen
            seen = await asyncio.to_thread(_messages, conn, f"{address}/{folder}", folder)
            return len(seen) >= count

        try:
            await eventually(
                arrived,
                lambda: (
                    f"{address}/{folder} holds {len(seen)} message(s), not {count}, after "
                    f"{within} s (subjects: {[str(m['Subject']) for m in seen]}; the servers' "
                    f"logs are in {self.root}/log and {self.root}/exim/log)"
                ),
                within=within,
                every=0.05,
            )
        finally:
            await asyncio.to_thread(_logout, conn)
        return seen

    def flags(self, address: str, folder: str = "INBOX") -> list[set[str]]:
        """Each message's stored flags, in order (``\\Recent`` left out: it is per session)."""
        with self.imap(address) as conn:
            count = _examine(conn, folder)
            if not count:
                return []
            status, data = conn.fetch("1:*", "(FLAGS)")
            _check(status, data, f"FETCH FLAGS in {address}/{folder}")
        found: dict[int, set[str]] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            matched = re.match(rb"(\d+) \(.*FLAGS \(([^)]*)\)", line)
            if matched:
                flags = set(matched.group(2).decode().split()) - {"\\Recent"}
                found[int(matched.group(1))] = flags
        return [found[number] for number in sorted(found)]

    def capabilities(self) -> set[str]:
        """What the IMAP server offers a logged-in client (e.g. ``IDLE``, ``MOVE``)."""
        with self.imap(_PROBE) as conn:
            status, data = conn.capability()
            _check(status, data, "CAPABILITY")
        raw = data[-1]
        return set(raw.decode().split()) if isinstance(raw, bytes) else set()

    # --- logs --------------------------------------------------------------------------------

    def log_marks(self) -> dict[Path, int]:
        return {path: path.stat().st_size if path.exists() else 0 for path in self.log_paths}

    def logs(self, since: dict[Path, int] | None = None) -> str:
        """The servers' logs (from ``since``, a :meth:`log_marks`), one section per file."""
        parts = []
        for path in self.log_paths:
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek((since or {}).get(path, 0))
                text = handle.read().decode(errors="replace")
            lines = [line for line in text.splitlines() if _EXIM_NOISE not in line]
            if lines:
                parts.append(f"---- {path} ----\n" + "\n".join(lines))
        return "\n".join(parts)


def _login(conn: imaplib.IMAP4, address: str, password: str) -> None:
    # AUTHENTICATE PLAIN, not LOGIN: imaplib sends LOGIN's arguments as ASCII only.
    secret = f"\0{address}\0{password}".encode()
    conn.authenticate("PLAIN", lambda _challenge: secret)


def _logout(conn: imaplib.IMAP4) -> None:
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        conn.logout()


_PARSER = BytesParser(_class=EmailMessage, policy=email.policy.default)


def _messages(conn: imaplib.IMAP4, what: str, folder: str) -> list[EmailMessage]:
    # EXAMINE again on every call: it is what shows mail that arrived since the last one.
    if not _examine(conn, folder):
        return []
    status, data = conn.fetch("1:*", "(BODY.PEEK[])")
    _check(status, data, f"FETCH in {what}")
    return [
        _PARSER.parsebytes(item[1].replace(b"\r\n", b"\n"))
        for item in data
        if isinstance(item, tuple)
    ]


def _examine(conn: imaplib.IMAP4, folder: str) -> int:
    status, data = conn.select(_quoted(folder), readonly=True)
    _check(status, data, f"EXAMINE {folder}")
    raw = data[0]
    return int(raw) if isinstance(raw, bytes) and raw.isdigit() else 0


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(status: str, data: Sequence[object], what: str) -> None:
    if status != "OK":
        raise AssertionError(f"IMAP {what} answered {status}: {data!r}")


class Mail(MailServers):
    """The servers as one test sees them: a domain of its own with a support mailbox, and
    customers at ``customers.<domain>`` (each with the default password)."""

    def __init__(self, servers: MailServers, domain: str) -> None:
        super().__init__(
            imap_port=servers.imap_port,
            smtp_port=servers.smtp_port,
            root=servers.root,
            accounts=servers._accounts,
            logs=servers.log_paths,
            processes=servers._processes,
        )
        self.domain = domain
        self.support = f"support@{domain}"
        self.support_password = DEFAULT_PASSWORD
        self.add_mailbox(self.support, self.support_password)

    @property
    def support_imap_url(self) -> str:
        return self.imap_url(self.support, self.support_password)

    def customer(self, name: str = "customer") -> str:
        """A customer's address in this test's customer domain; its mailbox can be read."""
        address = f"{name}@customers.{self.domain}"
        self.add_mailbox(address)
        return address


# --- starting and stopping ---------------------------------------------------------------------


def unavailable() -> str | None:
    """Why the servers cannot run here, or None."""
    dovecot, exim = _binary("dovecot"), _binary("exim")
    install = f"apt-get install {PACKAGES}"
    if dovecot is None or exim is None:
        missing = " and ".join(
            name for name, path in (("dovecot", dovecot), ("exim4", exim)) if path is None
        )
        return f"{missing} not installed ({install}); the e-mail tests need real servers"
    helpers = Path(dovecot).resolve().parent.parent / "lib" / "dovecot"
    if helpers.is_dir():  # Debian's layout: the IMAP and LMTP services come in their own packages
        absent = [name for name in ("imap", "lmtp") if not (helpers / name).exists()]
        if absent:
            return f"Dovecot's {' and '.join(absent)} missing ({install})"
    version = subprocess.run(
        [dovecot, "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.match(r"(\d+)\.(\d+)", version)
    if not found or (int(found[1]), int(found[2])) != (2, 3):
        return f"Dovecot {version.strip() or '?'} found; this fixture writes a 2.3 configuration"
    if os.geteuid() != 0:
        return "the mail servers need root (Dovecot and Exim switch to their own system users)"
    return None


def _binary(which: str) -> str | None:
    override = os.environ.get(f"MAIL_SERVERS_{which.upper()}")
    if override is not None:
        return override if Path(override).exists() else None
    names = ("dovecot",) if which == "dovecot" else ("exim4", "exim")
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
        if found:
            return found
    return None


def _free_ports(count: int) -> list[int]:
    # Held open together, so they differ; another process could take one before the servers
    # bind it, which `_start` answers with a retry on new ports.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _dovecot_conf(root: Path, imap_port: int, lmtp_port: int) -> str:
    mail = root / "mail"
    return f"""\
# Written by tests/mailserver.py for one pytest session.
base_dir = {root}/run
state_dir = {root}/state
instance_name = mail-servers-{os.getpid()}
hostname = mail-servers.test
protocols = imap lmtp
listen = {HOST}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
auth_verbose = yes
# A wrong password is answered at once (default: after 2 s), and failures from loopback do not
# slow down the next logins (Dovecot's auth penalty spares trusted networks).
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
log_path = {root}/log/dovecot.log
mail_location = maildir:{mail}/%Ld/%Ln
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {root}/passwd.d/%Lu
}}
userdb {{
  driver = static
  # Every address exists for delivery; a password only matters to log in.
  args = uid={MAIL_USER} gid={MAIL_USER} home={mail}/%Ld/%Ln allow_all_users=yes
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {lmtp_port}
  }}
}}
"""


def _exim_conf(root: Path, exim: str, smtp_port: int, lmtp_port: int) -> str:
    spool = root / "exim"
    return f"""\
# Written by tests/mailserver.py for one pytest session.
exim_path = {exim}
primary_hostname = mail-servers.test
spool_directory = {spool}
log_file_path = {spool}/log/%slog
pid_file_path = {spool}/exim.pid
daemon_smtp_ports = {smtp_port}
local_interfaces = {HOST}
keep_environment =
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
message_size_limit = 50M
# Deliver at once however many messages one connection brings (the default queues after 10).
smtp_accept_queue_per_connection = 0
acl_smtp_rcpt = check_rcpt
log_selector = +received_recipients +smtp_protocol_error +smtp_syntax_error -queue_run

begin acl

check_rcpt:
  accept hosts = {HOST}
  deny message = only loopback clients may send here

begin routers

# Every domain is local: all of it goes to Dovecot.
to_dovecot:
  driver = accept
  transport = dovecot_lmtp

begin transports

dovecot_lmtp:
  driver = smtp
  protocol = lmtp
  hosts = {HOST}
  port = {lmtp_port}
  allow_localhost

begin retry

* * F,1h,1s

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if eq{{${{base64:$auth3}}}}{{${{lookup{{${{lc:$auth2}}}}lsearch{{{root}/smtp-passwd}}}}}}}}
  server_set_id = $auth2
"""


class _Processes:
    """Dovecot and Exim as children of pytest, with a watchdog that stops them if pytest dies
    without its teardown (killed, or sent SIGTERM, which pytest does not handle)."""

    def __init__(self, root: Path, dovecot: str, exim: str) -> None:
        self.root = root
        self.dovecot = dovecot
        self.exim = exim
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.outputs: list[IO[bytes]] = []
        self.watchdog: subprocess.Popen[bytes] | None = None

    def start(self, imap_port: int, lmtp_port: int, smtp_port: int) -> None:
        root = self.root
        (root / "dovecot.conf").write_text(_dovecot_conf(root, imap_port, lmtp_port))
        (root / "exim.conf").write_text(_exim_conf(root, self.exim, smtp_port, lmtp_port))
        commands = {
            "dovecot": [self.dovecot, "-F", "-c", str(root / "dovecot.conf")],
            # -q2s: a queue run every 2 s retries what Dovecot could not take at once.
            "exim": [self.exim, "-C", str(root / "exim.conf"), "-bdf", "-q2s"],
        }
        for name, command in commands.items():
            output = (root / "log" / f"{name}.stderr").open("ab")
            self.outputs.append(output)
            self.procs[name] = subprocess.Popen(
                command,
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # Ctrl-C reaches pytest alone, which stops them in order
            )
        # Reads until pytest's end of the pipe closes, which happens however pytest ends; then
        # stops the servers' process groups and removes the dir. A normal stop ends it first.
        self.watchdog = start_watchdog(root, [proc.pid for proc in self.procs.values()])

    def exited(self) -> dict[str, int]:
        return {
            name: code for name, proc in self.procs.items() if (code := proc.poll()) is not None
        }

    def stop(self) -> dict[str, int]:
        """Stop both (again: nothing); return the exit codes of those that had ended alone."""
        died = self.exited()
        if self.watchdog is not None:
            self.watchdog.terminate()
            self.watchdog.wait(5)
            assert self.watchdog.stdin is not None
            self.watchdog.stdin.close()
            self.watchdog = None
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            # What the server left behind in its own group (an Exim delivery in flight).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for output in self.outputs:
            output.close()
        self.procs.clear()
        self.outputs.clear()
        return died


def _greets(port: int, greeting: bytes, bye: bytes) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            ok = conn.recv(512).startswith(greeting)
            conn.sendall(bye)
            return ok
    except OSError:
        return False


@contextlib.contextmanager
def run_mail_servers() -> Iterator[MailServers]:
    """Start Dovecot and Exim in a fresh temp dir; stop them and remove it on exit."""
    dovecot, exim = _binary("dovecot"), _binary("exim")
    assert dovecot is not None and exim is not None, unavailable()
    root = Path(tempfile.mkdtemp(prefix="mail-servers-", dir=_temp_parent()))
    processes = _Processes(root, dovecot, exim)
    try:
        servers = _prepare(root, exim, processes)
        _start(servers, processes)
        yield servers
        died = processes.stop()
        if died:
            raise AssertionError(f"mail servers ended during the session {died}:\n{servers.logs()}")
    finally:
        processes.stop()
        shutil.rmtree(root, ignore_errors=True)


def _temp_parent() -> str:
    # The servers' system users must reach the dir: a TMPDIR inside /root would shut them out.
    base = Path(tempfile.gettempdir()).resolve()
    reachable = all(path.stat().st_mode & 0o001 for path in (base, *base.parents))
    return str(base) if reachable else "/tmp"


def _prepare(root: Path, exim: str, processes: _Processes) -> MailServers:
    # The servers' own users (dovenull, dovecot, mail, Debian-exim) have to reach their parts.
    root.chmod(0o755)
    for name in ("log", "run", "state", "mail", "passwd.d", "exim", "exim/log"):
        (root / name).mkdir()
    mail_user = pwd.getpwnam(MAIL_USER)
    os.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
    exim_user = _exim_user(root, exim)
    for name in ("exim", "exim/log"):
        os.chown(root / name, exim_user.pw_uid, exim_user.pw_gid)
    accounts = _Accounts(root / "passwd.d", root / "smtp-passwd")
    accounts.add(_PROBE, DEFAULT_PASSWORD)
    logs = [
        root / "log" / "dovecot.log",
        root / "log" / "dovecot.stderr",
        root / "exim" / "log" / "mainlog",
        root / "exim" / "log" / "paniclog",
        root / "log" / "exim.stderr",
    ]
    return MailServers(
        imap_port=0, smtp_port=0, root=root, accounts=accounts, logs=logs, processes=processes
    )


def _start(servers: MailServers, processes: _Processes) -> None:
    for attempt in range(3):
        imap_port, lmtp_port, smtp_port = _free_ports(3)
        servers.imap_port, servers.smtp_port = imap_port, smtp_port
        processes.start(imap_port, lmtp_port, smtp_port)

        try:
            eventually_sync(
                functools.partial(_ready, processes, imap_port, lmtp_port, smtp_port),
                "not ready in time",
                within=30,
            )
            return
        except (EOFError, AssertionError):
            died = processes.stop()
            text = servers.logs()
            if "Address already in use" in text and attempt < 2:
                for path in servers.log_paths:  # the next attempt's logs alone
                    path.unlink(missing_ok=True)
                continue
            raise RuntimeError(
                f"the mail servers did not start (ended: {died}) in {servers.root}:\n{text}"
            ) from None


def _ready(processes: _Processes, imap_port: int, lmtp_port: int, smtp_port: int) -> bool:
    if processes.exited():
        raise EOFError
    return (
        _greets(imap_port, b"* OK", b"a LOGOUT\r\n")
        and _greets(lmtp_port, b"220", b"QUIT\r\n")
        and _greets(smtp_port, b"220", b"QUIT\r\n")
    )


def _exim_user(root: Path, exim: str) -> pwd.struct_passwd:
    # Debian's Exim runs as Debian-exim, other builds as exim: ask the binary (with a config of
    # our own, so that nothing is read from or logged to the system's).
    probe = root / "exim-probe.conf"
    probe.write_text(f"keep_environment =\nlog_file_path = {root}/log/exim-probe-%slog\n")
    shown = subprocess.run(
        [exim, "-C", str(probe), "-bP", "exim_user"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"exim_user = (\S+)", shown)
    return pwd.getpwnam(found[1] if found else "Debian-exim")


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    problem = unavailable()
    if problem is not None:
        if os.environ.get("MAIL_SERVERS_REQUIRED") == "1":
            pytest.fail(f"mail servers required (MAIL_SERVERS_REQUIRED=1): {problem}")
        pytest.skip(problem)
    with run_mail_servers() as servers:
        yield servers


_domains = iter(range(1, 1_000_000))


@pytest.fixture
def mail(mail_servers: MailServers, request: pytest.FixtureRequest) -> Iterator[Mail]:
    died = mail_servers.exited()
    if died:
        pytest.fail(f"the mail servers have ended ({died}):\n{mail_servers.logs()}")
    # A domain per test, named after it, so that its mail is its own and easy to find in logs.
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    marks = mail_servers.log_marks()
    yield Mail(mail_servers, f"{slug or 'test'}-{next(_domains)}.test")
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        print(f"---- the mail servers' logs during the test ({mail_servers.root}) ----")
        print(mail_servers.logs(marks) or "(nothing logged)")
