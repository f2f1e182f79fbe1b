"""End-to-end replay at full speed: recorded trades through the whole market path.

Run from the repository root (venv active)::

    python -m benchmarks.replay_e2e ../shared/data/binance_spot_trades_20240808.csv.gz

The replay exchange (in this process, speed 0: as fast as the client reads)
serves the files; the service (``build_server``, same process and event loop,
a temporary SQLite store) runs the Binance source pointed at it, the
DataManager and the engine. Per symbol of the files two rules are created over
gRPC first (``price crosses sma(3, 1m)`` every time, ``rsi(3, 1m) > 70``
once per bar close), then the replay starts. Measured: from the start of the
replay until every trade was taken by the DataManager (forwarded to the
engine, or, for a new symbol's first minute, replaced by its warm-up history
bar: ``alerts_source_ticks_total``) and committed.
Reported: trades, seconds, trades/s end to end, alerts committed. The exchange
and the service share one process and one core's worth of event loop, so the
figure is a lower bound of what the service alone ingests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import grpc

from alerts.api.server import build_server
from alerts.config import Config
from alerts.market.exchange import ReplayExchange
from alerts.observability.logging import configure_logging
from alerts.v1 import rules_pb2, service_pb2, service_pb2_grpc


def _ticks(registry: object) -> dict[str, float]:
    """``alerts_source_ticks_total`` by outcome."""
    out: dict[str, float] = {}
    for metric in registry.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name == "alerts_source_ticks_total":
                outcome = sample.labels["outcome"]
                out[outcome] = out.get(outcome, 0.0) + sample.value
    return out


def _taken(registry: object) -> float:
    """Trades the DataManager took: passed to the engine, or replaced by warm-up history
    (the first minute of a new symbol is fed as its closed history bar)."""
    ticks = _ticks(registry)
    return ticks.get("forwarded", 0.0) + ticks.get("warming", 0.0)


async def run(files: list[str], timeout_s: float) -> dict[str, float]:
    configure_logging("error")
    async with ReplayExchange.from_files(files, speed=0, paused=True) as ex:
        total = ex.progress().total
        with tempfile.TemporaryDirectory(prefix="alerts-replay-") as tmp:
            config = Config(grpc_listen="127.0.0.1:0", metrics_listen="", ws_listen="",
                            store_url=f"sqlite:///{tmp}/replay.db", market_sources=True,
                            market_routes="binance=binance", binance_ws_url=ex.ws_url,
                            binance_rest_url=ex.rest_url)
            app = await build_server(config)
            await app.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                    stub = service_pb2_grpc.AlertServiceStub(channel)
                    for symbol in ex.symbols:
                        for j, (condition, mode) in enumerate((
                                ("price crosses sma(3, 1m)", rules_pb2.TRIGGER_MODE_EVERY_TIME),
                                ("rsi(3, 1m) > 70", rules_pb2.TRIGGER_MODE_ONCE_PER_BAR_CLOSE))):
                            await stub.CreateRule(service_pb2.CreateRuleRequest(
                                rule_id=f"{symbol.lower()}-{j}", rule=rules_pb2.Rule(
                                    symbol=symbol, condition_text=condition,
                                    trigger_mode=mode)))
                    for symbol in ex.symbols:
                        await ex.wait_subscribed(f"{symbol.lower()}@aggTrade", timeout=30)
                    registry = app.processor.metrics.registry
                    started = time.perf_counter()
                    ex.resume()
                    async with asyncio.timeout(timeout_s):
                        await ex.wait_finished()
                        while _taken(registry) < total:
                            await asyncio.sleep(0.01)   # polled: the figure's end point
                    seconds = time.perf_counter() - started
                    alerts = await app.store.last_alert_id()
            finally:
                await app.stop(grace=1.0)
    return {"trades": total, "seconds": seconds, "trades_per_s": total / seconds,
            "alerts": alerts, "forwarded": _ticks(registry).get("forwarded", 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="recorded trade CSV files (gzip or plain)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds at most")
    args = parser.parse_args()
    for f in args.files:
        if not Path(f).exists():
            parser.error(f"{f}: no such file")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    out = asyncio.run(run(args.files, args.timeout))
    print(f"replay end to end: {out['trades']:,.0f} trades in {out['seconds']:.2f} s = "
          f"{out['trades_per_s']:,.0f} trades/s through exchange -> Binance source -> "
          f"DataManager -> engine -> store ({out['forwarded']:,.0f} forwarded, the rest "
          f"replaced by warm-up bars); {out['alerts']:,.0f} alerts")


if __name__ == "__main__":
    main()
