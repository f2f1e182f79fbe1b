"""The poll loop shared by the HTTP stock sources (Alpha Vantage, Yahoo).

A ``PollingSource`` follows symbols by asking the provider for each symbol's
recent 1-minute bars in turn (round-robin, least recently polled first),
paced by the source's ``RequestBudget`` so that its limits are never reached
and the budget is spread fairly over the symbols. What reaches the engine:

* Only closed bars: a bar counts as final ``settle_s`` after its end (set it
  to the provider's delay). Each is delivered once, in time order, as the four
  ticks of ``bar_ticks`` (exact OHLCV in the engine's 1m bar), then the
  source's watermark moves to the end of the delivered time so the bars close
  (the source's ``fill_gaps = False`` and ``grace_ms = 0`` are its engine
  clock's: the watermark is exact, and minutes with no trades have no bar).
* The source is one clock for all its symbols, so time is delivered up to a
  common *frontier*: the oldest "known through" time of the symbols being
  followed. A symbol holds the frontier back until it has been polled. One
  with no good answer for ``stale_after_s`` is reported STALE; it stops
  holding the frontier only when its own requests fail while other symbols'
  succeed (a source-wide pause - a rate limit, an outage - holds every symbol,
  so nothing is lost). Bars of a released symbol that arrive behind the
  frontier are logged as late, never sent.
* A bar seen again on a later poll is not sent twice; one whose values changed
  after it was sent is logged and counted (``corrected_bars``), not re-sent.
* Quotes (GLOBAL_QUOTE, chart ``regularMarketPrice``) are not turned into
  ticks: a quote is a snapshot without volume or trade identity that the
  minute's bar later restates, so sending both would count that minute's
  activity twice and could put prices into the bar that the provider's bar
  does not have.

Provider answers never crash the loop: a limit message pauses the budget
(RATE_LIMITED once per episode, RECOVERED after the next good answer), a
malformed payload is a BAD_MESSAGE, an unknown symbol is reported once (a
STALE event naming it) and leaves the rotation until it is subscribed again,
and any other failure is kept in ``health()`` until the symbol goes STALE.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import httpx
import structlog

from alerts.errors import (
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from alerts.market.bar_ticks import MINUTE_MS, bar_ticks
from alerts.market.base import Bar, MarketSink, MarketSource, SourceEvent, SourceHealth, Tick
from alerts.market.budget import BudgetLimits, RequestBudget
from alerts.market.clock import Clock, SystemClock
from alerts.market.tickers import TickerMap

log = structlog.get_logger("alerts.market.polling")

TIMEFRAME_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
_KEEP_SENT_MS = 86_400_000      # how far back sent bars are remembered (corrections)


class SourceRateLimitedError(ResourceExhaustedError):
    """The provider said a limit was reached; ``retry_after_s`` is how long to wait."""

    reason = "SOURCE_RATE_LIMITED"


class UnknownSymbolError(NotFoundError):
    """The provider does not know the ticker."""

    reason = "UNKNOWN_SYMBOL"


class BadPayloadError(UnavailableError):
    """The answer is not in the documented format (bad JSON, missing fields, bad numbers)."""

    reason = "BAD_PAYLOAD"


class ProviderError(UnavailableError):
    """Any other failed request: an error body, an HTTP error status, a timeout."""

    reason = "PROVIDER_ERROR"


@dataclass(frozen=True, slots=True)
class PollSettings:
    """The knobs every polled source has (seconds)."""

    poll_interval_s: float = 60.0     # no symbol is polled more often than this
    settle_s: float = 60.0            # a bar is final this long after its end
    stale_after_s: float | None = None  # None: 3 rounds of the rotation, at least 5 min
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.poll_interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError("poll_interval_s and timeout_s must be > 0")
        if self.settle_s < 0:
            raise ValueError("settle_s must be >= 0")
        if self.stale_after_s is not None and self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0 or None")


@dataclass
class _Followed:
    symbol: str
    ticker: str
    since_ms: int                     # the frontier when it was subscribed
    known_through_ms: int             # every bar ending at or before this is known
    subscribed_s: float
    last_ok_s: float | None = None
    last_poll_s: float | None = None
    failing: bool = False             # its last poll failed (errors, not rate limits)
    others_ok_while_failing: bool = False
    failing_alone: bool = False       # failed again after another symbol's good answer
    unknown: bool = False
    stale: bool = False
    pending: dict[int, Bar] = field(default_factory=dict)
    sent: dict[int, tuple[float, ...]] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)   # late bars already logged


def checked_bar(bar: Bar) -> Bar:
    """``bar`` if its prices are positive and its volume not negative, else BadPayloadError."""
    if min(bar.open, bar.high, bar.low, bar.close) <= 0 or bar.volume < 0:
        raise BadPayloadError(f"impossible bar at {bar.open_ms}: {_values(bar)}")
    return bar


def floor_minute(time_ms: int) -> int:
    return time_ms - time_ms % MINUTE_MS


def _values(bar: Bar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


class PollingSource(MarketSource):
    """A MarketSource that polls an HTTP provider for 1-minute bars."""

    fill_gaps = False
    grace_ms = 0
    provider: ClassVar[str]
    default_base_url: ClassVar[str]
    default_limits: ClassVar[BudgetLimits]
    timeframes: ClassVar[Mapping[str, str]]     # engine timeframe -> provider interval

    def __init__(
        self,
        *,
        name: str | None = None,
        base_url: str | None = None,
        limits: BudgetLimits | None = None,
        tickers: TickerMap | None = None,
        settings: PollSettings | None = None,
        start_ms: int | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name or self.provider
        self.clock: Clock = clock or SystemClock()
        self.settings = settings or PollSettings()
        self.tickers = tickers or TickerMap()
        self.budget = RequestBudget(limits or self.default_limits, self.clock)
        self._base_url = base_url or self.default_base_url
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sink: MarketSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._frontier_ms = floor_minute(
            start_ms if start_ms is not None else int(self.clock.time() * 1000))
        self._followed: dict[str, _Followed] = {}
        self._rotation: deque[str] = deque()
        self._changed = asyncio.Event()
        self._limited = False
        self._health = SourceHealth()
        self._counts = {"corrected_bars": 0.0, "late_bars": 0.0, "errors": 0.0}
        self._events: list[SourceEvent] = []
        self._sent_ms = 0               # send time of the last paced request
        self._watermark_ms = self._frontier_ms   # the last watermark the sink accepted

    # ------------------------------------------------------------ lifecycle --
    async def start(self, sink: MarketSink) -> None:
        if self._task is not None:
            return
        self._sink = sink
        self._client = httpx.AsyncClient(base_url=self._base_url, transport=self._transport,
                                         timeout=self.settings.timeout_s)
        self._task = asyncio.create_task(self._run(), name=f"poll:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self._health.up = False

    async def subscribe(self, symbols: Sequence[str]) -> None:
        tickers = [(s, self.tickers.ticker(s)) for s in symbols]   # all valid, or none added
        now_s = self.clock.time()
        for symbol, ticker in tickers:
            if symbol in self._followed:
                continue
            self._followed[symbol] = _Followed(symbol, ticker, self._frontier_ms,
                                               self._frontier_ms, now_s)
            self._rotation.append(symbol)
        self._changed.set()

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            if self._followed.pop(symbol, None) is not None:
                with contextlib.suppress(ValueError):
                    self._rotation.remove(symbol)
        self._changed.set()

    def health(self) -> SourceHealth:
        h = self._health
        minute, day = self.budget.used()
        h.extra = {
            **self._counts,
            "symbols": float(len(self._followed)),
            "unknown_symbols": float(sum(f.unknown for f in self._followed.values())),
            "stale_symbols": float(sum(f.stale for f in self._followed.values())),
            "requests_last_minute": float(minute),
            "requests_last_day": float(day),
            "frontier_ms": float(self._frontier_ms),
        }
        return h

    @property
    def frontier_ms(self) -> int:
        """Every bar ending at or before this has been delivered (the watermark follows)."""
        return self._frontier_ms

    # -------------------------------------------------------------- history --
    async def history(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[Bar]:
        ticker = self.tickers.ticker(symbol)
        if timeframe not in self.timeframes:
            message = (f"{self.provider} has no {timeframe!r} bars "
                       f"(one of {', '.join(self.timeframes)})")
            raise InvalidArgumentError(message, violations=(FieldViolation("timeframe", message),))
        if end_ms <= start_ms:
            return []
        tf_ms = TIMEFRAME_MS[timeframe]
        final_ms = int(self.clock.time() * 1000 - self.settings.settle_s * 1000)
        try:
            bars = await self._history_bars(symbol, ticker, timeframe, start_ms, end_ms)
        except SourceRateLimitedError as exc:
            self._note_rate_limit(exc)
            raise
        by_open = {b.open_ms: b for b in bars
                   if start_ms <= b.open_ms < end_ms and b.open_ms + tf_ms <= final_ms}
        return [by_open[k] for k in sorted(by_open)]

    # ------------------------------------------------------- provider hooks --
    @abstractmethod
    async def _poll_bars(self, symbol: str, ticker: str, since_ms: int) -> list[Bar]:
        """The symbol's 1m bars from about ``since_ms`` to now (paced requests)."""

    @abstractmethod
    async def _history_bars(self, symbol: str, ticker: str, timeframe: str, start_ms: int,
                            end_ms: int) -> list[Bar]:
        """Bars of ``timeframe`` covering [start_ms, end_ms) (unpaced requests)."""

    async def _get(self, path: str, params: Mapping[str, str] | Callable[[int], Mapping[str, str]],
                   *, paced: bool) -> httpx.Response:
        """One GET inside the budget; transport failures become ProviderError.

        ``params`` may be a function of the send time (epoch ms, read after the
        budget's wait), for queries that depend on "now". A paced request's send
        time is kept: bars are judged final against it.
        """
        client = self._client
        if client is None:
            raise UnavailableError(f"source {self.name!r} is not started")
        await self.budget.acquire(paced=paced)
        sent_ms = int(self.clock.time() * 1000)
        if paced:
            self._sent_ms = sent_ms
        query = params(sent_ms) if callable(params) else params
        try:
            response = await client.get(path, params=dict(query))
        except httpx.TimeoutException as exc:
            raise ProviderError(f"timed out after {self.settings.timeout_s} s: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"request failed: {exc!r}") from exc
        self._health.messages += 1
        self._health.last_message_ms = int(self.clock.time() * 1000)
        return response

    # ------------------------------------------------------------ poll loop --
    async def _run(self) -> None:
        while True:
            try:
                followed = await self._next_due()
                await self._poll(followed)
                self._check_stale()
                await self._deliver()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop outlives anything one round does
                self._counts["errors"] += 1
                self._health.detail = f"poll loop error: {exc!r}"
                log.exception("poll_loop_error", source=self.name)
                await self.clock.sleep(self.settings.poll_interval_s)

    async def _next_due(self) -> _Followed:
        """The least recently polled symbol, once its interval has passed."""
        while True:
            if not self._rotation:
                self._changed.clear()
                await self._changed.wait()
                continue
            followed = self._followed[self._rotation[0]]
            if followed.last_poll_s is not None:
                due = followed.last_poll_s + self.settings.poll_interval_s
                wait = due - self.clock.time()
                if wait > 0:
                    await self.clock.sleep(wait)
                    continue        # the rotation may have changed meanwhile
            self._rotation.rotate(-1)
            return followed

    async def _poll(self, f: _Followed) -> None:
        try:
            bars = await self._poll_bars(f.symbol, f.ticker, f.known_through_ms)
        except SourceRateLimitedError as exc:
            self._note_rate_limit(exc)
        except UnknownSymbolError as exc:
            f.unknown = True
            with contextlib.suppress(ValueError):
                self._rotation.remove(f.symbol)
            log.warning("unknown_symbol", source=self.name, symbol=f.symbol, detail=exc.message)
            self._event("STALE", f"unknown symbol {f.ticker!r}: {exc.message}", f.symbol)
        except BadPayloadError as exc:
            self._note_failure(f)
            self._health.bad_messages += 1
            self._health.up = False
            self._health.detail = f"{f.symbol}: {exc.message}"
            log.warning("bad_payload", source=self.name, symbol=f.symbol, detail=exc.message)
            self._event("BAD_MESSAGE", exc.message, f.symbol)
        except ProviderError as exc:
            self._note_failure(f)
            self._counts["errors"] += 1
            self._health.up = False
            self._health.detail = f"{f.symbol}: {exc.message}"
            log.warning("provider_error", source=self.name, symbol=f.symbol, detail=exc.message)
        else:
            self._health.up = True
            self._health.detail = ""
            f.last_ok_s = self.clock.time()
            f.failing = f.others_ok_while_failing = f.failing_alone = False
            for other in self._followed.values():
                if other.failing:
                    other.others_ok_while_failing = True
            if self._limited:
                self._limited = False
                self._event("RECOVERED", "requests answered again", None)
            if f.stale:
                f.stale = False
                self._event("RECOVERED", "bars received again", f.symbol)
            self._merge(f, bars, self._sent_ms)
        finally:
            f.last_poll_s = self.clock.time()

    def _note_rate_limit(self, exc: SourceRateLimitedError) -> None:
        """Pause the budget; the event is sent by the caller's loop (once per episode)."""
        self._health.rate_limited += 1
        self._health.detail = f"rate limited: {exc.message}"
        self.budget.pause_until(self.clock.time() + exc.retry_after_s)
        if not self._limited:
            self._limited = True
            log.warning("rate_limited", source=self.name, retry_after_s=exc.retry_after_s,
                        detail=exc.message)
            self._event("RATE_LIMITED", f"{exc.message} (waiting {exc.retry_after_s:.0f} s)", None)

    def _merge(self, f: _Followed, bars: Sequence[Bar], now_ms: int) -> None:
        """Keep the new closed bars; log late and corrected ones."""
        final_ms = floor_minute(now_ms - int(self.settings.settle_s * 1000))
        remembered_from = max(f.since_ms, self._frontier_ms - _KEEP_SENT_MS)
        for bar in bars:
            if bar.open_ms + MINUTE_MS > final_ms:
                continue                        # still forming, or not settled yet
            if bar.open_ms >= self._frontier_ms:
                f.pending[bar.open_ms] = bar
                continue
            if bar.open_ms < remembered_from:
                continue                        # from before we followed it
            sent = f.sent.get(bar.open_ms)
            if sent is None:
                if bar.open_ms in f.dropped:
                    continue
                f.dropped.add(bar.open_ms)
                self._counts["late_bars"] += 1
                log.warning("late_bar", source=self.name, symbol=f.symbol, open_ms=bar.open_ms,
                            frontier_ms=self._frontier_ms)
            elif sent != _values(bar):
                self._counts["corrected_bars"] += 1
                f.sent[bar.open_ms] = _values(bar)   # log each correction once
                log.warning("corrected_bar", source=self.name, symbol=f.symbol,
                            open_ms=bar.open_ms, sent=sent, now=_values(bar))
        f.known_through_ms = max(f.known_through_ms, final_ms)

    def _check_stale(self) -> None:
        now_s = self.clock.time()
        limit = self._stale_after_s()
        for f in list(self._followed.values()):
            if f.unknown or f.stale:
                continue
            last = f.last_ok_s if f.last_ok_s is not None else f.subscribed_s
            if now_s - last > limit:
                f.stale = True
                log.warning("stale_symbol", source=self.name, symbol=f.symbol,
                            silent_s=now_s - last)
                self._event("STALE", f"no bars for {now_s - last:.0f} s", f.symbol)

    def _stale_after_s(self) -> float:
        if self.settings.stale_after_s is not None:
            return self.settings.stale_after_s
        n = max(1, len(self._rotation))
        cycle = max(self.settings.poll_interval_s, n * self.budget.limits.spacing_s)
        return max(300.0, 3 * cycle)

    async def _deliver(self) -> None:
        """Send the queued events, every pending bar up to the common frontier, the watermark."""
        sink = self._sink
        assert sink is not None
        while self._events:
            await sink.event(self._events[0])
            del self._events[0]
        holding = [f.known_through_ms for f in self._followed.values() if self._holds(f)]
        target = min(holding, default=self._frontier_ms)
        if target > self._frontier_ms:
            await self._send_bars(sink, target)
        if self._watermark_ms < self._frontier_ms:     # also retries one that failed
            await sink.watermark(self.name, self._frontier_ms)
            self._watermark_ms = self._frontier_ms
            self._health.lag_ms = self.clock.time() * 1000 - self._frontier_ms

    async def _send_bars(self, sink: MarketSink, target: int) -> None:
        due: list[tuple[_Followed, Bar]] = []
        for f in self._followed.values():
            for open_ms in sorted(k for k in f.pending if k + MINUTE_MS <= target):
                due.append((f, f.pending[open_ms]))
        ticks: list[Tick] = []
        for _, bar in due:
            ticks.extend(bar_ticks(bar))
        ticks.sort(key=lambda t: t.time_ms)
        if ticks:
            await sink.ticks(self.name, ticks)
        forget = target - _KEEP_SENT_MS
        for f, bar in due:       # applied: never sent again
            del f.pending[bar.open_ms]
            f.sent[bar.open_ms] = _values(bar)
        for f in self._followed.values():
            for open_ms in [k for k in f.sent if k < forget]:
                del f.sent[open_ms]
            f.dropped = {k for k in f.dropped if k >= forget}
        self._frontier_ms = target

    def _holds(self, f: _Followed) -> bool:
        """Whether ``f`` holds the frontier: known, and not stale while failing alone."""
        return not f.unknown and not (f.stale and f.failing_alone)

    @staticmethod
    def _note_failure(f: _Followed) -> None:
        if f.failing and f.others_ok_while_failing:
            f.failing_alone = True
        f.failing = True

    def _event(self, kind: str, detail: str, symbol: str | None) -> None:
        """Queue an event; the loop hands it to the sink before the next delivery."""
        self._events.append(
            SourceEvent(kind, self.name, int(self.clock.time() * 1000), detail, symbol))
