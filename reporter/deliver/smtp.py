"""SMTP: settings from the environment, an encrypted connection, and sending with bounded retries.

The SMTP server and its password come from the environment only (:func:`smtp_settings`). The
password is never logged, stored or put in an exception: smtplib's exceptions are caught and
every message here is built from the reply code and the server's text.

Transient failures (no connection, timeouts, 4xx) are retried with exponential backoff for the
letters that failed and no others; a permanent rejection (5xx) of one recipient is final for
that recipient only.

Time is bounded three ways: opening a connection by ``connect_timeout``, each reply of the
server (and each block of the message it must take) by ``reply_timeout``, and one :func:`send`
as a whole, every attempt and pause included, by ``time_limit``: a watchdog shuts the socket
when it runs out, so not even a server that trickles one byte at a time can hold a delivery.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import unquote, urlsplit

from ..config import Project, Recipient
from ..errors import DeliveryError, Problem

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
_SPACE = re.compile(r"[ \t\r\n]+")

URL_VARIABLE = "REPORTER_SMTP_URL"
PASSWORD_VARIABLE = "REPORTER_SMTP_PASSWORD"
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0

# Outcome statuses; the first four are also ledger statuses.
SENT, REJECTED, FAILED, UNCHANGED = "sent", "rejected", "failed", "unchanged"
ALREADY_SENT, WRITTEN, IN_PROGRESS = "already sent", "written", "in progress elsewhere"
PENDING = "pending"


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect: from ``REPORTER_SMTP_URL`` and ``REPORTER_SMTP_PASSWORD``.

    ``scheme`` is ``smtp`` (plain), ``smtp+starttls`` or ``smtps`` (TLS from the start).
    The password is left out of ``repr`` and ``str`` so that it cannot slip into a log line.
    ``timeout`` bounds each reply of the server, ``connect_timeout`` opening the connection
    (both from ``[email]``, not the environment).
    """

    scheme: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def smtp_settings(environ: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                  connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> SmtpSettings:
    """Read the SMTP settings from the environment; raise :class:`DeliveryError` naming the variable.

    The URL is never echoed back in an error: a user may have put a password in it.
    """
    env = os.environ if environ is None else environ
    url = env.get(URL_VARIABLE, "").strip()
    example = "smtp://host:25, smtp+starttls://user@host:587 or smtps://user@host:465"
    if not url:
        raise DeliveryError([Problem(URL_VARIABLE, "", f"not set: set it to {example}, or preview with --outbox DIR")])
    problems: list[Problem] = []
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DeliveryError([Problem(URL_VARIABLE, "", f"not a URL like {example}")]) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        problems.append(Problem(URL_VARIABLE, "", f"unknown scheme {scheme!r}: use {example}"))
    if parts.password is not None:
        problems.append(Problem(URL_VARIABLE, "", f"contains a password: put it in {PASSWORD_VARIABLE} instead"))
    if not parts.hostname:
        problems.append(Problem(URL_VARIABLE, "", f"names no host: use {example}"))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        problems.append(Problem(URL_VARIABLE, "", f"has a path or query; expected only {example}"))
    username = unquote(parts.username or "")
    password = env.get(PASSWORD_VARIABLE, "")
    if username and not password:
        problems.append(Problem(PASSWORD_VARIABLE, "", f"not set, and {URL_VARIABLE} logs in as {username}"))
    if password and not username:
        problems.append(Problem(URL_VARIABLE, "", f"names no user, but {PASSWORD_VARIABLE} is set (smtp+starttls://user@host:587)"))
    if scheme == "smtp" and username:
        problems.append(Problem(URL_VARIABLE, "", "smtp:// would send the password unencrypted: use smtp+starttls:// or smtps://"))
    if problems:
        raise DeliveryError(problems)
    return SmtpSettings(scheme, parts.hostname or "", port or DEFAULT_PORTS[scheme], username, password, timeout,
                        connect_timeout)


class _Transient(Exception):
    """A failure worth retrying: no connection, a timeout, a 4xx reply."""


class _Permanent(Exception):
    """A failure that retrying cannot fix: an untrusted certificate, a refused login."""


@dataclass
class Letter:
    """One recipient's message on its way, with what happened to it so far."""

    recipient: Recipient
    message_id: str
    data: bytes
    sha256: str
    previous_attempts: int
    forced: bool  # sent again over a ``sent`` row: a failure must not erase that it was delivered
    content: str = ""  # content_digest of the edition in this language
    attempts: int = 0
    status: str = PENDING
    reply: str = ""


def _reply_text(code: int, text: bytes | str, password: str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _scrub(f"{code} {_SPACE.sub(' ', text).strip()}".strip(), password)


def _scrub(text: str, password: str) -> str:
    # A server that echoes a login attempt must not get the password into the ledger, not even
    # in the base64 of AUTH PLAIN or LOGIN.
    if not password:
        return text
    import base64  # noqa: PLC0415

    for secret in (password, base64.b64encode(password.encode()).decode()):
        text = text.replace(secret, "***")
    return re.sub(r"[A-Za-z0-9+/]{16,}={0,2}", lambda m: "***" if _hides(m.group(), password) else m.group(), text)


def _hides(token: str, password: str) -> bool:
    import base64  # noqa: PLC0415
    import binascii  # noqa: PLC0415

    try:
        return password.encode() in base64.b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return False


class _Deadline:
    """The end of one :func:`send`; while a connection is watched, a timer shuts its socket then."""

    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self._end = monotonic() + seconds
        self.expired = False
        self._conn: smtplib.SMTP | None = None
        self._raw: socket.socket | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self._end - self._monotonic()

    def over(self) -> bool:
        return self.expired or self.remaining() <= 0

    def describe(self) -> str:
        return f"the time limit of {_seconds(self.seconds)} ([email] time_limit) ran out"

    def track(self, conn: smtplib.SMTP, raw: socket.socket) -> None:
        with self._lock:
            self._conn, self._raw = conn, raw
        if self.expired:
            self._shut()

    @contextmanager
    def watch(self) -> Iterator[None]:
        timer = threading.Timer(max(self.remaining(), 0), self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:
                self._conn = self._raw = None

    def _expire(self) -> None:
        self.expired = True
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            sock = (getattr(self._conn, "sock", None) if self._conn is not None else None) or self._raw
        if sock is not None:
            try:
                # The plain socket's shutdown, also under TLS: it wakes a read blocked in another thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _seconds(value: float) -> str:
    return f"{value / 60:g} min" if value >= 120 else f"{value:g} s"


class _Timeouts:
    """smtplib with a timeout to connect and another for every reply, and a deadline that can shut it."""

    def __init__(self, *args: object, connect_timeout: float, deadline: _Deadline, **kwargs: object) -> None:
        self._connect_timeout = connect_timeout
        self._deadline = deadline
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        connect = max(min(self._connect_timeout, self._deadline.remaining()), 0.001)
        sock = super()._get_socket(host, port, connect)  # type: ignore[misc]
        sock.settimeout(timeout)
        self._deadline.track(self, sock)  # type: ignore[arg-type]
        return sock


class _SMTP(_Timeouts, smtplib.SMTP):
    pass


class _SMTPS(_Timeouts, smtplib.SMTP_SSL):
    pass


def _connect(smtp: SmtpSettings, ca_file: Path | None, deadline: _Deadline) -> smtplib.SMTP:
    """An open, greeted, encrypted-if-asked and logged-in connection, or :class:`_Transient`/:class:`_Permanent`."""
    where = f"{smtp.host}:{smtp.port}"
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    conn: smtplib.SMTP | None = None
    phase = "connect"
    try:
        options = dict(timeout=smtp.timeout, connect_timeout=smtp.connect_timeout, deadline=deadline)
        if smtp.scheme == "smtps":
            conn = _SMTPS(smtp.host, smtp.port, context=context, **options)
        else:
            conn = _SMTP(smtp.host, smtp.port, **options)
        phase = "reply"
        conn.ehlo()
        if smtp.scheme == "smtp+starttls":
            conn.starttls(context=context)
            conn.ehlo()
        if smtp.username:
            conn.login(smtp.username, smtp.password)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if not isinstance(exc, Exception):
            raise
        if deadline.expired:
            raise _Transient(deadline.describe()) from None
        raise _classify_connection_error(exc, smtp, where, ca_file, phase) from None


def _timed_out(exc: BaseException) -> bool:
    # smtplib turns a read that timed out into SMTPServerDisconnected("Connection unexpectedly
    # closed: timed out"); the timeout is still its context.
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _classify_connection_error(exc: Exception, smtp: SmtpSettings, where: str, ca_file: Path | None,
                               phase: str = "reply") -> Exception:
    # Ordered from specific to general: smtplib's and ssl's exceptions are OSErrors too.
    if _timed_out(exc):
        if phase == "connect" and isinstance(exc, TimeoutError):
            return _Transient(f"cannot connect to {where} within {smtp.connect_timeout:g} s (no answer to the connection)")
        return _Transient(f"{where} did not answer within {smtp.timeout:g} s")
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = f"is {ca_file} the right CA?" if ca_file else "for a private CA, set [email] ca_file"
        return _Permanent(f"the certificate of {where} could not be verified ({exc.verify_message}; {hint})")
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return _Transient(f"{where} closed the connection during the TLS handshake")
    if isinstance(exc, ssl.SSLError):
        return _Permanent(f"TLS with {where} failed ({exc.reason or type(exc).__name__})")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # 454 "temporary authentication failure" is worth another try; 535 "bad credentials" is not.
        kind = _Transient if 400 <= exc.smtp_code < 500 else _Permanent
        return kind(f"{where} refused the login as {smtp.username}: {_reply_text(exc.smtp_code, exc.smtp_error, smtp.password)}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # smtplib's own fixed text: "SMTP AUTH extension not supported by server." and the like.
        return _Permanent(f"{where}: {str(exc).rstrip('.')} (check {URL_VARIABLE})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Transient(f"{where} closed the connection")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply_text(exc.smtp_code, exc.smtp_error, smtp.password)
        return (_Transient if 400 <= exc.smtp_code < 500 else _Permanent)(f"{where} answered {reply}")
    if isinstance(exc, smtplib.SMTPException):
        return _Transient(f"{where}: {type(exc).__name__}")
    if isinstance(exc, OSError):
        return _Transient(f"cannot connect to {where} ({exc.strerror or type(exc).__name__})")
    return _Transient(f"{where}: {type(exc).__name__}")


class _Lost(Exception):
    """The connection failed in the middle of a letter; ``reply`` says how."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _transmit(conn: smtplib.SMTP, sender: str, letter: Letter, smtp: SmtpSettings) -> tuple[int, str]:
    """MAIL, RCPT and DATA for one letter; the first reply that is not a success, else DATA's."""
    where = f"{smtp.host}:{smtp.port}"
    stage = "mail"
    try:
        options = [f"SIZE={len(letter.data)}"] if conn.has_extn("size") else []
        code, text = conn.mail(sender, options)
        if code == 250:
            stage = "rcpt"
            code, text = conn.rcpt(letter.recipient.email)
            if code in (250, 251):
                stage = "data"
                try:
                    code, text = conn.data(letter.data)
                except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
                    code, text = exc.smtp_code, exc.smtp_error
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError) as exc:
        if _timed_out(exc):
            reply = f"{where} did not answer within {smtp.timeout:g} s"
            if stage == "data":
                # The unavoidable window: the server may have stored it and not said so yet.
                reply += " while taking the message (it may have arrived; a retry carries the same Message-ID)"
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            reply = f"{where} closed the connection"
        else:
            reply = str(_classify_connection_error(exc, smtp, where, None))
        raise _Lost(reply) from None
    if code // 100 != 2 and code != 421:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            pass  # the reply above is what counts; a dead connection shows on the next letter
    return code, _reply_text(code, text, smtp.password)


def send(letters: list[Letter], project: Project, smtp: SmtpSettings, sleep: Sleep,
         record: Callable[[Letter], None], label: str, monotonic: Callable[[], float] = time.monotonic) -> None:
    """Send every letter, retrying transient failures in rounds; ``record`` each final outcome at once.

    Returns within ``[email] time_limit``: letters not sent by then are failed with that reason.
    """
    settings = project.email
    sender = parseaddr(settings.sender)[1]
    deadline = _Deadline(settings.time_limit, monotonic)
    pending = list(letters)
    for round_number in range(1, settings.attempts + 1):
        if round_number > 1:
            delay = settings.backoff_seconds * 2 ** (round_number - 2)
            if delay >= deadline.remaining():
                deadline.expired = True
                break
            log.warning("%s: %d message(s) not delivered yet; attempt %d of %d in %g s",
                        label, len(pending), round_number, settings.attempts, delay)
            sleep(delay)
        if deadline.over():
            deadline.expired = True
            break
        with deadline.watch():
            try:
                conn = _connect(smtp, settings.ca_file, deadline)
            except _Transient as exc:
                log.warning("%s: %s", label, exc)
                for letter in pending:
                    letter.attempts += 1
                    letter.reply = str(exc)
                continue
            except _Permanent as exc:
                log.error("%s: %s", label, exc)
                for letter in pending:
                    letter.attempts += 1
                    letter.status, letter.reply = FAILED, str(exc)
                    record(letter)
                return
            try:
                _send_round(conn, pending, sender, smtp, deadline, record, label)
            finally:
                try:
                    conn.quit()
                except (smtplib.SMTPException, OSError):
                    conn.close()
        pending = [letter for letter in pending if letter.status == PENDING]
        if not pending:
            return
    for letter in pending:
        letter.status = FAILED
        if deadline.expired:
            last = letter.reply if letter.reply and letter.reply != deadline.describe() else ""
            letter.reply = f"not sent: {deadline.describe()}" + (f" (last: {last})" if last else "")
        else:
            letter.reply = f"{letter.reply} (gave up after {letter.attempts} attempt{'s' if letter.attempts != 1 else ''})"
        log.error("%s: not delivered to %s: %s", label, letter.recipient.email, letter.reply)
        record(letter)


def _send_round(conn: smtplib.SMTP, pending: list[Letter], sender: str, smtp: SmtpSettings, deadline: _Deadline,
                record: Callable[[Letter], None], label: str) -> None:
    for letter in pending:
        if deadline.over():
            deadline.expired = True
            return
        letter.attempts += 1
        try:
            code, reply = _transmit(conn, sender, letter, smtp)
        except _Lost as exc:
            letter.reply = deadline.describe() if deadline.expired else exc.reply
            log.warning("%s: %s: %s", label, letter.recipient.email, letter.reply)
            return
        except (UnicodeError, ValueError) as exc:
            # This letter cannot be sent at all (an address smtplib cannot encode); the others still go.
            letter.status, letter.reply = FAILED, f"cannot be sent: {type(exc).__name__}: {exc}"
            log.error("%s: %s: %s", label, letter.recipient.email, letter.reply)
            record(letter)
            continue
        letter.reply = reply
        if code // 100 == 2:
            letter.status = SENT
            log.info("%s: sent to %s%s (%s)", label, letter.recipient.email,
                     " again, forced" if letter.forced else "", reply)
            record(letter)
        elif 500 <= code < 600:
            letter.status = REJECTED
            log.error("%s: %s rejected %s: %s", label, smtp.host, letter.recipient.email, reply)
            record(letter)
        else:
            log.warning("%s: %s: %s (will retry)", label, letter.recipient.email, reply)
            if code == 421:  # the server is closing this connection
                return
