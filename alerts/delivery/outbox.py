"""The delivery outbox: each (alert, channel) delivery attempted until DELIVERED or DEAD.

State lives only in the store: ``commit_batch`` writes one PENDING delivery per
channel of an alert in the alert's own transaction, and every attempt's outcome
is recorded there. The ``Outbox`` runs one worker task per channel; a worker
reads its channel's due deliveries in alert-id order and hands each to the
channel's ``ChannelSender``, at most ``max_in_flight`` at a time. It wakes when
alerts for its channel commit (``notify``), when one of its attempts ends, when
its next retry falls due, and on ``wake`` (a channel resumed). Workers share
nothing but the store, so a slow or failing channel never delays another.
Outcomes are written by one recorder task, in one transaction for all that are
waiting (an attempt's slot is held until its outcome is committed).

Retries follow ``RetryPolicy``: after the n-th failed attempt the next one waits
a random time in [0, min(max_delay, first_delay * 2^(n-1))] (exponential backoff
with full jitter), and never less than the destination's own ``retry_after_s``.
The retry period starts at a delivery's first attempt (time spent paused does
not count); the last attempt is made when it ends, and a delivery that fails it
becomes DEAD (a dead letter, kept for ``redeliver``). ``max_attempts`` (the
channel's, else the policy's; 0: no limit) ends it sooner. A permanent failure
(``Outcome.retryable`` false: 4xx other than 408/429, a refused address) is DEAD
at once. A paused channel sends nothing; its deliveries stay PENDING and go out
on resume. A channel that no longer exists turns its pending deliveries DEAD.

At least once: an attempt cut short by a crash or by ``stop`` is not recorded,
so the delivery is still PENDING and is sent again after the restart. Receivers
deduplicate by the alert id (senders derive their message ids from it).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from alerts.delivery.channel_stats import ChannelStats
from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.errors import InvalidArgumentError
from alerts.observability.metrics import Metrics
from alerts.storage.base import Store
from alerts.storage.records import AlertRecord, AttemptOutcome, DeliveryAttempt, DueDelivery

log = structlog.get_logger("alerts.delivery")

Clock = Callable[[], int]
"""Epoch milliseconds."""

DeadLetterHook = Callable[[AlertRecord, str, int, int, str], Awaitable[object]]
"""Told of each delivery an attempt turned DEAD: (alert, channel id, time it died,
attempts made, last error). A failing hook is logged; the delivery stays DEAD."""

CHANNEL_GONE = "channel not found (deleted)"
"""The error recorded on deliveries whose channel no longer exists."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, and when to give up (defaults: about Standard Webhooks' 3 days)."""

    first_delay_s: float = 2.0
    max_delay_s: float = 4 * 3600.0
    retry_period_s: float = 3 * 24 * 3600.0
    max_attempts: int = 0              # 0: only the retry period ends retries

    def __post_init__(self) -> None:
        problems = [why for bad, why in (
            (not self.first_delay_s > 0, "the first retry delay must be > 0"),
            (not self.max_delay_s >= self.first_delay_s,
             "the largest retry delay must be >= the first"),
            (not self.retry_period_s >= 0, "the retry period must be >= 0"),
            (self.max_attempts < 0, "max attempts must be >= 0"),
        ) if bad]
        if problems:
            raise InvalidArgumentError("delivery retry policy: " + "; ".join(problems))

    def backoff_s(self, failures: int, rng: random.Random) -> float:
        """Delay before the next attempt after ``failures`` (>= 1) failed ones: full jitter."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2.0 ** min(failures - 1, 60))
        return rng.uniform(0.0, ceiling)


def next_step(
    policy: RetryPolicy,
    outcome: Outcome,
    *,
    attempts: int,
    first_attempt_ms: int,
    now_ms: int,
    max_attempts: int,
    rng: random.Random,
) -> tuple[str, int]:
    """The delivery's state after an attempt, and when to try next (PENDING only).

    ``attempts`` counts the attempt just made; ``max_attempts`` is the channel's
    limit (0: the policy's).
    """
    if outcome.ok:
        return "DELIVERED", now_ms
    if not outcome.retryable:
        return "DEAD", now_ms
    limit = max_attempts or policy.max_attempts
    deadline = first_attempt_ms + round(policy.retry_period_s * 1000)
    if (limit and attempts >= limit) or now_ms >= deadline:
        return "DEAD", now_ms
    delay_s = policy.backoff_s(attempts, rng)
    if outcome.retry_after_s is not None:
        delay_s = max(delay_s, outcome.retry_after_s)
    return "PENDING", min(now_ms + math.ceil(delay_s * 1000), deadline)


def _message_of(alert: AlertRecord) -> str:
    return alert.message


def _no_subject(alert: AlertRecord) -> str:
    return ""


@dataclass(frozen=True)
class ChannelTarget:
    """What the outbox needs of a channel: its sender and how to word an alert."""

    kind: str                                              # webhook, email, ... (metrics label)
    sender: ChannelSender
    paused: bool = False
    text: Callable[[AlertRecord], str] = _message_of       # the channel's template, rendered
    subject: Callable[[AlertRecord], str] = _no_subject    # email only
    max_attempts: int = 0                                  # 0: the policy's


class ChannelDirectory(Protocol):
    """Channel id -> target; ``None`` when the owner has no such channel (any more)."""

    async def target(self, owner: str, channel_id: str) -> ChannelTarget | None: ...


class _Recorder:
    """Writes attempt outcomes in batches: one store transaction for all that are waiting.

    ``record`` returns once its outcome is committed (or raises the store's error),
    so an attempt's delivery is never read as due again before its outcome is stored.
    """

    def __init__(self, store: Store, max_batch: int = 256) -> None:
        self._store = store
        self._max_batch = max_batch
        self._waiting: list[tuple[AttemptOutcome, asyncio.Future[bool]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox:recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def record(self, outcome: AttemptOutcome) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        self._ready.set()
        return await done

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._waiting:
                batch = self._waiting[:self._max_batch]
                del self._waiting[:self._max_batch]
                try:
                    applied = await self._store.record_attempts([o for o, _ in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - each waiting attempt sees it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, done), ok in zip(batch, applied, strict=True):
                    if not done.done():
                        done.set_result(ok)


@dataclass(eq=False)
class _Worker:
    owner: str
    channel_id: str
    slots: asyncio.Semaphore
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)   # since the last read of due ones began
    task: asyncio.Task[None] | None = None


class Outbox:
    """One worker per channel, driven by the store's PENDING deliveries."""

    def __init__(
        self,
        store: Store,
        directory: ChannelDirectory,
        *,
        policy: RetryPolicy | None = None,
        max_in_flight: int = 4,
        attempt_timeout_s: float = 60.0,
        paused_recheck_s: float = 5.0,
        metrics: Metrics | None = None,
        clock: Clock = wall_clock_ms,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise InvalidArgumentError("delivery: max in flight per channel must be >= 1")
        self.store = store
        self.directory = directory
        self.policy = policy or RetryPolicy()
        self.max_in_flight = max_in_flight
        self.attempt_timeout_s = attempt_timeout_s
        self.paused_recheck_s = paused_recheck_s
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._rng = rng or random.Random()
        self._workers: dict[tuple[str, str], _Worker] = {}
        self._attempts: set[asyncio.Task[None]] = set()
        self._recorder = _Recorder(store)
        self._started = False
        self._stopping = False
        self.on_dead_letter: DeadLetterHook | None = None

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every channel that has PENDING deliveries (state lives only in the store)."""
        counts = await self.store.delivery_counts()
        self.metrics.deliveries_pending.set(counts.get("PENDING", 0))
        self.metrics.dead_letters.set(counts.get("DEAD", 0))
        self._recorder.start()
        self._started = True
        for owner, channel_id in await self.store.pending_channels():
            self.wake(owner, channel_id)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Start no attempt; let those under way finish for ``grace_s``, then cut them off.

        An attempt cut off is not recorded: its delivery stays PENDING for the next start.
        """
        self._stopping = True
        workers = [w.task for w in self._workers.values() if w.task is not None]
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._attempts:
            _, late = await asyncio.wait(set(self._attempts), timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._recorder.stop()

    # -- inputs ------------------------------------------------------------------------------

    def notify(self, records: Sequence[AlertRecord]) -> None:
        """Committed alerts (the processor's listener): wake the workers of their channels."""
        for rec in records:
            channels = dict.fromkeys(rec.channels)
            self.metrics.deliveries_pending.inc(len(channels))
            for channel_id in channels:
                self.wake(rec.owner, channel_id)

    def wake(self, owner: str, channel_id: str) -> None:
        """Look at the channel now (new alerts, resumed, redelivered); starts its worker."""
        if self._stopping or not self._started:
            return
        key = (owner, channel_id)
        worker = self._workers.get(key)
        if worker is None:
            worker = _Worker(owner, channel_id, asyncio.Semaphore(self.max_in_flight))
            worker.task = asyncio.create_task(self._run(worker),
                                              name=f"outbox:{owner}:{channel_id}")
            self._workers[key] = worker
        worker.wake.set()

    async def redeliver(self, owner: str, channel_id: str,
                        alert_ids: Sequence[int] | None = None) -> int:
        """Dead letters of the channel (all, or those of ``alert_ids``) back to PENDING."""
        moved = await self.store.redeliver(owner, channel_id, alert_ids=alert_ids,
                                           now_ms=self._clock())
        if moved:
            self.metrics.dead_letters.dec(moved)
            self.metrics.deliveries_pending.inc(moved)
            self.wake(owner, channel_id)
        return moved

    async def channel_stats(self, owner: str,
                            channel_ids: Sequence[str]) -> dict[str, ChannelStats]:
        """The channels' delivery figures (``ChannelStatsProvider`` of the Channel API).

        A channel is failing while its latest attempt failed and deliveries are pending.
        """
        out: dict[str, ChannelStats] = {}
        for channel_id in dict.fromkeys(channel_ids):
            s = await self.store.channel_delivery_stats(owner, channel_id)
            out[channel_id] = ChannelStats(
                failing=bool(s.last_error) and s.pending > 0,
                last_delivered_alert_id=s.last_delivered_alert_id,
                last_delivery_time_ms=s.last_delivery_time_ms, last_error=s.last_error,
                dead_letter_count=s.dead_letters)
        return out

    # -- the worker --------------------------------------------------------------------------

    async def _run(self, worker: _Worker) -> None:
        while not self._stopping:
            worker.wake.clear()        # before reading: a later notify wakes the next sleep
            try:
                await self._dispatch(worker)
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup: log, pause, read again
                log.exception("outbox worker failed; retrying", owner=worker.owner,
                              channel=worker.channel_id)
                await self._sleep(worker, 1.0)

    async def _dispatch(self, worker: _Worker) -> None:
        target = await self.directory.target(worker.owner, worker.channel_id)
        if target is not None and target.paused:
            await self._sleep(worker, self.paused_recheck_s)
            return
        now = self._clock()
        # An attempt that ends while this read runs may still show as due in it.
        worker.finished.clear()
        due = await self.store.due_deliveries(
            worker.owner, worker.channel_id, now_ms=now,
            limit=2 * self.max_in_flight + len(worker.in_flight))
        busy = worker.in_flight | worker.finished
        fresh = [d for d in due if d.alert.alert_id not in busy]
        if target is None:
            for item in fresh:
                await self._record(worker, "unknown", item, DeliveryAttempt(
                    seq=item.delivery.attempt_seq + 1, time_ms=now, ok=False,
                    error=CHANNEL_GONE), "DEAD", now)
            if fresh:
                return
        else:
            for item in fresh:
                await worker.slots.acquire()
                worker.in_flight.add(item.alert.alert_id)
                task = asyncio.create_task(self._attempt(worker, target, item))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            if fresh:
                return                  # more may be due: read again at once
        upcoming = await self.store.next_attempt_time(worker.owner, worker.channel_id,
                                                      after_ms=now)
        await self._sleep(worker, None if upcoming is None
                          else max(upcoming - self._clock(), 0) / 1000)

    @staticmethod
    async def _sleep(worker: _Worker, timeout_s: float | None) -> None:
        try:
            await asyncio.wait_for(worker.wake.wait(), timeout_s)
        except TimeoutError:
            pass

    async def _attempt(self, worker: _Worker, target: ChannelTarget, item: DueDelivery) -> None:
        alert, delivery = item.alert, item.delivery
        try:
            started_ms = self._clock()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.attempt_timeout_s):
                    outcome = await target.sender.send(Delivery(
                        alert=alert, channel_id=worker.channel_id, text=target.text(alert),
                        subject=target.subject(alert), attempt=delivery.attempts + 1))
            except TimeoutError:
                outcome = Outcome(ok=False, retryable=True,
                                  error=f"no outcome within {self.attempt_timeout_s:g} s")
            except Exception as exc:  # noqa: BLE001 - a sender must not raise; count it failed
                outcome = Outcome(ok=False, retryable=True,
                                  error=f"{type(exc).__name__}: {exc}")
            latency_s = outcome.latency_s or (time.perf_counter() - started)
            now = self._clock()
            state, next_ms = next_step(
                self.policy, outcome, attempts=delivery.attempts + 1,
                first_attempt_ms=delivery.first_attempt_ms or started_ms, now_ms=now,
                max_attempts=target.max_attempts, rng=self._rng)
            attempt = DeliveryAttempt(
                seq=delivery.attempt_seq + 1, time_ms=started_ms, ok=outcome.ok,
                status=outcome.status, latency_ms=latency_s * 1000, error=outcome.error)
            self.metrics.delivery_latency.labels(target.kind).observe(latency_s)
            if not await self._record(worker, target.kind, item, attempt, state, next_ms):
                return
            if state == "DELIVERED":
                self.metrics.alert_to_delivery.labels(target.kind).observe(
                    max(now - alert.commit_time_ms, 0) / 1000)
            elif state == "DEAD" and self.on_dead_letter is not None:
                try:
                    await self.on_dead_letter(alert, worker.channel_id, now,
                                              delivery.attempts + 1, outcome.error)
                except Exception:  # the dead letter is recorded already
                    log.warning("dead letter not announced", owner=worker.owner,
                                channel=worker.channel_id, alert_id=alert.alert_id,
                                exc_info=True)
        except asyncio.CancelledError:
            raise
        except Exception:  # not recorded: still PENDING, tried again
            log.exception("delivery attempt not recorded", owner=worker.owner,
                          channel=worker.channel_id, alert_id=alert.alert_id)
        finally:
            worker.in_flight.discard(alert.alert_id)
            worker.finished.add(alert.alert_id)
            worker.slots.release()
            worker.wake.set()

    async def _record(self, worker: _Worker, kind: str, item: DueDelivery,
                      attempt: DeliveryAttempt, state: str, next_ms: int) -> bool:
        recorded = await self._recorder.record(AttemptOutcome(
            owner=worker.owner, channel_id=worker.channel_id, alert_id=item.alert.alert_id,
            attempt=attempt, state=state, next_attempt_ms=next_ms))
        if not recorded:
            return False
        outcome = {"DELIVERED": "delivered", "DEAD": "dead"}.get(state, "retry")
        self.metrics.deliveries.labels(kind, outcome).inc()
        if state != "PENDING":
            self.metrics.deliveries_pending.dec()
        if state == "DEAD":
            self.metrics.dead_letters.inc()
            log.warning("dead letter", owner=worker.owner, channel=worker.channel_id,
                        alert_id=item.alert.alert_id, attempts=item.delivery.attempts + 1,
                        error=attempt.error)
        return True
