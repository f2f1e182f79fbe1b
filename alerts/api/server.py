"""Assembling the service: store, processor, hub, gRPC server with health and reflection.

``build_server(config)`` returns a started-ready ``App``; tests bind port 0 and
read ``app.port``. With market sources (``market_sources`` on, or ``sources``
given) a ``DataManager`` feeds the engine; each source has a health service name
``alerts.v1.source.<name>``, SERVING while it is up and not stale. Shutdown:
health NOT_SERVING, no new RPCs, the sources stop, the batch under way finishes
and is committed, streams end with UNAVAILABLE, the store closes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from alerts.api.errors import ErrorInterceptor
from alerts.api.service import AlertService
from alerts.config import Config
from alerts.delivery.hub import AlertHub
from alerts.engine.feeds import DataManager, build_sources, parse_routes
from alerts.engine.feeds.routes import parse_venue_times
from alerts.engine.processor import AlertProcessor
from alerts.errors import UnavailableError
from alerts.market.base import MarketSource
from alerts.observability.metrics import start_metrics_server
from alerts.storage import open_store
from alerts.storage.base import Store
from alerts.v1 import service_pb2, service_pb2_grpc

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name
SOURCE_SERVICE_PREFIX = "alerts.v1.source."
"""Health service name of a market source: this prefix and the source's name."""


@dataclass
class App:
    config: Config
    server: grpc.aio.Server
    port: int
    store: Store
    processor: AlertProcessor
    hub: AlertHub
    service: AlertService
    health: health.aio.HealthServicer
    on_stop: list[Callable[[], object]] = field(default_factory=list)
    metrics_address: str = ""
    feeds: DataManager | None = None

    async def start(self) -> None:
        await self.processor.start()
        if self.config.metrics_listen:
            self.metrics_address = start_metrics_server(self.config.metrics_listen, self)
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.feeds is not None:
            await self.feeds.start()

    async def _source_health(self, source: str, serving: bool) -> None:
        await self.health.set(SOURCE_SERVICE_PREFIX + source,
                              health_pb2.HealthCheckResponse.SERVING if serving
                              else health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace: float | None = None) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.feeds is not None:
            await self.feeds.stop()
            for source in self.feeds.source_names:
                await self._source_health(source, False)
        self.service.stopping.set()
        self.hub.close()
        await self.server.stop(self.config.shutdown_grace_s if grace is None else grace)
        await self.processor.stop()
        await self.store.close()
        for callback in self.on_stop:
            callback()


def build_feeds(config: Config, processor: AlertProcessor,
                sources: Mapping[str, MarketSource] | None) -> DataManager | None:
    """The DataManager over ``sources`` (default: the configured ones), or None without any."""
    if sources is None:
        if not config.market_sources:
            return None
        sources = build_sources(config)
    if not sources:
        return None
    return DataManager(
        processor, parse_routes(config.market_routes), sources,
        stale_after_ms=config.feed_stale_after_ms,
        stale_after_by_venue=parse_venue_times(config.feed_stale_after_by_venue,
                                               "feed_stale_after_by_venue"),
        recover_after_ms=config.feed_recover_after_ms,
        check_interval_ms=config.feed_check_interval_ms,
        standby_ticks=config.feed_standby_ticks, warmup_bars=config.warmup_bars,
        warmup_wait_ms=config.warmup_wait_ms)


async def build_server(config: Config,
                       sources: Mapping[str, MarketSource] | None = None) -> App:
    """The service; ``sources`` (by name) replace the configured market sources."""
    store = await open_store(config.store_url)
    try:
        hub = AlertHub(config.subscriber_queue)
        processor = AlertProcessor(store, hub, default_venue=config.default_venue,
                                   grace_ms=config.grace_ms, enable_1s=config.enable_1s,
                                   checkpoint_interval_ms=config.checkpoint_interval_ms)
        feeds = build_feeds(config, processor, sources)
        service = AlertService(store, processor, hub, owner=config.default_owner)
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        service_pb2_grpc.add_AlertServiceServicer_to_server(service, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in ("", SERVICE_NAME, *(SOURCE_SERVICE_PREFIX + s for s in
                                          (feeds.source_names if feeds else ()))):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        try:
            port = server.add_insecure_port(config.grpc_listen)
        except RuntimeError:
            port = 0
        if port == 0:
            raise UnavailableError(
                f"cannot listen on {config.grpc_listen}: the address is in use or not valid here")
    except BaseException:
        await store.close()
        raise
    app = App(config, server, port, store, processor, hub, service, health_servicer, feeds=feeds)
    if feeds is not None:
        feeds.health_listener = app._source_health
    return app
