"""Assembling the service: store, processor, hub, outbox, gRPC server with health and reflection.

``build_server(config)`` returns a started-ready ``App``; tests bind port 0 and
read ``app.port``. Start: the processor restores its state, then the outbox
resumes every pending delivery, then RPCs (and WebSocket clients) are served,
then the market sources start. With market sources (``market_sources`` on, or
``sources`` given) a ``DataManager`` feeds the engine; each source has a health
service name ``alerts.v1.source.<name>``, SERVING while it is up and not stale.
Shutdown: health NOT_SERVING, no new RPCs, the sources stop, the batch under way
finishes and is committed, streams end with UNAVAILABLE, WebSocket clients are
closed with 1001, delivery attempts under way get the shutdown grace to finish
(one cut off stays pending and is sent after the restart), the store closes. The
WebSocket server (``ws_listen``) binds here and accepts clients from
``App.start``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from alerts.api.errors import ErrorInterceptor
from alerts.api.service import AlertService
from alerts.config import Config
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.url_guard import AllowList
from alerts.delivery.hub import AlertHub
from alerts.delivery.outbox import Outbox, RetryPolicy
from alerts.delivery.websocket import WebSocketServer, WebSocketSettings
from alerts.engine.channel_directory import StoreChannelDirectory
from alerts.engine.feeds import DataManager, build_sources, parse_routes
from alerts.engine.feeds.routes import parse_venue_times
from alerts.engine.processor import AlertProcessor
from alerts.engine.system_alerts import dead_letter
from alerts.errors import InvalidArgumentError, UnavailableError
from alerts.market.base import MarketSource
from alerts.observability.metrics import start_metrics_server
from alerts.storage import open_store
from alerts.storage.base import Store
from alerts.storage.records import AlertRecord
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
    outbox: Outbox
    directory: StoreChannelDirectory
    on_stop: list[Callable[[], object]] = field(default_factory=list)
    metrics_address: str = ""
    websocket: WebSocketServer | None = None
    feeds: DataManager | None = None

    @property
    def websocket_address(self) -> str:
        """``host:port`` of the WebSocket server; empty when it is off."""
        return self.websocket.address if self.websocket is not None else ""

    async def start(self) -> None:
        await self.processor.start()
        await self.outbox.start()
        if self.config.metrics_listen:
            self.metrics_address = start_metrics_server(self.config.metrics_listen, self)
        await self.server.start()
        if self.websocket is not None:
            await self.websocket.start()
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
        if self.websocket is not None:
            await self.websocket.stop()       # clients closed with 1001
        self.hub.close()
        await self.server.stop(self.config.shutdown_grace_s if grace is None else grace)
        await self.processor.stop()
        await self.outbox.stop(self.config.shutdown_grace_s if grace is None else grace)
        await self.directory.close()
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
        allow = AllowList.parse(config.webhook_allow_list())   # a bad entry: one-line error
        if not config.webhook_rate_per_s > 0 or config.webhook_max_concurrency < 1:
            raise InvalidArgumentError(
                "webhook_rate_per_s must be > 0 and webhook_max_concurrency >= 1")
        delivery_settings = delivery_settings_of(config)
        directory = StoreChannelDirectory(store, delivery_settings)
        outbox = Outbox(
            store, directory,
            policy=RetryPolicy(first_delay_s=config.delivery_first_retry_s,
                               max_delay_s=config.delivery_max_retry_s,
                               retry_period_s=config.delivery_retry_period_s,
                               max_attempts=config.delivery_max_attempts),
            max_in_flight=config.delivery_max_in_flight,
            attempt_timeout_s=config.delivery_attempt_timeout_s, metrics=processor.metrics)
        processor.committed.append(outbox.notify)

        async def announce_dead_letter(dead: AlertRecord, channel_id: str, died_ms: int,
                                       attempts: int, error: str) -> None:
            await processor.commit_notices([dead_letter(
                dead, channel_id=channel_id, died_ms=died_ms, attempts=attempts, error=error)])
        outbox.on_dead_letter = announce_dead_letter
        feeds = build_feeds(config, processor, sources)
        service = AlertService(store, processor, hub, owner=config.default_owner,
                               webhook_allow=allow,
                               secret_overlap_ms=int(config.webhook_secret_overlap_s * 1000),
                               channel_stats=outbox, delivery_settings=delivery_settings,
                               outbox=outbox,
                               history_bars=feeds.history_bars if feeds else lambda _: 0)
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
        websocket = None
        if config.ws_listen:
            websocket = WebSocketServer(hub, store, _websocket_settings(config),
                                        metrics=processor.metrics)
            service.channel_listeners.append(websocket.channel_changed)
            await websocket.bind()
    except BaseException:
        await store.close()
        raise
    app = App(config, server, port, store, processor, hub, service, health_servicer,
              outbox=outbox, directory=directory, websocket=websocket, feeds=feeds)
    if feeds is not None:
        feeds.health_listener = app._source_health
    return app


def delivery_settings_of(config: Config) -> DeliverySettings:
    """The senders' settings: every ``DeliverySettings`` field ``Config`` has by the same name."""
    same = {f.name: getattr(config, f.name) for f in fields(DeliverySettings)
            if f.name in _CONFIG_FIELDS}
    return DeliverySettings(**{**same, "webhook_allow": config.webhook_allow_list(),
                               "webhook_burst": max(1, math.ceil(config.webhook_rate_per_s))})


_CONFIG_FIELDS = frozenset(f.name for f in fields(Config))


def _websocket_settings(config: Config) -> WebSocketSettings:
    if config.ws_replay_limit < 1:
        raise InvalidArgumentError("ws_replay_limit must be >= 1")
    return WebSocketSettings(
        listen=config.ws_listen, jwt_secret=config.ws_jwt_secret, queue_size=config.ws_queue,
        ping_interval_s=config.ws_ping_interval_s, ping_timeout_s=config.ws_ping_timeout_s,
        write_limit=config.ws_write_limit, close_timeout_s=config.ws_close_timeout_s,
        default_venue=config.default_venue, replay_limit=config.ws_replay_limit)
