"""Following StreamAlerts forever: resume from the last alert after any interruption.

``follow_alerts`` opens a stream, yields its alerts and remembers the cursor:
the id of the last alert received, advanced further by ``caught_up`` and
heartbeats (which promise that nothing matching the filter was committed
between the last alert and their id). When the stream ends with UNAVAILABLE
(a restart, a dropped connection), RESOURCE_EXHAUSTED (SLOW_CONSUMER, honouring
its RetryInfo), ends without a status, or goes silent for longer than the
heartbeat promises, it reconnects with ``resume_after=cursor`` after an
exponential backoff with full jitter. The server replays what was committed
in between, then goes live: no alert is missed and none is yielded twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from alerts.v1 import alerts_pb2, service_pb2
from alerts_client.backoff import Backoff
from alerts_client.convert import duration
from alerts_client.errors import AlertsError

#: Codes after which a stream is reopened rather than the error raised.
RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


def is_dropped_connection(err: AlertsError) -> bool:
    """A transport failure some proxies and peers report as INTERNAL (an HTTP/2 reset)."""
    return err.code == grpc.StatusCode.INTERNAL and "RST_STREAM" in err.message


class _Watchdog:
    """Cancels a call when no message arrived for ``timeout`` seconds while armed."""

    def __init__(self, timeout: float, on_expire: Callable[[], object]) -> None:
        self._timeout = timeout
        self._on_expire = on_expire
        self._cond = threading.Condition()
        self._deadline: float | None = time.monotonic() + timeout
        self._stopped = False
        self.fired = False
        threading.Thread(target=self._run, name="alerts-stream-watchdog", daemon=True).start()

    def kick(self) -> None:
        """A message arrived (or the consumer is back): restart the silence timer."""
        with self._cond:
            was_paused = self._deadline is None
            self._deadline = time.monotonic() + self._timeout
            if was_paused:
                self._cond.notify()

    def pause(self) -> None:
        """The consumer holds an alert: its time is not the stream's silence."""
        with self._cond:
            self._deadline = None

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    self.fired = True
                    break
                self._cond.wait(remaining)
        if self.fired:
            self._on_expire()


@dataclass
class StreamOptions:
    """What to stream and how to keep it alive."""

    symbols: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    heartbeat: float = 5.0
    #: Silence after which a stream counts as dead: ``heartbeat * 2 + grace``.
    grace: float = 5.0
    #: Reconnect attempts in a row before giving up; None: never give up.
    max_reconnects: int | None = None
    on_caught_up: Callable[[int], object] | None = None
    on_reconnect: Callable[[AlertsError | None, float], object] | None = None
    sleep: Callable[[float], object] = field(default=time.sleep)

    def request(self, cursor: int | None) -> service_pb2.StreamAlertsRequest:
        req = service_pb2.StreamAlertsRequest(
            filter=service_pb2.AlertFilter(symbols=list(self.symbols), rules=list(self.rules)),
            heartbeat_interval=duration(self.heartbeat))
        if cursor is not None:
            req.resume_after = cursor
        return req


def follow_alerts(stub: Any, options: StreamOptions, backoff: Backoff,
                  resume_after: int | None = None) -> Iterator[alerts_pb2.Alert]:
    """Yield alerts with ids above ``resume_after`` (None: from now on), reconnecting forever."""
    cursor = resume_after
    failures = 0
    while True:
        call = stub.StreamAlerts(options.request(cursor))
        silence = options.heartbeat * 2 + options.grace
        watchdog = _Watchdog(silence, call.cancel)
        problem: AlertsError | None = None
        try:
            for msg in call:
                watchdog.kick()
                kind = msg.WhichOneof("payload")
                if kind == "ack":
                    failures = 0
                    if cursor is None:      # live only: everything after the ack's id
                        cursor = msg.ack.last_committed_id
                elif kind == "alert":
                    if cursor is not None and msg.alert.id <= cursor:
                        continue            # never yield an id twice
                    cursor = msg.alert.id
                    watchdog.pause()
                    yield msg.alert
                    watchdog.kick()
                elif kind == "caught_up":
                    cursor = max(cursor or 0, msg.caught_up.last_id)
                    if options.on_caught_up is not None:
                        options.on_caught_up(cursor)
                elif kind == "heartbeat":
                    cursor = max(cursor or 0, msg.heartbeat.last_committed_id)
        except grpc.RpcError as exc:
            if watchdog.fired:
                problem = AlertsError(grpc.StatusCode.UNAVAILABLE,
                                      f"no message on the alert stream for {silence:g} s")
            else:
                problem = AlertsError.from_rpc_error(exc)
                if not (problem.code in RECONNECT_CODES or is_dropped_connection(problem)):
                    raise problem from None
        finally:
            watchdog.stop()
            call.cancel()
        # ended: with a status worth retrying, silently, or cancelled by the watchdog
        if options.max_reconnects is not None and failures >= options.max_reconnects:
            raise problem or AlertsError(grpc.StatusCode.UNAVAILABLE,
                                         "the alert stream ended and could not be resumed")
        wait = backoff.delay(failures, problem.retry_delay if problem else None)
        failures += 1
        if options.on_reconnect is not None:
            options.on_reconnect(problem, wait)
        options.sleep(wait)
