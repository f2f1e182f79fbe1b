"""An engine with a DataManager over scripted sources, in-process (store: SQLite in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from alerts.delivery.hub import AlertHub
from alerts.engine.feeds import DataManager, parse_routes
from alerts.engine.processor import AlertProcessor
from alerts.rules.format import format_condition
from alerts.rules.parser import parse_condition
from alerts.storage import open_store
from alerts.storage.base import Store
from alerts.storage.records import AlertRecord, RuleRecord
from tests.support.sources import ScriptedSource


@dataclass
class Engine:
    processor: AlertProcessor
    feeds: DataManager
    store: Store

    async def add_rule(self, rule_id: str, symbol: str, condition: str, *,
                       mode: str = "ON_TRUE", owner: str = "local",
                       paused: bool = False) -> RuleRecord:
        rec = RuleRecord(rule_id=rule_id, owner=owner, symbol=self.processor.qualify(symbol),
                         condition_text=format_condition(parse_condition(condition)),
                         mode=mode, paused=paused)
        stored = await self.processor.change_rule(lambda: self.store.create_rule(rec))
        assert stored is not None
        await self.feeds.idle()
        return stored

    async def delete_rule(self, rule_id: str, owner: str = "local") -> None:
        await self.processor.delete_rule(rule_id,
                                         lambda: self.store.delete_rule(owner, rule_id))
        await self.feeds.idle()

    async def alerts(self, owner: str = "local", kind: str | None = None) -> list[AlertRecord]:
        out = await self.store.list_alerts(owner, after_id=0, limit=100_000)
        return [a for a in out if kind is None or a.kind == kind]


@asynccontextmanager
async def engine(routes: str, sources: Sequence[ScriptedSource], *,
                 store_url: str = "sqlite://:memory:", **options: Any) -> AsyncIterator[Engine]:
    store = await open_store(store_url)
    try:
        processor = AlertProcessor(store, AlertHub())
        options.setdefault("check_interval_ms", 3_600_000)    # the tests call check()
        options.setdefault("warmup_wait_ms", 0)
        feeds = DataManager(processor, parse_routes(routes), {s.name: s for s in sources},
                            **options)
        await processor.start()
        await feeds.start()
        try:
            yield Engine(processor, feeds, store)
        finally:
            await feeds.stop()
            await processor.stop()
    finally:
        await store.close()


def rule_alerts(alerts: Sequence[AlertRecord]) -> list[tuple[object, ...]]:
    """What must be equal between two runs over the same data (not ids or wall times)."""
    return [(a.rule_id, a.symbol, a.event_time_ms, a.rank, a.trade_id, a.price, a.values,
             a.timeframe, a.bar_open_ms) for a in alerts if a.kind == "RULE"]
