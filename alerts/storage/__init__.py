"""Storage: one ``Store`` interface, SQLite (the embedded default) and PostgreSQL.

``await open_store(url)`` picks the back end by the URL's scheme, connects and
migrates the schema:

- ``sqlite:///alerts.db`` (a path relative to the working directory),
  ``sqlite:////var/lib/alerts/alerts.db`` (absolute: the path follows the third
  slash, as in SQLAlchemy), ``sqlite://:memory:`` (a private in-memory database);
- ``postgresql://user@host:5432/dbname`` (or ``postgres://``; any libpq-style URL
  asyncpg accepts; extra query parameters are server settings, e.g.
  ``?search_path=alerts``).

The records (``RuleRecord``, ``ChannelRecord``, ``NewAlert``, ...) and the interface are re-exported
here; the back ends live in ``alerts.storage.sqlite`` and ``alerts.storage.postgres``.
"""

from __future__ import annotations

import urllib.parse

from alerts.errors import InvalidArgumentError
from alerts.storage._paging import decode_token as decode_page_token
from alerts.storage._paging import encode_token as encode_page_token
from alerts.storage._sql import Clock
from alerts.storage.base import Store
from alerts.storage.records import (
    AlertRecord,
    ChannelRecord,
    ChannelSettings,
    Checkpoint,
    DiscordSettings,
    EmailSettings,
    NewAlert,
    RuleRecord,
    SmsSettings,
    SubscriptionRecord,
    TelegramSettings,
    TriggerState,
    WebhookSettings,
    WebSocketSettings,
)

__all__ = [
    "AlertRecord",
    "ChannelRecord",
    "ChannelSettings",
    "Checkpoint",
    "DiscordSettings",
    "EmailSettings",
    "NewAlert",
    "RuleRecord",
    "SmsSettings",
    "Store",
    "SubscriptionRecord",
    "TelegramSettings",
    "TriggerState",
    "WebSocketSettings",
    "WebhookSettings",
    "decode_page_token",
    "encode_page_token",
    "open_store",
    "store_from_url",
]

_SQLITE_PREFIX = "sqlite://"
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def _bad_url(url: str, why: str) -> InvalidArgumentError:
    scheme = urllib.parse.urlsplit(url).scheme if "://" in url else ""
    shown = f"{scheme}://..." if scheme else repr(url[:40])  # never echo credentials
    return InvalidArgumentError(
        f"bad store URL {shown}: {why}; expected sqlite:///path/to/file.db,"
        " sqlite://:memory: or postgresql://user@host:port/dbname"
    )


def _sqlite_path(url: str) -> str:
    rest = url[len(_SQLITE_PREFIX):]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/") or len(rest) == 1:
        raise _bad_url(url, "a SQLite URL is sqlite:/// followed by a file path")
    if "?" in rest or "#" in rest:
        raise _bad_url(url, "a SQLite URL takes no query or fragment")
    return urllib.parse.unquote(rest[1:])


def store_from_url(url: str, *, clock: Clock | None = None) -> Store:
    """The store a URL names, not yet opened; a URL of no known form is ``InvalidArgumentError``.

    ``clock`` (epoch ms) replaces the wall clock, for tests.
    """
    if url.startswith(_SQLITE_PREFIX):
        from alerts.storage.sqlite import SqliteStore

        return SqliteStore(_sqlite_path(url), clock=clock)
    scheme = urllib.parse.urlsplit(url).scheme if "://" in url else ""
    if scheme in _POSTGRES_SCHEMES:
        from alerts.storage.postgres import PostgresStore

        return PostgresStore(url, clock=clock)
    raise _bad_url(url, "unknown scheme" if scheme else "not a URL")


async def open_store(url: str, *, clock: Clock | None = None) -> Store:
    """Open (connect and migrate) the store a URL names.

    Raises ``InvalidArgumentError`` for a bad URL, ``UnavailableError`` (one line,
    naming host:port or the file) when the database cannot be reached, and
    ``FailedPreconditionError`` when its schema is newer than this build.
    """
    store = store_from_url(url, clock=clock)
    await store.open()
    return store
