"""``SqliteWorker``: one ``sqlite3`` connection, owned by a thread of its own, used from asyncio.

The connection is opened, used and closed on that thread only, one call at a time
in the order the calls were handed over. A call travels over a ``SimpleQueue`` and
its outcome comes back with ``call_soon_threadsafe``; a ``ThreadPoolExecutor`` round
trip (a second future, and locks taken on both threads) takes ~50 us longer, which
the alert commit would pay on every batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

from alerts.errors import UnavailableError

T = TypeVar("T")
_Call = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class SqliteWorker:
    """A connection and its thread; ``call`` runs ``fn(connection, *args)`` there."""

    def __init__(self, calls: SimpleQueue[_Call | None], what: str) -> None:
        self._calls = calls
        self._what = what
        self._closed = False

    @classmethod
    async def open(cls, connect: Callable[[], sqlite3.Connection], *, name: str,
                   what: str) -> SqliteWorker:
        """Start the thread ``name`` and open the connection there (its errors raise here);
        ``what`` names the store in errors."""
        loop = asyncio.get_running_loop()
        calls: SimpleQueue[_Call | None] = SimpleQueue()
        opened: asyncio.Future[None] = loop.create_future()
        threading.Thread(target=_serve, args=(loop, calls, opened, connect), name=name,
                         daemon=True).start()
        try:
            await opened
        except BaseException:
            calls.put(None)             # the thread closes what it opened, and ends
            raise
        return cls(calls, what)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(connection, *args)`` on the thread, after every call handed over before."""
        if self._closed:
            raise UnavailableError(f"{self._what} is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((future, fn, args))
        return future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    async def close(self) -> None:
        """Close after the calls already handed over (also those whose caller gave up);
        later calls raise ``UnavailableError``."""
        closing = self.submit(sqlite3.Connection.close)
        self._closed = True
        self._calls.put(None)
        await closing


def _serve(loop: asyncio.AbstractEventLoop, calls: SimpleQueue[_Call | None],
           opened: asyncio.Future[None], connect: Callable[[], sqlite3.Connection]) -> None:
    """The thread: open the connection, then run calls until None."""
    try:
        conn = connect()
    except BaseException as exc:  # noqa: BLE001 - raised in the opener
        loop.call_soon_threadsafe(_settle, opened, None, exc)
        return
    loop.call_soon_threadsafe(_settle, opened, None, None)
    try:
        while (call := calls.get()) is not None:
            future, fn, args = call
            try:
                result = fn(conn, *args)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
    finally:
        conn.close()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
