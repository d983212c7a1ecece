"""The Redis broker the Celery executor uses, named by ``REPORTER_BROKER_URL``.

Kept apart from :mod:`.celery` so that checking the setting costs no Celery import: ``run-due``
from cron, with nothing due, stays as quick as with the local pool.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from ..errors import Problem, ReporterError

BROKER_ENV = "REPORTER_BROKER_URL"
SCHEMES = ("redis", "rediss")


class BrokerUnavailable(ReporterError):
    """``REPORTER_BROKER_URL`` is missing, malformed, or names a Redis that does not answer."""


def safe_url(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for logs and errors."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return f"{url.partition('://')[0]}://…"  # cannot tell where a password would be: show none of it


def broker_url() -> str:
    """``REPORTER_BROKER_URL``, checked for its form; :class:`BrokerUnavailable` if unusable."""
    url = os.environ.get(BROKER_ENV, "").strip()
    if not url:
        raise BrokerUnavailable([Problem(BROKER_ENV, "", 'not set; executor = "celery" needs a Redis URL such as '
                                         "redis://broker.example.org:6379/0")])
    try:
        scheme = urlsplit(url).scheme
        urlsplit(url).port  # noqa: B018 - raises on a port that is no number
    except ValueError as exc:
        raise BrokerUnavailable([Problem(BROKER_ENV, "", f"{safe_url(url)} is not a URL ({exc})")]) from None
    if scheme not in SCHEMES:
        raise BrokerUnavailable([Problem(BROKER_ENV, "", f"{safe_url(url)}: expected a redis:// or rediss:// URL")])
    return url


def check_broker(url: str, timeout: float = 5.0) -> None:
    """Ask the broker for a PING; one clear :class:`BrokerUnavailable` line if it does not answer."""
    import redis  # noqa: PLC0415 - only for commands that need the broker

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        # redis-py's messages name the host and port, never the password.
        raise BrokerUnavailable([Problem(BROKER_ENV, "", f"cannot reach the broker at {safe_url(url)}: {exc}")]) from None
